import { test } from "node:test";
import * as assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import * as path from "node:path";
import * as yaml from "js-yaml";
import { CONFIG_KEYS, ConfigError, DEFAULTS, parseConfig } from "../../lib/config";
import { TEST_HOST_KEY, TEST_PRIVATE_KEY, hostsStack } from "./fixtures";

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
    assert.deepEqual(cfg.daemonJson, { "live-restore": true });
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

/** [what, stack overrides, key named in the message, fragment of the expected form] */
const badConfigs: [string, Record<string, unknown>, string, string][] = [
    ["missing fork repo", { forkRepo: undefined }, "forklift:forkRepo", "git URL"],
    ["missing fork ref", { forkRef: undefined }, "forklift:forkRef", "branch, tag or commit"],
    ["repo is not a URL", { forkRepo: "not a url" }, "forklift:forkRepo", "git URL"],
    ["repo with a bad scheme", { forkRepo: "ftp://example.com/x.git" }, "forklift:forkRepo", "git URL"],
    ["ref with a space", { forkRef: "my branch" }, "forklift:forkRef", "no spaces"],
    ["ref with ..", { forkRef: "a..b" }, "forklift:forkRef", "'..'"],
    ["ref ending in .lock", { forkRef: "feature.lock" }, "forklift:forkRef", "branch"],
    ["unknown recipe", { recipe: "bazel" }, "forklift:recipe", "docker-ce, docker-ce-packaging, moby"],
    ["cliRepo with recipe moby", { recipe: "moby", cliRepo: "https://github.com/me/cli.git" }, "forklift:cliRepo", "only recipe docker-ce-packaging"],
    ["bad make variable name", { makeVars: { "lower-case": "1" } }, "forklift:makeVars.lower-case", "make variable name"],
    ["multi-line make value", { makeVars: { X: "a\nb" } }, "forklift:makeVars.X", "single-line"],
    ["bad version", { version: "v 1" }, "forklift:version", "version such as"],
    ["bad builder instance type", { builderInstanceType: "huge" }, "forklift:builderInstanceType", "instance type"],
    ["bad fleet instance type", { fleetInstanceType: "t3" }, "forklift:fleetInstanceType", "instance type"],
    ["bad AMI", { builderAmi: "ubuntu" }, "forklift:builderAmi", "AMI id"],
    ["bad subnet", { subnetId: "vpc-123" }, "forklift:subnetId", "subnet id"],
    ["fleet count 0 and no hosts", { fleetHosts: [], fleetCount: 0 }, "forklift:fleetHosts", "at least one fleet host"],
    ["negative fleet count", { fleetCount: -1 }, "forklift:fleetCount", "whole number from 0"],
    ["non-integer fleet count", { fleetCount: 1.5 }, "forklift:fleetCount", "whole number"],
    ["fleet count is text", { fleetCount: "three" }, "forklift:fleetCount", "whole number"],
    ["batch size 0", { batchSize: 0 }, "forklift:batchSize", "from 1"],
    ["batch size larger than the fleet", { batchSize: 5 }, "forklift:batchSize", "no larger than the fleet (2 hosts)"],
    ["duplicate host addresses", { fleetHosts: [host({ name: "a" }), host({ name: "b" })] }, "forklift:fleetHosts[1].address", "not already used"],
    ["duplicate host names", { fleetHosts: [host({ name: "a" }), host({ name: "a", address: "10.0.0.6" })] }, "forklift:fleetHosts[1].name", "not already used"],
    ["host without a key", { fleetHosts: [host({ privateKey: undefined })] }, "forklift:fleetHosts[0].privateKey", "useAgent"],
    ["key that is not a private key", { fleetHosts: [host({ privateKey: "ssh-ed25519 AAAA me@x" })] }, "forklift:fleetHosts[0].privateKey", "PEM or OpenSSH private key"],
    ["host without an address", { fleetHosts: [host({ address: undefined })] }, "forklift:fleetHosts[0].address", "host name or IP"],
    ["host with a bad address", { fleetHosts: [host({ address: "a b" })] }, "forklift:fleetHosts[0].address", "host name or IP"],
    ["host with a bad port", { fleetHosts: [host({ port: 70000 })] }, "forklift:fleetHosts[0].port", "1 to 65535"],
    ["host without a host key", { fleetHosts: [host({ hostKey: undefined })] }, "forklift:fleetHosts[0].hostKey", "insecureSkipHostKeyCheck"],
    ["host with a malformed host key", { fleetHosts: [host({ hostKey: "AAAA" })] }, "forklift:fleetHosts[0].hostKey", "public host key line"],
    ["typo in a host field", { fleetHosts: [host({ adress: "x" })] }, "forklift:fleetHosts[0].adress", "no such field"],
    ["proxy without a host key", { fleetHosts: [host({ proxy: { address: "10.0.0.1", privateKey: TEST_PRIVATE_KEY } })] }, "forklift:fleetHosts[0].proxy.hostKey", "public SSH key"],
    ["fleet hosts not a list", { fleetHosts: { address: "x" } }, "forklift:fleetHosts", "list of host objects"],
    ["launching with no CIDRs", { fleetCount: 1 }, "forklift:sshAllowedCidrs", "at least one CIDR"],
    ["malformed CIDR", { fleetCount: 1, sshAllowedCidrs: ["10.0.0.0/33"] }, "forklift:sshAllowedCidrs[0]", "CIDR block"],
    ["CIDR without a mask", { fleetCount: 1, sshAllowedCidrs: ["10.0.0.1"] }, "forklift:sshAllowedCidrs[0]", "CIDR block"],
    ["open SSH without opt-in", { fleetCount: 1, sshAllowedCidrs: ["0.0.0.0/0"] }, "forklift:sshAllowedCidrs[0]", "allowOpenSsh: true"],
    ["open IPv6 SSH without opt-in", { fleetCount: 1, sshAllowedCidrs: ["::/0"] }, "forklift:sshAllowedCidrs[0]", "allowOpenSsh: true"],
    ["CIDRs not a list", { fleetCount: 1, sshAllowedCidrs: "10.0.0.0/8" }, "forklift:sshAllowedCidrs", "list of strings"],
    ["boolean that is not one", { allowOpenSsh: "yes" }, "forklift:allowOpenSsh", "true or false"],
    ["relative install dir", { installDir: "usr/bin" }, "forklift:installDir", "absolute path"],
    ["daemonJson not a map", { daemonJson: ["live-restore"] }, "forklift:daemonJson", "map of daemon.json settings"],
    ["volume too small for a build", { builderVolumeGiB: 8 }, "forklift:builderVolumeGiB", "from 30"],
    ["login key that is not a key", { sshPrivateKey: "hunter2" }, "forklift:sshPrivateKey", "private key"],
    ["unknown top-level key (typo)", { batchsize: 2 }, "forklift:batchsize", "did you mean forklift:batchSize"],
    ["unknown top-level key", { colour: "blue" }, "forklift:colour", "unknown key"],
];

