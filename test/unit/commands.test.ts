import { test } from "node:test";
import * as assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { ForkConfig } from "../../lib/config";
import { buildCommand, buildKey, forkInputsKey, parseBuildResult } from "../../lib/protocol/build";
import { checkCommand, installCommand, parseHostStatus, uninstallCommand } from "../../lib/protocol/host";
import { Fatal, HostErrorLine, lastOf } from "../../lib/protocol/results";
import { checkedHost, checksJob, fleetHostJob, localCommand, roomNeededKiB } from "../../lib/protocol/local";
import { canonicalJson, hashInputs, sha256 } from "../../lib/hash";
import { parseChecksJob, parseFleetHostJob } from "../../local/input";
import { NO_SWARM, defaultSwarmCheck } from "../support/local";
import { planBatches } from "../../lib/rollout";
import { envPrefix, renderUserData, runScriptFromStdin, shq } from "../../lib/shell";
import { readScript } from "../../lib/protocol/script";
import { renderManagedFiles } from "../../lib/units";

const quoting: [string, string][] = [
    ["plain", "plain"],
    ["/usr/bin", "/usr/bin"],
    ["with space", "'with space'"],
    ["it's", "'it'\\''s'"],
    ["$(rm -rf /)", "'$(rm -rf /)'"],
    ["", "''"],
];
for (const [input, expected] of quoting) {
    test(`shq(${JSON.stringify(input)})`, () => {
        assert.equal(shq(input), expected);
        const echoed = spawnSync("bash", ["-c", `printf %s ${shq(input)}`], { encoding: "utf8" }).stdout;
        assert.equal(echoed, input, "bash gives back exactly the value");
    });
}

test("envPrefix sorts keys, drops undefined and refuses bad names", () => {
    assert.equal(envPrefix({ B: "2", A: "x y", C: undefined }), "A='x y' B=2");
    assert.throws(() => envPrefix({ "bad-name": "1" }), /not an environment variable name/);
});

test("runScriptFromStdin runs the script with the variables and keeps its exit code", () => {
    const cmd = runScriptFromStdin({ GREETING: "hello world" }, ["one", "two words"]);
    const ok = spawnSync("bash", ["-c", cmd], { input: 'echo "$GREETING:$1:$2"; exit 3\n', encoding: "utf8" });
    assert.equal(ok.stdout, "hello world:one:two words\n");
    assert.equal(ok.status, 3);
});

test("runScriptFromStdin with the script's byte count leaves the rest of stdin to the script", () => {
    const script = 'printf "%s:" "$1"; tr a-z A-Z\n';
    const cmd = runScriptFromStdin({}, ["arg"], false, Buffer.byteLength(script));
    const r = spawnSync("bash", ["-c", cmd], { input: Buffer.concat([Buffer.from(script), Buffer.from("the tgz bytes")]), encoding: "utf8" });
    assert.equal(r.stdout, "arg:THE TGZ BYTES");
    assert.equal(r.status, 0);
});

test("runScriptFromStdin with sudo prefixes sudo -n", () => {
    assert.match(runScriptFromStdin({ A: "1" }, ["install"], true), /&& sudo -n env A=1 bash "\$f" install;/);
});

const fork: ForkConfig = {
    recipe: "docker-ce",
    repo: "https://example.com/docker-ce.git",
    ref: "v18.03.1-ce",
    packagingRepo: "https://github.com/docker/docker-ce-packaging.git",
    packagingRef: "master",
    makeVars: {},
};

/** [what changes, change] — each must give a new build key. */
const keyChanges: [string, Partial<ForkConfig>][] = [
    ["ref", { ref: "v18.03.2-ce" }],
    ["repo", { repo: "https://example.com/other.git" }],
    ["recipe", { recipe: "moby" }],
    ["version", { version: "18.03.1-forklift" }],
    ["make variables", { makeVars: { GO_VERSION: "1.22" } }],
];
for (const [what, change] of keyChanges) {
    test(`build key changes with the ${what}`, () => {
        assert.notEqual(buildKey({ ...fork, ...change }, "script"), buildKey(fork, "script"));
    });
}

for (const [what, change] of keyChanges) {
    test(`the fork's inputs key changes with the ${what}`, () => {
        assert.notEqual(forkInputsKey({ ...fork, ...change }), forkInputsKey(fork));
    });
}

