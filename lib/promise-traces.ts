/**
 * The Pulumi SDK's promise traces, formatted only when something reads them.
 *
 * `@pulumi/pulumi` wraps its promises in `debuggablePromise` (several per resource: one per
 * output property and per step of a registration) and takes `new Error().stack` for each, which
 * formats the trace at once, every frame mapped through the source maps of ts-node and
 * source-map-support. The SDK reads those traces in one place only: its report of promises still
 * pending at exit, and only when PULUMI_DEBUG_PROMISE_LEAKS is set. Unless it is set, the trace
 * of an error created by `debuggablePromise` is left empty here; every other error's trace
 * (forklift's, the SDK's, a resource's source position) is formatted as before.
 */

/** The SDK function whose traces are only read under PULUMI_DEBUG_PROMISE_LEAKS. */
export const PROMISE_WRAPPER = "debuggablePromise";

type Format = (err: Error, frames: NodeJS.CallSite[]) => unknown;

/** V8's own format, for when no other formatter is installed. */
function v8Format(err: Error, frames: NodeJS.CallSite[]): string {
    return `${Error.prototype.toString.call(err)}${frames.map((f) => `\n    at ${f}`).join("")}`;
}

/**
 * A formatter that leaves the traces of errors created in `debuggablePromise` empty and hands
 * every other one to INNER (V8's format when there is none).
 */
export function promiseTraceFormatter(inner: Format | undefined): Format {
    const format = inner ?? v8Format;
    return (err, frames) => (frames.length > 0 && frames[0].getFunctionName() === PROMISE_WRAPPER ? "" : format(err, frames));
}

/**
 * Installs promiseTraceFormatter around the current `Error.prepareStackTrace` (ts-node's, by the
 * time the program runs), unless PULUMI_DEBUG_PROMISE_LEAKS asks for the traces. Returns whether
 * it did.
 */
export function skipUnreadPromiseTraces(env: NodeJS.ProcessEnv = process.env): boolean {
    if (env.PULUMI_DEBUG_PROMISE_LEAKS) return false;
    Error.prepareStackTrace = promiseTraceFormatter(Error.prepareStackTrace as Format | undefined);
    return true;
}
