/**
 * What the program hands to the local commands (local/main.ts): one JSON document on their stdin,
 * of one of the shapes below. The program renders it (lib/protocol/local.ts); the local side
 * reads and checks it against these schemas (local/input.ts). Private keys travel only here,
 * never in a command line.
 *
 * Each shape is one zod schema, and its TypeScript type is derived from it (`z.output`): what is
 * checked and what the code may rely on cannot drift apart. Each check's message is what a
 * reader of the error needs ("expected a positive whole number"); the reader prefixes the field.
 *
 * The state keeps the stdin of the delete command of every install: a `pulumi destroy` runs an
 * older document with a newer forklift. So a change of these shapes must keep reading the old
 * ones: a field added later has a `.default()` (what the older forklift did), never a refusal.
 */
import { z } from "zod";
import { WaveSize } from "../rollout";

export const JOB_VERSION = 1;

const says = (error: string) => ({ error });
const NON_EMPTY = "expected a non-empty string";
const text = z.string(says(NON_EMPTY)).min(1, says(NON_EMPTY));
/** A string that may be absent or empty (a key that may be missing). */
const optionalText = z.string(says(NON_EMPTY)).optional();
const POSITIVE = "expected a positive whole number";
const positive = z.number(says(POSITIVE)).int(says(POSITIVE)).positive(says(POSITIVE));
const WHOLE = "expected a whole number";
const whole = z.number(says(WHOLE)).int(says(WHOLE)).min(0, says(WHOLE));
const flag = z.boolean(says("expected true or false"));
const object = <T extends z.core.$ZodLooseShape>(shape: T) => z.object(shape, says("expected an object"));
const list = <T extends z.ZodType>(item: T) => z.array(item, says("expected a list"));
const names = (what: string) => list(z.string(says(`expected ${what}`)).min(1, says(`expected ${what}`)));

/** A wave's size or the failure budget: a number of hosts, or a percentage like "25%". */
const WAVE = 'expected a number of hosts or a percentage like "25%"';
export const WaveSizeValue: z.ZodType<WaveSize> = z.union([whole, z.custom<`${number}%`>((v) => typeof v === "string" && /^\d{1,3}%$/.test(v))], says(WAVE));

/** One SSH hop: a host, or the bastion in front of it. */
export const Hop = object({
    address: text,
    port: positive,
    user: text,
    /** Public host key line, pinned; absent only when the job is `insecure`. */
    hostKey: optionalText,
    /** Private key (OpenSSH or PEM text); absent means the SSH agent. */
    privateKey: optionalText,
});
export type Hop = z.output<typeof Hop>;

/** How the machine of `pulumi up` reaches a host: the host, and maybe one bastion in front of it. */
export const Route = Hop.extend({
    proxy: Hop.optional(),
    /** Seconds one connection attempt may take; also the keepalive interval of a session. */
    connectTimeout: positive,
});
export type Route = z.output<typeof Route>;

/** A host as the local commands see it: its name in messages, and its Route. */
export const RemoteHost = object({ name: text, route: Route });
export type RemoteHost = z.output<typeof RemoteHost>;

/** A host and the command that runs on it (the check's, a Swarm probe's). */
export const CommandHost = RemoteHost.extend({ command: text });
export type CommandHost = z.output<typeof CommandHost>;

/**
 * An S3 bucket (forklift's, or an S3-compatible store the user runs): the build host uploads the
 * artifact with a presigned PUT, each fleet host downloads it with a presigned GET for that one
 * object, both signed on the machine of `pulumi up` (its AWS credentials stay there).
 */
export const S3Store = object({
    type: z.literal("s3", says('expected "s3"')),
    /** The S3 API's URL; none: AWS S3 in REGION. */
    endpoint: optionalText,
    bucket: text,
    region: text,
    /** The object's key: PREFIX<sha256>.tgz */
    key: text,
    pathStyle: flag,
});
export type S3Store = z.output<typeof S3Store>;
export const ArtifactStore = S3Store;
export type ArtifactStore = S3Store;