test("the fork's inputs key does not change with the build script (the precheck does not run again for it)", () => {
    assert.notEqual(buildKey(fork, "script v2"), buildKey(fork, "script"));
    assert.equal(forkInputsKey(fork), forkInputsKey({ ...fork }));
    assert.equal(forkInputsKey({ ...fork, packagingRef: "other" }), forkInputsKey(fork), "packaging-only inputs do not matter to the other recipes");
    assert.notEqual(forkInputsKey({ ...fork, recipe: "docker-ce-packaging", cliRef: "other" }), forkInputsKey({ ...fork, recipe: "docker-ce-packaging" }));
});

test("build key changes with the build script, and only with real inputs", () => {
    assert.notEqual(buildKey(fork, "script v2"), buildKey(fork, "script"));
    assert.equal(buildKey({ ...fork, makeVars: {} }, "script"), buildKey(fork, "script"));
    // packaging-only inputs do not matter to the other recipes
    assert.equal(buildKey({ ...fork, packagingRef: "other" }, "script"), buildKey(fork, "script"));
    assert.notEqual(
        buildKey({ ...fork, recipe: "docker-ce-packaging", packagingRef: "other" }, "script"),
        buildKey({ ...fork, recipe: "docker-ce-packaging" }, "script"),
    );
});

test("canonical JSON ignores key order at every depth", () => {
    assert.equal(canonicalJson({ b: 1, a: { d: [2, 1], c: null } }), '{"a":{"c":null,"d":[2,1]},"b":1}');
    assert.equal(hashInputs({ a: 1, b: 2 }), hashInputs({ b: 2, a: 1 }));
});

