import * as pulumi from "@pulumi/pulumi";
import * as command from "@pulumi/command";
import { spawn } from "node:child_process";
import * as path from "node:path";
import { SwarmConfig } from "../lib/config";
import { hashInputs } from "../lib/hash";
import { HostStatus, PreviewPlan, RolloutResult, lastDocument } from "../lib/protocol/results";
import { checkedHost, checksJob, hostScriptHash, localCommand, planJob, rolloutJob, storeObjectJob, swarmCheck } from "../lib/protocol/local";
import { WaveSize, checkPlan, planTable } from "../lib/rollout";
import { ArtifactSource, ChecksJob, S3Store, SwarmCheck, SwarmNodeJob } from "../lib/protocol/jobs";
import { ReachableHost, configuredHost, remoteHost } from "../lib/connection";
import { Artifact, FleetHost, hostOwner } from "./fleet-host";

export interface RolloutArgs {
    /** Fleet hosts in rollout order: existing hosts as listed, then launched instances. */
    hosts: ReachableHost[];
    /**
     * Hosts upgraded at once (`batchSize`, 1 unless set). A batch starts only after every host
     * of the previous one verified; a failed host stops the batches after it. A Swarm's managers
     * go one at a time whatever it says.
     */
    batchSize: number;
    /**
     * The waves (`waves`: counts, or percentages of the group), the last repeated; of the hosts in
     * no Swarm and of each cluster's workers.
     * @default [batchSize]
     */
    waves?: WaveSize[];
    /**
     * `healthCheck`: a command (bash, as root) that must pass on each host after its restart, or
     * the host is rolled back; and its timeout in seconds.
     * @default none
     */
    healthCheck?: { command: string; timeoutSeconds: number };
    /**
     * `soakSeconds`: after each step, this long, then the health check again of each of its
     * hosts whose release has not passed a soak (updated now, or by a run stopped in its soak).
     * @default 0
     */
    soakSeconds?: number;
    /**
     * `maxFailures`: hosts that may fail (each rolled back) before the rollout stops; a count, or a
     * percentage of the fleet. `pulumi up` fails when any did.
     * @default 0
     */
    maxFailures?: WaveSize;
    artifact: Artifact;
    /** Where the binaries are linked on each host (see FleetHostArgs). */
    installDir: string;
    /** Managed daemon.json settings, or null for the hosts' own (see FleetHostArgs). */
    daemonJson: Record<string, unknown> | null;
    /** Local artifact cache directory (see FleetHostArgs). */
    cacheDir: string;
    /** Skip host key checks (explicit opt-in, warned). */
    insecureSkipHostKeyCheck: boolean;
    /** The stack's random identity, recorded on every host as its owner (see FleetHostArgs). */
    stackId: pulumi.Input<string>;
    /**
     * The Swarm settings (`swarmManagers`, `swarmDrainTimeout`, `swarmNodeTimeout`,
     * `swarmAllowTwoManagers`); hosts in no Swarm are rolled out as if there were none.
     */
    swarm: SwarmConfig;
    /** Seconds an SSH connection to a manager outside the fleet may take (`sshConnectTimeout`). */
    connectTimeout: number;
    /**
     * The S3 bucket (forklift's, or a store the user runs) that the build host uploads the
     * artifact to and every fleet host fetches it from (`artifactSource`).
     * @default none: the relay through the machine of `pulumi up`
     */
    store?: pulumi.Input<StoreSettings>;
}

/** An S3 bucket as the rollout uses it: objects PREFIX<sha256>.tgz. */
export interface StoreSettings {
    endpoint?: string;
    bucket: string;
    region: string;
    prefix: string;
    pathStyle: boolean;
}

/**
 * The release rolled out over the fleet, step by step. While the fork builds, the existing hosts
 * are prechecked, all in one local command (`NAME-precheck`); when it is built, every host is
 * checked and the release staged on it, in another (`NAME-check`), before the first step starts:
 * copied through this machine, or fetched by each host from the store the build host put it in.
 * The check also plans the steps: the hosts in no Swarm in batches of `batchSize`, then each
 * Swarm cluster's managers one at a time (its leader last) and its workers in batches; each
 * install waits for the installs of the step before it.
 */
