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
import { badConfigs, badStack, hostsStack } from "../unit/fixtures";
import { CONFIG_KEYS, DEFAULTS, parseConfig } from "../../lib/config";

interface Result {
    name: string;
    preview: string | null;
    up: string | null;
    resources: { type: string; urn: string }[];
    outputs: Record<string, any>;
}

describe("bad stack config through the real pulumi CLI", { timeout: 30 * 60_000 }, () => {
    const results = new Map<string, Result>();

    before(() => {
        const stacks: { name: string; values: Record<string, unknown>; probe?: boolean }[] = badConfigs.map(([, overrides], i) => ({ name: `bad${i}`, values: badStack(overrides) }));
        // only what a user must set: every other key comes from Pulumi.yaml's defaults
        const required = hostsStack();
        stacks.push({ name: "defaults", probe: true, values: { forkRepo: required.forkRepo, forkRef: required.forkRef, builderHost: required.builderHost, fleetHosts: required.fleetHosts } });
        // the rollout's keys as a user writes them in a stack file: YAML numbers and strings mixed
        stacks.push({ name: "rollout", probe: true, values: { forkRepo: required.forkRepo, forkRef: required.forkRef, builderHost: required.builderHost, fleetHosts: required.fleetHosts, waves: "1,25%,100%", maxFailures: 1, soakSeconds: 30, healthCheck: "docker run --rm busybox true" } });
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

    test("a stack that sets only what it must gets every other key from Pulumi.yaml, as the program's defaults", () => {
        const res = results.get("defaults");
        assert.ok(res, "no result for this stack");
        assert.equal(res.up, null, `pulumi up of the probe failed: ${res.up}`);
        const config = res.outputs.config as Record<string, string>;
        const set = ["forkRepo", "forkRef", "builderHost", "fleetHosts"];
        for (const key of CONFIG_KEYS) {
            if (set.includes(key)) continue;
            const given = config[`forklift:${key}`];
            assert.ok(given !== undefined, `the CLI hands the program no value for forklift:${key}: Pulumi.yaml declares no default`);
            const value = typeof DEFAULTS[key] === "string" ? given : JSON.parse(given);
            assert.deepEqual(value, DEFAULTS[key], `the default of forklift:${key} in Pulumi.yaml is not the program's`);
        }
        assert.deepEqual(Object.keys(config).filter((k) => !CONFIG_KEYS.includes(k.replace(/^forklift:/, "") as never)), [], "no key the program does not read");
        const cfg = parseConfig(config);
        assert.equal(cfg.batchSize, 1);
        assert.deepEqual(cfg.daemonJson, DEFAULTS.daemonJson);
    });

    test("the rollout's keys pass the CLI's own type checks as a user writes them (waves of numbers and percentages, a numeric maxFailures)", () => {
        const res = results.get("rollout");
        assert.ok(res, "no result for this stack");
        assert.equal(res.up, null, `pulumi up of the probe failed: ${res.up}`);
        const cfg = parseConfig(res.outputs.config as Record<string, string>);
        assert.deepEqual(cfg.waves, [1, "25%", "100%"]);
        assert.equal(cfg.maxFailures, 1);
        assert.equal(cfg.soakSeconds, 30);
        assert.deepEqual(cfg.healthCheck, { command: "docker run --rm busybox true", timeoutSeconds: 60 });
    });
});