test("build command passes every input and the make variables", () => {
    const cmd = buildCommand({ ...fork, makeVars: { A: "1", B: "x y" } }, "abc123abc123", false);
    assert.match(cmd, /FORKLIFT_BUILD_KEY=abc123abc123/);
    assert.match(cmd, /FORKLIFT_RECIPE=docker-ce /);
    assert.match(cmd, /FORKLIFT_REF=v18.03.1-ce/);
    assert.match(cmd, /FORKLIFT_MAKE_VARS_B64=/);
    const b64 = /FORKLIFT_MAKE_VARS_B64=(\S+)/.exec(cmd)![1].replace(/'/g, "");
    assert.equal(Buffer.from(b64, "base64").toString(), "A=1\nB=x y\n");
    assert.doesNotMatch(cmd, /FORKLIFT_PACKAGING_REPO/, "packaging inputs only for docker-ce-packaging");
    assert.match(cmd, /bash "\$f" build;/);
});

test("install command carries the units, and takes the script's bytes of stdin, leaving the tgz", () => {
    const files = renderManagedFiles({ installDir: "/usr/bin", shipsContainerd: true }, { "live-restore": true });
    const cmd = installCommand({ hostName: "h1", owner: { stack: "forklift/dev", stackId: "0123456789abcdef", host: "h1" }, sha256: "a".repeat(64), version: "1.0", installDir: "/usr/bin", files, sudo: false });
    assert.match(cmd, new RegExp(`FORKLIFT_SHA256=${"a".repeat(64)} `));
    assert.match(cmd, new RegExp(`head -c ${Buffer.byteLength(readScript("forklift-host.sh"))} > "\\$f"`));
    const unit = /FORKLIFT_DOCKER_SERVICE_B64=(\S+)/.exec(cmd)![1];
    assert.equal(Buffer.from(unit, "base64").toString(), files["docker.service"]);
    assert.match(cmd, /FORKLIFT_DAEMON_JSON_B64=\S+/);
    assert.match(cmd, /FORKLIFT_OWNER=forklift\/dev\/h1 /);
    assert.match(cmd, /FORKLIFT_STACK_ID=0123456789abcdef /);
});

test("uninstall command is a no-op where nothing was installed", () => {
    const r = spawnSync("bash", ["-c", uninstallCommand("h1", { stack: "forklift/dev", stackId: "0123456789abcdef", host: "h1" }, false)], { encoding: "utf8" });
    assert.equal(r.status, 0);
    assert.equal(r.stdout, "forklift: nothing installed on h1\n");
});

test("user data sets the variables and the arguments before the script body", () => {
    const ud = renderUserData('#!/usr/bin/env bash\necho "$FORKLIFT_X $1"\n', { FORKLIFT_X: "a b" }, ["host-key"]);
    assert.ok(ud.startsWith("#!/usr/bin/env bash\n"));
    const r = spawnSync("bash", ["-c", ud], { encoding: "utf8" });
    assert.equal(r.stdout, "a b host-key\n");
});

const batchCases: [number, number, number[][]][] = [
    [1, 1, [[0]]],
    [3, 1, [[0], [1], [2]]],
    [5, 2, [[0, 1], [2, 3], [4]]],
    [4, 4, [[0, 1, 2, 3]]],
];
for (const [hosts, size, expected] of batchCases) {
    test(`planBatches(${hosts} hosts, batch ${size})`, () => {
        assert.deepEqual(planBatches(Array.from({ length: hosts }, (_, i) => i), size), expected);
    });
}

test("planBatches refuses a batch size below 1", () => {
    assert.throws(() => planBatches([1], 0), /batchSize/);
});

const goodBuild = { artifact: "/var/lib/forklift-build/k/out/docker.tgz", sha256: "a".repeat(64), size: 1, version: "v", commit: "c", cliCommit: "", binaries: ["dockerd"], recipe: "moby", buildKey: "k" };
const buildOutputs: [string, string, RegExp | null][] = [
    ["the last line is the result", `log line\n${JSON.stringify(goodBuild)}\n`, null],
    ["no result line", "log line\nfailed\n", /printed no result line; its output ended with: failed/],
    ["a result without sha256", JSON.stringify({ ...goodBuild, sha256: "x" }), /incomplete/],
    ["a result without binaries", JSON.stringify({ ...goodBuild, binaries: undefined }), /incomplete/],
];
for (const [what, stdout, error] of buildOutputs) {
    test(`parseBuildResult: ${what}`, () => {
        if (error) assert.throws(() => parseBuildResult(stdout), error);
        else assert.deepEqual(parseBuildResult(stdout), goodBuild);
    });
}

test("parseHostStatus reads the last line, and names the output it could not read", () => {
    const status = { host: "h1", sha256: "b".repeat(64), version: "v", dockerdSha256: "d".repeat(64), dockerService: "active", changed: true };
    assert.deepEqual(parseHostStatus(`installing\n${JSON.stringify(status)}\n`), status);
    assert.throws(() => parseHostStatus("rolled back\n"), /printed no status line; its output ended with: rolled back/);
});

const OWNER = { stack: "forklift/dev", stackId: "0123456789abcdef", host: "h1" };

/** [what, check inputs, the mode it runs, what the command must hold, what it must not] */
const checkCases: [string, Parameters<typeof checkCommand>[0], string, RegExp[], RegExp[]][] = [
    ["the precheck as root: no room, no release, the script on stdin", { hostName: "h1", owner: OWNER, sudo: false }, "check", [/cat > "\$f"/, /FORKLIFT_OWNER=forklift\/dev\/h1 /], [/FORKLIFT_NEED_KIB/, /FORKLIFT_SHA256/, /sudo/]],
    [
        "the check after the build stages the release: the script's bytes, then the tgz",
        { hostName: "h1", owner: OWNER, sudo: false, release: { sha256: "a".repeat(64), needKiB: 5 } },
        "stage",
        [/FORKLIFT_NEED_KIB=5 /, new RegExp(`FORKLIFT_SHA256=${"a".repeat(64)} `), new RegExp(`head -c ${Buffer.byteLength(readScript("forklift-host.sh"))} > "\\$f"`)],
        [/sudo/],
    ],
];
for (const [what, inputs, mode, must, mustNot] of checkCases) {
    test(`checkCommand: ${what}`, () => {
        const cmd = checkCommand(inputs);
        assert.match(cmd, new RegExp(`bash "\\$f" ${mode};`));
        for (const re of must) assert.match(cmd, re);
        for (const re of mustNot) assert.doesNotMatch(cmd, re);
    });
}

test("checkCommand: a login user without sudo gets the one message, naming it, and nothing runs", () => {
    // the same shell code with a `sudo` that refuses, as on a host without passwordless sudo
    const cmd = checkCommand({ hostName: "h1", owner: OWNER, sudo: true });
    const r = spawnSync("bash", ["-c", `sudo() { return 1; }; ${cmd}`], { input: "echo ran\n", encoding: "utf8" });
    assert.equal(r.status, 3);
    assert.match(r.stderr, /^\[forklift h1\] ERROR: the login user \S+ cannot sudo without a password \(forklift needs root or passwordless sudo\)\n$/);
    // and for the local commands, the same as a `fatal` line: what they quote
    const user = spawnSync("id", ["-un"], { encoding: "utf8" }).stdout.trim();
    assert.deepEqual(lastOf(Fatal, r.stdout), { fatal: `the login user ${user} cannot sudo without a password (forklift needs root or passwordless sudo)` });
    assert.equal(r.stdout.trim().split("\n").length, 1, "nothing else ran");
});

test("the local commands' command lines name the job and what the plan should show, quoted once", () => {
    assert.equal(localCommand("install", "web1", "abcdef012345"), "node --require tsx/cjs local/main.ts install web1 abcdef012345");
    assert.equal(localCommand("uninstall", "it's"), "node --require tsx/cjs local/main.ts uninstall 'it'\\''s'");
});

test("a fleet host's job: the install and uninstall as root or through sudo, the host script it was made for", () => {
    const host = { name: "h1", route: { address: "10.0.0.4", port: 22, user: "deploy", connectTimeout: 10 } };
    const source = { sha256: "a".repeat(64), path: "/b/out/docker.tgz", builder: { name: "builder", route: { address: "10.0.0.2", port: 22, user: "root", connectTimeout: 10 } }, cacheDir: ".forklift/artifacts" };
    const job = fleetHostJob({ host, owner: OWNER, release: { sha256: "a".repeat(64), version: "1.0", binaries: ["dockerd"] }, installDir: "/usr/bin", daemonJson: null, source, swarm: NO_SWARM, insecure: false });
    assert.equal(job.v, 1);
    assert.deepEqual(job.host, host);
    assert.deepEqual(job.artifact, source);
    assert.match(job.install, /sudo -n env .*bash "\$f" install;/);
    assert.match(job.install, /FORKLIFT_DAEMON_JSON_B64='' /, "daemon.json left alone: manageDaemonJson false");
    assert.match(job.uninstall, /sudo -n env .*forklift-host\.sh uninstall/);
    assert.equal(job.hostScriptSha256, sha256(readScript("forklift-host.sh")));
    // every value read back by the local side as written
    assert.deepEqual(parseFleetHostJob(JSON.stringify(job)), job);
});

test("the check's job: every host with its command, the artifact to stage only after the build", () => {
    const host = { name: "h1", route: { address: "10.0.0.4", port: 22, user: "root", hostKey: "ssh-ed25519 AAAA", privateKey: "K", connectTimeout: 10 } };
    const pre = checksJob("precheck", false, [checkedHost(host, OWNER)], defaultSwarmCheck());
    assert.equal(pre.artifact, undefined);
    assert.match(pre.hosts[0].command, /bash "\$f" check;/);
    assert.deepEqual(parseChecksJob(JSON.stringify(pre)), pre);
    const source = { sha256: "a".repeat(64), path: "/b.tgz", builder: host, cacheDir: "c" };
    const check = checksJob("check", true, [checkedHost(host, OWNER, { sha256: "a".repeat(64), needKiB: 9 })], defaultSwarmCheck(), source);
    assert.match(check.hosts[0].command, /bash "\$f" stage;/);
    assert.deepEqual(parseChecksJob(JSON.stringify(check)), check);
});

test("room a release needs: its tgz staged, unpacked, and the previous release, rounded up in KiB", () => {
    assert.equal(roomNeededKiB(1234), 5);
    assert.equal(roomNeededKiB(72 * 1024 * 1024), 288 * 1024);
});

// the host script's `fail` line: what the local commands act on, instead of its English
const errorLines: [string, string, HostErrorLine | undefined][] = [
    ["no artifact", '{"error":"artifact-missing"}', { error: "artifact-missing" }],
    ["another sha256", `{"error":"artifact-mismatch","got":"${"a".repeat(64)}"}`, { error: "artifact-mismatch", got: "a".repeat(64) }],
    ["the store's 404, after other lines", 'some line\n{"error":"store-no-object"}\n', { error: "store-no-object" }],
    ["a failed rollback, its status line after it", '{"error":"rollback-failed"}\n{"host":"a","sha256":"x"}\n', { error: "rollback-failed" }],
    ["a status line is no error", '{"host":"a","sha256":"x"}', undefined],
    ["a fatal line is no error the local side acts on", '{"fatal":"x failed"}', undefined],
    ["an unknown code is none", '{"error":"something-else"}', undefined],
    ["a mismatch without what arrived is none", '{"error":"artifact-mismatch"}', undefined],
    ["no JSON", "ERROR: the artifact that arrived has sha256 abc", undefined],
];
for (const [what, stdout, expected] of errorLines) {
    test(`the error line: ${what}`, () => assert.deepEqual(lastOf(HostErrorLine, stdout), expected));
}
