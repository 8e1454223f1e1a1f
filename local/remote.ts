/**
 * What the local commands send to a host and read back: forklift-host.sh travels on the stdin of
 * the command that runs it, and a failure is told as the host told it.
 */
import * as os from "node:os";
import { readScript } from "../lib/protocol/script";
import { RemoteHost } from "../lib/protocol/jobs";
import { Fatal, HostErrorLine, HostStatus, lastOf } from "../lib/protocol/results";
import { RunResult, explainSshFailure } from "./ssh";

/** scripts/forklift-host.sh, as the host commands' stdin begins. */
export function hostScript(): Buffer {
    return Buffer.from(readScript("forklift-host.sh"));
}

/**
 * Why a command on HOST failed, naming the host: ssh's own failure explained (it exits 255 when
 * it gets no session), else the host script's `fatal` message (its JSON line on stdout), else the
 * last lines it wrote on stderr (a script killed, or one that ended by `set -e`).
 */
export function hostFailure(host: RemoteHost, r: RunResult): string {
    if (r.code === 255) return explainSshFailure(host, r.stderr);
    const last = r.stderr.trimEnd().split("\n").slice(-3).join(" ").trim();
    const signal = r.code > 128 ? signalName(r.code - 128) : undefined;
    const said = lastOf(Fatal, r.stdout)?.fatal ?? (signal ? `its forklift-host.sh run was ended by ${signal} on the host (exit ${r.code})${last ? `; it said last: ${last}` : ""}` : last || `exit ${r.code}`);
    return `${host.name} (${host.route.address}:${host.route.port}): ${said}`;
}

/** SIGKILL for 9: a signal's name by its number, where Node.js knows it. */
function signalName(n: number): string | undefined {
    return Object.entries(os.constants.signals).find(([, v]) => v === n)?.[0];
}

/**
 * Shows the host script's own lines as they come (its progress); the rest (ssh's, a fatal
 * message's continuation) goes into the failure's message instead.
 */
export function hostLines(log: (line: string) => void): (line: string) => void {
    return (line) => {
        if (line.startsWith("[forklift ")) log(line);
    };
}

/**
 * A host script run that failed, with the status line it printed last, where it printed one: what
 * the host runs now (a failed install prints it once it rolled the host back).
 */
export class HostError extends Error {
    constructor(
        message: string,
        readonly status?: HostStatus,
        /** What failed, where the script said it as a code (lib/protocol/host.ts). */
        readonly error?: HostErrorLine,
    ) {
        super(message);
    }
}