/**
 * Where the built artifact is: the build host, and either the local cache it is fetched into once
 * and copied on from (the relay), or the store the fleet fetches it from itself.
 */
export const ArtifactSource = object({
    sha256: z.string(says(NON_EMPTY)).regex(/^[0-9a-f]{64}$/, says("expected a sha256 (64 hex digits)")),
    /** Its path on the build host. */
    path: text,
    builder: RemoteHost,
    /** Local content-addressed cache, relative to the project directory. */
    cacheDir: text,
    /** The store the build host puts it in and every fleet host fetches it from; none: the relay. */
    store: ArtifactStore.optional(),
});
export type ArtifactSource = z.output<typeof ArtifactSource>;

/** What the check needs to plan a rollout over Swarm clusters (local/swarm.ts, planSwarm). */
export const SwarmCheck = object({
    /** Hosts installed at once outside the managers' one-at-a-time (batchSize; see waves). */
    batchSize: positive,
    /** The waves of the hosts in no Swarm and of each cluster's workers (`waves`); absent: [batchSize]. */
    waves: list(WaveSizeValue).optional(),
    /** swarmAllowTwoManagers */
    allowTwoManagers: flag,
    /** daemonJson sets live-restore true: refused where the fleet holds Swarm nodes. */
    liveRestore: flag,
    /** The names of swarmManagers' entries (fleet hosts, or the machines below). */
    managers: names("a host name"),
    /** The swarmManagers that are not fleet hosts, each with the command that reads its cluster. */
    probes: list(CommandHost),
    /**
     * The stack's identity: its drains and surges are recorded in the cluster under it (see
     * swarm-node.ts), and the check puts right what an interrupted run left. "" in a job of an
     * older forklift.
     */
    stackId: z.string(says(NON_EMPTY)).default(""),
    /** swarmUnlockKey, where set: checked against the cluster's own key before any host changes. */
    unlockKey: text.optional(),
    /** swarmMoveLocalData ([] in an older job's): the check names the services it lets move. */
    moveLocalData: names("a service name").default([]),
});
export type SwarmCheck = z.output<typeof SwarmCheck>;

/**
 * The precheck (while the fork builds) or the check (before the first batch) of several hosts at
 * once: each host's `command` runs on it (forklift-host.sh check or stage, with the script on
 * stdin); with `stage`, the release is also brought onto every host that lacks it, before any
 * host changes.
 */
export const ChecksJob = object({
    v: z.literal(JOB_VERSION, says(`expected ${JOB_VERSION}`)),
    phase: z.enum(["precheck", "check"], says('expected "precheck" or "check"')),
    /** Skip host key checks (explicit opt-in in the stack config). */
    insecure: flag,
    hosts: z.array(CommandHost, says("expected at least one host")).min(1, says("expected at least one host")),
    /** The check after the build: the artifact to stage (the command then reads it on stdin). */
    artifact: ArtifactSource.optional(),
    swarm: SwarmCheck,
});
export type ChecksJob = z.output<typeof ChecksJob>;

/**
 * How an install or uninstall treats a Swarm node: the managers to ask, how long to wait, and the
 * Swarm settings. (The fields after allowTwoManagers came later: a job an older forklift kept in
 * the state reads with their defaults.)
 */
export const SwarmNodeJob = object({
    /** swarmManagers, as routes: where a worker's cluster commands run. */
    managers: list(RemoteHost),
    /** Seconds the node's tasks have to run elsewhere, and its services to be whole again. */
    drainTimeout: positive,
    /** Seconds the node has to be back (Ready, its new engine, a manager reachable). */
    nodeTimeout: positive,
    allowTwoManagers: flag,
    /** The stack's identity, under which its drains and surges are recorded in the cluster ("": an older job's). */
    stackId: z.string(says(NON_EMPTY)).default(""),
    /** swarmMaxDrained (1; 0 in a hand-made job means 1) */
    maxDrained: whole.default(1).transform((n) => Math.max(1, n)),
    /** swarmAcceptDowntime ([]) */
    acceptDowntime: names("a service name").default([]),
    /** swarmMoveLocalData ([]) */
    moveLocalData: names("a service name").default([]),
    /** swarmSurge (0) */
    surge: whole.default(0),
    /** swarmUnlockKey: sent on the stdin of a drained run, for a manager that comes back locked. */
    unlockKey: text.optional(),
});
export type SwarmNodeJob = z.output<typeof SwarmNodeJob>;