export class Rollout extends pulumi.ComponentResource {
    /** Absent when every host is a launched instance (see createPrecheck). */
    readonly precheck?: command.local.Command;
    readonly statuses: pulumi.Output<(HostStatus & { address: string })[]>;
    /** The last rollout: its steps, and each host's outcome (see local/rollout.ts). */
    readonly report: pulumi.Output<RolloutOutput>;

    constructor(name: string, args: RolloutArgs, opts?: pulumi.ComponentResourceOptions) {
        super("forklift:index:Rollout", name, {}, opts);
        const parent = this;
        // where the artifact is fetched from into the local cache, once, and staged on the hosts
        const source = pulumi
            .all([remoteHost(args.artifact.builder, args.insecureSkipHostKeyCheck), args.artifact.remotePath, args.artifact.sha256, args.store, args.stackId])
            .apply(([builder, path, sha256, store, stackId]): ArtifactSource => ({
                sha256,
                path,
                builder,
                cacheDir: args.cacheDir,
                ...(store ? { store: storeOf(store, stackId, sha256) } : {}),
            }));
        if (args.store) storeObject(source.apply((s) => s.store!));
        const managers = swarmManagers();
        // (FORKLIFT_PLAN's table, where it was asked for: see showPlan)
        let plannedPreview: pulumi.Output<string> | undefined;
        const precheck = (this.precheck = createPrecheck());
        // Each install waits for the step before its own in the check's plan (the first step for
        // the check and the precheck). The check is made from every host's install, so it comes
        // after them: the installs are given a promise of it, settled before this constructor
        // returns (a component's dependents collect its children when it is constructed: none may
        // come later).
        let settleCheck!: (check: command.local.Command) => void;
        const checked = new Promise<command.local.Command>((resolve) => (settleCheck = resolve));
        const rolled = pulumi.output(checked).apply((check) => check.stdout);
        const steps = rolled.apply((stdout) => planOf(stdout, args.hosts));
        const installs = new Map<string, FleetHost>();
        const hosts = args.hosts.map((host) => {
            const fleetHost = createFleetHost(host, after(host.name), rolled.apply((stdout) => statusIn(stdout, host.name)));
            installs.set(host.name, fleetHost);
            return fleetHost;
        });
        const check = createCheck(hosts);
        settleCheck(check);
        this.statuses = pulumi.all(hosts.map((h, i) => pulumi.all([h.status, args.hosts[i].address]).apply(([s, address]) => ({ ...s, address }))));
        this.report = check.stdout.apply(reportOf);
        this.registerOutputs({ statuses: this.statuses, report: this.report, ...(plannedPreview ? { plan: plannedPreview } : {}) });

        // What the install of HOST waits for: the installs of the step before its own.
        function after(host: string): pulumi.Output<pulumi.Resource[]> {
            return pulumi.all([steps, checked]).apply(([plan, check]) => {
                const step = plan.findIndex((s) => s.includes(host));
                if (step <= 0) return precheck ? [check, precheck] : [check];
                return plan[step - 1].map((h) => installs.get(h)!.install);
            });
        }

        function createFleetHost(host: ReachableHost, after: pulumi.Output<pulumi.Resource[]>, rolledOut: pulumi.Output<string | undefined>): FleetHost {
            return new FleetHost(
                fleetHostName(name, host),
                {
                    host,
                    formerName: host.instance ? `${name}-${host.name}` : undefined,
                    artifact: args.artifact,
                    source,
                    installDir: args.installDir,
                    daemonJson: args.daemonJson,
                    after,
                    rolledOut,
                    insecureSkipHostKeyCheck: args.insecureSkipHostKeyCheck,
                    stackId: args.stackId,
                    swarm: managers.node,
                    healthCheck: args.healthCheck,
                },
                { parent },
            );
        }

        // swarmManagers as the local commands reach them: fleet hosts by their names, and the
        // machines of their own (whose cluster the check reads).
        function swarmManagers(): { node: pulumi.Output<SwarmNodeJob>; check: pulumi.Output<SwarmCheck> } {
            const fleet = args.swarm.managers.flatMap((m) => ("fleetHost" in m ? [m.fleetHost] : []));
            const others = args.swarm.managers.flatMap((m) => ("external" in m ? [configuredHost(m.external, args.connectTimeout)] : []));
            const byName = (n: string) => args.hosts.find((h) => h.name === n)!;
            const all = pulumi.all(args.swarm.managers.map((m) => remoteHost("fleetHost" in m ? byName(m.fleetHost) : others.find((o) => o.name === m.external.name)!, args.insecureSkipHostKeyCheck)));
            const outside = pulumi.all(others.map((o) => remoteHost(o, args.insecureSkipHostKeyCheck)));
            const s = args.swarm;
            return {
                node: pulumi.all([all, args.stackId]).apply(([list, stackId]) => ({
                    managers: list,
                    drainTimeout: s.drainTimeout,
                    nodeTimeout: s.nodeTimeout,
                    allowTwoManagers: s.allowTwoManagers,
                    stackId,
                    maxDrained: s.maxDrained,
                    acceptDowntime: s.acceptDowntime,
                    moveLocalData: s.moveLocalData,
                    surge: s.surge,
                    ...(s.unlockKey ? { unlockKey: s.unlockKey } : {}),
                })),
                check: pulumi.all([outside, args.stackId]).apply(([otherManagers, stackId]) =>
                    swarmCheck({ batchSize: args.batchSize, waves: args.waves, allowTwoManagers: s.allowTwoManagers, daemonJson: args.daemonJson, fleetManagers: fleet, otherManagers, stackId, unlockKey: s.unlockKey, moveLocalData: s.moveLocalData }),
                ),
            };
        }

        // While the fork builds, the existing hosts are checked for all but the room the release
        // needs (its size is not known yet), their Swarm clusters included: a wrong host key or
        // login, a host that is down or a cluster that cannot take a rollout stops the `pulumi up`
        // at its start instead of after a build of minutes. One local command checks them all at
        // once, so that it takes one of the engine's parallel slots (4 per CPU unless --parallel),
        // not one per host while the build step waits for one. It runs whenever the build's
        // inputs (not the build script alone: it rebuilds the same bytes), the install settings or
        // the list of existing hosts change. Launched instances
        // get none: they may still be booting then.
        function createPrecheck(): command.local.Command | undefined {
            const existing = args.hosts.filter((h) => !h.instance);
            if (existing.length === 0) return undefined;
            const hosts = existing.map((h) => pulumi.all([remoteHost(h, args.insecureSkipHostKeyCheck), hostOwner(h, args.stackId)]).apply(([remote, owner]) => checkedHost(remote, owner)));
            const job = pulumi.all([pulumi.all(hosts), managers.check]).apply(([all, swarm]) => checksJob("precheck", args.insecureSkipHostKeyCheck, all, swarm));
            if (planRequested()) showPlan(job);
            const key = pulumi.all([pulumi.all(hosts), managers.check]).apply(([all, swarm]) =>
                hashInputs({
                    fork: args.artifact.inputsKey,
                    installDir: args.installDir,
                    daemonJson: args.daemonJson,
                    script: hostScriptHash(),
                    hosts: all,
                    swarm,
                }),
            );
            return checkAll("precheck", job, key);
        }

        // `FORKLIFT_PLAN=1 pulumi preview`: the plan before anything changes, from the precheck
        // (read-only on the hosts) run now by `main.ts plan`, shown as this component's message.
        // The release's sha256 is known where the build is the one in the state.
        function showPlan(checks: pulumi.Output<ChecksJob>): void {
            const launched = args.hosts.filter((h) => h.instance).map((h) => h.name);
            const plan = checks.apply(async (c) => {
                const sha256 = await knownNow(pulumi.output(args.artifact.sha256));
                // (its progress as the resource's passing status, as a command's output shows)
                const out = await runLocal("plan", JSON.stringify(planJob(c, { label: args.artifact.label, sha256 }, launched)), (line) => void pulumi.log.info(line, parent, undefined, true));
                const shown = lastDocument(PreviewPlan, out, "`main.ts plan`");
                const table = planTable(shown);
                await pulumi.log.info(table, parent);
                // The preview fails, as the precheck would fail the update: by an unhandled rejection,
                // which fails the run (a logged error leaves the preview at exit 0, and a rejected
                // output reads as an error serializing the component's outputs). Once the program's
                // function has returned, the SDK shows such an error's stack: here, its message alone.
                if (shown.problems.length > 0) {
                    const message = `the precheck failed on ${shown.problems.length} of ${shown.hosts.length} hosts (see the plan above): \`pulumi up\` would stop there, before any change`;
                    void Promise.reject(Object.assign(new pulumi.RunError(message), { stack: message }));
                }
                return table;
            });
            plannedPreview = plan;
        }

        // When the fork is built, the rollout, in one local command (one of the engine's slots):
        // every host is checked once more, for the room the release needs (its size is known now)
        // and all the precheck checked (a launched instance gets no precheck), the release is
        // staged on it, the steps are planned, and then carried out, step by step (local/rollout.ts).
        // It runs whenever any host's install is to run again (its key is made of theirs), so that
        // no host changes before every host took the release, and the plan is made of the clusters
        // as they are. Each host's install resource then takes its status from the report.
        function createCheck(hosts: FleetHost[]): command.local.Command {
            const key = pulumi.all([pulumi.all(hosts.map((h) => h.installKey)), managers.check]).apply(hashInputs);
            const job = pulumi
                .all([pulumi.all(hosts.map((h) => h.checkHost)), managers.check, source, pulumi.all(hosts.map((h) => h.job))])
                .apply(([all, swarm, artifact, jobs]) =>
                    rolloutJob(checksJob("check", args.insecureSkipHostKeyCheck, all, swarm, artifact), jobs, { maxFailures: args.maxFailures ?? 0, soakSeconds: args.soakSeconds ?? 0 }),
                );
            return new command.local.Command(
                `${name}-check`,
                {
                    // (the key hashes the secret job too, but a hash of it gives nothing away)
                    create: pulumi.unsecret(key).apply((k) => localCommand("rollout", k.slice(0, 16))),
                    stdin: pulumi.secret(job.apply((j) => JSON.stringify(j))),
                    addPreviousOutputInEnv: false,
                },
                { parent },
            );
        }

        // The artifact's object in the store, as a resource whose delete removes it (it has no
        // create: the check uploads it): when the stack rolls out another artifact, the new key
        // replaces the resource and the old object goes at the end of that `pulumi up` (no host
        // needs it then: each keeps its previous release unpacked); on `pulumi destroy`, the last
        // one goes. (Forklift's own bucket also expires objects, and goes with the stack.)
        function storeObject(store: pulumi.Output<S3Store>): command.local.Command {
            return new command.local.Command(
                `${name}-artifact-object`,
                {
                    // (the key is the stack's identity and the artifact's sha256, which come as
                    // secrets but give nothing away; the command provider refuses a secret inside
                    // triggers, "malformed secret: missing value")
                    delete: pulumi.unsecret(store).apply((s) => localCommand("store-delete", s.key)),
                    stdin: store.apply((s) => JSON.stringify(storeObjectJob(s))),
                    addPreviousOutputInEnv: false,
                    triggers: [pulumi.unsecret(store).apply((s) => `${s.endpoint ?? ""} ${s.bucket} ${s.key}`)],
                },
                { parent },
            );
        }

        // One local command (`main.ts check`, NAME-PHASE) that checks HOSTS at once; a new KEY
        // runs it again.
        function checkAll(phase: "precheck", job: pulumi.Output<ChecksJob>, key: pulumi.Output<string>) {
            return new command.local.Command(
                `${name}-${phase}`,
                {
                    // (the key hashes the secret job too, but a hash of it gives nothing away)
                    create: pulumi.unsecret(key).apply((k) => localCommand("check", phase, k.slice(0, 16))),
                    stdin: pulumi.secret(job.apply((j) => JSON.stringify(j))),
                    addPreviousOutputInEnv: false,
                },
                { parent },
            );
        }
    }
}

