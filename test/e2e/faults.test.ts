/**
 * Faults through the real engine, as a user meets them (the README's "Failure modes and recovery"
 * table): a build that fails, a fork whose daemon does not start, a corrupt cached artifact, a
 * host that goes down between batches, a host cut off in the middle of its install, `pulumi up`
 * killed mid-rollout, a build host that lost its builds seen from a fresh checkout, a second stack
 * on the same host, and a host that is down during `pulumi destroy`. Each case checks the hosts
 * over SSH afterwards and that the documented recovery converges. Same lab and plugin rule as
 * pulumi-up.test.ts; `npm run test:e2e`.
 */
import { after, before, describe, test } from "node:test";
import * as assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { CliResult, Lab, LabHost, PulumiCli, bootLab, configureStack, ensureBusybox, findPulumi, forkSettings, note, projectCheckout, setConfig, setHost, sh } from "../../testbed/lab";
import { repoRoot, stopHosts } from "../../testbed/testbed";
import { assertOnRelease, descendants, releaseOf, runningDockerd, waitUntil } from "./checks";

let lab: Lab;
let cli: PulumiCli;
let work: string;
let a: LabHost, b: LabHost, c: LabHost;
/** The artifact's sha256 for each fork ref, as rolled out. */
const shas: Record<string, string> = {};
const project = () => path.join(work, "project");

/** How many SSH logins the host's sshd accepted so far (this query's own included). */
const logins = (h: LabHost) => Number(sh(h, "journalctl -u ssh.service -o cat --no-pager | grep -c '^Accepted' || true"));
/** Runs a command on HOST without SSH (through the test bed), for when its SSH is cut. */
const onHost = (h: LabHost, command: string) =>
    spawnSync(path.join(repoRoot(), "testbed", "host.sh"), ["exec", h.name, "bash", "-c", command], { encoding: "utf8" });
/**
 * Makes HOST drop SSH both ways, new and established sessions alike (as if it were down), until the
 * returned function is called. Both ways: with only what arrives dropped, what the host still sends
 * on an open session (an install's last lines and status) would arrive, and an install cut off near
 * its end would look whole.
 */
function takeDown(h: LabHost): () => void {
    const rules = [
        ["INPUT", "--dport"],
        ["OUTPUT", "--sport"],
    ];
    const rule = (op: string, [chain, port]: string[]) =>
        execFileSync(path.join(repoRoot(), "testbed", "host.sh"), ["exec", h.name, "iptables", op, chain, "-p", "tcp", port, "22", "-j", "DROP"]);
    for (const r of rules) rule("-I", r);
    return () => rules.forEach((r) => rule("-D", r));
}
/**
 * Whether an install of forklift-host.sh runs on HOST and holds its lock (the check's staging
 * takes the lock too: that is not an install).
 */
const installing = (h: LabHost) =>
    onHost(h, "test -e /run/lock/forklift.lock && ! flock -n /run/lock/forklift.lock true && pgrep -f '^bash /tmp/forklift\\.[^ ]*\\.sh install' >/dev/null").status === 0;
/**
 * Runs `pulumi up --yes` and, once the install on WHILE_INSTALLING runs, takes DOWN off the network until the up
 * has ended and any install on DOWN has ended on its own.
 */
async function upCuttingOff(whileInstalling: LabHost, down: LabHost): Promise<CliResult> {
    const run = cli.start(["up", "--yes"]);
    let bringBack: (() => void) | undefined;
    try {
        await waitUntil(`${whileInstalling.name}'s install runs`, () => installing(whileInstalling));
        bringBack = takeDown(down);
        const r = await run.done;
        await waitUntil(`${down.name}'s install ended on its own`, () => !installing(down), 300);
        return r;
    } finally {
        bringBack?.();
    }
}
/** The main PID of docker.service on each host. */
const pids = (...hs: LabHost[]) => hs.map((h) => sh(h, "systemctl show -p MainPID --value docker.service"));
/** A host is wholly on one release: `current`, the install record and the running dockerd agree, and Docker answers. */
function assertWhole(h: LabHost): string {
    const sha = releaseOf(h);
    assert.match(sha, /^[0-9a-f]{64}$/, `${h.name} is on a release`);
    assert.equal(sh(h, "sed -n 's/^sha256=//p' /var/lib/forklift/installed"), sha, `${h.name}: the install record names the current release`);
    assert.equal(runningDockerd(h).sha, sh(h, `sha256sum /opt/forklift/releases/${sha}/dockerd | cut -d' ' -f1`), `${h.name}: the running dockerd is the current release's`);
    assert.equal(sh(h, "docker version --format '{{.Server.Os}}'"), "linux", `${h.name}: Docker answers`);
    return sha;
}

