import { test } from "node:test";
import * as assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import * as path from "node:path";
import * as yaml from "js-yaml";
import { ConfigError, parseConfig } from "../../lib/config";
import { TEST_HOST_KEY, TEST_PRIVATE_KEY, badConfigs, badStack, hostsStack } from "./fixtures";

/** Raw config as `pulumi.runtime.allConfig()` gives it: strings, objects as JSON. */
function raw(values: Record<string, unknown>): Record<string, string> {
    const out: Record<string, string> = {};
    for (const [k, v] of Object.entries(values)) out[`forklift:${k}`] = typeof v === "string" ? v : JSON.stringify(v);
    return out;
}

function problems(values: Record<string, unknown>): string[] {
    try {
        parseConfig(raw(values));
    } catch (e) {
        assert.ok(e instanceof ConfigError, `expected ConfigError, got ${e}`);
        return e.problems;
    }
    return [];
}

const host = (over: Record<string, unknown> = {}) => ({ address: "10.0.0.5", user: "root", privateKey: TEST_PRIVATE_KEY, hostKey: TEST_HOST_KEY, ...over });
const base = hostsStack();

test("a complete hosts-mode stack parses, with defaults filled in", () => {
    const cfg = parseConfig(raw(base));
    assert.equal(cfg.fork.recipe, "docker-ce");
    assert.equal(cfg.batchSize, 1);
    assert.equal(cfg.installDir, "/usr/bin");
    assert.deepEqual(cfg.daemonJson, {}, "no settings of its own: forklift adds live-restore where it may");
    assert.deepEqual(cfg.swarm, { managers: [], drainTimeout: 300, nodeTimeout: 120, allowTwoManagers: false, unlockKey: undefined, maxDrained: 1, acceptDowntime: [], moveLocalData: [], surge: 0 });
    assert.equal(cfg.builderEc2.instanceType, "t2.medium");
    assert.equal(cfg.builderEc2.volumeGiB, 50);
    assert.equal(cfg.fleetHosts.length, 2);
    assert.equal(cfg.fleetHosts[0].port, 22);
    assert.equal(cfg.fleetHosts[0].name, "h1");
    assert.equal(cfg.fleetHosts[1].name, "10-0-0-3");
});

test("an EC2 stack needs only the fork and the SSH CIDRs", () => {
    const cfg = parseConfig(raw({ forkRepo: "https://github.com/me/moby.git", forkRef: "v28.0.1", fleetCount: 3, sshAllowedCidrs: ["203.0.113.7/32"] }));
    assert.equal(cfg.builderHost, undefined);
    assert.equal(cfg.fleetEc2.count, 3);
    assert.equal(cfg.fork.recipe, "docker-ce-packaging");
});

test("manageDaemonJson: false leaves daemon.json alone", () => {
    assert.equal(parseConfig(raw({ ...base, manageDaemonJson: false })).daemonJson, null);
});

test("insecureSkipHostKeyCheck lets hosts go without hostKey", () => {
    const cfg = parseConfig(raw({ ...base, insecureSkipHostKeyCheck: true, fleetHosts: [host({ hostKey: undefined })] }));
    assert.equal(cfg.fleetHosts[0].hostKey, undefined);
});

test("0.0.0.0/0 is accepted with allowOpenSsh", () => {
    const cfg = parseConfig(raw({ ...base, fleetCount: 1, sshAllowedCidrs: ["0.0.0.0/0"], allowOpenSsh: true }));
    assert.deepEqual(cfg.sshAllowedCidrs, ["0.0.0.0/0"]);
});

test("a fleet host may be named fleet-N when no launched instance's rollout takes that name", () => {
    const launching = { ...base, fleetCount: 1, sshAllowedCidrs: ["203.0.113.7/32"] };
    assert.deepEqual(problems({ ...launching, fleetHosts: [host({ name: "fleet-2" })] }), []);
    assert.deepEqual(problems({ ...base, fleetHosts: [host({ name: "fleet-1" })] }), []);
    assert.match(problems({ ...launching, fleetHosts: [host({ name: "fleet-1" })] }).join("\n"), /^forklift:fleetHosts\[0\]\.name: got "fleet-1"; expected a name other than fleet-N/);
});

