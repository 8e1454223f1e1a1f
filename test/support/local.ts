/**
 * The local commands (local/main.ts) driven as the program's command resources run them: the
 * command line of lib/protocol/local.ts in the project directory, the job as JSON on stdin.
 */
import { spawn, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { sha256 } from "../../lib/hash";
import { LocalJob, SwarmCheckSpec, localCommand, swarmCheck } from "../../lib/protocol/local";
import { ArtifactSource, RemoteHost, Route, SwarmCheck, SwarmNodeJob } from "../../lib/protocol/jobs";
import { TestHost, copyFrom, repoRoot, ssh } from "../../testbed/testbed";

export interface LocalRun {
    code: number;
    stdout: string;
    stderr: string;
    seconds: number;
}

/** Runs `local/main.ts JOB` with DOC on stdin, as the command provider does (`sh -c` in the project); ENV over this process's. */
export function runLocal(job: LocalJob, doc: unknown, timeoutMs = 300_000, env: NodeJS.ProcessEnv = {}): LocalRun {
    const started = Date.now();
    const r = spawnSync("sh", ["-c", localCommand(job)], { input: JSON.stringify(doc), encoding: "utf8", cwd: repoRoot(), timeout: timeoutMs, env: { ...process.env, ...env } });
    return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr, seconds: (Date.now() - started) / 1000 };
}

/** runLocal without blocking, so that several run at once. */
export function runLocalAsync(job: LocalJob, doc: unknown): Promise<LocalRun> {
    const started = Date.now();
    return new Promise((resolve, reject) => {
        const child = spawn("sh", ["-c", localCommand(job)], { cwd: repoRoot(), stdio: ["pipe", "pipe", "pipe"] });
        let stdout = "";
        let stderr = "";
        child.stdout.on("data", (d) => (stdout += d));
        child.stderr.on("data", (d) => (stderr += d));
        child.on("error", reject);
        child.on("close", (code) => resolve({ code: code ?? -1, stdout, stderr, seconds: (Date.now() - started) / 1000 }));
        child.stdin.end(JSON.stringify(doc));
    });
}

/**
 * runLocalAsync, stopped with SIGNAL sent to its whole process group (the shell, node and its ssh
 * sessions, as a terminal's Ctrl-C or a killed `pulumi up` would) as soon as a line of its stderr
 * matches WHEN. `stopped`: whether it came to that.
 */
export function runLocalStopped(job: LocalJob, doc: unknown, when: RegExp, signal: NodeJS.Signals): Promise<LocalRun & { stopped: boolean }> {
    return runLocalWhen(job, doc, when, (pid) => process.kill(-pid, signal)).then(({ acted, ...r }) => ({ ...r, stopped: acted }));
}

/**
 * runLocalAsync, with ACT run (given the process group's id) as soon as a line of its stderr
 * matches WHEN (a fault brought on at that moment: a stop, a cut network). `acted`: whether it came to that.
 */
export function runLocalWhen(job: LocalJob, doc: unknown, when: RegExp, act: (pid: number) => void): Promise<LocalRun & { acted: boolean }> {
    const started = Date.now();
    return new Promise((resolve, reject) => {
        // (exec: the process is node itself, and its exit status the command's)
        const child = spawn("sh", ["-c", `exec ${localCommand(job)}`], { cwd: repoRoot(), stdio: ["pipe", "pipe", "pipe"], detached: true });
        let stdout = "";
        let stderr = "";
        let acted = false;
        child.stdout.on("data", (d) => (stdout += d));
        child.stderr.on("data", (d) => {
            stderr += d;
            if (!acted && when.test(stderr)) {
                acted = true;
                act(child.pid!);
            }
        });
        child.on("error", reject);
        child.on("close", (code, sig) => resolve({ code: code ?? (sig ? 128 : -1), stdout, stderr, seconds: (Date.now() - started) / 1000, acted }));
        child.stdin.end(JSON.stringify(doc));
    });
}