/**
 * The store's object for the artifact SHA256 of the stack STACK_ID: PREFIX<stack id>/<sha256>.tgz
 * (one stack's `pulumi destroy` removes its own objects, never those of a stack sharing the store).
 */
export function storeOf(s: StoreSettings, stackId: string, sha256: string): S3Store {
    return { type: "s3", ...(s.endpoint ? { endpoint: s.endpoint } : {}), bucket: s.bucket, region: s.region, key: `${s.prefix}${stackId}/${sha256}.tgz`, pathStyle: s.pathStyle };
}

/**
 * The rollout's result (its resource's stdout, kept in the state: `main.ts rollout`'s document,
 * or the `{hosts, plan}` of 0.1's check, which reads with no report); an error quoting it when it
 * is neither.
 */
export function resultOf(stdout: string): RolloutResult {
    return lastDocument(RolloutResult, stdout, "the rollout");
}

/** The steps the rollout planned, which must cover exactly HOSTS (an error naming them otherwise). */
export function planOf(stdout: string, hosts: ReachableHost[]): string[][] {
    return checkPlan(resultOf(stdout).plan, hosts.map((h) => h.name));
}

/** The rollout as the stack output `rollout` shows it. */
export interface RolloutOutput {
    steps: string[][];
    hosts: { name: string; step: number; role?: "manager" | "worker"; drained?: boolean; before: string; after: string; seconds: number; outcome: string; reason?: string }[];
}

