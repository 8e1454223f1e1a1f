/**
 * The rollout (`main.ts rollout`, the check resource's command) on three real hosts, as the
 * program runs it: waves, a health check that fails on one host (rolled back, its containers kept,
 * nothing else touched), the error budget (the rollout goes on within it, stops past it), and the
 * soak between waves (the next wave starts only after it; a host that fails its health check after
 * it is rolled back, though its install had been committed; a run stopped during a soak leaves it
 * to the next), a health check that hangs, and a rollback that fails too.
 */
import { after, before, describe, test } from "node:test";
import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { Owner } from "../../lib/protocol/host";
import { WaveSize } from "../../lib/rollout";
import { checkedHost, checksJob, fleetHostJob, rolloutJob, swarmCheck } from "../../lib/protocol/local";
import { ArtifactSource } from "../../lib/protocol/jobs";
import { NO_SWARM, RELEASE_BINARIES, cachedSource, hostReleases, remoteOf, runLocal, runLocalAsync, runLocalStopped } from "../support/local";
import { HOST_BUSYBOX_TARBALL, TestHost, ssh, startHosts, stopHosts } from "../../testbed/testbed";

const OWNER: Owner = { stack: "forklift/rollout", stackId: "7e7e7e7e7e7e7e7e", host: "" };
/** Fails on a host where this file is. */
const HEALTH = "test ! -e /etc/forklift-test-unhealthy";
let hosts: TestHost[];
let work: string;
let rel: Record<"a" | "b" | "c", string>;

const remote = (h: TestHost) => remoteOf(h.name, h);
const source = (sha: string): ArtifactSource => cachedSource(sha, path.join(work, "cache"));
/** The rollout of SHA over every host, as the program renders it. */
const rollout = (sha: string, o: { waves?: WaveSize[]; maxFailures?: WaveSize; soakSeconds?: number; health?: boolean | { command: string; timeoutSeconds: number } } = {}) =>
    rolloutJob(
        checksJob(
            "check",
            false,
            hosts.map((h) => checkedHost(remote(h), { ...OWNER, host: h.name }, { sha256: sha, needKiB: 1024 })),
            swarmCheck({ batchSize: 1, waves: o.waves, allowTwoManagers: false, daemonJson: {}, fleetManagers: [], otherManagers: [], stackId: OWNER.stackId }),
            source(sha),
        ),
        hosts.map((h) =>
            fleetHostJob({
                host: remote(h),
                owner: { ...OWNER, host: h.name },
                release: { sha256: sha, version: `v-${sha.slice(0, 4)}`, binaries: RELEASE_BINARIES },
                installDir: "/usr/bin",
                daemonJson: {},
                source: source(sha),
                swarm: NO_SWARM,
                insecure: false,
                ...(o.health ? { healthCheck: o.health === true ? { command: HEALTH, timeoutSeconds: 20 } : o.health } : {}),
            }),
        ),
        { maxFailures: o.maxFailures ?? 0, soakSeconds: o.soakSeconds ?? 0 },
    );
