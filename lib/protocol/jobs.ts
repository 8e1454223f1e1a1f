/**
 * What the program hands to the local commands (local/main.ts): one JSON document on their stdin,
 * of one of the shapes below. The program renders it (lib/protocol/local.ts); the local side
 * reads and checks it (local/input.ts). Private keys travel only here, never in a command line.
 *
 * The state keeps the stdin of the delete command of every install: a `pulumi destroy` runs an
 * older document with a newer forklift. So a change of these shapes must keep reading the old
 * ones (`v` says which).
 */

import { WaveSize } from "../rollout";

export const JOB_VERSION = 1;

/** One SSH hop: a host, or the bastion in front of it. */
export interface Hop {
    address: string;
    port: number;
    user: string;
    /** Public host key line, pinned; absent only when the job is `insecure`. */
    hostKey?: string;
    /** Private key (OpenSSH or PEM text); absent means the SSH agent. */
    privateKey?: string;
}

/** How the machine of `pulumi up` reaches a host: the host, and maybe one bastion in front of it. */
export interface Route extends Hop {
    proxy?: Hop;
    /** Seconds one connection attempt may take; also the keepalive interval of a session. */
    connectTimeout: number;
}

/** A host as the local commands see it: its name in messages, and its route. */
export interface RemoteHost {
    name: string;
    route: Route;
}

/**
 * The precheck (while the fork builds) or the check (before the first batch) of several hosts at
 * once: each host's `command` runs on it (forklift-host.sh check or stage, with the script on
 * stdin); with `stage`, the release is also brought onto every host that lacks it, before any
 * host changes.
 */
export interface ChecksJob {
    v: number;
    phase: "precheck" | "check";
    /** Skip host key checks (explicit opt-in in the stack config). */
    insecure: boolean;
    hosts: (RemoteHost & { command: string })[];
    /** The check after the build: the artifact to stage (the command then reads it on stdin). */
    artifact?: ArtifactSource;
    swarm: SwarmCheck;
}

/** What the check needs to plan a rollout over Swarm clusters (local/swarm.ts, planSwarm). */
export interface SwarmCheck {
    /** Hosts installed at once outside the managers' one-at-a-time (batchSize; see waves). */
    batchSize: number;
    /** The waves of the hosts in no Swarm and of each cluster's workers (`waves`); absent: [batchSize]. */
    waves?: WaveSize[];
    /** swarmAllowTwoManagers */
    allowTwoManagers: boolean;
    /** daemonJson sets live-restore true: refused where the fleet holds Swarm nodes. */
    liveRestore: boolean;
    /** The names of swarmManagers' entries (fleet hosts, or the machines below). */
    managers: string[];
    /** The swarmManagers that are not fleet hosts, each with the command that reads its cluster. */
    probes: (RemoteHost & { command: string })[];
    /**
     * The stack's identity: its drains and surges are recorded in the cluster under it (see
     * swarm-node.ts), and the check puts right what an interrupted run left. "" in a job of an
     * older forklift.
     */
    stackId: string;
    /** swarmUnlockKey, where set: checked against the cluster's own key before any host changes. */
    unlockKey?: string;
    /** swarmMoveLocalData ([] in an older job's): the check names the services it lets move. */
    moveLocalData: string[];
}

/**
 * How an install or uninstall treats a Swarm node: the managers to ask, how long to wait, and the
 * Swarm settings. (The fields after allowTwoManagers came later: a job an older forklift kept in
 * the state reads with their defaults.)
 */
export interface SwarmNodeJob {
    /** swarmManagers, as routes: where a worker's cluster commands run. */
    managers: RemoteHost[];
    /** Seconds the node's tasks have to run elsewhere, and its services to be whole again. */
    drainTimeout: number;
    /** Seconds the node has to be back (Ready, its new engine, a manager reachable). */
    nodeTimeout: number;
    allowTwoManagers: boolean;
    /** The stack's identity, under which its drains and surges are recorded in the cluster ("": an older job's). */
    stackId: string;
    /** swarmMaxDrained (1) */
    maxDrained: number;
    /** swarmAcceptDowntime ([]) */
    acceptDowntime: string[];
    /** swarmMoveLocalData ([]) */
    moveLocalData: string[];
    /** swarmSurge (0) */
    surge: number;
    /** swarmUnlockKey: sent on the stdin of a drained run, for a manager that comes back locked. */
    unlockKey?: string;
}

/**
 * Where the built artifact is: the build host, and either the local cache it is fetched into once
 * and copied on from (the relay), or the store the fleet fetches it from itself.
 */
export interface ArtifactSource {
    sha256: string;
    /** Its path on the build host. */
    path: string;
    builder: RemoteHost;
    /** Local content-addressed cache, relative to the project directory. */
    cacheDir: string;
    /** The store the build host puts it in and every fleet host fetches it from; none: the relay. */
    store?: ArtifactStore;
}

/**
 * An S3 bucket (forklift's, or an S3-compatible store the user runs): the build host uploads the
 * artifact with a presigned PUT, each fleet host downloads it with a presigned GET for that one
 * object, both signed on the machine of `pulumi up` (its AWS credentials stay there).
 */
export interface S3Store {
    type: "s3";
    /** The S3 API's URL; none: AWS S3 in REGION. */
    endpoint?: string;
    bucket: string;
    region: string;
    /** The object's key: PREFIX<sha256>.tgz */
    key: string;
    pathStyle: boolean;
}

export type ArtifactStore = S3Store;

/**
 * The removal of the artifact's object from the store (`store-delete`): when the stack rolls out
 * another artifact (after that `pulumi up`), or is destroyed.
 */
export interface StoreObjectJob {
    v: number;
    store: ArtifactStore;
}

/**
 * One fleet host's install (`install`, the create of its resource) and uninstall (`uninstall`,
 * its delete): the remote commands to run there (forklift-host.sh, with the script on stdin).
 */
export interface FleetHostJob {
    v: number;
    insecure: boolean;
    host: RemoteHost;
    /**
     * Runs forklift-host.sh install; its stdin is the script, then the tgz. On a Swarm node that
     * the install would change it changes nothing and exits 75: the node is drained, then
     * `installDrained` runs (the same, for a drained node).
     */
    install: string;
    installDrained: string;
    /** Runs the copy of forklift-host.sh the install left on the host (exits 75 as install does). */
    uninstall: string;
    uninstallDrained: string;
    /**
     * forklift-host.sh health (the healthCheck, run again after a soak) and rollback (back to the
     * release before, when it fails: exits 75 on a Swarm node, then rollbackDrained), both with the
     * script on stdin. Absent in a job of an older forklift, and health without a healthCheck.
     */
    health?: string;
    rollback?: string;
    rollbackDrained?: string;
    swarm: SwarmNodeJob;
    /**
     * sha256 of the forklift-host.sh the install command was made for (a new script runs the
     * install again); the install sends the script only when it is that one.
     */
    hostScriptSha256: string;
    artifact: ArtifactSource;
}

/**
 * The rollout (`main.ts rollout`, the check resource's job): the check of every host with the
 * release staged, then every host's install as the plan orders it (see rollout.ts).
 */
export interface RolloutJob {
    v: number;
    /** The check after the build (phase "check", with the artifact to stage). */
    check: ChecksJob;
    /** Every fleet host's install job, in the fleet's order. */
    installs: FleetHostJob[];
    /** maxFailures: hosts that may fail (each rolled back) before the rollout stops. */
    maxFailures: WaveSize;
    /** soakSeconds: the wait after each step before its hosts' health checks run again. */
    soakSeconds: number;
}