/** The rollout's report as the stack output `rollout` shows it (none from 0.1's check). */
export function reportOf(stdout: string): RolloutOutput {
    const r = resultOf(stdout);
    return {
        steps: r.plan,
        hosts: r.report.map((h) => ({
            name: h.host,
            step: h.step,
            ...(h.role ? { role: h.role, drained: h.drained ?? false } : {}),
            before: h.before,
            after: h.after,
            seconds: Math.round(h.seconds * 10) / 10,
            outcome: h.outcome,
            ...(h.reason ? { reason: h.reason } : {}),
        })),
    };
}

/**
 * HOST's status line in the rollout's report: what its install printed when the rollout installed
 * it, or undefined where the report has none (0.1's check printed no report).
 */
export function statusIn(stdout: string, host: string): string | undefined {
    const status = resultOf(stdout).report.find((r) => r.host === host)?.status;
    return status ? JSON.stringify(status) : undefined;
}

/**
 * The FleetHost's name: forklift-NAME for an existing host, and a launched instance's own name
 * (forklift-fleet-N, already prefixed). Launched instances' FleetHosts were forklift-forklift-fleet-N
 * before: they keep that URN through their `formerName` aliases. The config refuses an existing
 * host named fleet-N while N instances are launched, which would take the same name.
 */
