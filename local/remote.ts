/**
 * What the local commands send to a host and read back: forklift-host.sh travels on the stdin of
 * the command that runs it, and a failure is told as the host told it.
 */
import { readScript } from "../lib/protocol/script";
import { RemoteHost } from "../lib/protocol/jobs";
import { HostErrorLine } from "../lib/protocol/host";
import { RunResult, explainSshFailure } from "./ssh";

/** scripts/forklift-host.sh, as the host commands' stdin begins. */
export function hostScript(): Buffer {
    return Buffer.from(readScript("forklift-host.sh"));
}

/**
 * Why a command on HOST failed, naming the host: ssh's own failure explained (it exits 255 when
 * it gets no session), else the host script's ERROR lines, else the last lines it wrote.
 */
export function hostFailure(host: RemoteHost, r: RunResult): string {
    if (r.code === 255) return explainSshFailure(host, r.stderr);
    const lines = r.stderr.trimEnd().split("\n");
    // the script's fatal message runs to the end (a daemon's log may follow it)
    const first = lines.findIndex((l) => /^\[forklift [^\]]*\] ERROR: /.test(l));
    const said = first >= 0 ? [lines[first].replace(/^\[forklift [^\]]*\] ERROR: /, ""), ...lines.slice(first + 1)].join("\n") : lines.slice(-3).join(" ").trim() || `exit ${r.code}`;
    return `${host.name} (${host.route.address}:${host.route.port}): ${said}`;
}

/**
 * A host script run that failed, with the status line it printed last, where it printed one: what
 * the host runs now (a failed install prints it once it rolled the host back).
 */
export class HostError extends Error {
    constructor(
        message: string,
        readonly status?: Record<string, unknown>,
        /** What failed, where the script said it as a code (lib/protocol/host.ts). */
        readonly error?: HostErrorLine,
    ) {
        super(message);
    }
}

/** The JSON status line a host script run printed last on STDOUT, if any. */
export function statusLine(stdout: string): Record<string, unknown> | undefined {
    try {
        const last = JSON.parse(stdout.trim().split("\n").pop() ?? "") as unknown;
        return last !== null && typeof last === "object" && "sha256" in last ? (last as Record<string, unknown>) : undefined;
    } catch {
        return undefined;
    }
}
