/**
 * The scripts that run on the hosts, run for real: a systemd-nspawn build host and fleet hosts
 * (real systemd, sshd and Docker), reached over real SSH with pinned host keys, driven by the
 * exact command strings the Pulumi program sends (lib/protocol/). A fixture fork laid out like
 * docker-ce is served by git daemon. Every outcome is checked on the hosts themselves.
 */
import { after, before, describe, test } from "node:test";
import * as assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { bootstrapCommand, builderCleanupCommand, firstBootUserData } from "../../lib/protocol/bootstrap";
import { BuildResult, buildCommand, buildKey, parseBuildResult } from "../../lib/protocol/build";
import { installCommand, parseHostStatus } from "../../lib/protocol/host";
import { fleetHostJob } from "../../lib/protocol/local";
import { readScript } from "../../lib/protocol/script";
import { ForkConfig } from "../../lib/config";
import { needsContainerdUnit, renderManagedFiles } from "../../lib/units";
import { ArtifactSource } from "../../lib/protocol/jobs";
import { fetchArtifact } from "../../local/cache";
import { hostScript } from "../../local/remote";
import { Ssh } from "../../local/ssh";
import { FixtureFork } from "../../testbed/fixture-fork";
import { LocalRun, NO_SWARM, remoteOf, runLocal } from "../support/local";
import { localCommand } from "../../lib/protocol/local";
import { HOST_BUSYBOX_TARBALL, TestHost, repoRoot, ssh, sshAsync, sshOptions, startHosts, stopHosts } from "../../testbed/testbed";
import { traceSnapshot } from "../support/trace";

let builder: TestHost;
let plain: TestHost;
let distro: TestHost;
let fork: FixtureFork;
const cache = mkdtempSync(path.join(tmpdir(), "forklift-cache-"));

function forkAt(ref: string): ForkConfig {
    return { recipe: "docker-ce", repo: fork.url, ref, packagingRepo: "", packagingRef: "", makeVars: {} };
}

/** Runs the build exactly as the program's build command does. */
function build(ref: string): { code: number; stdout: string; stderr: string } {
    const script = readScript("build-fork.sh");
    const f = forkAt(ref);
    return ssh(builder, buildCommand(f, buildKey(f, script), false), { input: script });
}

/** Where the local commands fetch build R from: the build host, into CACHEDIR. */
function sourceOf(r: BuildResult, cacheDir = cache, builderHostKey = builder.hostKey): ArtifactSource {
    return { sha256: r.sha256, path: r.artifact, builder: remoteOf("builder", builder, { hostKey: builderHostKey }), cacheDir };
}

const built = new Map<string, BuildResult & { local: string }>();
/** The build of REF, fetched into the local cache as the local commands fetch it. */
async function artifact(ref: string): Promise<BuildResult & { local: string }> {
    if (!built.has(ref)) {
        const r = build(ref);
        assert.equal(r.code, 0, `build ${ref} failed:\n${r.stderr}`);
        const result = parseBuildResult(r.stdout);
        const ssh = new Ssh(false);
        try {
            built.set(ref, { ...result, local: await fetchArtifact(sourceOf(result), ssh, () => undefined) });
        } finally {
            ssh.close();
        }
    }
    return built.get(ref)!;
}

/** The program's install job of artifact A on HOST (the tgz from CACHEDIR, else the build host). */
function installJob(host: TestHost, a: BuildResult, cacheDir = cache) {
    return fleetHostJob({
        host: remoteOf(host.name, host),
        owner: owner(host),
        release: { sha256: a.sha256, version: a.version, binaries: a.binaries },
        installDir: "/usr/bin",
        daemonJson: { "live-restore": true },
        source: sourceOf(a, cacheDir),
        swarm: NO_SWARM,
        insecure: false,
    });
}

/** The install of A on HOST as `pulumi up` runs it (local/main.ts install); CACHEDIR: another local cache. */
function install(host: TestHost, a: BuildResult, cacheDir = cache): LocalRun {
    return runLocal("install", installJob(host, a, cacheDir));
}

/** The program's remote install command for artifact A on HOST. */
function installCmd(host: TestHost, a: BuildResult): string {
    const files = renderManagedFiles({ installDir: "/usr/bin", shipsContainerd: needsContainerdUnit(a.binaries) }, { "live-restore": true });
    return installCommand({ hostName: host.name, owner: owner(host), sha256: a.sha256, version: a.version, installDir: "/usr/bin", files, sudo: false });
}

/**
 * install(), with the local command killed (its whole process group: node and its ssh) as soon as
 * the host reports MARK on stderr: half-way through the install however fast it runs.
 */
function installCutAt(host: TestHost, a: BuildResult, mark: RegExp): Promise<{ code: number; cut: boolean; stderr: string }> {
    return new Promise((resolve, reject) => {
        const child = spawn("sh", ["-c", localCommand("install")], { cwd: repoRoot(), detached: true });
        let stderr = "";
        let cut = false;
        const kill = () => {
            try {
                process.kill(-child.pid!, "SIGKILL");
            } catch {
                // gone already
            }
        };
        const timer = setTimeout(kill, 120_000);
        child.stderr.on("data", (d: Buffer) => {
            stderr += d.toString("utf8");
            if (!cut && mark.test(stderr)) {
                cut = true;
                kill();
            }
        });
        child.on("error", reject);
        child.on("close", (code, signal) => {
            clearTimeout(timer);
            resolve({ code: code ?? (signal ? 128 + 9 : -1), cut, stderr });
        });
        child.stdin.on("error", () => undefined);
        child.stdin.end(JSON.stringify(installJob(host, a)));
    });
}