/** A test host's route as the program renders one: root, the run's key, its host key pinned. */
export function routeOf(h: TestHost, over: Partial<Route> = {}): Route {
    return { address: h.address, port: h.port, user: "root", hostKey: h.hostKey, privateKey: h.privateKey, connectTimeout: 3, ...over };
}

/** A test host as a local job names it. */
export function remoteOf(name: string, h: TestHost, over: Partial<Route> = {}): RemoteHost {
    return { name, route: routeOf(h, over) };
}

/** The Swarm part of a fleet host's job when the test has no Swarm settings (swarmManagers none). */
export const NO_SWARM: SwarmNodeJob = { managers: [], drainTimeout: 120, nodeTimeout: 60, allowTwoManagers: false, stackId: "", maxDrained: 1, acceptDowntime: [], moveLocalData: [], surge: 0 };

/** The Swarm part of a check's job with the config's defaults (batch size 1, swarmManagers none). */
export function defaultSwarmCheck(over: Partial<SwarmCheckSpec> = {}): SwarmCheck {
    return swarmCheck({ batchSize: 1, allowTwoManagers: false, daemonJson: {}, fleetManagers: [], otherManagers: [], stackId: "", ...over });
}

/** The binaries of a static Docker release, as the test hosts' Debian packages have them. */
export const RELEASE_BINARIES = ["containerd", "containerd-shim-runc-v2", "ctr", "docker", "docker-init", "docker-proxy", "dockerd", "runc"];

/**
 * Releases made of HOST's own Debian binaries in the layout of a static build, one per entry of
 * VARIANTS: the shell that changes the release's directory `$d/docker` before it is packed ("" for
 * the binaries as they are; a note more gives another sha256; a dockerd of its own, a release
 * that fails). Each is put into CACHE_DIR under its sha256 (the local cache needs no build host);
 * returns each one's sha256.
 */
export function hostReleases<K extends string>(host: TestHost, cacheDir: string, variants: Record<K, string>): Record<K, string> {
    const out = {} as Record<K, string>;
    for (const [name, change] of Object.entries(variants) as [K, string][]) {
        const pack = [
            "set -e; PATH=$PATH:/usr/sbin:/sbin; d=$(mktemp -d); mkdir $d/docker",
            ...RELEASE_BINARIES.map((b) => `cp "$(readlink -f "$(command -v ${b})")" $d/docker/${b}`),
            change || "true",
            `tar -C $d -czf /tmp/${name}.tgz docker; rm -rf $d`,
        ].join("; ");
        const r = ssh(host, pack);
        if (r.code !== 0) throw new Error(`${host.name}: packing release ${name}: ${r.stderr}`);
        const local = path.join(cacheDir, `${name}.tgz.tmp`);
        copyFrom(host, `/tmp/${name}.tgz`, local);
        ssh(host, `rm -f /tmp/${name}.tgz`);
        out[name] = sha256(fs.readFileSync(local));
        fs.renameSync(local, path.join(cacheDir, `${out[name]}.tgz`));
    }
    return out;
}

/** A release whose dockerd exits at once, as a broken fork's would (a variant for hostReleases). */
export const BROKEN_DOCKERD = "printf '#!/bin/sh\\necho dockerd: fork patch broke startup >&2\\nexit 1\\n' > $d/docker/dockerd";

/**
 * Where a test's artifact of SHA comes from: the local cache in CACHE_DIR, which holds it; the
 * build host named is never asked (no one listens there).
 */
export function cachedSource(sha: string, cacheDir: string): ArtifactSource {
    return {
        sha256: sha,
        path: "/never/asked.tgz",
        builder: { name: "builder", route: { address: "127.0.0.1", port: 1, user: "root", hostKey: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIE13Mx9w3k99vWlCJXURrSYBWBucTfvv3XrE8dCTUoOn", connectTimeout: 2 } },
        cacheDir,
    };
}
