/**
 * The remote and local commands forklift runs, rendered as exact strings from typed inputs.
 * Scripts from scripts/ travel on stdin; values go in the command line, quoted once.
 */
import { readFileSync } from "node:fs";
import * as path from "node:path";
import { ForkConfig } from "./config";
import { hashInputs, sha256 } from "./hash";
import { b64, envPrefix, runScriptFromStdin, shq } from "./shell";
import { ManagedFiles } from "./units";

export const SCRIPTS_DIR = path.join(__dirname, "..", "scripts");
export const HOST_SCRIPT_PATH = "/usr/local/lib/forklift/forklift-host.sh";

export function readScript(name: "build-fork.sh" | "forklift-host.sh" | "bootstrap-builder.sh" | "artifact.sh"): string {
    return readFileSync(path.join(SCRIPTS_DIR, name), "utf8");
}

/**
 * Identifies a build: every input that changes the artifact, plus the build script itself.
 * The build command embeds it, so the build reruns exactly when it changes.
 */
export function buildKey(fork: ForkConfig, buildScript: string): string {
    return hashInputs({
        recipe: fork.recipe,
        repo: fork.repo,
        ref: fork.ref,
        cliRepo: fork.recipe === "docker-ce-packaging" ? fork.cliRepo : undefined,
        cliRef: fork.recipe === "docker-ce-packaging" ? fork.cliRef : undefined,
        packagingRepo: fork.recipe === "docker-ce-packaging" ? fork.packagingRepo : undefined,
        packagingRef: fork.recipe === "docker-ce-packaging" ? fork.packagingRef : undefined,
        version: fork.version,
        makeVars: fork.makeVars,
        script: sha256(buildScript),
    });
}

export function buildCommand(fork: ForkConfig, key: string, sudo: boolean): string {
    const makeVars = Object.keys(fork.makeVars)
        .sort()
        .map((k) => `${k}=${fork.makeVars[k]}\n`)
        .join("");
    const packaging = fork.recipe === "docker-ce-packaging";
    return runScriptFromStdin(
        {
            FORKLIFT_BUILD_KEY: key,
            FORKLIFT_RECIPE: fork.recipe,
            FORKLIFT_REPO: fork.repo,
            FORKLIFT_REF: fork.ref,
            FORKLIFT_CLI_REPO: packaging ? fork.cliRepo : undefined,
            FORKLIFT_CLI_REF: packaging ? fork.cliRef : undefined,
            FORKLIFT_PACKAGING_REPO: packaging ? fork.packagingRepo : undefined,
            FORKLIFT_PACKAGING_REF: packaging ? fork.packagingRef : undefined,
            FORKLIFT_VERSION: fork.version,
            FORKLIFT_MAKE_VARS_B64: makeVars ? b64(makeVars) : undefined,
        },
        ["build"],
        sudo,
    );
}

/** STACK_ID (an existing build host's): the stack recorded as a user of the build host. */
export function bootstrapCommand(mode: "bootstrap" | "wait", swapGiB: number, sudo: boolean, stackId?: string): string {
    return runScriptFromStdin({ FORKLIFT_SWAP_GIB: swapGiB, FORKLIFT_STACK_ID: stackId }, [mode], sudo);
}

/**
 * Undoes the bootstrap of an existing build host with the copy bootstrap left there, unless
 * another stack than STACK_ID still uses the host.
 */
export function builderCleanupCommand(sudo: boolean, stackId?: string): string {
    return runLeftScript("/var/lib/forklift-bootstrap/bootstrap-builder.sh", { FORKLIFT_STACK_ID: stackId }, "cleanup", sudo, "forklift: build host was not bootstrapped");
}