/**
 * The removal of the artifact's object from the store (`store-delete`): when the stack rolls out
 * another artifact (after that `pulumi up`), or is destroyed.
 */
/**
 * `main.ts plan`'s job (`FORKLIFT_PLAN=1 pulumi preview`): the precheck's job, and the release the
 * rollout would install (its sha256 where the build is the one already done), for the plan before
 * anything changes. Not kept in the state.
 */
export const PlanJob = object({
    v: z.literal(JOB_VERSION, says(`expected ${JOB_VERSION}`)),
    checks: ChecksJob,
    target: object({
        /** What is built: the fork's repository and ref. */
        label: text,
        /** The release's sha256, where the build is unchanged (its result is in the state). */
        sha256: optionalText,
    }),
    /** Hosts forklift launches in this `pulumi up` (not reachable before it). */
    launched: names("a host name").default([]),
});
export type PlanJob = z.output<typeof PlanJob>;

export const StoreObjectJob = object({ v: z.literal(JOB_VERSION, says(`expected ${JOB_VERSION}`)), store: ArtifactStore });
export type StoreObjectJob = z.output<typeof StoreObjectJob>;

/**
 * One fleet host's install (`install`, the create of its resource) and uninstall (`uninstall`,
 * its delete): the remote commands to run there (forklift-host.sh, with the script on stdin).
 */
export const FleetHostJob = object({
    v: z.literal(JOB_VERSION, says(`expected ${JOB_VERSION}`)),
    insecure: flag,
    host: RemoteHost,
    /**
     * Runs forklift-host.sh install; its stdin is the script, then the tgz. On a Swarm node that
     * the install would change it changes nothing and exits 75: the node is drained, then
     * `installDrained` runs (the same, for a drained node).
     */
    install: text,
    installDrained: text,
    /** Runs the copy of forklift-host.sh the install left on the host (exits 75 as install does). */
    uninstall: text,
    uninstallDrained: text,
    /**
     * forklift-host.sh health (the healthCheck, run again after a soak) and rollback (back to the
     * release before, when it fails: exits 75 on a Swarm node, then rollbackDrained), both with the
     * script on stdin. Absent in a job of an older forklift, and health without a healthCheck.
     */
    health: text.optional(),
    rollback: text.optional(),
    rollbackDrained: text.optional(),
    swarm: SwarmNodeJob,
    /**
     * sha256 of the forklift-host.sh the install command was made for (a new script runs the
     * install again); the install sends the script only when it is that one.
     */
    hostScriptSha256: text,
    artifact: ArtifactSource,
});
export type FleetHostJob = z.output<typeof FleetHostJob>;

/**
 * The rollout (`main.ts rollout`, the check resource's job): the check of every host with the
 * release staged, then every host's install as the plan orders it (see rollout.ts).
 */
export const RolloutJob = object({
    v: z.literal(JOB_VERSION, says(`expected ${JOB_VERSION}`)),
    /** The check after the build (phase "check", with the artifact to stage). */
    check: ChecksJob.refine((c) => c.phase === "check", { error: 'expected "check"', path: ["phase"] }),
    /** Every fleet host's install job, in the fleet's order. */
    installs: list(FleetHostJob),
    /** maxFailures: hosts that may fail (each rolled back) before the rollout stops (0 in an older job). */
    maxFailures: WaveSizeValue.default(0),
    /** soakSeconds: the wait after each step before its hosts' health checks run again (0 in an older job). */
    soakSeconds: whole.default(0),
});
export type RolloutJob = z.output<typeof RolloutJob>;
