/**
 * A rollout over a real Docker Swarm: five test hosts on the test bed's cloud running Debian's
 * Docker, joined as 3 managers and 2 workers, with a replicated service of 4 and a global service.
 * The local commands run exactly as the program runs them (lib/protocol/local.ts's jobs): the
 * check plans the steps, and each step's installs run at once, as the engine would, while a
 * watcher samples the cluster every 0.5 s. Asserted: a majority of managers reachable at every
 * sample, each node drained before its engine stops and back to its availability after, the
 * replicated service never more than one node's share down, the services whole when the rollout returns; the
 * refusals (live-restore set, a manager down, a node whose engine does not answer, a node whose
 * tasks cannot move within swarmDrainTimeout) change nothing; a node whose new engine does not
 * start is rolled back, back in the cluster, its availability restored; and the uninstall goes
 * the same way.
 */
import { after, before, describe, test } from "node:test";
import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { Owner, parseHostStatus } from "../../lib/protocol/host";
import { checkedHost, checksJob, fleetHostJob, swarmCheck } from "../../lib/protocol/local";
import { ArtifactSource, SwarmNodeJob } from "../../lib/protocol/jobs";
import { BROKEN_DOCKERD, LocalRun, RELEASE_BINARIES, cachedSource, hostReleases, remoteOf, runLocal, runLocalAsync } from "../support/local";
import { GLOBAL, REPLICAS, REPLICATED, SERVICE_IMAGE, Watcher, assertDrainedAtMost, assertLeaderLast, assertSwarmKept, availabilityOf, engineStops, formSwarm, waitConverged } from "../../testbed/swarm";
import { TestHost, ssh, startHosts, stopHosts } from "../../testbed/testbed";

const OWNER: Owner = { stack: "forklift/swarm", stackId: "5a5a5a5a5a5a5a5a", host: "" };
let hosts: TestHost[];
let managers: TestHost[];
let work: string;
/** Releases made of the hosts' own binaries (b: with a note more, another sha256; bad: a dockerd that exits). */
const rel: Record<"a" | "b" | "bad", string> = { a: "", b: "", bad: "" };

const owner = (h: TestHost): Owner => ({ ...OWNER, host: h.name });
const remote = (h: TestHost) => remoteOf(h.name, h);
const source = (sha: string): ArtifactSource => cachedSource(sha, path.join(work, "cache"));
const swarmNode = (): SwarmNodeJob => ({ managers: managers.map(remote), drainTimeout: 120, nodeTimeout: 120, allowTwoManagers: false, stackId: OWNER.stackId, maxDrained: 1, acceptDowntime: [], moveLocalData: [], surge: 0 });
const job = (h: TestHost, sha: string, daemonJson: Record<string, unknown> = {}) =>
    fleetHostJob({ host: remote(h), owner: owner(h), release: { sha256: sha, version: "test", binaries: RELEASE_BINARIES }, installDir: "/usr/bin", daemonJson, source: source(sha), swarm: swarmNode(), insecure: false });
const check = (sha: string, opts: { batchSize?: number; daemonJson?: Record<string, unknown>; listed?: string[] } = {}) =>
    checksJob(
        "check",
        false,
        hosts.map((h) => checkedHost(remote(h), owner(h), { sha256: sha, needKiB: 1024 })),
        swarmCheck({ batchSize: opts.batchSize ?? 3, allowTwoManagers: false, daemonJson: opts.daemonJson ?? {}, fleetManagers: opts.listed ?? managers.map((m) => m.name), otherManagers: [], stackId: OWNER.stackId }),
        source(sha),
    );
const byName = (name: string) => hosts.find((h) => h.name === name)!;
/** What `docker node ls` says on a manager now ("" while it cannot answer, as during an election). */
const nodeList = (m: TestHost) => ssh(m, "docker node ls --format '{{.Hostname}} {{.Status}} {{.ManagerStatus}}'").stdout;
const sh = (h: TestHost, cmd: string) => {
    const r = ssh(h, cmd);
    assert.equal(r.code, 0, `${h.name}: ${cmd}: ${r.stderr}`);
    return r.stdout.trim();
};

