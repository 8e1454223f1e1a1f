/**
 * What a local command does when it is told to stop (Ctrl-C, SIGTERM, its terminal closed): the
 * cleanups registered here run first, for a few seconds at most (a Swarm node drained for this
 * run gets its availability back where that is safe), then the process exits; its SSH keys go
 * with it (ssh.ts). And when whoever reads its output is gone (the command provider killed), its
 * writes fail quietly instead of ending it half-way: it finishes what it is doing.
 */

/** Seconds the cleanups of a stopped command may take, together. */
export const INTERRUPT_SECONDS = 5;

type Cleanup = () => Promise<void>;
const cleanups = new Set<Cleanup>();
let stopping = false;

/** True once a stop began: no new change may start. */
export function isStopping(): boolean {
    return stopping;
}

/** Registers CLEANUP for a stop; returns its removal. */
export function onInterrupt(cleanup: Cleanup): () => void {
    cleanups.add(cleanup);
    return () => cleanups.delete(cleanup);
}

async function stop(signal: NodeJS.Signals): Promise<void> {
    const code = 128 + (signal === "SIGINT" ? 2 : signal === "SIGTERM" ? 15 : 1);
    if (stopping) return;
    stopping = true;
    const all = Promise.allSettled([...cleanups].map((c) => c()));
    await Promise.race([all, new Promise((r) => setTimeout(r, INTERRUPT_SECONDS * 1000).unref())]);
    process.exit(code);
}

for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) process.on(signal, () => void stop(signal));
// (EPIPE on a closed pipe: the provider that read it is gone; the work goes on)
process.stdout.on("error", () => undefined);
process.stderr.on("error", () => undefined);