const sh = (h: TestHost, cmd: string) => {
    const r = ssh(h, cmd);
    assert.equal(r.code, 0, `${h.name}: ${cmd}: ${r.stderr}`);
    return r.stdout.trim();
};
const releaseOf = (h: TestHost) => sh(h, "readlink /opt/forklift/current").replace(/^\/opt\/forklift\/releases\//, "");
/** The report the rollout printed on stdout (also when it failed). */
const reportOf = (stdout: string) => JSON.parse(stdout.trim().split("\n").pop()!).report as { host: string; step: number; started?: string; seconds: number; outcome: string; reason?: string; after: string }[];
const byHost = (report: ReturnType<typeof reportOf>) => Object.fromEntries(report.map((r) => [r.host, r]));

describe("the rollout on real hosts: waves, a health check, the error budget, the soak", { timeout: 20 * 60_000 }, () => {
    before(async () => {
        hosts = await startHosts(["ro-a", "ro-b", "ro-c"].map((name, i) => ({ name, index: 91 + i })));
        work = fs.mkdtempSync(path.join(os.tmpdir(), "forklift-rollout-"));
        fs.mkdirSync(path.join(work, "cache"));
        rel = hostReleases(hosts[0], path.join(work, "cache"), { a: "", b: "echo b > $d/docker/NOTE", c: "echo c > $d/docker/NOTE" });
        const first = runLocal("rollout", rollout(rel.a, { waves: ["100%"] }));
        assert.equal(first.code, 0, first.stderr);
        for (const h of hosts) {
            assert.equal(releaseOf(h), rel.a);
            sh(h, `docker image inspect busybox:local >/dev/null 2>&1 || docker import ${HOST_BUSYBOX_TARBALL} busybox:local >/dev/null`);
        }
    });

    after(async () => {
        await stopHosts();
        if (work) fs.rmSync(work, { recursive: true, force: true });
    });

    test("waves [1, 100%], a health check that fails on one host of the second wave, maxFailures 1: that host rolled back with its containers, the others updated, the rollout reported and failed", () => {
        const [a, b, c] = hosts;
        sh(b, "touch /etc/forklift-test-unhealthy; docker rm -f live >/dev/null 2>&1; docker run -d --name live busybox:local /bin/busybox sleep 1000000 >/dev/null");
        const pid = sh(b, "docker inspect -f '{{.State.Pid}}' live");
        try {
            const r = runLocal("rollout", rollout(rel.b, { waves: [1, "100%"], maxFailures: 1, health: true }));
            assert.equal(r.code, 1, "the rollout fails when a host failed");
            const report = byHost(reportOf(r.stdout));
            assert.deepEqual([report["ro-a"].step, report["ro-b"].step, report["ro-c"].step], [1, 2, 2], "a canary, then the rest");
            assert.equal(report["ro-a"].outcome, "updated");
            assert.equal(report["ro-c"].outcome, "updated", "the rollout went on: one failure is within the budget");
            assert.equal(report["ro-b"].outcome, "rolled back");
            assert.match(report["ro-b"].reason ?? "", /ro-b \(.*\): new release [0-9a-f]{64} failed: its health check failed \(exit 1\)/);
            assert.equal(report["ro-b"].after, `v-${rel.a.slice(0, 4)} ${rel.a.slice(0, 12)}`, "back on the release before");
            assert.match(r.stderr, /rollout: 2 updated, 1 rolled back \(maxFailures 1\)/, "the report's table");
            assert.match(r.stderr, /ERROR: 1 of 3 hosts failed, each rolled back where it changed .*The next `pulumi up` rolls them out again/s);
            assert.deepEqual([releaseOf(a), releaseOf(b), releaseOf(c)], [rel.b, rel.a, rel.b]);
            assert.equal(sh(b, "docker inspect -f '{{.State.Running}} {{.State.Pid}}' live"), `true ${pid}`, "its container kept running (live-restore)");
        } finally {
            sh(b, "rm -f /etc/forklift-test-unhealthy");
        }
        // fixed: the next rollout changes that host alone
        const pids = hosts.map((h) => sh(h, "systemctl show -p MainPID --value docker.service"));
        const again = runLocal("rollout", rollout(rel.b, { waves: [1, "100%"], maxFailures: 1, health: true }));
        assert.equal(again.code, 0, again.stderr);
        const report = byHost(reportOf(again.stdout));
        assert.deepEqual([report["ro-a"].outcome, report["ro-b"].outcome, report["ro-c"].outcome], ["unchanged", "updated", "unchanged"]);
        assert.deepEqual([0, 2].map((i) => sh(hosts[i], "systemctl show -p MainPID --value docker.service")), [pids[0], pids[2]], "the others' engines untouched");
    });

    test("past the budget the rollout stops: the steps after it are not reached", () => {
        const [a, b, c] = hosts;
        sh(a, "touch /etc/forklift-test-unhealthy");
        try {
            const r = runLocal("rollout", rollout(rel.c, { waves: [1], health: true }));
            assert.equal(r.code, 1);
            const report = byHost(reportOf(r.stdout));
            assert.equal(report["ro-a"].outcome, "rolled back");
            assert.deepEqual([report["ro-b"].outcome, report["ro-c"].outcome], ["not reached", "not reached"], "maxFailures 0: the first failure stops it");
            assert.match(r.stderr, /1 host\(s\) failed, more than maxFailures allows \(0\): the rollout stops here/);
            assert.deepEqual([releaseOf(a), releaseOf(b), releaseOf(c)], [rel.b, rel.b, rel.b], "nothing changed");
        } finally {
            sh(a, "rm -f /etc/forklift-test-unhealthy");
        }
    });

    test("soakSeconds: the next wave starts only after it; a host whose health check fails after it is rolled back, though its install was committed", async () => {
        const [a, b, c] = hosts;
        // the canary turns unhealthy once it runs the new release (during the soak)
        const run = runLocalAsync("rollout", rollout(rel.c, { waves: [1, "100%"], soakSeconds: 8, health: true }));
        for (let i = 0; i < 600 && ssh(a, `grep -qx sha256=${rel.c} /var/lib/forklift/installed`).code !== 0; i++) await new Promise((r) => setTimeout(r, 100));
        sh(a, "touch /etc/forklift-test-unhealthy");
        let r;
        try {
            r = await run;
        } finally {
            sh(a, "rm -f /etc/forklift-test-unhealthy");
        }
        assert.equal(r.code, 1);
        assert.match(r.stderr, /step 1: soaking 8 s before the health checks of ro-a run again/);
        const report = byHost(reportOf(r.stdout));
        assert.equal(report["ro-a"].outcome, "rolled back");
        assert.match(report["ro-a"].reason ?? "", /ro-a: its health check failed after 8 s \(soakSeconds\)/);
        assert.match(r.stderr, /\[forklift ro-a\] rolled back from release [0-9a-f]{64} to [0-9a-f]{64}/);
        assert.deepEqual([report["ro-b"].outcome, report["ro-c"].outcome], ["not reached", "not reached"]);
        assert.equal(releaseOf(a), rel.b, "back on the release before");
        // with a healthy canary, the second wave starts once the soak is over
        const ok = runLocal("rollout", rollout(rel.c, { waves: [1, "100%"], soakSeconds: 8, health: true }));
        assert.equal(ok.code, 0, ok.stderr);
        const done = byHost(reportOf(ok.stdout));
        const canaryEnd = Date.parse(done["ro-a"].started!) + done["ro-a"].seconds * 1000;
        for (const h of ["ro-b", "ro-c"]) {
            assert.ok(Date.parse(done[h].started!) - canaryEnd >= 8000, `${h} started ${(Date.parse(done[h].started!) - canaryEnd) / 1000} s after the canary's install ended: after the soak`);
        }
        for (const h of [a, b, c]) assert.equal(releaseOf(h), rel.c);
    });

    test("healthCheckTimeout bounds a check that ignores SIGTERM, and a process a check leaves behind holds up nothing", () => {
        const [a, b, c] = hosts;
        const command = 'if [ -e /etc/forklift-test-hang ]; then trap "" TERM; exec sleep 1001; fi; if [ -e /etc/forklift-test-leave ]; then sleep 1002 & fi; true';
        sh(a, "touch /etc/forklift-test-hang");
        sh(b, "touch /etc/forklift-test-leave");
        try {
            const r = runLocal("rollout", rollout(rel.b, { waves: ["100%"], maxFailures: 3, health: { command, timeoutSeconds: 3 } }));
            assert.equal(r.code, 1, r.stderr);
            const report = byHost(reportOf(r.stdout));
            assert.equal(report["ro-a"].outcome, "rolled back");
            assert.match(report["ro-a"].reason ?? "", /its health check did not pass within 3s \(healthCheckTimeout\)/);
            assert.deepEqual([report["ro-b"].outcome, report["ro-c"].outcome], ["updated", "updated"], "the check's background process did not hold its install up");
            // (a bound, not a speed: without one this rollout never ends)
            assert.ok(r.seconds < 90, `the rollout ended, after ${r.seconds} s`);
            assert.equal(ssh(a, "pgrep -x sleep").code, 1, "the hung check was killed");
            assert.deepEqual([releaseOf(a), releaseOf(b), releaseOf(c)], [rel.c, rel.b, rel.b]);
            // the host lock is free: the process left behind on ro-b does not hold it
            const next = runLocal("rollout", rollout(rel.b, { waves: ["100%"] }));
            assert.equal(next.code, 0, next.stderr);
        } finally {
            ssh(a, "rm -f /etc/forklift-test-hang; pkill -x sleep");
            ssh(b, "rm -f /etc/forklift-test-leave; pkill -f 'sleep 1002'");
        }
    });

    test("a run stopped during its soak: the next run soaks that host again before the next wave; once soaked, never again", async () => {
        const [a, b, c] = hosts;
        const stopped = await runLocalStopped("rollout", rollout(rel.a, { waves: [1, "100%"], soakSeconds: 60, health: true }), /soaking 60 s/, "SIGINT");
        assert.ok(stopped.stopped, stopped.stderr);
        assert.deepEqual([releaseOf(a), releaseOf(b), releaseOf(c)], [rel.a, rel.b, rel.b], "the canary installed, its soak cut short");
        // the canary turns out unhealthy: the next run finds it out in the soak it had not finished
        sh(a, "touch /etc/forklift-test-unhealthy");
        try {
            const r = runLocal("rollout", rollout(rel.a, { waves: [1, "100%"], soakSeconds: 2, health: true }));
            assert.equal(r.code, 1, r.stderr);
            const report = byHost(reportOf(r.stdout));
            assert.equal(report["ro-a"].outcome, "rolled back");
            assert.match(report["ro-a"].reason ?? "", /ro-a: its health check failed after 2 s \(soakSeconds\)/);
            assert.deepEqual([report["ro-b"].outcome, report["ro-c"].outcome], ["not reached", "not reached"]);
            assert.equal(releaseOf(a), rel.b, "back on the release before the stopped run");
        } finally {
            sh(a, "rm -f /etc/forklift-test-unhealthy");
        }
        const ok = runLocal("rollout", rollout(rel.a, { waves: [1, "100%"], soakSeconds: 2, health: true }));
        assert.equal(ok.code, 0, ok.stderr);
        for (const h of [a, b, c]) assert.equal(releaseOf(h), rel.a);
        // every host soaked: a run that finds them all on the release soaks none of them
        const again = runLocal("rollout", rollout(rel.a, { waves: [1, "100%"], soakSeconds: 30, health: true }));
        assert.equal(again.code, 0, again.stderr);
        assert.doesNotMatch(again.stderr, /soaking/);
        assert.deepEqual(reportOf(again.stdout).map((h) => h.outcome), ["unchanged", "unchanged", "unchanged"]);
    });

    test("a host whose rollback fails too is reported failed, not rolled back, with what its files are", () => {
        const c = hosts[2];
        // the health check breaks the release before (the one to roll back to), then fails
        const command = `if [ -e /etc/forklift-test-break-prev ]; then chmod -x /opt/forklift/releases/${rel.a}/dockerd; exit 1; fi; true`;
        sh(c, "touch /etc/forklift-test-break-prev");
        try {
            const r = runLocal("rollout", rollout(rel.b, { waves: ["100%"], maxFailures: 3, health: { command, timeoutSeconds: 20 } }));
            assert.equal(r.code, 1, r.stderr);
            const report = byHost(reportOf(r.stdout));
            assert.deepEqual([report["ro-a"].outcome, report["ro-b"].outcome], ["updated", "updated"]);
            assert.equal(report["ro-c"].outcome, "failed");
            assert.match(report["ro-c"].reason ?? "", /rollback to [0-9a-f]{64} also failed/);
            assert.equal(report["ro-c"].after, `v-${rel.a.slice(0, 4)} ${rel.a.slice(0, 12)}`, "its files: the release before");
            assert.match(r.stderr, /rollout: 2 updated, 1 failed/);
            assert.equal(releaseOf(c), rel.a);
            assert.equal(sh(c, "sed -n 's/^sha256=//p' /var/lib/forklift/installed"), rel.a, "its record says the same");
        } finally {
            ssh(c, `rm -f /etc/forklift-test-break-prev; chmod +x /opt/forklift/releases/${rel.a}/dockerd; systemctl reset-failed docker.service docker.socket; systemctl restart docker.service`);
        }
    });
});
