import { test } from "node:test";
import * as assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
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
import { SCRIPTS_DIR, readScript } from "../../lib/protocol/script";
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
    const cmd = runScriptFromStdin({}, ["arg"], { scriptBytes: Buffer.byteLength(script) });
    const r = spawnSync("bash", ["-c", cmd], { input: Buffer.concat([Buffer.from(script), Buffer.from("the tgz bytes")]), encoding: "utf8" });
    assert.equal(r.stdout, "arg:THE TGZ BYTES");
    assert.equal(r.status, 0);
});

test("runScriptFromStdin, quiet: a script killed by a signal leaves its own stderr and its status, not bash's notice with the command line", () => {
    const script = 'echo said >&2; kill -9 $$\n';
    for (const quiet of [false, true]) {
        const cmd = runScriptFromStdin({ FORKLIFT_UNITS_B64: "c2VjcmV0IHVuaXRz" }, ["install"], { quiet });
        const r = spawnSync("bash", ["-c", cmd], { input: script, encoding: "utf8" });
        assert.equal(r.status, 137, "128 + SIGKILL");
        assert.match(r.stderr, /^said$/m);
        if (quiet) assert.doesNotMatch(r.stderr, /Killed|c2VjcmV0/, "bash's notice quotes the command line");
        else assert.match(r.stderr, /Killed.*c2VjcmV0/, "(without quiet, bash says it: the case quiet is for)");
    }
    const failing = spawnSync("bash", ["-c", runScriptFromStdin({}, [], { quiet: true })], { input: "echo oops >&2; exit 3\n", encoding: "utf8" });
    assert.deepEqual([failing.status, failing.stderr], [3, "oops\n"]);
});

