/**
 * The shapes of forklift's stack configuration and its keys: `ForkliftConfig` as the program uses
 * it, `SshTarget` for every machine it reaches, and `DEFAULTS`, the list of every key the program
 * reads with its default (which Pulumi.yaml must declare alike). Data only: no reading, no checks.
 */

import { WaveSize } from "../rollout";

export const PROJECT = "forklift";

export type Recipe = "docker-ce" | "docker-ce-packaging" | "moby";
export const RECIPES: readonly Recipe[] = ["docker-ce", "docker-ce-packaging", "moby"];

/** How to reach one machine over SSH. */
export interface SshTarget {
    /** Name used in resource names and messages; defaults to the address. */
    name: string;
    address: string;
    port: number;
    user: string;
    /** PEM/OpenSSH private key (a secret); absent when `useAgent` is set. */
    privateKey?: string;
    useAgent: boolean;
    /** `ssh-ed25519 AAAA...` style public host key; absent only with insecureSkipHostKeyCheck. */
    hostKey?: string;
    /** One bastion hop. */
    proxy?: Omit<SshTarget, "name" | "proxy">;
}

export interface ForkConfig {
    recipe: Recipe;
    repo: string;
    ref: string;
    cliRepo?: string;
    cliRef?: string;
    packagingRepo: string;
    packagingRef: string;
    version?: string;
    makeVars: Record<string, string>;
}

export interface Ec2Settings {
    instanceType: string;
    ami?: string;
}

export interface ForkliftConfig {
    fork: ForkConfig;
    /** An existing build host; when absent, forklift launches one on EC2. */
    builderHost?: SshTarget;
    builderEc2: Ec2Settings & { volumeGiB: number; swapGiB: number };
    fleetHosts: SshTarget[];
    fleetEc2: Ec2Settings & { count: number; volumeGiB: number };
    /** Bastion for launched fleet instances: they then get no public IP. */
    fleetBastion?: SshTarget;
    subnetId?: string;
    sshAllowedCidrs: string[];
    allowOpenSsh: boolean;
    sshUser: string;
    sshPrivateKey?: string;
    batchSize: number;
    /** `waves`: the sizes of the rollout's waves (counts, percentages), the last repeated; none: [batchSize]. */
    waves?: WaveSize[];
    /** `healthCheck` and `healthCheckTimeout`: a command that must pass on each host after its restart. */
    healthCheck?: { command: string; timeoutSeconds: number };
    /** `soakSeconds`: the wait after each step before its hosts' health checks run again. */
    soakSeconds: number;
    /** `maxFailures`: hosts that may fail (rolled back) before the rollout stops. */
    maxFailures: WaveSize;
    installDir: string;
    /**
     * The managed /etc/docker/daemon.json's settings; null (manageDaemonJson: false) leaves the
     * host's file alone. forklift adds live-restore: true where it is not set, but on Swarm nodes.
     */
    daemonJson: Record<string, unknown> | null;
    swarm: SwarmConfig;
    insecureSkipHostKeyCheck: boolean;
    /** Seconds an SSH connection to an existing host may take before the host counts as unreachable. */
    sshConnectTimeout: number;
    artifactCacheDir: string;
    artifactSource: ArtifactSourceConfig;
}

/**
 * Where the fleet fetches the artifact from (artifactSource): through the machine of `pulumi up`
 * (relay), an S3 bucket forklift creates (bucket, EC2 mode's default), or an S3-compatible store the
 * user runs (s3).
 */
export type ArtifactSourceConfig =
    | { type: "relay" }
    | { type: "bucket" }
    | { type: "s3"; endpoint?: string; bucket: string; region: string; prefix: string; pathStyle: boolean };

/** A manager that forklift runs a Swarm's cluster commands on: a fleet host's name, or another machine. */
export type SwarmManager = { fleetHost: string } | { external: SshTarget };

export interface SwarmConfig {
    /** swarmManagers: where the cluster commands of workers (drain, availability, node state) run. */
    managers: SwarmManager[];
    /** Seconds a drained node's tasks, and its services after it, have to run elsewhere and come back. */
    drainTimeout: number;
    /** Seconds a node has to rejoin its cluster after its engine restarted, before it is rolled back. */
    nodeTimeout: number;
    /** A cluster of 2 managers (no quorum while one restarts) may be rolled out anyway. */
    allowTwoManagers: boolean;
    /**
     * swarmUnlockKey (a secret): the key that unlocks the managers of an autolocked cluster after
     * their engine restarted. Absent: such a cluster's managers are refused by the check.
     */
    unlockKey?: string;
    /** Nodes of one cluster drained at once, at most. */
    maxDrained: number;
    /** Services (names, or "*" for all) that may have no running task while a node is drained. */
    acceptDowntime: string[];
    /** Services (names, or "*") whose tasks may move off a node that keeps their data (bind mounts, local volumes). */
    moveLocalData: string[];
    /** Extra tasks a replicated service is scaled up by, at most, before a node of it is drained (0: none). */
    surge: number;
}

/**
 * Every key the program reads, with its default (undefined: required). Optional keys default to
 * "" or {} meaning "unset": the CLI treats a key declared in Pulumi.yaml without a default as
 * required, so every optional key needs one there too.
 */
export const DEFAULTS = {
    recipe: "docker-ce-packaging",
    forkRepo: undefined,
    forkRef: undefined,
    cliRepo: "",
    cliRef: "",
    packagingRepo: "https://github.com/docker/docker-ce-packaging.git",
    packagingRef: "master",
    version: "",
    makeVars: {},
    builderHost: {},
    builderInstanceType: "t2.medium",
    builderAmi: "",
    builderVolumeGiB: 50,
    builderSwapGiB: 4,
    fleetHosts: [],
    fleetCount: 0,
    fleetInstanceType: "t3.small",
    fleetAmi: "",
    fleetVolumeGiB: 20,
    fleetBastion: {},
    subnetId: "",
    sshAllowedCidrs: [],
    allowOpenSsh: false,
    sshUser: "ubuntu",
    sshPrivateKey: "",
    batchSize: 1,
    waves: "",
    healthCheck: "",
    healthCheckTimeout: 60,
    soakSeconds: 0,
    maxFailures: "0",
    installDir: "/usr/bin",
    daemonJson: {},
    manageDaemonJson: true,
    swarmManagers: [],
    swarmDrainTimeout: 300,
    swarmNodeTimeout: 120,
    swarmAllowTwoManagers: false,
    swarmUnlockKey: "",
    swarmMaxDrained: 1,
    swarmAcceptDowntime: [],
    swarmMoveLocalData: [],
    swarmSurge: 0,
    insecureSkipHostKeyCheck: false,
    sshConnectTimeout: 10,
    artifactCacheDir: ".forklift/artifacts",
    artifactSource: {},
} as const;

export type ConfigKey = keyof typeof DEFAULTS;
export const CONFIG_KEYS = Object.keys(DEFAULTS) as ConfigKey[];

/** The raw key/value map, as `pulumi.runtime.allConfig()` returns it: `forklift:<key>` to its text. */
export type RawConfig = Record<string, string>;
