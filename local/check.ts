/**
 * The precheck and the check of every host (`main.ts check`): each host's check command runs on
 * it, CHECK_PARALLEL hosts at a time, each in its own SSH session; with an artifact (the check
 * after the build) the release is staged on every host in the same session, before any host
 * changes. Every host's result is shown; the run fails naming the hosts that failed.
 */
import { delivery } from "./delivery";
import { ChecksJob, RemoteHost } from "../lib/protocol/jobs";
import { HostErrorLine, HostFacts, NodeRow, SwarmInfo, lastOf } from "../lib/protocol/results";
import { mapLimit } from "./pool";
import { hostFailure, hostLines, hostScript } from "./remote";
import { Ssh, explainSshFailure } from "./ssh";
import { SwarmFacts, SwarmMember, planSwarm } from "./swarm";
import { localDataMounts, names, replicaCount } from "./swarm-drain";
import { Cluster, drainLabel, recoverRecords, unlockKeyProblem } from "./swarm-node";

/** Hosts checked at once: each is an SSH login and, with an artifact, a copy of it. */
export const CHECK_PARALLEL = 32;

export interface HostCheck {
    name: string;
    /** The host's last JSON line (see forklift-host.sh check), when it passed. */
    facts?: HostFacts;
    /** Why it failed, naming the host. */
    problem?: string;
    /** What failed, where the host script said (its `fail` line). */
    error?: HostErrorLine;
}

/** What the check found: every host's facts, and the steps of the rollout (see planSwarm). */
export interface CheckReport {
    hosts: HostCheck[];
    steps: string[][];
    /** For the plan: the Swarm nodes (IDs) that stopped runs of this stack left drained. */
    drainRecords: string[];
}

/**
 * The cluster as a swarmManagers entry outside the fleet sees it (its Swarm part, the nodes);
 * none when it does not answer: the check's plan then lacks that cluster and says so.
 */
