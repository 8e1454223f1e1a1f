/**
 * The local commands (local/main.ts) driven as the program's command resources run them: the
 * command line of lib/protocol/local.ts in the project directory, the job as JSON on stdin.
 */
import { spawn, spawnSync } from "node:child_process";
import { LocalJob, SwarmCheckSpec, localCommand, swarmCheck } from "../../lib/protocol/local";
import { RemoteHost, Route, SwarmCheck, SwarmNodeJob } from "../../local/jobs";
import { TestHost, repoRoot } from "./testbed";

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

/** A test host's route as the program renders one: root, the run's key, its host key pinned. */
export function routeOf(h: TestHost, over: Partial<Route> = {}): Route {
    return { address: h.address, port: h.port, user: "root", hostKey: h.hostKey, privateKey: h.privateKey, connectTimeout: 3, ...over };
}

/** A test host as a local job names it. */
export function remoteOf(name: string, h: TestHost, over: Partial<Route> = {}): RemoteHost {
    return { name, route: routeOf(h, over) };
}

/** The Swarm part of a fleet host's job when the test has no Swarm settings (swarmManagers none). */
export const NO_SWARM: SwarmNodeJob = { managers: [], drainTimeout: 120, nodeTimeout: 60, allowTwoManagers: false };

/** The Swarm part of a check's job with the config's defaults (batch size 1, swarmManagers none). */
export function defaultSwarmCheck(over: Partial<SwarmCheckSpec> = {}): SwarmCheck {
    return swarmCheck({ batchSize: 1, allowTwoManagers: false, daemonJson: {}, fleetManagers: [], otherManagers: [], ...over });
}