/** Two stacks' random identities. */
const STACKS = ["0a0a0a0a0a0a0a0a", "0b0b0b0b0b0b0b0b"];
const owner = (host: TestHost, entry = host.name) => ({ stack: "forklift/test", stackId: "5c0ffee5c0ffee00", host: entry });
/** The uninstall of HOST as `pulumi destroy` runs it (the delete of the resource of entry WHO). */
const uninstall = (host: TestHost, who = owner(host)) => {
    const release = { sha256: "0".repeat(64), version: "", binaries: [] };
    const source = { sha256: release.sha256, path: "/none", builder: remoteOf("builder", builder), cacheDir: cache };
    return runLocal("uninstall", fleetHostJob({ host: remoteOf(host.name, host), owner: who, release, installDir: "/usr/bin", daemonJson: null, source, swarm: NO_SWARM, insecure: false }));
};
const on = (host: TestHost, cmd: string) => ssh(host, cmd);
const out = (host: TestHost, cmd: string) => {
    const r = ssh(host, cmd);
    assert.equal(r.code, 0, `${cmd} failed on ${host.name}: ${r.stderr}`);
    return r.stdout.trim();
};
const sha256Of = (host: TestHost, file: string) => out(host, `sha256sum ${file} | cut -d' ' -f1`);
const dockerdPid = (host: TestHost) => out(host, "systemctl show -p MainPID --value docker.service");
/** What an admin's shell finds: root's PATH as sshd sets it, then the file the name resolves to. */
const resolvedBinary = (host: TestHost, bin: string) => out(host, `echo "$PATH" >&2; readlink -f "$(command -v ${bin})"`);

let plainBeforeFirstInstall = "";

