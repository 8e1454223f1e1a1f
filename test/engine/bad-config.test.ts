/**
 * Bad stack files through a real Pulumi engine: the pulumi CLI built from Go modules
 * (tools/pulumi-toolchain.sh), a local file backend, forklift's own Pulumi.yaml (so the CLI's
 * own type checks take part), and index.ts as an Automation API inline program. For every bad
 * config of the shared table, `pulumi preview` and `pulumi up` must fail with a message naming
 * the key, without a stack trace, and nothing may be created.
 */
import { before, describe, test } from "node:test";
import * as assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as path from "node:path";
import { badConfigs, badStack } from "../unit/fixtures";

interface Result {
    name: string;
    preview: string | null;
    up: string | null;
    resources: { type: string; urn: string }[];
}

describe("bad stack config through the real pulumi CLI", { timeout: 30 * 60_000 }, () => {
    const results = new Map<string, Result>();

    before(() => {
        const stacks = badConfigs.map(([, overrides], i) => ({ name: `bad${i}`, values: badStack(overrides) }));
        const r = spawnSync(process.execPath, ["--import", "tsx", path.join(__dirname, "stack-harness.ts")], {
            input: JSON.stringify(stacks),
            encoding: "utf8",
            cwd: path.join(__dirname, "..", ".."),
            timeout: 25 * 60_000,
            maxBuffer: 64 * 1024 * 1024,
        });
        const line = r.stdout.trim().split("\n").pop() ?? "";
        assert.ok(line.startsWith("["), `the engine harness failed (exit ${r.status}):\n${r.stderr.slice(-3000)}`);
        for (const res of JSON.parse(line) as Result[]) results.set(res.name, res);
    });

    badConfigs.forEach(([what, , key], i) => {
        test(`preview and up refuse: ${what}`, () => {
            const res = results.get(`bad${i}`);
            assert.ok(res, "no result for this stack");
            for (const [cmd, msg] of [["preview", res.preview], ["up", res.up]] as const) {
                assert.ok(msg !== null, `pulumi ${cmd} succeeded`);
                assert.ok(msg.includes(key), `pulumi ${cmd} does not name ${key}:\n${msg.slice(-1500)}`);
                assert.doesNotMatch(msg, /Unhandled exception|    at /, `pulumi ${cmd} shows a stack trace instead of the message`);
            }
            const created = res.resources.filter((r) => r.type !== "pulumi:pulumi:Stack");
            assert.deepEqual(created, [], "nothing was created");
        });
    });
});