function fleetHostName(name: string, host: ReachableHost): string {
    return host.instance ? host.name : `${name}-${host.name}`;
}

/** Whether this run is a `pulumi preview` asked to show the plan (FORKLIFT_PLAN=1). */
function planRequested(): boolean {
    return pulumi.runtime.isDryRun() && !!process.env.FORKLIFT_PLAN && process.env.FORKLIFT_PLAN !== "0";
}

/**
 * O's value where it is known now, undefined where it is not (in a preview: a resource still to
 * change). The SDK has no public way to ask without waiting for a value that will not come; its
 * Output keeps the answer in `isKnown` (asserted by test/unit/plan.test.ts).
 */
export async function knownNow<T>(o: pulumi.Output<T>): Promise<T | undefined> {
    const impl = o as unknown as { isKnown?: Promise<boolean>; promise?: () => Promise<T> };
    if (!(impl.isKnown instanceof Promise) || typeof impl.promise !== "function") throw new Error("@pulumi/pulumi's Output no longer has isKnown and promise(): forklift's plan cannot tell a known value from one still to come");
    return (await impl.isKnown) ? await impl.promise() : undefined;
}

/**
 * Runs the local command JOB (local/main.ts) with STDIN, as the command provider runs one: its
 * stdout, or an error with its message. Each line it writes on stderr goes to PROGRESS as it comes
 * (a host that waits for another run's lock says so while it waits).
 */
function runLocal(job: "plan", stdin: string, progress: (line: string) => void): Promise<string> {
    return new Promise((resolve, reject) => {
        const child = spawn("bash", ["-c", localCommand(job)], { cwd: path.join(__dirname, ".."), stdio: ["pipe", "pipe", "pipe"] });
        let stdout = "";
        let stderr = "";
        child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
        child.stderr.on("data", (d: Buffer) => {
            const lines = (stderr.slice(stderr.lastIndexOf("\n") + 1) + d.toString()).split("\n").slice(0, -1);
            stderr += d.toString();
            for (const line of lines) progress(line);
        });
        child.on("error", reject);
        child.on("close", (code) => (code === 0 ? resolve(stdout) : reject(new Error(`forklift's plan (FORKLIFT_PLAN): ${stderr.trim().split("\n").slice(-3).join("; ") || `exit ${code}`}`))));
        child.stdin.end(stdin);
    });
}
