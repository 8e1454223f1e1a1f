/**
 * local/main.ts, as the program runs it: the command line of each local command, and the job it
 * reads on stdin (lib/protocol/jobs.ts), one JSON document that the program keeps secret since it
 * carries private keys. The words after the job's name only say, in `pulumi preview`'s plan, what
 * the command is about.
 */
import { sha256 } from "../hash";
import { shq } from "../shell";
import { needsContainerdUnit, renderManagedFiles, renderSwarmDaemonJson } from "../units";
import { ArtifactSource, ArtifactStore, ChecksJob, FleetHostJob, JOB_VERSION, PlanJob, RemoteHost, RolloutJob, StoreObjectJob, SwarmCheck, SwarmNodeJob } from "./jobs";
import { InstallInputs, Owner, checkCommand, installCommand, uninstallCommand } from "./host";
import { readScript } from "./script";
import { WaveSize } from "../rollout";
import { swarmProbeCommand } from "./swarm";

export type LocalJob = "check" | "rollout" | "install" | "uninstall" | "store-delete" | "plan";

/** `node --require tsx/cjs local/main.ts JOB WORDS...`, run in the project directory. */
export function localCommand(job: LocalJob, ...words: string[]): string {
    return ["node", "--require", "tsx/cjs", "local/main.ts", job, ...words].map(shq).join(" ");
}

/** The job of `main.ts store-delete`: STORE's object removed. */
export function storeObjectJob(store: ArtifactStore): StoreObjectJob {
    return { v: JOB_VERSION, store };
}

/** The built release, as the install needs it. */
export interface Release {
    sha256: string;
    version: string;
    binaries: string[];
}

/** Everything one fleet host's install and uninstall depend on. */
export interface FleetHostSpec {
    host: RemoteHost;
    owner: Owner;
    release: Release;
    /** Where the binaries are linked. */
    installDir: string;
    /** The managed daemon.json, or null for the host's own. */
    daemonJson: Record<string, unknown> | null;
    source: ArtifactSource;
    swarm: SwarmNodeJob;
    insecure: boolean;
    /** healthCheck: a command that must pass on the host after its restart, and its timeout in seconds. */
    healthCheck?: { command: string; timeoutSeconds: number };
}

/** The job of a fleet host's `main.ts install` and `main.ts uninstall`. */
export function fleetHostJob(s: FleetHostSpec): FleetHostJob {
    const sudo = s.host.route.user !== "root";
    const install: InstallInputs = {
        hostName: s.host.name,
        owner: s.owner,
        sha256: s.release.sha256,
        version: s.release.version,
        installDir: s.installDir,
        files: renderManagedFiles({ installDir: s.installDir, shipsContainerd: needsContainerdUnit(s.release.binaries) }, s.daemonJson),
        swarmDaemonJson: renderSwarmDaemonJson(s.daemonJson),
        swarmTimeout: s.swarm.nodeTimeout,
        healthCheck: s.healthCheck?.command,
        healthTimeout: s.healthCheck?.timeoutSeconds,
        sudo,
    };
    return {
        v: JOB_VERSION,
        insecure: s.insecure,
        host: s.host,
        install: installCommand(install),
        installDrained: installCommand(install, "install-drained"),
        uninstall: uninstallCommand(s.host.name, s.owner, sudo),
        uninstallDrained: uninstallCommand(s.host.name, s.owner, sudo, "uninstall-drained"),
        ...(s.healthCheck ? { health: installCommand(install, "health") } : {}),
        rollback: installCommand(install, "rollback"),
        rollbackDrained: installCommand(install, "rollback-drained"),
        swarm: s.swarm,
        hostScriptSha256: hostScriptHash(),
        artifact: s.source,
    };
}

/** A host in the precheck's or the check's job: how it is reached, and its check command. */
export type CheckedHost = RemoteHost & { command: string };

/**
 * HOST as the precheck (no RELEASE: all but the room) or the check after the build (which stages
 * RELEASE there) sees it.
 */
export function checkedHost(host: RemoteHost, owner: Owner, release?: { sha256: string; needKiB: number }): CheckedHost {
    return { ...host, command: checkCommand({ hostName: host.name, owner, sudo: host.route.user !== "root", release }) };
}

/** What the check knows of the Swarm settings: MANAGERS are swarmManagers' fleet hosts' names and other machines. */
export interface SwarmCheckSpec {
    batchSize: number;
    /** waves (none: [batchSize]) */
    waves?: WaveSize[];
    allowTwoManagers: boolean;
    /** daemonJson, to tell whether it sets live-restore true */
    daemonJson: Record<string, unknown> | null;
    fleetManagers: string[];
    otherManagers: RemoteHost[];
    /** The stack's identity (see SwarmCheck.stackId). */
    stackId: string;
    /** swarmUnlockKey, where set. */
    unlockKey?: string;
    /** swarmMoveLocalData */
    moveLocalData?: string[];
}

/** The swarm part of the check's job: the settings, and a probe of each manager outside the fleet. */
export function swarmCheck(s: SwarmCheckSpec): SwarmCheck {
    return {
        batchSize: s.batchSize,
        ...(s.waves && s.waves.length > 0 ? { waves: s.waves } : {}),
        allowTwoManagers: s.allowTwoManagers,
        liveRestore: s.daemonJson?.["live-restore"] === true,
        managers: [...s.fleetManagers, ...s.otherManagers.map((m) => m.name)],
        probes: s.otherManagers.map((m) => ({ ...m, command: swarmProbeCommand(m.route.user !== "root") })),
        stackId: s.stackId,
        ...(s.unlockKey ? { unlockKey: s.unlockKey } : {}),
        moveLocalData: s.moveLocalData ?? [],
    };
}

/** The job of `main.ts check`: the precheck, or the check after the build that stages ARTIFACT. */
export function checksJob(phase: "precheck" | "check", insecure: boolean, hosts: CheckedHost[], swarm: SwarmCheck, artifact?: ArtifactSource): ChecksJob {
    return { v: JOB_VERSION, phase, insecure, hosts, swarm, ...(artifact ? { artifact } : {}) };
}

/** The job of `main.ts plan`: the precheck CHECKS, and the release the rollout would install (TARGET). */
export function planJob(checks: ChecksJob, target: PlanJob["target"], launched: string[]): PlanJob {
    return { v: JOB_VERSION, checks, target, launched };
}

/** Room a host needs for a release of SIZE bytes: the staged tgz, the unpacked release, and the previous one kept for rollback. */
export function roomNeededKiB(size: number): number {
    return Math.ceil((size * 4) / 1024);
}

/** forklift-host.sh's hash: a new host script runs the precheck, the check and the installs again. */
export function hostScriptHash(): string {
    return sha256(readScript("forklift-host.sh"));
}

/** The rollout settings the program hands the check resource's job (see RolloutJob). */
export interface RolloutSettings {
    maxFailures: WaveSize;
    soakSeconds: number;
}

/** The job of `main.ts rollout`: the check CHECK, then the INSTALLS as it plans them. */
export function rolloutJob(check: ChecksJob, installs: FleetHostJob[], s: RolloutSettings): RolloutJob {
    return { v: JOB_VERSION, check, installs, maxFailures: s.maxFailures, soakSeconds: s.soakSeconds };
}