describe("scripts on real hosts", { timeout: 20 * 60_000 }, () => {
    before(async () => {
        [builder, plain, distro] = await startHosts([
            { name: "builder", index: 31 },
            { name: "plain", index: 32 },
            { name: "distro", index: 33, debianDocker: true },
        ]);
        fork = new FixtureFork("10.78.31.1");
        await fork.serve();
    });
    after(async () => {
        fork?.stop();
        rmSync(cache, { recursive: true, force: true });
        await stopHosts();
    });

    test("bootstrap prepares the build host and is idempotent; it records each stack that uses the host", () => {
        const script = readScript("bootstrap-builder.sh");
        // two stacks bootstrap the same build host
        for (const stackId of STACKS) {
            const r = ssh(builder, bootstrapCommand("bootstrap", 0, false, stackId), { input: script });
            assert.equal(r.code, 0, r.stderr);
            const summary = JSON.parse(r.stdout.trim().split("\n").pop()!);
            assert.match(summary.docker, /^\d+\.\d+/, "Docker engine answers");
        }
        assert.equal(out(builder, "systemctl is-active docker.service"), "active");
        assert.equal(out(builder, "ls /var/lib/forklift-bootstrap/stacks | sort | tr '\\n' ' '"), STACKS.join(" "));
        const wait = ssh(builder, bootstrapCommand("wait", 0, false), { input: script });
        assert.equal(wait.code, 0, wait.stderr);
    });

    test("a launched instance's first boot (its user data, host-key mode) installs the key the stack pins: the first SSH connection checks it", () => {
        const dir = mkdtempSync(path.join(tmpdir(), "forklift-hostkey-"));
        const key = path.join(dir, "key");
        assert.equal(spawnSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "", "-f", key]).status, 0);
        const pinned = readFileSync(`${key}.pub`, "utf8").trim();
        const known = path.join(dir, "known_hosts");
        writeFileSync(known, `${plain.address} ${pinned}\n`);
        const withPinned = (cmd = "true") =>
            spawnSync("ssh", [...sshOptions(plain).map((o) => (o.startsWith("UserKnownHostsFile=") ? `UserKnownHostsFile=${known}` : o)), "-p", String(plain.port), `root@${plain.address}`, cmd], { encoding: "utf8" });
        // (the test bed's own key comes back afterwards: the other tests pin it)
        out(plain, "cp -p /etc/ssh/ssh_host_ed25519_key /root/hostkey.bak && cp -p /etc/ssh/ssh_host_ed25519_key.pub /root/hostkey.pub.bak");
        try {
            assert.notEqual(withPinned().status, 0, "before the first boot, the host's key is not the pinned one");
            const userData = firstBootUserData({ mode: "host-key" }, readFileSync(key).toString("base64"));
            // as cloud-init runs it: a file, as root
            const r = ssh(plain, 'f=$(mktemp) && cat > "$f" && bash "$f"; rc=$?; rm -f "$f"; exit $rc', { input: userData });
            assert.equal(r.code, 0, r.stderr);
            const first = withPinned();
            assert.equal(first.status, 0, `the pinned key is the host's now: ${first.stderr}`);
        } finally {
            // (through whichever key the host has now)
            const restore = "mv -f /root/hostkey.bak /etc/ssh/ssh_host_ed25519_key && mv -f /root/hostkey.pub.bak /etc/ssh/ssh_host_ed25519_key.pub && (systemctl reload ssh || systemctl reload sshd)";
            if (ssh(plain, "true").code !== 0) assert.equal(withPinned(restore).status, 0, "the test bed's key put back");
            else out(plain, restore);
            rmSync(dir, { recursive: true, force: true });
        }
        assert.equal(ssh(plain, "true").code, 0, "the test bed's key is back");
    });

    test("build: artifact with real binaries and the fork commit; a rerun reuses it", async () => {
        const a = await artifact("v1");
        assert.equal(a.commit, fork.commitOf("v1"));
        assert.equal(a.version, "18.03.1-ce");
        assert.ok(a.binaries.includes("dockerd") && a.binaries.includes("containerd"), a.binaries.join(","));
        const listing = spawnSync("tar", ["-xzOf", a.local, "docker/FORKLIFT-BUILD-INFO"], { encoding: "utf8" }).stdout;
        assert.match(listing, new RegExp(`^commit=${a.commit}$`, "m"));
        assert.equal(sha256Of(builder, a.artifact), a.sha256);

        const again = build("v1");
        assert.equal(again.code, 0);
        assert.match(again.stderr, /reusing the finished build/);
        assert.equal(parseBuildResult(again.stdout).sha256, a.sha256);
        assert.equal(a.local, path.join(cache, `${a.sha256}.tgz`), "fetched into the cache under its sha256");
    });

    test("the fetch into the local cache refuses a build host whose host key is not the pinned one", async () => {
        const a = await artifact("v1");
        const other = mkdtempSync(path.join(tmpdir(), "forklift-cache-"));
        const ssh = new Ssh(false);
        try {
            // a real host key, but another host's
            await assert.rejects(
                fetchArtifact(sourceOf(a, other, plain.hostKey), ssh, () => undefined),
                /could not copy .* from the build host builder \(10\.78\.31\.2\): builder \(10\.78\.31\.2:22\): its SSH host key is not the pinned hostKey/,
            );
            assert.deepEqual(spawnSync("ls", ["-A", other], { encoding: "utf8" }).stdout.split("\n").filter(Boolean), [], "nothing was cached, no partial copy");
        } finally {
            ssh.close();
            rmSync(other, { recursive: true, force: true });
        }
    });

    test("build survives a dropped SSH connection: the next run joins it", async () => {
        const script = readScript("build-fork.sh");
        const f = forkAt("v2");
        const key = buildKey(f, script);
        // start, then drop the connection after 1 s (the fixture build takes > 3 s)
        const dropped = ssh(builder, buildCommand(f, key, false), { input: script, timeoutMs: 1000 });
        assert.notEqual(dropped.code, 0, "the first connection was cut");
        const joined = build("v2");
        assert.equal(joined.code, 0, joined.stderr);
        assert.match(joined.stderr, /joining the running build|reusing the finished build/);
        assert.equal(parseBuildResult(joined.stdout).commit, fork.commitOf("v2"));
    });

    test("two runs of one build at once (stacks sharing the build host): one build, both get its result", async () => {
        const script = readScript("build-fork.sh");
        // (a make variable of its own: a key no earlier test built)
        const f = { ...forkAt("v1"), makeVars: { FORKLIFT_TEST_RACE: "1" } };
        const key = buildKey(f, script);
        // both sessions wait on the build host for one signal, then run the program's build
        // command within a few milliseconds of each other
        out(builder, "rm -f /run/forklift-test-go");
        const wait = "while [ ! -e /run/forklift-test-go ]; do sleep 0.02; done; ";
        const both = [0, 1].map(() => sshAsync(builder, wait + buildCommand(f, key, false), { input: script }));
        await new Promise((r) => setTimeout(r, 1500));
        out(builder, "touch /run/forklift-test-go");
        const [one, two] = await Promise.all(both);
        assert.equal(one.code, 0, one.stderr);
        assert.equal(two.code, 0, two.stderr);
        assert.equal(parseBuildResult(one.stdout).sha256, parseBuildResult(two.stdout).sha256);
        assert.equal((one.stderr + two.stderr).match(/started build/g)?.length, 1, `one build started:\n${one.stderr}\n---\n${two.stderr}`);
        assert.match(one.stderr + two.stderr, /joining the running build|reusing the finished build/);
        assert.equal(out(builder, `grep -c '^forklift build ${key} .* started' /var/lib/forklift-build/${key}/build.log`), "1");
    });

    test("builds of other keys from the same repository at once share its mirror; only the last few builds are kept", async () => {
        const script = readScript("build-fork.sh");
        const forks = ["1", "2", "3", "4"].map((n) => ({ ...forkAt(Number(n) % 2 ? "v1" : "v2"), makeVars: { FORKLIFT_TEST_PRUNE: n } }));
        const builds = () => out(builder, "find /var/lib/forklift-build -mindepth 2 -maxdepth 2 -name result.json -printf '%h\\n' | xargs -n1 basename | sort").split("\n");
        // (FORKLIFT_BUILD_FRESH=0: all of these are minutes old; see the next test for fresh ones)
        const runs = await Promise.all(forks.map((f) => sshAsync(builder, `export FORKLIFT_BUILD_FRESH=0; ${buildCommand(f, buildKey(f, script), false)}`, { input: script })));
        for (const [i, r] of runs.entries()) assert.equal(r.code, 0, `build ${i + 1}: ${r.stderr}`);
        // FORKLIFT_BUILD_KEEP's default: the 3 newest finished builds, and no more
        const kept = builds();
        assert.equal(kept.length, 3, `older builds are pruned after a build: ${kept.join(", ")}`);
        const last = forks.map((f) => buildKey(f, script)).filter((k) => kept.includes(k));
        assert.ok(last.length >= 2, "the builds just made are among those kept");
        assert.equal(out(builder, "ls /var/lib/forklift-build/mirrors | grep -c '\\.git$'"), "1", "one mirror of the one repository");
    });

    test("another stack's builds prune neither a build its check is about to fetch nor one just reused", () => {
        const script = readScript("build-fork.sh");
        const fork = (n: string) => ({ ...forkAt("v1"), makeVars: { FORKLIFT_TEST_FRESH: n } });
        const run = (n: string, env = "") => {
            const r = ssh(builder, `${env}${buildCommand(fork(n), buildKey(fork(n), script), false)}`, { input: script });
            assert.equal(r.code, 0, r.stderr);
            return r;
        };
        const has = (n: string) => on(builder, `test -f /var/lib/forklift-build/${buildKey(fork(n), script)}/result.json`).code === 0;
        // stack A builds; before its check fetches the artifact, another stack builds three times
        run("a");
        for (const n of ["b", "c", "d"]) run(n);
        assert.ok(has("a"), "a build made a moment ago stays, past FORKLIFT_BUILD_KEEP");
        // older than FORKLIFT_BUILD_FRESH, it goes at the next prune, unless it was reused since
        out(builder, `touch -d '2 hours ago' /var/lib/forklift-build/${buildKey(fork("a"), script)}/result.json /var/lib/forklift-build/${buildKey(fork("b"), script)}/result.json`);
        assert.match(run("a").stderr, /reusing the finished build/);
        run("e");
        assert.ok(has("a"), "a reused build counts as new");
        assert.ok(!has("b"), "an old build beyond FORKLIFT_BUILD_KEEP goes");
    });

    test("a running build shows its phase and the latest line of its log, not only its start and end", () => {
        const script = readScript("build-fork.sh");
        const f = { ...forkAt("v2"), makeVars: { FORKLIFT_TEST_PROGRESS: "1" } };
        // (a progress line every second instead of every 10: the fixture builds in seconds)
        const r = ssh(builder, `export FORKLIFT_BUILD_PROGRESS=1; ${buildCommand(f, buildKey(f, script), false)}`, { input: script });
        assert.equal(r.code, 0, r.stderr);
        const progress = r.stderr.split("\n").filter((l) => /^\[forklift build\] \d+m\d+s /.test(l));
        assert.ok(progress.some((l) => /^\[forklift build\] \d+m\d+s make static: \S/.test(l)), `a line names the phase and what the log says:\n${r.stderr}`);
        assert.equal(new Set(progress.map((l) => l.replace(/^\S+ \S+ \S+ /, ""))).size, progress.length, "a line only when it changed");
    });

    test("build failures name the cause and show the log tail", () => {
        const missing = build("no-such-ref");
        assert.notEqual(missing.code, 0);
        assert.match(missing.stderr, /ref 'no-such-ref' not found/);
        const broken = build("broken");
        assert.notEqual(broken.code, 0);
        assert.match(broken.stderr, /last lines of .*build\.log/);
        assert.match(broken.stderr, /undefined: timeoutFromFork/);
    });

    test("install: socket activation, the artifact's dockerd, docker run; a rerun changes nothing", async () => {
        const a = await artifact("v1");
        plainBeforeFirstInstall = traceSnapshot(plain);
        const r = install(plain, a);
        assert.equal(r.code, 0, r.stderr);
        assert.equal(parseHostStatus(r.stdout).changed, true);
        assert.equal(out(plain, "stat -c %a:%U:%G /run/docker.sock"), "660:root:docker");
        assert.equal(out(plain, "readlink /usr/bin/dockerd"), "/opt/forklift/current/dockerd");
        assert.equal(on(plain, "test -f /var/tmp/forklift-docker-*.tgz").code, 1, "staged artifact removed");

        // socket activation: with the service stopped, the first API call starts dockerd
        out(plain, "systemctl stop docker.service && systemctl is-active docker.socket");
        assert.equal(on(plain, "systemctl is-active docker.service").stdout.trim(), "inactive");
        assert.match(out(plain, "docker version --format '{{.Server.Version}}'"), /^\d+\./);
        assert.equal(out(plain, "systemctl is-active docker.service"), "active");
        const pid = dockerdPid(plain);
        assert.equal(sha256Of(plain, `/proc/${pid}/exe`), sha256Of(plain, "/opt/forklift/current/dockerd"));
        const tarDockerd = spawnSync("bash", ["-c", `tar -xzOf ${a.local} docker/dockerd | sha256sum | cut -d' ' -f1`], { encoding: "utf8" }).stdout.trim();
        assert.equal(sha256Of(plain, `/proc/${pid}/exe`), tarDockerd, "running dockerd is the artifact's");

        out(plain, `docker import ${HOST_BUSYBOX_TARBALL} busybox:local >/dev/null`);
        assert.equal(out(plain, "docker run --rm busybox:local /bin/busybox echo hello-from-fork"), "hello-from-fork");

        const again = install(plain, a);
        assert.equal(again.code, 0, again.stderr);
        assert.equal(parseHostStatus(again.stdout).changed, false);
        assert.match(again.stderr, /nothing to do/);
        assert.equal(dockerdPid(plain), pid, "no restart on an unchanged install");
    });

    test("upgrade keeps a live-restore container running with the same PID", async () => {
        const v2 = await artifact("v2");
        out(plain, "docker run -d --name keeper busybox:local /bin/busybox sleep 100000 >/dev/null");
        const before = out(plain, "docker inspect -f '{{.State.Pid}}' keeper");
        const oldDockerd = dockerdPid(plain);
        const r = install(plain, v2);
        assert.equal(r.code, 0, r.stderr);
        assert.equal(parseHostStatus(r.stdout).sha256, v2.sha256);
        assert.notEqual(dockerdPid(plain), oldDockerd, "dockerd was restarted");
        assert.equal(out(plain, "readlink /opt/forklift/current"), `/opt/forklift/releases/${v2.sha256}`);
        assert.equal(out(plain, "docker inspect -f '{{.State.Pid}}' keeper"), before);
        assert.equal(out(plain, "docker inspect -f '{{.State.Running}}' keeper"), "true");
    });

    test("a release whose dockerd cannot start is rolled back, containers untouched", async () => {
        const v2 = await artifact("v2");
        const bad = await artifact("bad-daemon");
        const keeper = out(plain, "docker inspect -f '{{.State.Pid}}' keeper");
        const r = install(plain, bad);
        assert.notEqual(r.code, 0);
        assert.match(r.stderr, /\[forklift plain\] ERROR: new release [0-9a-f]{64} failed/);
        assert.match(r.stderr, new RegExp(`Rolled back to release ${v2.sha256}; Docker is answering`));
        assert.equal(out(plain, "readlink /opt/forklift/current"), `/opt/forklift/releases/${v2.sha256}`);
        assert.match(out(plain, "docker version --format '{{.Server.Version}}'"), /^\d+\./);
        assert.equal(out(plain, "docker inspect -f '{{.State.Pid}}' keeper"), keeper);
        assert.equal(on(plain, `test -d /opt/forklift/releases/${bad.sha256}`).code, 1, "failed release removed");
    });

    test("a corrupted artifact, or none, is refused as it arrives and nothing changes", async () => {
        const v1 = await artifact("v1");
        const current = out(plain, "readlink /opt/forklift/current");
        const pid = dockerdPid(plain);
        // v1 is kept unpacked from before the upgrade: without it, the host must read a copy
        out(plain, `rm -rf /opt/forklift/releases/${v1.sha256}`);
        // a local cache whose copy went bad on its disk
        const badCache = mkdtempSync(path.join(tmpdir(), "forklift-cache-"));
        const bad = Buffer.from(readFileSync(v1.local));
        bad[bad.length >> 1] ^= 0xff;
        writeFileSync(path.join(badCache, `${v1.sha256}.tgz`), bad);
        const r = install(plain, v1, badCache);
        assert.notEqual(r.code, 0);
        assert.match(r.stderr, /the artifact that arrived has sha256 [0-9a-f]{64}, expected [0-9a-f]{64} \(corrupted on the way, or not the build's\?\); nothing was changed/);
        // neither an empty cache nor the build host has it (its builds gone)
        const emptyCache = mkdtempSync(path.join(tmpdir(), "forklift-cache-"));
        const none = install(plain, { ...v1, artifact: "/var/lib/forklift-build/gone.tgz" }, emptyCache);
        assert.notEqual(none.code, 0);
        assert.match(none.stderr, /no artifact arrived, and release [0-9a-f]{64} is not unpacked here; nothing was changed/);
        assert.match(none.stderr, /plain: it needs the release and could not copy \/var\/lib\/forklift-build\/gone\.tgz from the build host builder/);
        rmSync(badCache, { recursive: true, force: true });
        rmSync(emptyCache, { recursive: true, force: true });
        assert.equal(out(plain, "readlink /opt/forklift/current"), current);
        assert.equal(dockerdPid(plain), pid);
        assert.equal(out(plain, "ls /var/tmp | grep -c '^forklift-docker-' || true"), "0", "no copy is left staged");
        assert.equal(on(plain, `test -e /opt/forklift/releases/${v1.sha256}`).code, 1);
    });

    test("an install whose SSH session drops during the copy changes nothing and holds no lock", async () => {
        const v1 = await artifact("v1");
        const current = out(plain, "readlink /opt/forklift/current");
        const pid = dockerdPid(plain);
        // the script and half the tgz, then the ssh client is killed
        const half = await new Promise<{ code: number | null; stderr: string }>((resolve, reject) => {
            const child = spawn("ssh", [...sshOptions(plain), "-p", String(plain.port), `${plain.user}@${plain.address}`, installCmd(plain, v1)]);
            let stderr = "";
            child.stderr.on("data", (d: Buffer) => (stderr += d.toString("utf8")));
            child.on("error", reject);
            child.on("close", (code) => resolve({ code, stderr }));
            child.stdin.on("error", () => undefined);
            const tgz = readFileSync(v1.local);
            // what the local install sends (the script, the "tgz" header, then the tgz), cut half-way
            child.stdin.write(Buffer.concat([hostScript(), Buffer.from("tgz\n"), tgz.subarray(0, tgz.length >> 1)]), () => setTimeout(() => child.kill("SIGKILL"), 500));
        });
        assert.notEqual(half.code, 0);
        // the host sees the end of its stdin and gives up by itself
        let left = "";
        for (let i = 0; i < 50; i++) {
            left = out(plain, "pgrep -f 'forklift\\..*\\.sh install' || true; ls /var/tmp | grep '^forklift-docker-' || true");
            if (!left) break;
            await new Promise((r) => setTimeout(r, 200));
        }
        assert.equal(left, "", "no install left running and no partial copy staged");
        assert.equal(out(plain, "readlink /opt/forklift/current"), current);
        assert.equal(dockerdPid(plain), pid);
        assert.equal(on(plain, `test -e /opt/forklift/releases/${v1.sha256}`).code, 1);
        assert.equal(on(plain, "flock -n /run/lock/forklift.lock true").code, 0, "the lock is free for the next run");
    });

    test("an install whose SSH session drops still completes, never half-way", async () => {
        const v1 = await artifact("v1");
        // cut right after the switch of the links, before the restart and the verify
        const cut = await installCutAt(plain, v1, /switched to release/);
        assert.ok(cut.cut, `the session was cut while the install ran:\n${cut.stderr}`);
        assert.notEqual(cut.code, 0, "the session was cut while the install ran");
        let status = "";
        for (let i = 0; i < 90 && !status.includes(v1.sha256); i++) {
            await new Promise((r) => setTimeout(r, 1000));
            const s = on(plain, "flock -n /run/lock/forklift.lock true && cat /var/lib/forklift/installed");
            if (s.code === 0) status = s.stdout;
        }
        assert.match(status, new RegExp(`sha256=${v1.sha256}`), "the install finished on its own");
        assert.equal(out(plain, "readlink /opt/forklift/current"), `/opt/forklift/releases/${v1.sha256}`);
        assert.equal(sha256Of(plain, `/proc/${dockerdPid(plain)}/exe`), sha256Of(plain, "/opt/forklift/current/dockerd"));
        assert.equal(out(plain, "docker inspect -f '{{.State.Running}}' keeper"), "true");
    });

    test("a docker.socket that systemd fails to start once is tried again, not blamed on the release", async () => {
        const v2 = await artifact("v2");
        out(plain, `rm -rf /opt/forklift/releases/${v2.sha256}`);
        // the socket's setup fails for a second after its first try, as systemd's own 219/CGROUP
        // does on busy hosts; forklift tries once more 2 s later
        const dropIn = "/etc/systemd/system/docker.socket.d/forklift-test-fail-once.conf";
        const pre = "/usr/local/sbin/forklift-test-fail-once";
        const failing = ["#!/bin/sh", "f=/run/forklift-test-once", "[ -e $f ] || touch $f", "awk -v now=$(date +%s.%N) -v t0=$(stat -c %.9Y $f) 'BEGIN { exit !(now - t0 >= 1) }'", ""].join("\n");
        assert.equal(ssh(plain, `cat > ${pre} && chmod +x ${pre}`, { input: failing }).code, 0);
        out(plain, `mkdir -p ${path.dirname(dropIn)} && printf '[Socket]\\nExecStartPre=${pre}\\n' > ${dropIn} && rm -f /run/forklift-test-once && systemctl daemon-reload`);
        try {
            const r = install(plain, v2);
            assert.equal(r.code, 0, r.stderr);
            assert.match(r.stderr, /WARN: systemd could not start docker\.socket or spawn dockerd \(socket: exit-code, dockerd not started\); trying once more/);
            assert.equal(parseHostStatus(r.stdout).sha256, v2.sha256);
            assert.equal(out(plain, "readlink /opt/forklift/current"), `/opt/forklift/releases/${v2.sha256}`, "no rollback");
            assert.equal(sha256Of(plain, `/proc/${dockerdPid(plain)}/exe`), sha256Of(plain, "/opt/forklift/current/dockerd"));
        } finally {
            out(plain, `rm -rf ${path.dirname(dropIn)} ${pre} /run/forklift-test-once && systemctl daemon-reload`);
        }
    });

    test("uninstall leaves a host without Docker as it was", () => {
        const other = uninstall(plain, owner(plain, "renamed-entry"));
        assert.equal(other.code, 0, other.stderr);
        assert.match(other.stderr, /not uninstalling: the release here now belongs to forklift\/test\/plain/);
        assert.equal(on(plain, "test -d /opt/forklift").code, 0, "another resource's delete left the install alone");
        const r = uninstall(plain);
        assert.equal(r.code, 0, r.stderr);
        for (const p of ["/opt/forklift", "/var/lib/forklift", "/usr/local/lib/forklift", "/etc/systemd/system/docker.service", "/etc/systemd/system/docker.socket", "/etc/systemd/system/containerd.service", "/etc/docker/daemon.json"]) {
            assert.equal(on(plain, `test -e ${p}`).code, 1, `${p} is gone`);
        }
        // the image's own Debian binaries are back in /usr/bin, not forklift's links
        assert.equal(on(plain, "test -L /usr/bin/docker").code, 1);
        assert.equal(out(plain, "dpkg -V docker.io containerd 2>&1 | grep -c . || true"), "0", "Debian's files are intact");
        assert.equal(on(plain, "systemctl is-active docker.socket").stdout.trim(), "inactive", "Docker was off before, is off again");
        const again = uninstall(plain);
        assert.equal(again.code, 0);
        assert.match(again.stderr, /nothing installed/);
    });

    test("uninstall leaves no trace of the daemon on a host where Docker never ran: files, mounts, links, iptables, group as before", () => {
        assert.ok(plainBeforeFirstInstall, "the install test recorded the host before the first install");
        const before = plainBeforeFirstInstall.split("\n");
        const after = traceSnapshot(plain).split("\n");
        const left = after.filter((l) => !before.includes(l));
        const lost = before.filter((l) => !after.includes(l));
        assert.deepEqual({ left, lost }, { left: [], lost: [] }, "the host differs from before the first install");
        assert.equal(out(plain, "ls -l /proc/[0-9]*/exe 2>/dev/null | grep -c /opt/forklift || true"), "0", "no process of the release runs on");
    });

    test("on a host with Debian's Docker: a failed first install puts Debian's Docker back", async () => {
        const debianVersion = out(distro, "docker version --format '{{.Server.Version}}'");
        const bad = await artifact("bad-daemon");
        const r = install(distro, bad);
        assert.notEqual(r.code, 0);
        assert.match(r.stderr, /\[forklift distro\] ERROR: new release [0-9a-f]{64} failed: .*Restored what was on the host before forklift/s);
        assert.match(r.stderr, /Daemon log:/);
        assert.equal(out(distro, "systemctl show -p FragmentPath --value docker.service"), "/lib/systemd/system/docker.service");
        assert.equal(out(distro, "docker version --format '{{.Server.Version}}'"), debianVersion);
        assert.equal(on(distro, "test -e /opt/forklift").code, 1);
    });

    test("on a host with Debian's Docker: install takes over without stopping containers, uninstall brings Debian's back", async () => {
        const debianVersion = out(distro, "docker version --format '{{.Server.Version}}'");
        out(distro, `docker import ${HOST_BUSYBOX_TARBALL} busybox:local >/dev/null`);
        out(distro, "docker run -d --name keeper busybox:local /bin/busybox sleep 100000 >/dev/null");
        out(distro, "docker run -d --restart always --name restarter busybox:local /bin/busybox sleep 100000 >/dev/null");
        out(distro, "docker run -d --restart on-failure --name onfailure busybox:local /bin/busybox sleep 100000 >/dev/null");
        out(distro, "docker run -d --restart unless-stopped --name unless busybox:local /bin/busybox sleep 100000 >/dev/null");
        const keeper = out(distro, "docker inspect -f '{{.State.Pid}}' keeper");
        const v1 = await artifact("v1");
        const r = install(distro, v1);
        assert.equal(r.code, 0, r.stderr);
        assert.equal(out(distro, "systemctl show -p FragmentPath --value docker.service"), "/etc/systemd/system/docker.service");
        assert.equal(sha256Of(distro, `/proc/${dockerdPid(distro)}/exe`), sha256Of(distro, "/opt/forklift/current/dockerd"));
        assert.equal(out(distro, "docker inspect -f '{{.State.Pid}}' keeper"), keeper, "the distro daemon's container survived the takeover");
        // the package's files are diverted, not overwritten: an apt upgrade lands beside forklift's links
        assert.match(out(distro, "dpkg-divert --list /usr/bin/docker"), /^local diversion of \/usr\/bin\/docker to \/usr\/bin\/docker\.forklift-distrib$/);
        assert.equal(out(distro, "readlink /usr/bin/docker"), "/opt/forklift/current/docker");
        const u = uninstall(distro);
        assert.equal(u.code, 0, u.stderr);
        assert.equal(out(distro, "systemctl show -p FragmentPath --value docker.service"), "/lib/systemd/system/docker.service");
        assert.equal(out(distro, "docker version --format '{{.Server.Version}}'"), debianVersion);
        assert.equal(out(distro, "systemctl is-enabled docker.socket"), "enabled");
        assert.equal(out(distro, "dpkg -V docker.io containerd 2>&1 | grep -c . || true"), "0", "Debian's files are intact");
        assert.equal(out(distro, "dpkg-divert --list | grep -c forklift || true"), "0", "no diversion left");
        // Debian's daemon runs without live-restore: it stops what forklift's daemon left running,
        // and starts again only the containers whose restart policy says so (README)
        const running = (name: string) => out(distro, `docker inspect -f '{{.State.Running}}' ${name}`);
        for (let i = 0; i < 20 && (running("restarter") !== "true" || running("onfailure") !== "true"); i++) await new Promise((r) => setTimeout(r, 500));
        assert.equal(running("restarter"), "true", "--restart always: started again");
        assert.equal(running("onfailure"), "true", "--restart on-failure: started again (it was killed)");
        assert.equal(running("keeper"), "false", "no restart policy: stopped");
        assert.equal(running("unless"), "false", "--restart unless-stopped: stopped too (Debian 12's Docker 20.10)");
    });

    test("on a host with Debian's Docker: an admin's dockerd and runc are the release's, not Debian's in /usr/sbin; uninstall gives them back", async () => {
        for (const bin of ["dockerd", "runc", "docker-proxy"]) {
            assert.equal(resolvedBinary(distro, bin), `/usr/sbin/${bin}`, `Debian ships ${bin} in /usr/sbin`);
        }
        const v1 = await artifact("v1");
        const release = `/opt/forklift/releases/${v1.sha256}`;
        const r = install(distro, v1);
        assert.equal(r.code, 0, r.stderr);
        for (const bin of ["dockerd", "runc", "docker-proxy", "docker", "containerd"]) {
            assert.equal(resolvedBinary(distro, bin), `${release}/${bin}`, `${bin} on root's PATH is the release's`);
        }
        // (the fixture packs Debian's own binaries: the resolved paths above are what tells them apart)
        for (const bin of ["dockerd", "runc"]) {
            assert.equal(out(distro, `${bin} --version`), out(distro, `${release}/${bin} --version`));
        }
        assert.match(out(distro, "dpkg-divert --list /usr/sbin/dockerd"), /^local diversion of \/usr\/sbin\/dockerd to \/usr\/sbin\/dockerd\.forklift-distrib$/);
        // (the host has the release unpacked and reads no tgz)
        const again = install(distro, v1);
        assert.equal(again.code, 0, again.stderr);
        assert.equal(parseHostStatus(again.stdout).changed, false, "a rerun changes nothing");

        const u = uninstall(distro);
        assert.equal(u.code, 0, u.stderr);
        assert.equal(out(distro, "dpkg -V docker.io runc containerd 2>&1 | grep -c . || true"), "0", "Debian's files are intact");
        assert.equal(out(distro, "dpkg-divert --list | grep -c forklift || true"), "0", "no diversion left");
        for (const bin of ["dockerd", "runc", "docker-proxy"]) {
            assert.equal(resolvedBinary(distro, bin), `/usr/sbin/${bin}`);
            assert.equal(on(distro, `test -L /usr/sbin/${bin}`).code, 1, `/usr/sbin/${bin} is Debian's file again`);
        }
        // /var/lib/docker held the distro daemon's data before: it keeps its image and containers
        assert.equal(out(distro, "docker image inspect -f '{{.Id}}' busybox:local >/dev/null && echo kept"), "kept");
        assert.equal(out(distro, "docker inspect -f '{{.Name}}' keeper"), "/keeper");
    });

    test("destroy on an existing build host removes the builds and bootstrap's traces, once no other stack uses it", () => {
        assert.equal(on(builder, "test -d /var/lib/forklift-build").code, 0);
        const first = ssh(builder, builderCleanupCommand(false, STACKS[1]));
        assert.equal(first.code, 0, first.stderr);
        assert.match(first.stderr, /build host left as it is: 1 other stack\(s\) still build here/);
        assert.equal(on(builder, "test -d /var/lib/forklift-build").code, 0, "the other stack's builds stay");
        // a build run of the last stack holds the build root's lock for 3 s: the cleanup waits for it
        out(builder, "rm -f /run/holder-ready; systemd-run -q --unit forklift-test-holder flock /var/lib/forklift-build/.lock sh -c 'touch /run/holder-ready; sleep 3'; while [ ! -e /run/holder-ready ]; do sleep 0.05; done");
        const started = Date.now();
        const r = ssh(builder, builderCleanupCommand(false, STACKS[0]));
        assert.equal(r.code, 0, r.stderr);
        assert.ok(Date.now() - started >= 2000, `the cleanup waited for the build root's lock (${Date.now() - started} ms)`);
        assert.match(r.stderr, /build host cleaned up/);
        for (const p of ["/var/lib/forklift-build", "/var/lib/forklift-bootstrap"]) {
            assert.equal(on(builder, `test -e ${p}`).code, 1, `${p} is gone`);
        }
        assert.equal(out(builder, "systemctl list-units --all --no-legend 'forklift-build-*' | wc -l"), "0", "no build unit left");
        assert.equal(out(builder, "dpkg-query -W -f='${Status}' docker.io"), "install ok installed", "packages that were there before stay");
        assert.match(ssh(builder, builderCleanupCommand(false)).stdout, /was not bootstrapped/);
    });
});