describe("faults through pulumi up and destroy, on real hosts", { timeout: 45 * 60_000 }, () => {
    before(async () => {
        findPulumi();
        work = fs.mkdtempSync(path.join(os.tmpdir(), "forklift-faults-"));
        lab = await bootLab({
            builder: { name: "flt-builder", index: 111 },
            fleet: [
                { name: "flt-a", index: 112 },
                { name: "flt-b", index: 113 },
                { name: "flt-c", index: 114, debianDocker: true },
            ],
        });
        [a, b, c] = lab.fleet;
        cli = new PulumiCli(projectCheckout(project()), path.join(work, "state"), "faults-passphrase");
        await configureStack(cli, "faults", lab, { recipe: "docker-ce", ref: "v1" });
        const r = await cli.ok(["up", "--yes"]);
        note(`first up: ${r.seconds.toFixed(1)} s`);
        shas.v1 = (await cli.outputs()).artifact.sha256;
    });

    after(async () => {
        lab?.stopForks();
        await stopHosts();
        if (work) fs.rmSync(work, { recursive: true, force: true });
    });

    test("the build fails: pulumi up shows the end of the build log and changes no fleet host (they are only prechecked); fixed, up converges", async () => {
        const v1 = (await cli.outputs()).artifact.sha256;
        await setConfig(cli, { forkRef: "broken" });
        const before = [a, b, c].map(logins);
        const r = await cli.run(["up", "--yes"]);
        note(`up with a broken ref: exit ${r.code} after ${r.seconds.toFixed(1)} s`);
        assert.notEqual(r.code, 0);
        const text = r.stdout + r.stderr;
        assert.match(text, /build forklift-build-[0-9a-f]{16} failed/);
        assert.match(text, /compile error: swarmkit\/manager\.go:42: undefined: timeoutFromFork/, "the build log's last lines");
        assert.doesNotMatch(text, /forklift-(check|[abc]-install)\s+(creating|updating)/, "neither the check after the build nor any fleet host's install started");
        assert.match(text, /forklift-precheck\s+updat/, "the existing hosts were prechecked while the fork built");
        assert.deepEqual([a, b, c].map(logins), before.map((n) => n + 2), "no fleet host saw a login but the precheck's and this query's own");
        for (const h of [a, b, c]) assert.equal(releaseOf(h), v1, `${h.name} kept its release`);

        await setConfig(cli, { forkRef: "v2" });
        await cli.ok(["up", "--yes"]);
        const out = await cli.outputs();
        shas.v2 = out.artifact.sha256;
        for (const h of [a, b, c]) assertOnRelease(project(), h, out.artifact.sha256);
    });

    test("the new daemon does not start: the first host rolls back by itself, containers untouched, later batches do not start", async () => {
        const v2 = (await cli.outputs()).artifact.sha256;
        ensureBusybox(a);
        sh(a, "docker run -d --name live busybox:local sleep 1000000 >/dev/null");
        const livePid = sh(a, "docker inspect -f '{{.State.Pid}}' live");
        await setConfig(cli, { forkRef: "bad-daemon" });
        const r = await cli.run(["up", "--yes"]);
        note(`up with a daemon that does not start: exit ${r.code} after ${r.seconds.toFixed(1)} s`);
        assert.notEqual(r.code, 0);
        const text = r.stdout + r.stderr;
        assert.match(text, /\[forklift a\] ERROR: new release [0-9a-f]{64} failed: .*Rolled back to release [0-9a-f]{64}; Docker is answering\. Daemon log:/s);
        assert.match(text, /dockerd: fork patch broke startup/, "the daemon's own last log lines");
        assertOnRelease(project(), a, v2);
        assert.equal(sh(a, "docker inspect -f '{{.State.Running}} {{.State.Pid}}' live"), `true ${livePid}`, "a's container lived through it");
        for (const h of [b, c]) assert.equal(releaseOf(h), v2, `${h.name}: its batch did not start`);

        await setConfig(cli, { forkRef: "v1" });
        await cli.ok(["up", "--yes"]);
        const out = await cli.outputs();
        for (const h of [a, b, c]) assertOnRelease(project(), h, out.artifact.sha256);
        assert.equal(sh(a, "docker inspect -f '{{.State.Running}}' live"), "true");
    });

    test("an artifact corrupted in the local cache: the host refuses it as it arrives, nothing changes, the bad entry is dropped; up again converges", async () => {
        assert.equal(releaseOf(a), shas.v1);
        const [pidA] = pids(a);
        // a no longer keeps v2 unpacked, so it needs a copy; the cached tgz it gets has bytes flipped
        sh(a, `rm -rf /opt/forklift/releases/${shas.v2}`);
        const cached = path.join(project(), ".forklift", "artifacts", `${shas.v2}.tgz`);
        const fd = fs.openSync(cached, "r+");
        fs.writeSync(fd, "FORKLIFT", 1000);
        fs.closeSync(fd);
        await setConfig(cli, { forkRef: "v2" });
        const r = await cli.run(["up", "--yes"]);
        note(`up with a corrupt cached artifact: exit ${r.code} after ${r.seconds.toFixed(1)} s`);
        assert.notEqual(r.code, 0);
        const text = r.stdout + r.stderr;
        // (the check stages the release on every host before any changes: each refuses the copy)
        assert.match(text, /a \(10\.78\.112\.2:22\): the artifact that arrived has sha256 [0-9a-f]{64}, expected [0-9a-f]{64} \(corrupted on the way, or not the build's\?\); nothing was changed/);
        assert.match(text, /the cached artifact \S+ was corrupt; it is removed: run `pulumi up` again to fetch it anew/);
        assert.equal(fs.existsSync(cached), false, "the bad cache entry is gone");
        assert.equal(releaseOf(a), shas.v1, "a kept its release");
        assert.deepEqual(pids(a), [pidA], "a's Docker was not restarted");
        assert.equal(sh(a, "ls /var/tmp | grep -c '^forklift-docker-' || true"), "0", "no copy left staged on a");
        for (const h of [b, c]) assert.equal(releaseOf(h), shas.v1, `${h.name}: its batch did not start`);

        await cli.ok(["up", "--yes"]);
        for (const h of [a, b, c]) assertOnRelease(project(), h, shas.v2);
    });

    test("a host goes down after the check, between two batches: earlier batches keep the new release, later ones are untouched; back up, up converges", async () => {
        await setConfig(cli, { forkRef: "v1" });
        const r = await upCuttingOff(b, c);
        note(`up with c down after the check: exit ${r.code} after ${r.seconds.toFixed(1)} s`);
        assert.notEqual(r.code, 0);
        assert.match(r.stdout + r.stderr, /c \(10\.78\.114\.2:22\): unreachable; check that it is up/);
        for (const h of [a, b]) assertOnRelease(project(), h, shas.v1);
        assert.equal(releaseOf(c), shas.v2, "c kept its release");

        const done = pids(a, b);
        await cli.ok(["up", "--yes"]);
        for (const h of [a, b, c]) assertOnRelease(project(), h, shas.v1);
        assert.deepEqual(pids(a, b), done, "a and b were not restarted again");
    });

    test("a host cut off in the middle of its install: it ends wholly on one release; up converges", async () => {
        await setConfig(cli, { forkRef: "v2" });
        const r = await upCuttingOff(a, a);
        note(`up with a cut off mid-install: exit ${r.code} after ${r.seconds.toFixed(1)} s`);
        assert.notEqual(r.code, 0);
        assert.match(r.stdout + r.stderr, /a \(10\.78\.112\.2:22\): unreachable/);
        const landed = assertWhole(a);
        assert.ok([shas.v1, shas.v2].includes(landed), "a is on the old or the new release");
        note(`a landed on ${landed === shas.v2 ? "the new" : "the old"} release`);
        for (const h of [b, c]) assert.equal(releaseOf(h), shas.v1, `${h.name}: its batch did not start`);

        const [pidA] = pids(a);
        await cli.ok(["up", "--yes"]);
        for (const h of [a, b, c]) assertOnRelease(project(), h, shas.v2);
        if (landed === shas.v2) assert.deepEqual(pids(a), [pidA], "a, already on the new release, was not restarted");
    });

    test("pulumi up killed mid-rollout: cancel, refresh --clear-pending-creates and up converge without reinstalling finished hosts", async () => {
        await setConfig(cli, { forkRef: "v1" });
        const run = cli.start(["up", "--yes"]);
        await waitUntil("b's install runs", () => installing(b));
        // as a crash of the machine would: the engine and every plugin it started (they run in
        // process groups of their own) at once
        for (const pid of [run.pid, ...descendants(run.pid)]) process.kill(pid, "SIGKILL");
        const killed = await run.done;
        note(`pulumi up killed after ${killed.seconds.toFixed(1)} s`);
        await waitUntil("b's install ended on its own", () => !installing(b), 300);
        assertOnRelease(project(), a, shas.v1);
        const landedB = assertWhole(b);
        assert.equal(releaseOf(c), shas.v2, "c's batch had not started");
        const [pidA, pidB] = pids(a, b);

        const locked = await cli.run(["up", "--yes"]);
        assert.notEqual(locked.code, 0);
        assert.match(locked.stdout + locked.stderr, /the stack is currently locked by 1 lock\(s\)\. Either wait for the other process\(es\) to end or delete the lock file with `pulumi cancel`/);
        await cli.ok(["cancel", "--yes"]);
        await cli.ok(["refresh", "--clear-pending-creates", "--yes"]);
        await cli.ok(["up", "--yes"]);
        for (const h of [a, b, c]) assertOnRelease(project(), h, shas.v1);
        assert.deepEqual(pids(a), [pidA], "a, done before the kill, was not reinstalled");
        if (landedB === shas.v1) assert.deepEqual(pids(b), [pidB], "b, which finished on its own, was not restarted");
    });

    test("the build host lost its builds, seen from a fresh checkout: preview works, nothing is restarted, a rebuild is reproducible", async () => {
        sh(lab.builder, "rm -rf /var/lib/forklift-build");
        const fresh = new PulumiCli(projectCheckout(path.join(work, "fresh")), path.join(work, "state"), "faults-passphrase");
        fs.copyFileSync(path.join(project(), "Pulumi.faults.yaml"), path.join(fresh.projectDir, "Pulumi.faults.yaml"));
        await fresh.ok(["stack", "select", "faults"]);
        const running = pids(a, b, c);
        await fresh.ok(["preview", "--expect-no-changes"]);
        await fresh.ok(["up", "--yes"]);
        // a setting that runs every host's install again (and not the build): neither the new
        // cache nor the build host has the artifact, the hosts have the release unpacked and
        // need no copy
        await setConfig(fresh, { artifactCacheDir: ".forklift/elsewhere" });
        await fresh.ok(["up", "--yes"]);
        assert.deepEqual(pids(a, b, c), running, "no host was restarted");
        assert.equal(fs.existsSync(path.join(fresh.projectDir, ".forklift", "elsewhere", `${shas.v1}.tgz`)), false, "nothing could be fetched");
        // the documented rebuild: the same inputs build the same artifact, so no host changes
        const rebuild = spawnSync("bash", ["-c", `pulumi up --yes --replace "$(pulumi stack --show-urns | grep -o 'urn:pulumi:[^ ]*::forklift-fork-build$')"`], {
            cwd: fresh.projectDir,
            env: fresh.env,
            encoding: "utf8",
        });
        assert.equal(rebuild.status, 0, rebuild.stdout + rebuild.stderr);
        assert.match(rebuild.stdout, /forklift-fork-build/, "the build ran again");
        assert.equal((await fresh.outputs()).artifact.sha256, shas.v1, "the rebuild is byte-identical");
        assert.deepEqual(pids(a, b, c), running, "no host was restarted");
        fs.copyFileSync(path.join(fresh.projectDir, "Pulumi.faults.yaml"), path.join(project(), "Pulumi.faults.yaml"));
        await cli.ok(["preview", "--expect-no-changes"]);
    });

    test("a second stack of the same name on another backend is refused on a host the first owns, naming it; nothing of the first is undone", async () => {
        const owner = (await cli.outputs()).stackIdentity;
        assert.match(owner, /^[0-9a-f]{16}$/);
        const other = new PulumiCli(projectCheckout(path.join(work, "other")), path.join(work, "other-state"), "other-passphrase");
        await other.ok(["stack", "init", "faults", "--secrets-provider", "passphrase"]);
        await setConfig(other, forkSettings(lab, { recipe: "docker-ce", ref: "v1" }));
        await setHost(other, "builderHost", { ...lab.builder, login: "root" });
        await setHost(other, "fleetHosts[0]", a);
        const [pidA] = pids(a);
        const r = await other.run(["up", "--yes"]);
        note(`the second stack's up: exit ${r.code} after ${r.seconds.toFixed(1)} s`);
        assert.notEqual(r.code, 0);
        assert.match(
            r.stdout + r.stderr,
            new RegExp(`a \\(10\\.78\\.112\\.2:22\\): this host is managed by another stack: forklift/faults \\(stack identity ${owner}\\); this stack is forklift/faults \\(stack identity (?!${owner})[0-9a-f]{16}\\)\\. Nothing was changed`),
        );
        assert.deepEqual(pids(a), [pidA], "a's Docker was not restarted");
        assert.equal(releaseOf(a), shas.v1);

        await other.ok(["destroy", "--yes"]);
        assert.equal(sh(lab.builder, "ls /var/lib/forklift-bootstrap/stacks"), owner, "the build host still serves the first stack");
        assert.equal(sh(lab.builder, "test -d /var/lib/forklift-build && echo kept"), "kept", "the first stack's builds stay");
        assert.deepEqual(pids(a), [pidA]);
        assert.equal(releaseOf(a), shas.v1);
        await cli.ok(["preview", "--expect-no-changes"]);
    });

    test("destroy with a host down: later batches are given back, the down host (and the batches it waits for) stay in the stack; back up, destroy finishes", async () => {
        const bringBack = takeDown(b);
        let r;
        try {
            r = await cli.run(["destroy", "--yes"]);
            note(`destroy with b down: exit ${r.code} after ${r.seconds.toFixed(1)} s`);
        } finally {
            bringBack();
        }
        assert.notEqual(r.code, 0);
        assert.match(r.stdout + r.stderr, /b \(10\.78\.113\.2:22\): unreachable; check that it is up/, "the error names the down host and its address");
        assert.equal(releaseOf(c), "", "c (a later batch) was given back");
        assert.equal(sh(c, "systemctl is-active docker.service"), "active", "Debian's Docker answers on c");
        assert.notEqual(releaseOf(b), "", "b still has its release");
        assert.notEqual(releaseOf(a), "", "a, which b's install depends on, is kept until b is gone");
        const left = (await cli.ok(["stack", "--show-urns"])).stdout;
        assert.match(left, /forklift-b-install/, "b's install stays in the stack");
        assert.doesNotMatch(left, /forklift-c-install/);

        await cli.ok(["destroy", "--yes"]);
        for (const h of [a, b]) assert.equal(releaseOf(h), "", `${h.name} was given back`);
        assert.doesNotMatch((await cli.ok(["stack", "--show-urns"])).stdout, /forklift-[ab]-install/);
    });
});