/** Runs a script an earlier run left on the host (for deletes, which get no stdin); else says so. */
function runLeftScript(script: string, vars: Record<string, string | undefined>, arg: string, sudo: boolean, absent: string): string {
    const run = [sudo ? "sudo -n" : "", "env", envPrefix(vars), "bash", script, arg].filter(Boolean).join(" ");
    return `if [ -f ${script} ]; then ${run}; else echo ${shq(absent)}; fi`;
}

/**
 * The local command (scripts/artifact.sh MODE) that brings the release onto one fleet host
 * (`install`), takes it off (`uninstall`) or checks the host first (`check`), run by the command
 * provider in the project directory.
 * Keys and the remote commands travel on its stdin (artifactStdin).
 */
export function artifactCommand(mode: "install" | "uninstall" | "check", vars: Record<string, string>): string {
    return `${envPrefix(vars)} bash scripts/artifact.sh ${mode}`;
}

/** stdin of scripts/artifact.sh: "<name> <base64>" lines, for keys and remote commands. */
export function artifactStdin(entries: Record<string, string | undefined>): string {
    return Object.entries(entries)
        .filter(([, v]) => v)
        .map(([k, v]) => `${k} ${b64(v as string)}\n`)
        .join("");
}

/** Where the artifact is staged on a fleet host before install (removed after a good install). */
export function remoteArtifactPath(sha: string): string {
    return `/var/tmp/forklift-docker-${sha}.tgz`;
}

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
    sudo: boolean;
}

export function installCommand(i: InstallInputs): string {
    return runScriptFromStdin(
        {
            FORKLIFT_HOST: i.hostName,
            ...ownerVars(i.owner),
            FORKLIFT_ARTIFACT: remoteArtifactPath(i.sha256),
            FORKLIFT_SHA256: i.sha256,
            FORKLIFT_VERSION: i.version,
            FORKLIFT_INSTALL_DIR: i.installDir,
            FORKLIFT_DOCKER_SERVICE_B64: b64(i.files["docker.service"]),
            FORKLIFT_DOCKER_SOCKET_B64: b64(i.files["docker.socket"]),
            FORKLIFT_CONTAINERD_SERVICE_B64: i.files["containerd.service"] ? b64(i.files["containerd.service"]) : "",
            FORKLIFT_DAEMON_JSON_B64: i.files["daemon.json"] ? b64(i.files["daemon.json"]) : "",
        },
        ["install"],
        i.sudo,
    );
}

/** Runs the copy of forklift-host.sh that the install left on the host; a no-op where none is. */
export function uninstallCommand(hostName: string, owner: Owner, sudo: boolean): string {
    const vars = { FORKLIFT_HOST: hostName, ...ownerVars(owner) };
    return runLeftScript(HOST_SCRIPT_PATH, vars, "uninstall", sudo, `forklift: nothing installed on ${hostName}`);
}

/** EC2 user data: the script with its variables set in front (cloud-init runs it as root). */
export function renderUserData(script: string, vars: Record<string, string | number>, args: string[]): string {
    const body = script.replace(/^#!.*\n/, "");
    const exports = Object.keys(vars)
        .sort()
        .map((k) => `export ${envPrefix({ [k]: vars[k] })}`)
        .join("\n");
    return `#!/usr/bin/env bash\n${exports}\nset -- ${args.map(shq).join(" ")}\n${body}`;
}

/** What a launched instance's user data runs: bootstrap-builder.sh's `bootstrap` or `host-key`. */
export type FirstBoot = { mode: "bootstrap"; swapGiB: number } | { mode: "host-key" };

/** A launched instance's user data: FirstBoot with the base64 of its own SSH host private key. */
export function firstBootUserData(boot: FirstBoot, hostKeyB64: string): string {
    const vars: Record<string, number> = boot.mode === "bootstrap" ? { FORKLIFT_SWAP_GIB: boot.swapGiB } : {};
    return renderUserData(readScript("bootstrap-builder.sh"), { ...vars, FORKLIFT_SSH_HOST_KEY_B64: hostKeyB64 }, [boot.mode]);
}