/** Runs the check, then each planned step's installs at once, as `pulumi up` would; returns the plan and each install's run. */
async function rollOut(sha: string, batchSize = 3): Promise<{ plan: string[][]; runs: Map<string, LocalRun> }> {
    const c = runLocal("check", check(sha, { batchSize }));
    assert.equal(c.code, 0, c.stderr);
    const plan = JSON.parse(c.stdout).plan as string[][];
    const runs = new Map<string, LocalRun>();
    for (const step of plan) {
        const done = await Promise.all(step.map((n) => runLocalAsync("install", job(byName(n), sha))));
        step.forEach((n, i) => runs.set(n, done[i]));
        const failed = done.filter((r) => r.code !== 0);
        if (failed.length > 0) break;
    }
    return { plan, runs };
}

describe("a rollout over a Docker Swarm of test hosts", { timeout: 30 * 60_000 }, () => {
    before(async () => {
        hosts = await startHosts(["sw-m1", "sw-m2", "sw-m3", "sw-w1", "sw-w2"].map((name, i) => ({ name, index: 121 + i, debianDocker: true, cloud: true })));
        managers = hosts.slice(0, 3);
        work = fs.mkdtempSync(path.join(os.tmpdir(), "forklift-swarm-"));
        fs.mkdirSync(path.join(work, "cache"));
        // releases made of the host's own Debian binaries (b: a note more; bad: a dockerd that exits)
        Object.assign(rel, hostReleases(hosts[0], path.join(work, "cache"), { a: "", b: "echo b > $d/docker/NOTE", bad: BROKEN_DOCKERD }));
        await formSwarm(hosts, 3);
    });

    after(async () => {
        await stopHosts();
        if (work) fs.rmSync(work, { recursive: true, force: true });
    });

    test("live-restore set in daemonJson is refused before any host changes, naming the Swarm nodes", () => {
        const r = runLocal("check", check(rel.a, { daemonJson: { "live-restore": true } }));
        assert.equal(r.code, 1);
        assert.match(r.stderr, /forklift:daemonJson: live-restore is true, and sw-m1, sw-m2, sw-m3, sw-w1, sw-w2 are Swarm nodes: dockerd refuses swarm mode with live-restore/);
        assert.match(r.stderr, /Nothing was changed/);
        for (const h of hosts) assert.equal(ssh(h, "test -e /opt/forklift/current").code, 1, `${h.name} unchanged`);
    });

    test("workers need a manager named in swarmManagers: refused naming the managers in the fleet", () => {
        const r = runLocal("check", checksJob("precheck", false, hosts.map((h) => checkedHost(remote(h), owner(h))), swarmCheck({ batchSize: 1, allowTwoManagers: false, daemonJson: {}, fleetManagers: [], otherManagers: [], stackId: OWNER.stackId })));
        assert.equal(r.code, 1);
        assert.match(r.stderr, /forklift:swarmManagers: sw-w1, sw-w2 are workers of Swarm cluster \w+, and forklift drains a worker through a manager of its cluster: name one in swarmManagers \(its managers in the fleet: sw-m1, sw-m2, sw-m3\)/);
    });

    test("the rollout: managers one at a time (the leader last) whatever the batch size, then the workers; each drained first, one at a time; quorum and service kept", async () => {
        const leader = sh(managers[0], "docker node ls --format '{{.Hostname}} {{.ManagerStatus}}' | awk '$2 == \"Leader\" {print $1}'");
        const availability = Object.fromEntries(hosts.map((h) => [h.name, availabilityOf(managers[0], h.name)]));
        const watcher = new Watcher(managers);
        const since = Date.now();
        await watcher.start();
        let result: Awaited<ReturnType<typeof rollOut>>;
        try {
            result = await rollOut(rel.a, 3);
        } finally {
            await watcher.finish();
        }
        const { plan, runs } = result;
        for (const [n, r] of runs) assert.equal(r.code, 0, `${n}: ${r.stderr}`);
        assert.equal(plan.length, 2, `the managers (their runs go one at a time among themselves), then the workers: ${JSON.stringify(plan)}`);
        assert.deepEqual([...plan[0]].sort(), ["sw-m1", "sw-m2", "sw-m3"]);
        assert.deepEqual([...plan[1]].sort(), ["sw-w1", "sw-w2"]);
        for (const h of hosts) {
            assert.equal(parseHostStatus(runs.get(h.name)!.stdout).sha256, rel.a);
            assert.match(runs.get(h.name)!.stderr, /live-restore is left out of daemon\.json/);
            assert.doesNotMatch(sh(h, "cat /etc/docker/daemon.json"), /live-restore/, `${h.name}: no live-restore in its daemon.json`);
            assert.equal(sh(h, "readlink /opt/forklift/current"), `/opt/forklift/releases/${rel.a}`);
        }
        const stops = Object.fromEntries(hosts.map((h) => [h.name, engineStops(h, since)]));
        const { minReplicas } = assertSwarmKept(watcher.samples, stops, availability);
        assertLeaderLast(stops, leader, managers.map((m) => m.name));
        assertDrainedAtMost(watcher.samples, 1, availability);
        // the services whole when the rollout returned: no waiting here
        const services = sh(managers[0], "docker service ls --format '{{.Name}} {{.Replicas}}'");
        assert.match(services, new RegExp(`^${REPLICATED} ${REPLICAS}/${REPLICAS}$`, "m"));
        assert.match(services, new RegExp(`^${GLOBAL} 5/5$`, "m"));
        process.stderr.write(`[swarm test] ${watcher.samples.length} samples; ${REPLICATED} at least ${minReplicas}/${REPLICAS}; plan ${JSON.stringify(plan)}\n`);
        // a second rollout of the same release changes nothing: no drain
        const again = runLocal("install", job(managers[0], rel.a));
        assert.equal(again.code, 0, again.stderr);
        assert.doesNotMatch(again.stderr, /draining/);
        assert.equal(parseHostStatus(again.stdout).changed, false);
    });

    test("a manager down before the rollout: refused for quorum, naming it; nothing changed", async () => {
        const m3 = managers[2];
        sh(m3, "systemctl stop docker.service docker.socket");
        try {
            // until the others see it gone
            for (let i = 0; i < 60 && !/sw-m3 \S+ Unreachable/.test(nodeList(managers[0])); i++) await new Promise((r) => setTimeout(r, 500));
            // the check: its engine stopped, sw-m3 cannot tell it is a Swarm node, and is refused as one
            const r = runLocal("check", check(rel.b));
            assert.equal(r.code, 1);
            assert.match(r.stderr, /sw-m3 \(.*\): its engine is not running, and \/var\/lib\/docker\/swarm says it is a Swarm node/);
            // without it, the others' check refuses the managers for quorum
            const others = runLocal("check", { ...check(rel.b), hosts: check(rel.b).hosts.filter((h) => h.name !== "sw-m3") });
            assert.equal(others.code, 1);
            assert.match(others.stderr, /manager\(s\) sw-m3 are not reachable .*could lose the cluster's quorum/);
            for (const h of hosts) assert.equal(sh(h, "readlink /opt/forklift/current"), `/opt/forklift/releases/${rel.a}`, `${h.name} unchanged`);
            // an install that runs anyway (the check passed before the manager went down) refuses too
            const install = runLocal("install", job(managers[0], rel.b));
            assert.equal(install.code, 1);
            assert.match(install.stderr, /sw-m1 is a Swarm manager and was not restarted: manager\(s\) sw-m3 are not reachable\. Nothing was changed/);
            assert.equal(availabilityOf(managers[0], "sw-m1"), "active");
        } finally {
            sh(m3, "systemctl start docker.service");
        }
        for (let i = 0; i < 120 && !/sw-m3 Ready (Reachable|Leader)/.test(nodeList(managers[0])); i++) await new Promise((r) => setTimeout(r, 500));
        await waitConverged(managers[0], 120);
    });

    test("a Swarm node whose engine does not answer is not taken for a plain host: its install refuses, naming it; nothing changed", async () => {
        const w2 = byName("sw-w2");
        const pid = sh(w2, "systemctl show -p MainPID --value docker.service");
        sh(w2, `kill -STOP ${pid}`);
        try {
            const r = runLocal("install", job(w2, rel.b));
            assert.equal(r.code, 1);
            assert.match(r.stderr, /sw-w2.*its engine runs but did not answer `docker info` within 20s, and \/var\/lib\/docker\/swarm says it is a Swarm node: it cannot be drained, so it is not restarted; nothing was changed/);
            assert.equal(sh(w2, "readlink /opt/forklift/current"), `/opt/forklift/releases/${rel.a}`);
            assert.equal(sh(w2, "systemctl show -p MainPID --value docker.service"), pid, "its engine was not restarted");
        } finally {
            sh(w2, `kill -CONT ${pid}`);
        }
        await waitConverged(managers[0], 120);
    });

    test("a node that holds the only task a service can run is refused before its drain, naming the service; nothing changed", async () => {
        const w1 = byName("sw-w1");
        sh(managers[0], `docker service create -d --name pinned --replicas 1 --constraint node.hostname==sw-w1 --no-resolve-image --endpoint-mode dnsrr --stop-grace-period 2s ${SERVICE_IMAGE} /bin/busybox sleep 1000000 >/dev/null`);
        try {
            await waitConverged(managers[0], 120);
            const pid = sh(w1, "systemctl show -p MainPID --value docker.service");
            const r = runLocal("install", job(w1, rel.b));
            assert.equal(r.code, 1);
            assert.match(r.stderr, /sw-w1 was not drained: pinned: 1 of its tasks run on sw-w1, and the other nodes have room for none \(its constraints, nodes drained, paused or down\): it would run 0\/1 until sw-w1 is back\. Give it room elsewhere, or set swarmAcceptDowntime: \[pinned\] to go ahead\. Its engine was not restarted; nothing was changed/);
            assert.doesNotMatch(r.stderr, /draining its node/);
            assert.equal(availabilityOf(managers[0], "sw-w1"), "active");
            assert.equal(sh(w1, "readlink /opt/forklift/current"), `/opt/forklift/releases/${rel.a}`);
            assert.equal(sh(w1, "systemctl show -p MainPID --value docker.service"), pid, "its engine was not restarted");
        } finally {
            sh(managers[0], "docker service rm pinned >/dev/null");
        }
        await waitConverged(managers[0], 120);
    });

    test("a node whose tasks do not run elsewhere within swarmDrainTimeout keeps its engine and gets its availability back; the rollout stops naming the service", async () => {
        // each of its tasks counts as running only once healthy, 30 s after it starts (Swarm waits
        // for a task's health check): a replacement does not run within 8 s, which forklift cannot
        // know before the drain
        sh(managers[0], `docker service create -d --name slow --replicas 2 --replicas-max-per-node 1 --health-cmd 'test -e /tmp/ready' --health-interval 1s --health-retries 1 --health-start-period 60s --no-resolve-image --endpoint-mode dnsrr --stop-grace-period 2s ${SERVICE_IMAGE} /bin/busybox sh -c 'sleep 30; touch /tmp/ready; exec sleep 1000000' >/dev/null`);
        try {
            await waitConverged(managers[0], 180);
            const node = sh(managers[0], "docker service ps slow --filter desired-state=running --format '{{.Node}}' | head -n 1");
            const h = byName(node);
            const pid = sh(h, "systemctl show -p MainPID --value docker.service");
            const r = runLocal("install", { ...job(h, rel.b), swarm: { ...swarmNode(), drainTimeout: 8 } });
            assert.equal(r.code, 1);
            assert.match(r.stderr, new RegExp(`${node}: its tasks did not all run elsewhere within 8s \\(swarmDrainTimeout\\); still short: slow 1/2\\. Its engine was not restarted`));
            assert.match(r.stderr, new RegExp(`${node}: availability active restored`));
            assert.equal(availabilityOf(managers[0], node), "active");
            assert.equal(sh(h, "readlink /opt/forklift/current"), `/opt/forklift/releases/${rel.a}`);
            assert.equal(sh(h, "systemctl show -p MainPID --value docker.service"), pid, "its engine was not restarted");
        } finally {
            sh(managers[0], "docker service rm slow >/dev/null");
        }
        await waitConverged(managers[0], 120);
    });

    test("a node whose new engine does not start is rolled back, back in the cluster, its availability restored; the rollout stops there", async () => {
        const w1 = byName("sw-w1");
        const r = runLocal("install", job(w1, rel.bad));
        assert.equal(r.code, 1);
        assert.match(r.stderr, /sw-w1: draining its node/);
        assert.match(r.stderr, /new release [0-9a-f]{64} failed: .*Rolled back to release [0-9a-f]{64}; Docker is answering/s);
        assert.match(r.stderr, /sw-w1: back in its cluster, availability active again/);
        assert.equal(sh(w1, "readlink /opt/forklift/current"), `/opt/forklift/releases/${rel.a}`);
        assert.equal(availabilityOf(managers[0], "sw-w1"), "active");
        assert.match(sh(managers[0], "docker node ls --format '{{.Hostname}} {{.Status}}'"), /^sw-w1 Ready$/m);
        await waitConverged(managers[0], 120);
    });

    test("uninstall (destroy) goes the same way: drained, Debian's Docker back, availability and services restored", async () => {
        const availability = Object.fromEntries(hosts.map((h) => [h.name, availabilityOf(managers[0], h.name)]));
        const watcher = new Watcher(managers);
        const since = Date.now();
        await watcher.start();
        // as `pulumi destroy` runs them: the workers' step, then the managers' at once (their runs
        // go one at a time, the leader of the moment last)
        const leader = sh(managers[0], "docker node ls --format '{{.Hostname}} {{.ManagerStatus}}' | awk '$2 == \"Leader\" {print $1}'");
        const said: string[] = [];
        try {
            for (const step of [["sw-w2", "sw-w1"], ["sw-m1", "sw-m3", "sw-m2"]]) {
                // (not blocking: the watcher reads its samples meanwhile)
                const runs = await Promise.all(step.map((n) => runLocalAsync("uninstall", job(byName(n), rel.a))));
                step.forEach((n, i) => {
                    said.push(runs[i].stderr);
                    assert.equal(runs[i].code, 0, `${n}: ${runs[i].stderr}`);
                    assert.match(runs[i].stderr, new RegExp(`${n}: draining its node`));
                });
            }
        } finally {
            await watcher.finish();
        }
        process.stderr.write(`[swarm test] leader ${leader}; uninstalls:\n${said.join("\n")}\n`);
        for (const h of hosts) {
            assert.equal(ssh(h, "test -e /opt/forklift").code, 1, `${h.name} given back`);
            assert.equal(sh(h, "systemctl show -p FragmentPath --value docker.service"), "/lib/systemd/system/docker.service", `${h.name}: Debian's Docker`);
        }
        const stops = Object.fromEntries(hosts.map((h) => [h.name, engineStops(h, since)]));
        assertSwarmKept(watcher.samples, stops, availability);
        assertLeaderLast(stops, leader, managers.map((m) => m.name));
        assertDrainedAtMost(watcher.samples, 1, availability);
        await waitConverged(managers[0], 60);
    });
});