for (const [what, overrides, key, expected] of badConfigs) {
    test(`bad config: ${what}`, () => {
        const values: Record<string, unknown> = { ...base, ...overrides };
        for (const k of Object.keys(values)) if (values[k] === undefined) delete values[k];
        const found = problems(values);
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

test("secret values are never echoed in errors", () => {
    const found = problems({ ...base, sshPrivateKey: "hunter2", fleetHosts: [host({ privateKey: "topsecret" })] });
    const all = found.join("\n");
    assert.ok(!all.includes("hunter2") && !all.includes("topsecret"), all);
    assert.match(all, /\(secret value\)/);
});

test("Pulumi.yaml declares every key the program reads, with the same defaults", () => {
    const project = yaml.load(readFileSync(path.join(__dirname, "..", "..", "Pulumi.yaml"), "utf8")) as {
        config: Record<string, { type: string; default?: unknown; description?: string }>;
    };
    const declared = Object.keys(project.config).map((k) => k.replace(/^forklift:/, "")).sort();
    assert.deepEqual(declared, [...CONFIG_KEYS].sort());
    for (const key of CONFIG_KEYS) {
        const decl = project.config[`forklift:${key}`];
        assert.ok(decl.type, `forklift:${key} has no type`);
        assert.ok(decl.description, `forklift:${key} has no description`);
        assert.deepEqual(decl.default, DEFAULTS[key], `default of forklift:${key}`);
    }
});

test("Pulumi.dev.yaml is a valid stack", () => {
    const stack = yaml.load(readFileSync(path.join(__dirname, "..", "..", "Pulumi.dev.yaml"), "utf8")) as { config: Record<string, unknown> };
    const values: Record<string, string> = {};
    for (const [k, v] of Object.entries(stack.config)) {
        if (!k.startsWith("forklift:")) continue;
        values[k] = typeof v === "string" ? v : JSON.stringify(v);
    }
    const cfg = parseConfig(values);
    assert.ok(cfg.fork.repo);
});
