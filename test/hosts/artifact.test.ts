/**
 * scripts/artifact.sh on real hosts, driven exactly as the program's local commands run it
 * (artifactCommand + artifactStdin): the check before a rollout, with one message per cause
 * (host key, login, key, unreachable, no answer, sudo, disk), the precheck of several hosts in one
 * run, and install/uninstall through it
 * (copy over SSH, sha256 checked on the host, no copy where the release is unpacked already).
 * What `pulumi up` adds on top runs in test/e2e, which CI cannot run.
 */
import { after, before, describe, test } from "node:test";
import * as assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { PrecheckHost, artifactCommand, artifactStdin, precheckStdin } from "../../lib/protocol/artifact";
import { installCommand, parseHostStatus, uninstallCommand } from "../../lib/protocol/host";
import { sha256 } from "../../lib/hash";
import { needsContainerdUnit, renderManagedFiles } from "../../lib/units";
import { TestHost, copyFrom, repoRoot, ssh, startHosts, stopHosts } from "../support/testbed";

let host: TestHost;
let work: string;
let tgz: string;
let sha: string;
/** The installing stack as the program describes it (see Owner in lib/protocol/host.ts). */
const OWNER = { stack: "forklift/test", stackId: "a1a1a1a1a1a1a1a1", host: "web" };
const BINARIES = ["containerd", "containerd-shim-runc-v2", "ctr", "docker", "docker-init", "docker-proxy", "dockerd", "runc"];

const targetVars = (h: TestHost, over: Record<string, string> = {}) => ({
    FORKLIFT_TARGET_ADDRESS: h.address,
    FORKLIFT_TARGET_PORT: String(h.port),
    FORKLIFT_TARGET_USER: "root",
    FORKLIFT_TARGET_HOST_KEY: h.hostKey,
    FORKLIFT_CONNECT_TIMEOUT: "3",
    FORKLIFT_HOST: "web",
    FORKLIFT_INSECURE: "0",
    ...over,
});

/** Runs `bash scripts/artifact.sh MODE` as the provider would: command line and stdin. */
function run(mode: "check" | "install" | "uninstall", vars: Record<string, string>, stdin: Record<string, string | undefined>) {
    const started = Date.now();
    const r = spawnSync("bash", ["-c", artifactCommand(mode, vars)], { input: artifactStdin(stdin), encoding: "utf8", cwd: repoRoot(), timeout: 120_000 });
    return { code: r.status, stdout: r.stdout, stderr: r.stderr, seconds: (Date.now() - started) / 1000 };
}

/** Runs `bash scripts/artifact.sh prechecks` (or `checks`) as the program's precheck (or check) does, for HOSTS. */
function prechecks(hosts: PrecheckHost[], mode: "prechecks" | "checks" = "prechecks") {
    const started = Date.now();
    const r = spawnSync("bash", ["-c", artifactCommand(mode, { FORKLIFT_CHECK_KEY: "k" })], { input: precheckStdin(hosts), encoding: "utf8", cwd: repoRoot(), timeout: 120_000 });
    return { code: r.status, stdout: r.stdout, stderr: r.stderr, seconds: (Date.now() - started) / 1000 };
}

/** `bash -c COMMAND` with STDIN, without blocking the test (runs beside others). */
function runAsync(command: string, stdin: string): Promise<{ code: number | null; stderr: string }> {
    return new Promise((resolve) => {
        const child = spawn("bash", ["-c", command], { cwd: repoRoot(), stdio: ["pipe", "ignore", "pipe"] });
        let stderr = "";
        child.stderr.on("data", (d) => (stderr += d));
        child.on("close", (code) => resolve({ code, stderr }));
        child.stdin.end(stdin);
    });
}

