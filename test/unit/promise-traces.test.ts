/**
 * lib/promise-traces.ts: the SDK's promise traces are left unformatted (they are read only under
 * PULUMI_DEBUG_PROMISE_LEAKS); every other error's trace is formatted as before.
 */
import { afterEach, test } from "node:test";
import * as assert from "node:assert/strict";
import { PROMISE_WRAPPER, promiseTraceFormatter, skipUnreadPromiseTraces } from "../../lib/promise-traces";

// the SDK's own wrapper, as the program's resources call it (internal: no type declarations)
const { debuggablePromise } = require("@pulumi/pulumi/runtime/debuggable") as {
    debuggablePromise: <T>(p: Promise<T>, ctx: string) => Promise<T>;
};

const original = Error.prepareStackTrace;
afterEach(() => {
    Error.prepareStackTrace = original;
});

/** The stack of an error created inside a function named NAME. */
function stackFrom(name: string): string {
    const make = { [name]: () => new Error("boom") }[name];
    return make().stack ?? "";
}

const marker = (_err: Error, frames: NodeJS.CallSite[]) => `inner:${frames.length}`;

const cases: { name: string; inner: typeof marker | undefined; from: string; expect: (stack: string) => boolean }[] = [
    { name: "an error of the SDK's promise wrapper: no trace", inner: marker, from: PROMISE_WRAPPER, expect: (s) => s === "" },
    { name: "any other error: the inner formatter's trace", inner: marker, from: "installHost", expect: (s) => /^inner:\d+$/.test(s) && s !== "inner:0" },
    { name: "a function whose name only contains the wrapper's", inner: marker, from: `${PROMISE_WRAPPER}2`, expect: (s) => s.startsWith("inner:") },
    { name: "no inner formatter: V8's format", inner: undefined, from: "installHost", expect: (s) => /^Error: boom\n {4}at installHost /.test(s) },
    { name: "no inner formatter, the SDK's wrapper: no trace", inner: undefined, from: PROMISE_WRAPPER, expect: (s) => s === "" },
];

for (const c of cases) {
    test(`promiseTraceFormatter: ${c.name}`, () => {
        Error.prepareStackTrace = promiseTraceFormatter(c.inner);
        const stack = stackFrom(c.from);
        assert.ok(c.expect(stack), `unexpected stack: ${JSON.stringify(stack.slice(0, 200))}`);
    });
}

test("the SDK's debuggablePromise keeps an empty trace once installed, and a full one without", async () => {
    const traceOf = async (): Promise<string> => {
        const p = Promise.resolve(1);
        assert.equal(await debuggablePromise(p, "test"), 1);
        return (p as unknown as { _debugStackTrace: string })._debugStackTrace;
    };
    // without: the SDK formats a trace that names its wrapper (so the name matched below is right)
    assert.match(await traceOf(), new RegExp(`at ${PROMISE_WRAPPER} `));
    assert.equal(skipUnreadPromiseTraces({}), true);
    assert.equal(await traceOf(), "");
    // errors of the program keep their traces
    assert.match(new Error("mine").stack ?? "", /^Error: mine\n {4}at /);
});

test("PULUMI_DEBUG_PROMISE_LEAKS keeps the SDK's traces: nothing is installed", () => {
    const before = Error.prepareStackTrace;
    assert.equal(skipUnreadPromiseTraces({ PULUMI_DEBUG_PROMISE_LEAKS: "1" }), false);
    assert.equal(Error.prepareStackTrace, before);
});

test("index.ts installs it before it registers anything", async () => {
    const { readFileSync } = await import("node:fs");
    const source = readFileSync(require.resolve("../../index.ts"), "utf8");
    const call = source.indexOf("skipUnreadPromiseTraces();");
    assert.ok(call > 0, "index.ts does not call skipUnreadPromiseTraces()");
    assert.ok(call < source.indexOf("export ="), "skipUnreadPromiseTraces() must run before the program's function");
});
