/**
 * Every validator of lib/config: the values it passes, the values it fails, and the problem line
 * a failing value gives for a key that uses it, which must end with the validator's `expected`
 * text (or the words of the rule it broke), through `parseConfig`.
 */
import { test } from "node:test";
import * as assert from "node:assert/strict";
import { ConfigError, parseConfig, valid } from "../../lib/config";
import { TEST_HOST_KEY, TEST_PRIVATE_KEY, badStack } from "./fixtures";

interface Row {
    passes: string[];
    /** Values it fails with its `expected` text. */
    fails: string[];
    /** Values it fails with words of their own: [value, words]. */
    failsSaying?: [string, string][];
    /** A key that uses the validator, and the stack overrides that put `v` there. */
    key: string;
    stack: (v: unknown) => Record<string, unknown>;
    /** What the key expects of a value that is not a string, when not the validator's `expected`. */
    notAString?: string;
}

const host = (over: Record<string, unknown>) => ({ address: "10.0.0.5", user: "root", privateKey: TEST_PRIVATE_KEY, hostKey: TEST_HOST_KEY, ...over });
const CREDENTIALS = "a git URL without credentials (give the build host a deploy key or credential helper instead)";

const rows: Record<keyof typeof valid, Row> = {
    recipe: { key: "recipe", stack: (v) => ({ recipe: v }), passes: ["docker-ce", "docker-ce-packaging", "moby"], fails: ["bazel", "Moby", "docker-ce "] },
    gitUrl: {
        key: "forkRepo",
        stack: (v) => ({ forkRepo: v }),
        passes: ["https://github.com/me/moby.git", "ssh://git@github.com/me/moby.git", "git://10.78.1.1/docker-ce.git", "file:///srv/moby", "git@github.com:me/moby.git"],
        fails: ["not a url", "ftp://example.com/x.git", "-oProxyCommand=x", "https://github.com", "file://host/x", "github.com/me/moby"],
        failsSaying: [
            ["https://me:pw@github.com/me/moby.git", CREDENTIALS],
            ["https://ghp_x@github.com/me/cli.git", CREDENTIALS],
            ["ssh://git:hunter2@github.com/me/moby.git", CREDENTIALS],
            ["git:hunter2@github.com:me/moby.git", CREDENTIALS],
        ],
    },
    gitRef: {
        key: "forkRef",
        stack: (v) => ({ forkRef: v }),
        passes: ["main", "v28.0.1", "feature/longer-timeout", "0123456789abcdef0123456789abcdef01234567"],
        fails: ["", "my branch", "a..b", "feature.lock", "-x", "/x", "x/", "x.", "@", "a~1", "a^", "a:b", "a?", "a*", "a[b", "a\\b", ".hidden/x", "a//b", "a@{1}"],
    },
    version: { key: "version", stack: (v) => ({ version: v }), passes: ["28.0.1", "0.0.0-myfork", "1.2.3+build~rc1"], fails: ["v 1", "-1", ".1", "a".repeat(65)] },
    instanceType: {
        key: "builderInstanceType",
        stack: (v) => ({ builderInstanceType: v }),
        passes: ["t2.medium", "t3.nano", "m5.2xlarge", "c6gn.metal", "m7i.metal-48xl"],
        fails: ["huge", "t3", "T3.small", "t.small", "t3.giant"],
    },
    ami: { key: "builderAmi", stack: (v) => ({ builderAmi: v }), passes: ["ami-0123456789abcdef0", "ami-01234567"], fails: ["ubuntu", "ami-123", "ami-0123456789ABCDEF0"] },
    subnetId: { key: "subnetId", stack: (v) => ({ subnetId: v }), passes: ["subnet-0123456789abcdef0", "subnet-01234567"], fails: ["vpc-123", "subnet-xyz", "subnet-0123456789"] },
    bucketName: {
        key: "artifactSource.bucket",
        stack: (v) => ({ artifactSource: { type: "s3", bucket: v, endpoint: "http://10.0.0.9:9000" } }),
        passes: ["forklift", "my.artifacts-2", "abc"],
        fails: ["ab", "Upper", "-start", "end-", "a..b", "a".repeat(64), "with space"],
    },
    httpUrl: {
        key: "artifactSource.endpoint",
        stack: (v) => ({ artifactSource: { type: "s3", bucket: "forklift", endpoint: v } }),
        passes: ["http://10.0.0.9:9000", "https://minio.internal", "https://s3.example.com/path"],
        fails: ["ftp://x", "10.0.0.9:9000", "https://key:secret@minio.internal", "https://"],
    },
    awsRegion: {
        key: "artifactSource.region",
        stack: (v) => ({ artifactSource: { type: "s3", bucket: "forklift", region: v } }),
        passes: ["us-east-1", "eu-central-2", "garage"],
        fails: ["US-EAST-1", "a", "with space"],
    },
    cidr: {
        key: "sshAllowedCidrs[0]",
        stack: (v) => ({ fleetCount: 1, sshAllowedCidrs: [v] }),
        passes: ["203.0.113.7/32", "10.0.0.0/8", "0.0.0.0/0", "2001:db8::/64", "::/0", "2001:db8:0:0:0:0:0:1/128"],
        fails: ["10.0.0.0/33", "10.0.0.1", "256.0.0.0/8", "2001:db8::/129", "1:2:3:4:5:6:7:8:9/64", "1::2::3/64", "abc/8"],
        notAString: "a string",
    },
    sshUser: { key: "sshUser", stack: (v) => ({ sshUser: v }), passes: ["ubuntu", "ec2-user", "_svc"], fails: ["Ubuntu", "1user", "a b"] },
    privateKey: {
        key: "sshPrivateKey",
        stack: (v) => ({ sshPrivateKey: v }),
        passes: [TEST_PRIVATE_KEY, TEST_PRIVATE_KEY.trimEnd(), TEST_PRIVATE_KEY.replace(/\n/g, "\r\n")],
        fails: ["hunter2", "ssh-ed25519 AAAA me@x", "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"],
    },
    hostKey: {
        key: "fleetHosts[0].hostKey",
        stack: (v) => ({ fleetHosts: [host({ hostKey: v })] }),
        passes: [TEST_HOST_KEY, `${TEST_HOST_KEY} root@h1`, "ssh-rsa AAAAB3NzaC1yc2E=", "ecdsa-sha2-nistp256 AAAAE2VjZHNh"],
        fails: ["AAAA", "ssh-dss AAAAB3NzaC1kc3M=", "ssh-ed25519"],
    },
    hostAddress: {
        key: "fleetHosts[0].address",
        stack: (v) => ({ fleetHosts: [host({ address: v })] }),
        passes: ["10.0.0.5", "web-1.example.com", "2001:db8::1", "h"],
        fails: ["a b", "-x", "x.", "root@h", "10.0.0.5:22"],
    },
    hostName: { key: "fleetHosts[0].name", stack: (v) => ({ fleetHosts: [host({ name: v })] }), passes: ["h1", "builder", "10-0-0-3"], fails: ["H1", "-x", "a_b", "a".repeat(42)] },
    hostUser: { key: "fleetHosts[0].user", stack: (v) => ({ fleetHosts: [host({ user: v })] }), passes: ["root", "deploy"], fails: ["Root", "a b"] },
    absPath: { key: "installDir", stack: (v) => ({ installDir: v }), passes: ["/usr/bin", "/", "/opt/docker-1.2/bin"], fails: ["usr/bin", "/usr/../bin", "/usr bin", "~/bin"] },
    swarmUnlockKey: {
        key: "swarmUnlockKey",
        stack: (v) => ({ swarmUnlockKey: v }),
        passes: ["SWMKEY-1-7c37Cc8654o6p38HnroywCi19pllOnGtbdZEgtKxZu8", "SWMKEY-1-abcdefghijklmnop+/="],
        fails: ["7c37Cc8654o6p38HnroywCi19pllOnGtbdZEgtKxZu8", "SWMKEY-1-short", "SWMKEY-2-7c37Cc8654o6p38HnroywCi19pllOnGtbdZEgtKxZu8", "SWMKEY-1-7c37Cc8654o6p38Hnroyw Ci19"],
    },
    serviceSelector: {
        key: "swarmAcceptDowntime[0]",
        stack: (v) => ({ swarmAcceptDowntime: [v] }),
        passes: ["*", "web", "my_stack_db", "a.b-c"],
        fails: ["", "-web", "web svc", "**", "a".repeat(64)],
        notAString: "a string",
    },
    command: { key: "healthCheck", stack: (v) => ({ healthCheck: v }), passes: ["docker run --rm busybox true", "true"], fails: ["", "   ", "\n"] },
    nonEmptyString: { key: "artifactCacheDir", stack: (v) => ({ artifactCacheDir: v }), passes: [".forklift/artifacts", "/var/cache/forklift", " "], fails: [""] },
};