describe("artifact.sh on real hosts", { timeout: 10 * 60_000 }, () => {
    before(async () => {
        [host] = await startHosts([{ name: "ar-web", index: 71 }]);
        work = fs.mkdtempSync(path.join(os.tmpdir(), "forklift-artifact-"));
        // a release made of the host's own Debian binaries, in the layout of a static build
        const pack = [
            "set -e; d=$(mktemp -d); mkdir $d/docker",
            ...BINARIES.map((b) => `cp "$(readlink -f "$(command -v ${b})")" $d/docker/${b}`),
            "tar -C $d -czf /tmp/release.tgz docker; rm -rf $d",
        ].join("; ");
        const r = ssh(host, `PATH=$PATH:/usr/sbin:/sbin; ${pack}`);
        assert.equal(r.code, 0, r.stderr);
        tgz = path.join(work, "release.tgz");
        copyFrom(host, "/tmp/release.tgz", tgz);
        ssh(host, "rm -f /tmp/release.tgz");
        sha = sha256(fs.readFileSync(tgz));
        // the cache is content-addressed: an entry there needs no build host
        fs.mkdirSync(path.join(work, "cache"));
        fs.copyFileSync(tgz, path.join(work, "cache", `${sha}.tgz`));
    });

    after(async () => {
        await stopHosts();
        if (work) fs.rmSync(work, { recursive: true, force: true });
    });

    test("check: a good host passes", () => {
        const r = run("check", targetVars(host, { FORKLIFT_NEED_KIB: "1024" }), { target: host.privateKey });
        assert.equal(r.code, 0, r.stderr);
        assert.match(r.stderr, /web \(10\.78\.71\.2:22\): reachable, host key as pinned, login, sudo, systemd, disk space and owner checked/);
        // the precheck, while the build runs, does not know the release's size yet
        const early = run("check", targetVars(host), { target: host.privateKey });
        assert.equal(early.code, 0, early.stderr);
        assert.match(early.stderr, /web \(10\.78\.71\.2:22\): reachable, host key as pinned, login, sudo, systemd and owner checked/);
    });

    const failures: [string, () => { vars: Record<string, string>; key?: string }, RegExp][] = [
        ["a wrong host key", () => ({ vars: targetVars(host, { FORKLIFT_TARGET_HOST_KEY: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIE13Mx9w3k99vWlCJXURrSYBWBucTfvv3XrE8dCTUoOn" }) }), /web \(10\.78\.71\.2:22\): its SSH host key is not the pinned hostKey; check hostKey/],
        ["a wrong user", () => ({ vars: targetVars(host, { FORKLIFT_TARGET_USER: "nobody" }) }), /web \(10\.78\.71\.2:22\): the login as nobody was refused; check user and privateKey/],
        ["a wrong private key", () => ({ vars: targetVars(host), key: otherKey() }), /the login as root was refused; check user and privateKey/],
        ["nothing listening", () => ({ vars: targetVars(host, { FORKLIFT_TARGET_ADDRESS: "127.0.0.1", FORKLIFT_TARGET_PORT: "1" }) }), /web \(127\.0\.0\.1:1\): unreachable; check that it is up/],
        ["no sudo for the login user", () => ({ vars: targetVars(host, { FORKLIFT_TARGET_USER: "plainuser" }) }), /the login user plainuser cannot sudo without a password/],
        ["too little disk", () => ({ vars: targetVars(host, { FORKLIFT_NEED_KIB: String(1024 ** 4) }) }), /web \(10\.78\.71\.2:22\): only \d+ MiB free in \/opt, the release needs about 1073741824 MiB/],
    ];
    for (const [what, setup, message] of failures) {
        test(`check: ${what} fails at once with one message naming the host and what to check`, () => {
            if (what === "no sudo for the login user") {
                const u = ssh(host, "id plainuser >/dev/null 2>&1 || (useradd -m plainuser && install -d -m 700 -o plainuser /home/plainuser/.ssh && install -m 600 -o plainuser /root/.ssh/authorized_keys /home/plainuser/.ssh/)");
                assert.equal(u.code, 0, u.stderr);
            }
            const { vars, key } = setup();
            const r = run("check", vars, { target: key ?? host.privateKey });
            assert.notEqual(r.code, 0);
            assert.match(r.stderr, message);
            assert.equal(r.stderr.trim().split("\n").filter((l) => l.includes("ERROR")).length, 1, "one message");
        });
    }

    test("prechecks: every host is checked in one run, each with its own route and key; the ones that failed are named", () => {
        const wrongKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIE13Mx9w3k99vWlCJXURrSYBWBucTfvv3XrE8dCTUoOn";
        const r = prechecks([
            { vars: targetVars(host), keys: { target: host.privateKey } },
            { vars: targetVars(host, { FORKLIFT_HOST: "down", FORKLIFT_TARGET_ADDRESS: "127.0.0.1", FORKLIFT_TARGET_PORT: "1" }), keys: { target: host.privateKey } },
            { vars: targetVars(host, { FORKLIFT_HOST: "moved", FORKLIFT_TARGET_HOST_KEY: wrongKey }), keys: { target: host.privateKey } },
            { vars: targetVars(host, { FORKLIFT_HOST: "other-key" }), keys: { target: otherKey() } },
        ]);
        assert.equal(r.code, 1, r.stderr);
        assert.match(r.stderr, /web \(10\.78\.71\.2:22\): reachable, host key as pinned, login, sudo, systemd and owner checked/);
        assert.match(r.stderr, /down \(127\.0\.0\.1:1\): unreachable; check that it is up/);
        assert.match(r.stderr, /moved \(10\.78\.71\.2:22\): its SSH host key is not the pinned hostKey/);
        assert.match(r.stderr, /other-key \(10\.78\.71\.2:22\): the login as root was refused/, "each host with its own private key");
        assert.match(r.stderr.trim().split("\n").pop() as string, /ERROR: the precheck failed on 3 of 4 hosts: down, moved, other-key \(see above\)$/);

        const good = prechecks([
            { vars: targetVars(host), keys: { target: host.privateKey } },
            { vars: targetVars(host, { FORKLIFT_HOST: "web-again", FORKLIFT_CONNECT_TIMEOUT: "4" }), keys: { target: host.privateKey } },
        ]);
        assert.equal(good.code, 0, good.stderr);
        assert.match(good.stderr, /^\[forklift artifact\] web \(10\.78\.71\.2:22\): reachable.*\n\[forklift artifact\] web-again \(10\.78\.71\.2:22\): reachable/, "in the hosts' order");
        assert.doesNotMatch(good.stderr, /ERROR/);
    });

    test("checks (after the build): the room the release needs, except where it is unpacked already; the failed hosts are named", () => {
        const huge = String(1024 ** 4);
        const unpacked = "d".repeat(64);
        assert.equal(ssh(host, `mkdir -p /opt/forklift/releases/${unpacked}`).code, 0);
        try {
            const r = prechecks(
                [
                    { vars: targetVars(host, { FORKLIFT_NEED_KIB: huge, FORKLIFT_SHA256: unpacked }), keys: { target: host.privateKey } },
                    { vars: targetVars(host, { FORKLIFT_HOST: "full", FORKLIFT_NEED_KIB: huge, FORKLIFT_SHA256: "e".repeat(64) }), keys: { target: host.privateKey } },
                ],
                "checks",
            );
            assert.equal(r.code, 1, r.stderr);
            assert.match(r.stderr, /web \(10\.78\.71\.2:22\): reachable, host key as pinned, login, sudo, systemd, disk space and owner checked/, "the release is there: no room needed");
            assert.match(r.stderr, /full \(10\.78\.71\.2:22\): only \d+ MiB free in \/opt, the release needs about 1073741824 MiB/);
            assert.match(r.stderr.trim().split("\n").pop() as string, /ERROR: the check failed on 1 of 2 hosts: full \(see above\)$/);
        } finally {
            ssh(host, `rmdir /opt/forklift/releases/${unpacked}`);
        }
    });

    test("prechecks: a key line before any host, or no host at all, is refused", () => {
        for (const [stdin, message] of [
            ["target a2V5\n", /a key line before the first vars line/],
            ["", /no host to check on stdin/],
            ["builder a2V5\n", /unknown line 'builder' on stdin/],
        ] as const) {
            const r = spawnSync("bash", ["-c", artifactCommand("prechecks", {})], { input: stdin, encoding: "utf8", cwd: repoRoot() });
            assert.equal(r.status, 1);
            assert.match(r.stderr, message);
        }
    });

    test("check: a host that does not answer is reported after the connect timeout, not retried", () => {
        const drop = spawnSync(path.join(repoRoot(), "testbed", "host.sh"), ["exec", host.name, "iptables", "-I", "INPUT", "-p", "tcp", "--dport", "22", "-j", "DROP"], { encoding: "utf8" });
        assert.equal(drop.status, 0, drop.stderr);
        try {
            const r = run("check", targetVars(host), { target: host.privateKey });
            assert.notEqual(r.code, 0);
            assert.match(r.stderr, /web \(10\.78\.71\.2:22\): unreachable; check that it is up, the address and port, and the network path \(sshConnectTimeout is 3s\)/);
            assert.match(r.stderr, /timed out/);
        } finally {
            spawnSync(path.join(repoRoot(), "testbed", "host.sh"), ["exec", host.name, "iptables", "-D", "INPUT", "-p", "tcp", "--dport", "22", "-j", "DROP"]);
        }
    });

    test("the check's SSH connection carries the install too, and is closed when the install ends", async () => {
        // SSH connections to the host other than this query's own (`ss` counts the query too)
        const others = () => Number(ssh(host, "ss -Htn state established '( sport = :22 )' | wc -l").stdout.trim()) - 1;
        const logins = () => Number(ssh(host, "journalctl -u ssh.service -o cat --no-pager | grep -c '^Accepted' || true").stdout.trim());
        // earlier tests' checks may have left theirs open for a few seconds
        for (let i = 0; i < 60 && others() > 0; i++) await new Promise((r) => setTimeout(r, 500));
        assert.equal(others(), 0, "no connection open before");
        const files = renderManagedFiles({ installDir: "/usr/bin", shipsContainerd: needsContainerdUnit(BINARIES) }, { "live-restore": true });
        const stdin = { target: host.privateKey, install: installCommand({ hostName: "web", owner: OWNER, sha256: sha, version: "test", installDir: "/usr/bin", files, sudo: false }), uninstall: uninstallCommand("web", OWNER, false) };
        const before = logins();
        const check = run("check", targetVars(host, { FORKLIFT_NEED_KIB: "1024" }), { target: host.privateKey });
        assert.equal(check.code, 0, check.stderr);
        assert.equal(others(), 1, "the check's connection stays open");
        const install = run("install", { ...targetVars(host), FORKLIFT_SHA256: sha, FORKLIFT_REMOTE_PATH: "/never/asked.tgz", FORKLIFT_CACHE_DIR: path.join(work, "cache") }, stdin);
        assert.equal(install.code, 0, install.stderr);
        assert.equal(parseHostStatus(install.stdout).sha256, sha);
        // the check's login and those of the two queries since: none for the install
        assert.equal(logins() - before, 3, "the install logged in on the check's connection");
        assert.equal(others(), 0, "the install closed the connection");
        const gone = run("uninstall", targetVars(host), stdin);
        assert.equal(gone.code, 0, gone.stderr);
        assert.equal(others(), 0, "an uninstall leaves no connection open");
    });

    test("a check that starts while the precheck is logging in to the same host waits for it and rides on its connection: one login", async () => {
        const open = () => Number(ssh(host, "ss -Htn state established '( sport = :22 )' | wc -l").stdout.trim()) - 1;
        const logins = () => Number(ssh(host, "journalctl -u ssh.service -o cat --no-pager | grep -c '^Accepted' || true").stdout.trim());
        for (let i = 0; i < 60 && open() > 0; i++) await new Promise((r) => setTimeout(r, 500));
        assert.equal(open(), 0, "no connection open before");
        const before = logins();
        // both at once: without the lock, each would log in before the other's connection is up
        const [pre, check] = await Promise.all([
            runAsync(artifactCommand("prechecks", { FORKLIFT_CHECK_KEY: "k" }), precheckStdin([{ vars: targetVars(host), keys: { target: host.privateKey } }])),
            runAsync(artifactCommand("check", targetVars(host, { FORKLIFT_NEED_KIB: "1024" })), artifactStdin({ target: host.privateKey })),
        ]);
        assert.equal(pre.code, 0, pre.stderr);
        assert.equal(check.code, 0, check.stderr);
        assert.match(check.stderr, /disk space and owner checked/);
        assert.equal(logins() - before, 2, "one login for both, and this query's own");
    });

    test("a check that waited for a precheck that could not reach the host fails at once with its message, not after another connect timeout", async () => {
        const iptables = (op: string) => spawnSync(path.join(repoRoot(), "testbed", "host.sh"), ["exec", host.name, "iptables", op, "INPUT", "-p", "tcp", "--dport", "22", "-j", "DROP"], { encoding: "utf8" });
        // no connection left open by an earlier test (it would answer the check)
        for (let i = 0; i < 60 && Number(ssh(host, "ss -Htn state established '( sport = :22 )' | wc -l").stdout.trim()) > 1; i++) await new Promise((r) => setTimeout(r, 500));
        const drop = iptables("-I");
        assert.equal(drop.status, 0, drop.stderr);
        try {
            const started = Date.now();
            const pre = runAsync(artifactCommand("prechecks", { FORKLIFT_CHECK_KEY: "k" }), precheckStdin([{ vars: targetVars(host), keys: { target: host.privateKey } }]));
            // the check starts a little later, as it does after the build
            await new Promise((r) => setTimeout(r, 500));
            const check = await runAsync(artifactCommand("check", targetVars(host, { FORKLIFT_NEED_KIB: "1024" })), artifactStdin({ target: host.privateKey }));
            const seconds = (Date.now() - started) / 1000;
            const precheck = await pre;
            assert.equal(precheck.code, 1);
            assert.equal(check.code, 1);
            const unreachable = /web \(10\.78\.71\.2:22\): unreachable; check that it is up/;
            assert.match(precheck.stderr, unreachable);
            assert.match(check.stderr, unreachable, "the check gives the precheck's message");
            // FORKLIFT_CONNECT_TIMEOUT is 3: one timeout, not two
            assert.ok(seconds < 5.5, `the check ended ${seconds.toFixed(1)} s after the precheck started`);
        } finally {
            iptables("-D");
        }
        // the host is back: a new run connects without waiting and is not told the old failure
        const again = run("check", targetVars(host), { target: host.privateKey });
        assert.equal(again.code, 0, again.stderr);
    });

    test("a connection left open whose host has gone away since is closed, not waited on: the install is told at once", async () => {
        const open = () => Number(ssh(host, "ss -Htn state established '( sport = :22 )' | wc -l").stdout.trim()) - 1;
        for (let i = 0; i < 60 && open() > 0; i++) await new Promise((r) => setTimeout(r, 500));
        const check = run("check", targetVars(host, { FORKLIFT_NEED_KIB: "1024" }), { target: host.privateKey });
        assert.equal(check.code, 0, check.stderr);
        assert.equal(open(), 1, "the check's connection stays open");
        const iptables = (op: string) => spawnSync(path.join(repoRoot(), "testbed", "host.sh"), ["exec", host.name, "iptables", op, "INPUT", "-p", "tcp", "--dport", "22", "-j", "DROP"], { encoding: "utf8" });
        const drop = iptables("-I");
        assert.equal(drop.status, 0, drop.stderr);
        try {
            const stdin = { target: host.privateKey, install: installCommand({ hostName: "web", owner: OWNER, sha256: sha, version: "test", installDir: "/usr/bin", files: renderManagedFiles({ installDir: "/usr/bin", shipsContainerd: needsContainerdUnit(BINARIES) }, { "live-restore": true }), sudo: false }) };
            const install = run("install", { ...targetVars(host), FORKLIFT_SHA256: sha, FORKLIFT_REMOTE_PATH: "/never/asked.tgz", FORKLIFT_CACHE_DIR: path.join(work, "cache") }, stdin);
            assert.notEqual(install.code, 0);
            // without the probe, the session would ride on the dead connection until its
            // keepalives failed, and no line would say so
            assert.match(install.stderr, /web \(10\.78\.71\.2:22\): the SSH connection left open for this run no longer answers; connecting anew/);
            assert.match(install.stderr, /cannot reach web \(10\.78\.71\.2:22\) over SSH/);
        } finally {
            iptables("-D");
        }
        assert.equal(ssh(host, "test -d /opt/forklift/releases/" + sha + " && echo unpacked || echo none").stdout.trim(), "none", "nothing was installed");
    });

    test("install copies, checks the sha256 there and installs; a rerun copies nothing; uninstall gives the host back", () => {
        const files = renderManagedFiles({ installDir: "/usr/bin", shipsContainerd: needsContainerdUnit(BINARIES) }, { "live-restore": true });
        const install = installCommand({ hostName: "web", owner: OWNER, sha256: sha, version: "test", installDir: "/usr/bin", files, sudo: false });
        const vars = {
            ...targetVars(host),
            FORKLIFT_SHA256: sha,
            FORKLIFT_REMOTE_PATH: "/nonexistent/on/a/builder/that/is/never/asked.tgz",
            FORKLIFT_CACHE_DIR: path.join(work, "cache"),
        };
        const stdin = { target: host.privateKey, install, uninstall: uninstallCommand("web", OWNER, false) };
        const first = run("install", vars, stdin);
        assert.equal(first.code, 0, first.stderr);
        assert.match(first.stderr, new RegExp(`\\[forklift web\\] unpacked release ${sha} `));
        assert.equal(ssh(host, "ls -A /var/tmp /tmp | grep -c forklift || true").stdout.trim(), "0", "no copy or script staged on the host");
        const status = parseHostStatus(first.stdout);
        assert.equal(status.sha256, sha);
        assert.equal(status.changed, true);

        const again = run("install", vars, stdin);
        assert.equal(again.code, 0, again.stderr);
        assert.match(again.stderr, /release [0-9a-f]{64} is unpacked here already: nothing to copy/);
        assert.equal(parseHostStatus(again.stdout).changed, false);
        // a fresh checkout (empty cache) whose build host lost the artifact: the host has it
        const emptyCache = { ...vars, FORKLIFT_CACHE_DIR: path.join(work, "empty-cache") };
        const fresh = run("install", emptyCache, stdin);
        assert.equal(fresh.code, 0, fresh.stderr);
        assert.match(fresh.stderr, /has release [0-9a-f]{64} unpacked already: nothing to copy/);
        assert.doesNotMatch(fresh.stderr, /ERROR/, "the failed fetch is not reported when nothing needed it");

        const gone = run("uninstall", targetVars(host), stdin);
        assert.equal(gone.code, 0, gone.stderr);
        assert.match(gone.stderr, /uninstalled/);
        assert.equal(ssh(host, "test -e /opt/forklift").code, 1, "the release is gone");
        const nowhere = run("install", emptyCache, stdin);
        assert.notEqual(nowhere.code, 0, "neither the cache, the build host nor the host has it");
        assert.match(nowhere.stderr, /ERROR: FORKLIFT_BUILDER_ADDRESS is not set/, "the fetch's own error");
    });

    test("a host another stack owns: check and install refuse it naming the owner, nothing changes; that stack's uninstall leaves it", () => {
        const files = renderManagedFiles({ installDir: "/usr/bin", shipsContainerd: needsContainerdUnit(BINARIES) }, { "live-restore": true });
        const as = (owner: typeof OWNER) => ({
            vars: { ...targetVars(host), FORKLIFT_OWNER: `${owner.stack}/${owner.host}`, FORKLIFT_STACK_ID: owner.stackId, FORKLIFT_SHA256: sha, FORKLIFT_REMOTE_PATH: "/never/asked.tgz", FORKLIFT_CACHE_DIR: path.join(work, "cache") },
            stdin: {
                target: host.privateKey,
                install: installCommand({ hostName: "web", owner, sha256: sha, version: "test", installDir: "/usr/bin", files, sudo: false }),
                uninstall: uninstallCommand("web", owner, false),
            },
        });
        const mine = as(OWNER);
        // the same project and stack name on another backend: only the identity differs
        const twin = as({ ...OWNER, stackId: "b2b2b2b2b2b2b2b2" });
        const first = run("install", mine.vars, mine.stdin);
        assert.equal(first.code, 0, first.stderr);
        const pid = ssh(host, "systemctl show -p MainPID --value docker.service").stdout.trim();
        const owned = /is managed by another stack: forklift\/test \(stack identity a1a1a1a1a1a1a1a1\); this stack is forklift\/test \(stack identity b2b2b2b2b2b2b2b2\)/;

        const check = run("check", twin.vars, { target: host.privateKey });
        assert.notEqual(check.code, 0);
        assert.match(check.stderr, /web \(10\.78\.71\.2:22\): this host is managed by another stack/);
        assert.match(check.stderr, owned);
        const install = run("install", twin.vars, twin.stdin);
        assert.notEqual(install.code, 0, "the install refuses too, when it runs without the check");
        assert.match(install.stderr, owned);
        assert.match(install.stderr, /Nothing was changed/);
        const uninstall = run("uninstall", twin.vars, twin.stdin);
        assert.equal(uninstall.code, 0, uninstall.stderr);
        assert.match(uninstall.stderr, /not uninstalling: the release here belongs to another stack: forklift\/test \(stack identity a1a1a1a1a1a1a1a1\)/);
        assert.equal(ssh(host, "systemctl show -p MainPID --value docker.service").stdout.trim(), pid, "Docker was not restarted");
        assert.equal(ssh(host, "readlink /opt/forklift/current").stdout.trim(), `/opt/forklift/releases/${sha}`);

        // a release installed before stacks had an identity records only project/stack/host:
        // its own stack adopts it, another stack name is refused
        assert.equal(ssh(host, "rm /var/lib/forklift/stack-id").code, 0);
        const other = as({ ...OWNER, stack: "forklift/prod" });
        const refused = run("check", other.vars, { target: host.privateKey });
        assert.notEqual(refused.code, 0);
        assert.match(refused.stderr, /is managed by another stack: forklift\/test \(stack identity none\)/);
        assert.equal(run("check", mine.vars, { target: host.privateKey }).code, 0);
        const adopt = run("install", mine.vars, mine.stdin);
        assert.equal(adopt.code, 0, adopt.stderr);
        assert.equal(ssh(host, "cat /var/lib/forklift/stack-id").stdout.trim(), OWNER.stackId, "the identity is recorded from then on");

        const gone = run("uninstall", mine.vars, mine.stdin);
        assert.equal(gone.code, 0, gone.stderr);
        assert.equal(ssh(host, "test -e /opt/forklift").code, 1, "its owner's uninstall gives the host back");
    });

    test("an upgrade right after Docker hit systemd's start limit still restarts it", () => {
        const cache = path.join(work, "cache");
        const release = (tgzPath: string) => {
            const s = sha256(fs.readFileSync(tgzPath));
            fs.copyFileSync(tgzPath, path.join(cache, `${s}.tgz`));
            return s;
        };
        // a second release: the same binaries plus a note, so another sha256
        const second = path.join(work, "second.tgz");
        const x = spawnSync("bash", ["-c", `set -e; d=$(mktemp -d); tar -xzf "$1" -C $d; echo second > $d/docker/NOTE; tar -C $d -czf "$2" docker; rm -rf $d`, "_", tgz, second], { encoding: "utf8" });
        assert.equal(x.status, 0, x.stderr);
        const installAs = (s: string) => {
            const files = renderManagedFiles({ installDir: "/usr/bin", shipsContainerd: true }, { "live-restore": true });
            const install = installCommand({ hostName: "web", owner: OWNER, sha256: s, version: "test", installDir: "/usr/bin", files, sudo: false });
            const vars = { ...targetVars(host), FORKLIFT_SHA256: s, FORKLIFT_REMOTE_PATH: "/never/asked.tgz", FORKLIFT_CACHE_DIR: cache };
            return run("install", vars, { target: host.privateKey, install, uninstall: uninstallCommand("web", OWNER, false) });
        };
        const first = installAs(release(tgz));
        assert.equal(first.code, 0, first.stderr);
        // four quick restarts: the fourth is refused ("start request repeated too quickly")
        const trip = ssh(host, "for i in 1 2 3 4; do systemctl restart docker.service || echo refused; done");
        assert.match(trip.stdout, /refused/, "the start limit was hit");
        const upgrade = installAs(release(second));
        assert.equal(upgrade.code, 0, upgrade.stderr);
        assert.equal(parseHostStatus(upgrade.stdout).changed, true);
        assert.equal(ssh(host, "systemctl is-active docker.service").stdout.trim(), "active");
        const gone = run("uninstall", targetVars(host), { target: host.privateKey, uninstall: uninstallCommand("web", OWNER, false) });
        assert.equal(gone.code, 0, gone.stderr);
    });

    test("install refuses a copy that arrives corrupted, and a corrupt cache entry is dropped", () => {
        assert.equal(ssh(host, "test -e /opt/forklift").code, 1, "a host forklift is not on yet");
        const cache = path.join(work, "bad-cache");
        fs.mkdirSync(cache);
        const bad = Buffer.from(fs.readFileSync(tgz));
        bad[bad.length >> 1] ^= 0xff;
        fs.writeFileSync(path.join(cache, `${sha}.tgz`), bad);
        const files = renderManagedFiles({ installDir: "/usr/bin", shipsContainerd: needsContainerdUnit(BINARIES) }, { "live-restore": true });
        const install = installCommand({ hostName: "web", owner: OWNER, sha256: sha, version: "test", installDir: "/usr/bin", files, sudo: false });
        const r = run("install", { ...targetVars(host), FORKLIFT_SHA256: sha, FORKLIFT_REMOTE_PATH: "/x.tgz", FORKLIFT_CACHE_DIR: cache }, { target: host.privateKey, install });
        assert.notEqual(r.code, 0);
        assert.match(r.stderr, /\[forklift web\] ERROR: the artifact that arrived has sha256 [0-9a-f]{64}, expected [0-9a-f]{64} \(corrupted on the way\?\); nothing was changed/);
        assert.match(r.stderr, /the cached artifact .* was corrupt; it is removed: run `pulumi up` again to fetch it anew/);
        assert.equal(fs.existsSync(path.join(cache, `${sha}.tgz`)), false);
        assert.equal(ssh(host, "test -e /opt/forklift").code, 1, "nothing left on the host: not even /opt/forklift");
    });
});

let other: string | undefined;
/** A private key the host does not accept. */
function otherKey(): string {
    if (!other) {
        const dir = fs.mkdtempSync(path.join(os.tmpdir(), "forklift-otherkey-"));
        spawnSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", path.join(dir, "k")]);
        other = fs.readFileSync(path.join(dir, "k"), "utf8");
        fs.rmSync(dir, { recursive: true, force: true });
    }
    return other;
}
