/**
 * The precheck and the check of every host (`main.ts check`): each host's check command runs on
 * it, CHECK_PARALLEL hosts at a time, each in its own SSH session; with an artifact (the check
 * after the build) the release is staged on every host in the same session, before any host
 * changes. Every host's result is shown; the run fails naming the hosts that failed.
 */
import { delivery } from "./delivery";
import { ChecksJob, RemoteHost } from "./jobs";
import { mapLimit } from "./pool";
import { hostFailure, hostScript } from "./remote";
import { Ssh, explainSshFailure } from "./ssh";
import { NodeRow, SwarmFacts, SwarmInfo, planSwarm } from "./swarm";

/** Hosts checked at once: each is an SSH login and, with an artifact, a copy of it. */
export const CHECK_PARALLEL = 32;

export interface HostCheck {
    name: string;
    /** The host's last JSON line (see forklift-host.sh check), when it passed. */
    facts?: Record<string, unknown>;
    /** Why it failed, naming the host. */
    problem?: string;
}

/** What the check found: every host's facts, and the steps of the rollout (see planSwarm). */
export interface CheckReport {
    hosts: HostCheck[];
    steps: string[][];
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

export async function runChecks(job: ChecksJob, log: (line: string) => void): Promise<CheckReport> {
    const ssh = new Ssh(job.insecure);
    try {
        const artifact = job.artifact ? await delivery(job.artifact, ssh, log, true) : undefined;
        const script = hostScript();
        const results = await mapLimit(job.hosts, CHECK_PARALLEL, async (host): Promise<HostCheck> => {
            const alias = ssh.add(host);
            const r = await ssh.run(alias, host.command, { input: [script, ...(artifact ? await artifact.input() : [])] });
            if (r.code === 0) {
                const facts = JSON.parse(r.stdout.trim().split("\n").pop() || "{}") as Record<string, unknown>;
                const staged = !job.artifact ? "" : facts.copied ? ", release staged" : ", release there already";
                log(`${host.name} (${host.route.address}:${host.route.port}): checked${staged}`);
                return { name: host.name, facts };
            }
            const problem = artifact?.explain(host.name, r.stderr) ?? hostFailure(host, r);
            log(problem);
            return { name: host.name, problem };
        });
        const failed = results.filter((r) => r.problem);
        const advice = await artifact?.finish(
            failed.map((f) => f.problem!),
            log,
        );
        const what = job.phase === "precheck" ? "the precheck" : "the check";
        if (failed.length > 0) {
            throw new Error(`${what} failed on ${failed.length} of ${results.length} hosts: ${failed.map((f) => f.name).join(", ")} (see above)${advice ? `. ${advice}` : ""}`);
        }
        // the Swarm clusters of the fleet, and the rollout's steps over them
        const others = await mapLimit(job.swarm.probes, CHECK_PARALLEL, async (m) => probeManager(ssh, m));
        const swarm = planSwarm(
            results.map((r) => ({ name: r.name, swarm: r.facts?.swarm as SwarmInfo | null, nodes: r.facts?.nodes as NodeRow[] | undefined })),
            others,
            job.swarm,
        );
        for (const m of swarm.members) log(`${m.host}: Swarm ${m.manager ? "manager" : "worker"} (node ${m.nodeId.slice(0, 12)}, cluster ${m.cluster.slice(0, 12)})`);
        for (const w of swarm.warnings) log(`WARN: ${w}`);
        if (swarm.problems.length > 0) {
            for (const p of swarm.problems) log(p);
            throw new Error(`${what} refused the rollout: ${swarm.problems.length === 1 ? swarm.problems[0] : `${swarm.problems.length} problems (see above)`}. Nothing was changed`);
        }
        return { hosts: results, steps: swarm.steps };
    } finally {
        ssh.close();
    }
}