for (const [what, overrides, key, expected] of badConfigs) {
    test(`bad config: ${what}`, () => {
        const found = problems(badStack(overrides));
        assert.ok(found.length > 0, "expected the config to be rejected");
        const line = found.find((p) => p.startsWith(`${key}:`));
        assert.ok(line, `no problem names ${key}; got:\n${found.join("\n")}`);
        assert.ok(line.includes(expected), `"${line}" does not say "${expected}"`);
    });
}

test("the error message lists every problem and says nothing was created", () => {
    try {
        parseConfig(raw({ ...base, batchSize: 0, recipe: "nope" }));
        assert.fail("expected a ConfigError");
    } catch (e) {
        assert.ok(e instanceof ConfigError);
        assert.match(e.message, /nothing was created/);
        assert.match(e.message, /forklift:batchSize: got "0"; expected a whole number from 1 to 1000/);
        assert.match(e.message, /forklift:recipe: got "nope"; expected one of docker-ce, docker-ce-packaging, moby/);
    }
});

test("no byte of a private key is echoed, however deep the bad value holds it", () => {
    const cases: [string, Record<string, unknown>][] = [
        ["fleetHosts given as one object", { fleetHosts: host() }],
        ["a fleet entry that is a key", { fleetHosts: [TEST_PRIVATE_KEY] }],
        ["a key in an unknown field", { fleetHosts: [host({ sshKey: TEST_PRIVATE_KEY })] }],
        ["a key as the proxy", { fleetHosts: [host({ proxy: TEST_PRIVATE_KEY })] }],
        ["a bastion that is a list", { fleetBastion: [host()] }],
        ["builderHost with a bad port", { builderHost: host({ port: "x" }) }],
        ["a key as daemonJson", { daemonJson: TEST_PRIVATE_KEY }],
        ["a key in makeVars", { makeVars: { KEY: TEST_PRIVATE_KEY } }],
    ];
    const body = TEST_PRIVATE_KEY.split("\n").filter((l) => l && !l.startsWith("-----")).join("");
    for (const [what, values] of cases) {
        const all = problems({ ...base, ...values }).join("\n");
        assert.ok(all.length > 0, `${what}: refused`);
        assert.doesNotMatch(all, /PRIVATE KEY/, `${what}: the key's header is echoed`);
        for (let i = 0; i + 8 <= body.length; i += 4) {
            assert.ok(!all.includes(body.slice(i, i + 8)), `${what}: key bytes at ${i} echoed in:\n${all}`);
        }
    }
});

test("credentials in a URL are never echoed in errors", () => {
    const found = problems({ ...base, forkRepo: "https://me:ghp_token@github.com/me/moby.git", artifactSource: { type: "s3", bucket: "b", endpoint: "https://AKIAKEY:s3cr3t@minio.internal" } }).join("\n");
    assert.match(found, /forklift:forkRepo: got "https:\/\/\(credentials hidden\)@github\.com\/me\/moby\.git"/);
    assert.match(found, /forklift:artifactSource\.endpoint: got "https:\/\/\(credentials hidden\)@minio\.internal"/);
    assert.ok(!found.includes("ghp_token") && !found.includes("s3cr3t") && !found.includes("AKIAKEY"), found);
});

test("secret values are never echoed in errors", () => {
    const found = problems({ ...base, sshPrivateKey: "hunter2", fleetHosts: [host({ privateKey: "topsecret" })] });
    const all = found.join("\n");
    assert.ok(!all.includes("hunter2") && !all.includes("topsecret"), all);
    assert.match(all, /\(secret value\)/);
});

for (const [file, mode] of [["Pulumi.dev.yaml", "EC2"], ["Pulumi.hosts.yaml", "hosts"]] as const) {
    test(`${file} is a valid stack (${mode} mode)`, () => {
        const stack = yaml.load(readFileSync(path.join(__dirname, "..", "..", file), "utf8")) as { config: Record<string, unknown> };
        const values: Record<string, string> = {};
        for (const [k, v] of Object.entries(stack.config)) {
            if (!k.startsWith("forklift:")) continue;
            values[k] = typeof v === "string" ? v : JSON.stringify(v);
        }
        const cfg = parseConfig(values);
        assert.ok(cfg.fork.repo);
        assert.equal(cfg.builderHost === undefined, mode === "EC2", "EC2 mode launches the builder; hosts mode names one");
        if (mode === "hosts") {
            assert.equal(cfg.fleetEc2.count, 0, "hosts mode launches nothing");
            assert.ok(cfg.fleetHosts.length >= 2 && cfg.fleetHosts.some((h) => h.proxy), "an example of a host behind a bastion");
        }
    });
}
