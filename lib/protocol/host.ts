/**
 * scripts/forklift-host.sh, both ways: the install command (with the units it writes) and the
 * uninstall command that runs the copy the install left on the host, and the JSON status line
 * the install prints last.
 */
import { b64, runLeftScript, runScriptFromStdin, shq } from "../shell";
import { ManagedFiles } from "../units";
import { readScript } from "./script";
import { HostStatus, lastOf } from "./results";

export const HOST_SCRIPT_PATH = "/usr/local/lib/forklift/forklift-host.sh";

/**
 * Who installs on a host. The stack's random identity (kept in its state) tells apart stacks of
 * the same project and stack name on different backends; the entry's name tells apart two
 * resources of one stack (a renamed entry's delete leaves its successor's install alone).
 */
export interface Owner {
    /** project/stack */
    stack: string;
    /** hex of the stack's random identity */
    stackId: string;
    /** the entry's name in the stack config */
    host: string;
}

export function ownerVars(o: Owner): Record<string, string> {
    return { FORKLIFT_OWNER: `${o.stack}/${o.host}`, FORKLIFT_STACK_ID: o.stackId };
}

export interface InstallInputs {
    hostName: string;
    owner: Owner;
    sha256: string;
    version: string;
    installDir: string;
    files: ManagedFiles;
    /** daemon.json for a Swarm node (renderSwarmDaemonJson); none: the same as files' */
    swarmDaemonJson?: string;
    /** Seconds a Swarm node has to rejoin its cluster after the restart (swarmNodeTimeout). */
    swarmTimeout?: number;
    /** A command (bash) that must pass on the host after the restart (healthCheck); none: no check. */
    healthCheck?: string;
    /** Seconds it may take (healthCheckTimeout). */
    healthTimeout?: number;
    sudo: boolean;
}

/**
 * What a run of forklift-host.sh with an install's inputs does: install (install-drained: on a Swarm
 * node drained for it), run the health check now (health), or go back to the release before after a
 * failed soak (rollback, rollback-drained).
 */
export type InstallMode = "install" | "install-drained" | "health" | "rollback" | "rollback-drained";

/**
 * The install on a fleet host (MODE install-drained: on a Swarm node drained for it). Its stdin is
 * forklift-host.sh and then the release's tgz (which the host does not read when it has the
 * release unpacked); a drained run's reads one line before the tgz: the Swarm unlock key, or an
 * empty line (FORKLIFT_SWARM_UNLOCK).
 */
export function installCommand(i: InstallInputs, mode: InstallMode = "install"): string {
    return runScriptFromStdin(
        {
            FORKLIFT_HOST: i.hostName,
            ...ownerVars(i.owner),
            FORKLIFT_SHA256: i.sha256,
            FORKLIFT_VERSION: i.version,
            FORKLIFT_INSTALL_DIR: i.installDir,
            FORKLIFT_DOCKER_SERVICE_B64: b64(i.files["docker.service"]),
            FORKLIFT_DOCKER_SOCKET_B64: b64(i.files["docker.socket"]),
            FORKLIFT_CONTAINERD_SERVICE_B64: i.files["containerd.service"] ? b64(i.files["containerd.service"]) : "",
            FORKLIFT_DAEMON_JSON_B64: i.files["daemon.json"] ? b64(i.files["daemon.json"]) : "",
            FORKLIFT_DAEMON_JSON_SWARM_B64: i.swarmDaemonJson ? b64(i.swarmDaemonJson) : undefined,
            FORKLIFT_SWARM_TIMEOUT: i.swarmTimeout,
            FORKLIFT_SWARM_UNLOCK: mode.endsWith("-drained") ? 1 : undefined,
            FORKLIFT_HEALTH_CHECK_B64: i.healthCheck ? b64(i.healthCheck) : undefined,
            FORKLIFT_HEALTH_TIMEOUT: i.healthCheck ? i.healthTimeout : undefined,
        },
        [mode],
        { sudo: i.sudo, scriptBytes: Buffer.byteLength(readScript("forklift-host.sh")), quiet: true },
    );
}

/** What the check before a rollout needs of a host, and the release it checks for. */
export interface CheckInputs {
    hostName: string;
    owner: Owner;
    sudo: boolean;
    /**
     * The built release (the check after the build): the host must have room for it, unless it
     * has it unpacked already, and it is staged there (the tgz follows the script on stdin).
     * @default none: the precheck while the fork builds, which checks all but the room
     */
    release?: { sha256: string; needKiB: number };
}

/**
 * The check of a host before a rollout (forklift-host.sh check, or stage once the release is
 * built), as root: a login user without passwordless sudo is told so first.
 */
export function checkCommand(c: CheckInputs): string {
    const vars = {
        FORKLIFT_HOST: c.hostName,
        ...ownerVars(c.owner),
        FORKLIFT_SHA256: c.release?.sha256,
        FORKLIFT_NEED_KIB: c.release?.needKiB,
    };
    const run = c.release
        ? runScriptFromStdin(vars, ["stage"], { sudo: c.sudo, scriptBytes: Buffer.byteLength(readScript("forklift-host.sh")), quiet: true })
        : runScriptFromStdin(vars, ["check"], { sudo: c.sudo, quiet: true });
    if (!c.sudo) return run;
    // (said as forklift-host.sh's `fatal` says it: for people on stderr, as a JSON line on stdout)
    const withUser = (before: string, after: string) => `${shq(before)}"$(id -un)"${shq(after)}`;
    const why = " cannot sudo without a password (forklift needs root or passwordless sudo)";
    const refusal = `echo ${withUser(`[forklift ${c.hostName}] ERROR: the login user `, why)} >&2; echo ${withUser('{"fatal":"the login user ', `${why}"}`)}`;
    return `if ! sudo -n true 2>/dev/null; then ${refusal}; exit 3; fi; ${run}`;
}

/**
 * Runs the copy of forklift-host.sh that the install left on the host; a no-op where none is.
 * MODE uninstall-drained: on a Swarm node drained for it (its stdin: the unlock key's line, as
 * an install-drained's).
 */
export function uninstallCommand(hostName: string, owner: Owner, sudo: boolean, mode: "uninstall" | "uninstall-drained" = "uninstall"): string {
    const vars = { FORKLIFT_HOST: hostName, ...ownerVars(owner), ...(mode === "uninstall-drained" ? { FORKLIFT_SWARM_UNLOCK: "1" } : {}) };
    return runLeftScript(HOST_SCRIPT_PATH, vars, mode, sudo, `forklift: nothing installed on ${hostName}`, true);
}

/** The status line an install printed (its last of that shape), or an error quoting its output's end. */
export function parseHostStatus(stdout: string): HostStatus {
    const status = lastOf(HostStatus, stdout);
    if (!status) throw new Error(`the install printed no status line; its output ended with: ${stdout.trim().slice(-300)}`);
    return status;
}