/** The problem line for `key` when the hosts stack gets `overrides`. */
function problemFor(key: string, overrides: Record<string, unknown>): string {
    const raw: Record<string, string> = {};
    for (const [k, v] of Object.entries(badStack(overrides))) raw[`forklift:${k}`] = typeof v === "string" ? v : JSON.stringify(v);
    try {
        parseConfig(raw);
    } catch (e) {
        assert.ok(e instanceof ConfigError, `expected ConfigError, got ${e}`);
        const line = e.problems.find((p) => p.startsWith(`forklift:${key}: got `));
        assert.ok(line, `no problem names ${key}; got:\n${e.problems.join("\n")}`);
        return line;
    }
    assert.fail(`the config with ${JSON.stringify(overrides)} was accepted`);
}

test("every validator has a row", () => {
    assert.deepEqual(Object.keys(rows).sort(), Object.keys(valid).sort());
});

for (const [name, row] of Object.entries(rows)) {
    const validator = valid[name as keyof typeof valid];
    test(`validator ${name}`, () => {
        for (const v of row.passes) assert.equal(validator.test(v), true, `${JSON.stringify(v)} should pass`);
        for (const v of row.fails) assert.equal(validator.test(v), false, `${JSON.stringify(v)} should fail`);
        for (const [v, words] of row.failsSaying ?? []) assert.equal(validator.test(v), words, `${JSON.stringify(v)} should fail saying so`);
    });

    test(`validator ${name}: the problem line for ${row.key} names what it expects`, () => {
        // "" is how a stack leaves an optional key unset (a required one's "" is in the fixtures' table)
        const cases: [unknown, string][] = [
            ...row.fails.filter((v) => v !== "").map((v): [unknown, string] => [v, validator.expected]),
            ...(row.failsSaying ?? []),
            [[5], row.notAString ?? validator.expected],
        ];
        for (const [v, expected] of cases) {
            const line = problemFor(row.key, row.stack(v));
            assert.ok(line.endsWith(`; expected ${expected}`), `${JSON.stringify(v)}: "${line}" does not end with "expected ${expected}"`);
        }
    });
}