test("runScriptFromStdin with sudo prefixes sudo -n", () => {
    assert.match(runScriptFromStdin({ A: "1" }, ["install"], { sudo: true }), /&& sudo -n env A=1 bash "\$f" install;/);
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

test("build command: the script gets every input, and the make variables as they were given", () => {
    const cmd = buildCommand({ ...fork, makeVars: { A: "1", B: "x y" } }, "abc123abc123", false);
    const r = runWithStandIn(cmd, readScript("build-fork.sh"));
    assert.equal(r.status, 0);
    assert.equal(r.args, "build");
    assert.equal(r.vars.FORKLIFT_BUILD_KEY, "abc123abc123");
    assert.equal(r.vars.FORKLIFT_RECIPE, "docker-ce");
    assert.equal(r.vars.FORKLIFT_REF, "v18.03.1-ce");
    assert.equal(Buffer.from(r.vars.FORKLIFT_MAKE_VARS_B64, "base64").toString(), "A=1\nB=x y\n");
    assert.equal(r.vars.FORKLIFT_PACKAGING_REPO, undefined, "packaging inputs only for docker-ce-packaging");
});

/**
 * What a command that runs a script from its stdin hands the script when it runs: a stand-in of
 * the real script's length (SCRIPT's bytes, the count the command reads) records its FORKLIFT_*
 * variables, its arguments and the rest of stdin. REST follows the script on stdin (a tgz).
 */
function runWithStandIn(cmd: string, script: string, rest = ""): { vars: Record<string, string>; args: string; stdin: string; status: number | null; stderr: string } {
    const out = mkdtempSync(path.join(tmpdir(), "forklift-standin-"));
    try {
        const record = `#!/bin/bash\nenv -0 | grep -z '^FORKLIFT_' > ${out}/vars; echo "$*" > ${out}/args; cat > ${out}/stdin\n`;
        const size = Buffer.byteLength(script);
        assert.ok(size > Buffer.byteLength(record) + 1, "the real script is longer than the stand-in");
        const standIn = record + "#".repeat(size - Buffer.byteLength(record) - 1) + "\n";
        const r = spawnSync("bash", ["-c", cmd], { input: standIn + rest, encoding: "utf8" });
        const vars = Object.fromEntries(
            readFileSync(path.join(out, "vars"), "utf8")
                .split("\0")
                .filter(Boolean)
                .map((kv) => [kv.slice(0, kv.indexOf("=")), kv.slice(kv.indexOf("=") + 1)]),
        );
        return { vars, args: readFileSync(path.join(out, "args"), "utf8").trim(), stdin: readFileSync(path.join(out, "stdin"), "utf8"), status: r.status, stderr: r.stderr };
    } finally {
        rmSync(out, { recursive: true, force: true });
    }
}

test("install command: the script gets the release, the owner and the units, and the tgz is left on its stdin", () => {
    const files = renderManagedFiles({ installDir: "/usr/bin", shipsContainerd: true }, { "live-restore": true });
    const cmd = installCommand({ hostName: "h1", owner: { stack: "forklift/dev", stackId: "0123456789abcdef", host: "h1" }, sha256: "a".repeat(64), version: "1.0", installDir: "/usr/bin", files, sudo: false });
    const r = runWithStandIn(cmd, readScript("forklift-host.sh"), "the tgz's bytes");
    assert.equal(r.status, 0);
    assert.equal(r.args, "install");
    assert.equal(r.stdin, "the tgz's bytes", "the script reads the tgz, nothing of itself");
    assert.equal(r.vars.FORKLIFT_SHA256, "a".repeat(64));
    assert.equal(r.vars.FORKLIFT_OWNER, "forklift/dev/h1");
    assert.equal(r.vars.FORKLIFT_STACK_ID, "0123456789abcdef");
    for (const [name, v] of [["docker.service", "FORKLIFT_DOCKER_SERVICE_B64"], ["docker.socket", "FORKLIFT_DOCKER_SOCKET_B64"], ["containerd.service", "FORKLIFT_CONTAINERD_SERVICE_B64"], ["daemon.json", "FORKLIFT_DAEMON_JSON_B64"]] as const) {
        assert.equal(Buffer.from(r.vars[v], "base64").toString(), files[name], `${name} arrives as rendered`);
    }
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
    ["a result without sha256", JSON.stringify({ ...goodBuild, sha256: "x" }), /not one this forklift reads \(sha256: /],
    ["a result without binaries", JSON.stringify({ ...goodBuild, binaries: undefined }), /not one this forklift reads \(binaries: /],
    ["a provenance without its toolchain", JSON.stringify({ ...goodBuild, provenance: { recipe: "moby", repo: "r", ref: "v", commit: "c", cliCommit: "", version: "v", sourceDateEpoch: 1, makeVars: {} } }), /the build.s result is not one this forklift reads \(provenance\.toolchain: /],
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
// (as root: a `sudo` that fails shows the command does not use it)
const NO_SUDO = "sudo() { return 1; }; ";
test("checkCommand: the precheck as root gets the owner, no release and no room to check, the whole stdin as its script", () => {
    const r = runWithStandIn(NO_SUDO + checkCommand({ hostName: "h1", owner: OWNER, sudo: false }), readScript("forklift-host.sh"));
    assert.equal(r.status, 0);
    assert.equal(r.args, "check");
    assert.equal(r.vars.FORKLIFT_OWNER, "forklift/dev/h1");
    assert.equal(r.vars.FORKLIFT_NEED_KIB, undefined);
    assert.equal(r.vars.FORKLIFT_SHA256, undefined);
});

test("checkCommand: the check after the build stages the release: the script's bytes, then the tgz on its stdin", () => {
    const cmd = checkCommand({ hostName: "h1", owner: OWNER, sudo: false, release: { sha256: "a".repeat(64), needKiB: 5 } });
    const r = runWithStandIn(NO_SUDO + cmd, readScript("forklift-host.sh"), "the tgz's bytes");
    assert.equal(r.status, 0);
    assert.equal(r.args, "stage");
    assert.equal(r.vars.FORKLIFT_NEED_KIB, "5");
    assert.equal(r.vars.FORKLIFT_SHA256, "a".repeat(64));
    assert.equal(r.stdin, "the tgz's bytes");
});

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

test("the local commands' command lines run local/main.ts with the job and what the plan should show, each word as given", () => {
    // a `node` that records what it was handed
    const dir = mkdtempSync(path.join(tmpdir(), "forklift-node-"));
    try {
        writeFileSync(path.join(dir, "node"), '#!/bin/bash\nprintf "%s\\n" "$@"\n', { mode: 0o755 });
        const argv = (line: string) => spawnSync("bash", ["-c", line], { encoding: "utf8", env: { ...process.env, PATH: `${dir}:${process.env.PATH}` } }).stdout.trimEnd().split("\n");
        assert.deepEqual(argv(localCommand("install", "web1", "abcdef012345")), ["--require", "tsx/cjs", "local/main.ts", "install", "web1", "abcdef012345"]);
        assert.deepEqual(argv(localCommand("uninstall", "it's $(x) a b")), ["--require", "tsx/cjs", "local/main.ts", "uninstall", "it's $(x) a b"]);
    } finally {
        rmSync(dir, { recursive: true, force: true });
    }
});

test("a fleet host's job: the install and uninstall as root or through sudo, the host script it was made for", () => {
    const host = { name: "h1", route: { address: "10.0.0.4", port: 22, user: "deploy", connectTimeout: 10 } };
    const source = { sha256: "a".repeat(64), path: "/b/out/docker.tgz", builder: { name: "builder", route: { address: "10.0.0.2", port: 22, user: "root", connectTimeout: 10 } }, cacheDir: ".forklift/artifacts" };
    const job = fleetHostJob({ host, owner: OWNER, release: { sha256: "a".repeat(64), version: "1.0", binaries: ["dockerd"] }, installDir: "/usr/bin", daemonJson: null, source, swarm: NO_SWARM, insecure: false });
    assert.equal(job.v, 1);
    assert.deepEqual(job.host, host);
    assert.deepEqual(job.artifact, source);
    // run, with a `sudo` that says how it was asked and runs the rest (as passwordless sudo does)
    const SUDO = 'sudo() { [ "$1" = -n ] || return 9; shift; echo "sudo -n" >&2; "$@"; }; ';
    const installed = runWithStandIn(SUDO + job.install, readScript("forklift-host.sh"), "tgz");
    assert.equal(installed.status, 0);
    assert.equal(installed.args, "install");
    assert.equal(installed.vars.FORKLIFT_DAEMON_JSON_B64, "", "daemon.json left alone: manageDaemonJson false");
    assert.equal(installed.stdin, "tgz");
    assert.match(installed.stderr, /^sudo -n$/m, "through sudo, never asking for a password");
    // the uninstall runs the copy the install left, through sudo; where there is none it says so
    const uninstalled = spawnSync("bash", ["-c", SUDO + job.uninstall], { encoding: "utf8" });
    assert.equal(uninstalled.status, 0, uninstalled.stderr);
    assert.equal(uninstalled.stdout, "forklift: nothing installed on h1\n");
    assert.equal(job.hostScriptSha256, sha256(readScript("forklift-host.sh")));
    // every value read back by the local side as written
    assert.deepEqual(parseFleetHostJob(JSON.stringify(job)), job);
});

test("the check's job: every host with its command, the artifact to stage only after the build", () => {
    const host = { name: "h1", route: { address: "10.0.0.4", port: 22, user: "root", hostKey: "ssh-ed25519 AAAA", privateKey: "K", connectTimeout: 10 } };
    const pre = checksJob("precheck", false, [checkedHost(host, OWNER)], defaultSwarmCheck());
    assert.equal(pre.artifact, undefined);
    assert.equal(runWithStandIn(NO_SUDO + pre.hosts[0].command, readScript("forklift-host.sh")).args, "check");
    assert.deepEqual(parseChecksJob(JSON.stringify(pre)), pre);
    const source = { sha256: "a".repeat(64), path: "/b.tgz", builder: host, cacheDir: "c" };
    const check = checksJob("check", true, [checkedHost(host, OWNER, { sha256: "a".repeat(64), needKiB: 9 })], defaultSwarmCheck(), source);
    assert.equal(runWithStandIn(NO_SUDO + check.hosts[0].command, readScript("forklift-host.sh")).args, "stage");
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

// ---- forklift-host.sh in parts (scripts/host/), sent as one script ----

test("readScript: forklift-host.sh travels with every part of scripts/host/ in it, once, in place of its source line", () => {
    const sent = readScript("forklift-host.sh");
    const parts = readdirSync(path.join(SCRIPTS_DIR, "host")).filter((f) => f.endsWith(".sh"));
    assert.ok(parts.length >= 5, `the parts are in scripts/host/ (found ${parts.join(", ")})`);
    for (const part of parts) {
        // each part's own text (without its shellcheck line) appears exactly once
        const body = readFileSync(path.join(SCRIPTS_DIR, "host", part), "utf8").replace(/^# shellcheck shell=bash\n/, "").trimEnd();
        assert.equal(sent.split(body).length - 1, 1, `${part} is in the script sent, once`);
    }
    assert.doesNotMatch(sent, /FORKLIFT_PARTS|shellcheck source=/, "nothing that only serves a run from a checkout");
    assert.equal(readScript("build-fork.sh"), readFileSync(path.join(SCRIPTS_DIR, "build-fork.sh"), "utf8"), "a script without parts is sent as it is");
});

test("forklift-host.sh: the script sent and the checkout's (which sources its parts) answer alike", () => {
    const dir = mkdtempSync(path.join(tmpdir(), "forklift-parts-"));
    try {
        const sent = path.join(dir, "forklift-host.sh");
        writeFileSync(sent, readScript("forklift-host.sh"));
        const env = { ...process.env, FORKLIFT_HOST: "h1" };
        for (const script of [sent, path.join(SCRIPTS_DIR, "forklift-host.sh")]) {
            const r = spawnSync("bash", [script, "no-such-mode"], { encoding: "utf8", env });
            assert.equal(r.status, 1, `${script}: ${r.stderr}`);
            const fatal = lastOf(Fatal, r.stdout);
            assert.match(fatal?.fatal ?? "", /^usage: .* install\|install-drained\|uninstall/, `${script}: the usage, from main, after every part was read`);
            assert.match(r.stderr, /\[forklift h1\] ERROR: usage:/);
        }
    } finally {
        rmSync(dir, { recursive: true, force: true });
    }
});