async function probeManager(ssh: Ssh, m: RemoteHost & { command: string }): Promise<SwarmFacts> {
    const r = await ssh.run(ssh.add(m), m.command);
    if (r.code !== 0) throw new Error(`swarmManagers: ${r.code === 255 ? explainSshFailure(m, r.stderr) : `${m.name} (${m.route.address}): \`docker info\` or \`docker node ls\` failed: ${r.stderr.trim().split("\n").pop() ?? `exit ${r.code}`}`}`);
    const [info, ...nodes] = r.stdout.trim().split("\n");
    return { name: m.name, swarm: JSON.parse(info) as SwarmInfo, nodes: nodes.map((l) => JSON.parse(l) as NodeRow) };
}

/** Cluster ID of the fleet (its MEMBERS), reached through its managers among CONTACTS; none where none is one. */
function clusterOf(ssh: Ssh, id: string, members: SwarmMember[], contacts: RemoteHost[], facts: SwarmFacts[], others: SwarmFacts[]): Cluster | undefined {
    const managers = [...facts, ...others].filter((f) => f.swarm?.ControlAvailable && f.swarm.Cluster?.ID === id).map((f) => contacts.find((c) => c.name === f.name)!).filter(Boolean);
    if (managers.length === 0) return undefined;
    return new Cluster(ssh, managers.map((m) => ({ alias: ssh.add(m, { persist: true }), host: m })), members[0].nodeId);
}

/**
 * Before the first batch, one cluster of the fleet (its fleet MEMBERS) is put right and looked at,
 * through its managers among CONTACTS (fleet hosts, swarmManagers' other machines): what stopped
 * runs of this stack left there (drained nodes, services scaled up) is given back; with autolock
 * on, swarmUnlockKey must be the cluster's key; services that keep data on the fleet's nodes are
 * named. Returns why the rollout must not start, if it must not.
 */
async function settleCluster(
    ssh: Ssh,
    id: string,
    members: SwarmMember[],
    contacts: RemoteHost[],
    facts: SwarmFacts[],
    others: SwarmFacts[],
    job: ChecksJob,
    log: (line: string) => void,
): Promise<string | undefined> {
    const cluster = clusterOf(ssh, id, members, contacts, facts, others);
    if (!cluster) return undefined;
    for (const line of await recoverRecords(cluster, job.swarm.stackId)) log(line);
    const autolock = [...facts, ...others].find((f) => f.swarm?.Cluster?.ID === id)?.swarm?.Cluster?.Spec?.EncryptionConfig?.AutoLockManagers;
    // (no key at all is planSwarm's refusal, with the managers named)
    if (job.swarm.unlockKey && members.some((m) => m.manager)) {
        const problem = await unlockKeyProblem(cluster, id, autolock, job.swarm.unlockKey);
        if (problem) return problem;
    }
    const hostnames = new Map((await cluster.nodeSpecs()).map((n) => [n.ID, n.Description.Hostname]));
    const fleet = new Set(members.map((m) => hostnames.get(m.nodeId)));
    const services = await cluster.serviceSpecs();
    const running = await cluster.running(services);
    for (const s of services) {
        const mounts = localDataMounts(s);
        const on = [...(running.get(s.Spec.Name) ?? new Map<string, number>()).keys()].filter((h) => fleet.has(h));
        if (mounts.length === 0 || on.length === 0 || replicaCount(s) === undefined) continue;
        const moved = names(job.swarm.moveLocalData, s.Spec.Name);
        log(`Swarm cluster ${id.slice(0, 12)}: ${s.Spec.Name} keeps data on its nodes (${mounts.join(", ")}) and runs on ${on.join(", ")}: ${moved ? "its tasks move off a drained node anyway (swarmMoveLocalData)" : "a drain of those nodes is refused unless swarmMoveLocalData names it"}`);
    }
    return undefined;
}

/** How runChecks reports. */
export interface CheckOptions {
    /** Where the hosts' own lines go as they come (a host waiting for another run's lock says so). */
    pass?: (line: string) => void;
    /**
     * For the plan, which shows every host and changes nothing: a host that fails does not fail
     * the run (the report has it with its problem, and no steps), and the nodes that stopped runs of
     * this stack left drained are read (`drainRecords`), not given back.
     */
    forPlan?: boolean;
}

/** Checks every host of JOB. A host that fails fails the run, naming it (but see CheckOptions.forPlan). */
export async function runChecks(job: ChecksJob, log: (line: string) => void, opts: CheckOptions = {}): Promise<CheckReport> {
    const ssh = new Ssh(job.insecure);
    try {
        const artifact = job.artifact ? await delivery(job.artifact, ssh, log, true) : undefined;
        const script = hostScript();
        const results = await mapLimit(job.hosts, CHECK_PARALLEL, async (host): Promise<HostCheck> => {
            const alias = ssh.add(host);
            // (its ERROR line is this host's problem, which the check names itself below)
            const errorLine = `[forklift ${host.name}] ERROR: `;
            const pass = opts.pass && hostLines((line) => line.startsWith(errorLine) || opts.pass!(line));
            const r = await ssh.run(alias, host.command, { input: [script, ...(artifact ? await artifact.input() : [])], onStderrLine: pass });
            if (r.code === 0) {
                const facts = lastOf(HostFacts, r.stdout);
                if (!facts) {
                    const problem = `${host.name} (${host.route.address}:${host.route.port}): its check printed no facts; its output ended with: ${r.stdout.trim().slice(-200)}`;
                    log(problem);
                    return { name: host.name, problem };
                }
                const staged = !job.artifact ? "" : facts.copied ? ", release staged" : ", release there already";
                log(`${host.name} (${host.route.address}:${host.route.port}): checked${staged}`);
                return { name: host.name, facts };
            }
            const error = lastOf(HostErrorLine, r.stdout);
            const problem = artifact?.explain(host.name, error) ?? hostFailure(host, r);
            log(problem);
            return { name: host.name, problem, error };
        });
        const failed = results.filter((r) => r.problem);
        const advice = await artifact?.finish(
            failed.map((f) => f.error),
            log,
        );
        const what = job.phase === "precheck" ? "the precheck" : "the check";
        if (failed.length > 0 && opts.forPlan) return { hosts: results, steps: [], drainRecords: [] };
        if (failed.length > 0) {
            throw new Error(`${what} failed on ${failed.length} of ${results.length} hosts: ${failed.map((f) => f.name).join(", ")} (see above)${advice ? `. ${advice}` : ""}`);
        }
        // the Swarm clusters of the fleet, and the rollout's steps over them
        const others = await mapLimit(job.swarm.probes, CHECK_PARALLEL, async (m) => probeManager(ssh, m));
        const facts = results.map((r) => ({ name: r.name, swarm: r.facts?.swarm ?? null, nodes: r.facts?.nodes }));
        const swarm = planSwarm(facts, others, { ...job.swarm, unlockKey: !!job.swarm.unlockKey });
        for (const m of swarm.members) log(`${m.host}: Swarm ${m.manager ? "manager" : "worker"} (node ${m.nodeId.slice(0, 12)}, cluster ${m.cluster.slice(0, 12)})`);
        for (const w of swarm.warnings) log(`WARN: ${w}`);
        if (swarm.problems.length > 0) {
            for (const p of swarm.problems) log(p);
            throw new Error(`${what} refused the rollout: ${swarm.problems.length === 1 ? swarm.problems[0] : `${swarm.problems.length} problems (see above)`}. Nothing was changed`);
        }
        const contacts = [...job.hosts, ...job.swarm.probes];
        const clusters = [...new Set(swarm.members.map((m) => m.cluster))];
        // for the plan: the nodes stopped runs left drained, which the check will give back (read only)
        if (opts.forPlan) {
            const drainRecords: string[] = [];
            for (const id of clusters) {
                const cluster = clusterOf(ssh, id, swarm.members.filter((m) => m.cluster === id), contacts, facts, others);
                const drain = drainLabel(job.swarm.stackId);
                for (const n of cluster ? await cluster.nodeSpecs() : []) if (n.Spec.Labels?.[drain] !== undefined) drainRecords.push(n.ID);
            }
            return { hosts: results, steps: swarm.steps, drainRecords };
        }
        // right before the first batch: each cluster as this stack left it, and its key checked
        if (job.phase === "check") {
            for (const cluster of clusters) {
                const problem = await settleCluster(ssh, cluster, swarm.members.filter((m) => m.cluster === cluster), contacts, facts, others, job, log);
                if (problem) throw new Error(`the check refused the rollout: ${problem}. Nothing was changed`);
            }
        }
        return { hosts: results, steps: swarm.steps, drainRecords: [] };
    } finally {
        ssh.close();
    }
}
