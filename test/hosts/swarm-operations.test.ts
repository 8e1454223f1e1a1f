/**
 * A Swarm as operators run it, on a real Swarm of five test hosts (3 managers, 2 workers, Debian's
 * Docker, the services `web` (4 replicas) and `mon` (global)), through the local commands exactly
 * as the program runs them: rollouts stopped half-way (killed while a node is drained, while it is
 * installed, while it rejoins; stopped with SIGINT) and finished by the next run with every node's
 * availability as the operator had it; a service crowded onto one node (refused, accepted, or
 * surged so that it never runs short); a service that keeps data on its node; an autolocked
 * cluster; a manager whose old engine cannot read the Swarm state the new one left; engines that
 * cannot tell whether they are Swarm nodes; a manager that hangs; two clusters in one fleet.
 */
import { after, before, describe, test } from "node:test";
import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { Owner } from "../../lib/protocol/host";
import { checkedHost, checksJob, fleetHostJob, planJob, swarmCheck } from "../../lib/protocol/local";
import { PreviewPlan } from "../../lib/protocol/results";
import { OPERATOR_DRAINED } from "../../local/plan";
import { ArtifactSource, SwarmNodeJob } from "../../lib/protocol/jobs";
import { BROKEN_DOCKERD, LocalRun, RELEASE_BINARIES, cachedSource, hostReleases, remoteOf, runLocal, runLocalAsync, runLocalStopped, runLocalWhen } from "../support/local";
import { spawnSync } from "node:child_process";
import { SERVICE_IMAGE, Watcher, assertDrainedAtMost, assertServicesKept, availabilityOf, formSwarm, waitConverged } from "../../testbed/swarm";
import { TestHost, repoRoot, ssh, startHosts, stopHosts } from "../../testbed/testbed";

const STACK_ID = "0a0b0c0d0e0f1011";
const OWNER: Owner = { stack: "forklift/swarm-ops", stackId: STACK_ID, host: "" };
const DRAIN_LABEL = `forklift.drain.${STACK_ID}`;
let hosts: TestHost[];
let managers: TestHost[];
let work: string;
/** Releases of the hosts' own binaries: a, b, c (notes more: other sha256s), bad (a dockerd that exits), raft (one that leaves a Swarm state the old engine cannot read). */
const rel: Record<"a" | "b" | "c" | "bad" | "raft", string> = { a: "", b: "", c: "", bad: "", raft: "" };

const owner = (h: TestHost): Owner => ({ ...OWNER, host: h.name });
const remote = (h: TestHost) => remoteOf(h.name, h);
const byName = (name: string) => hosts.find((h) => h.name === name)!;
const source = (sha: string): ArtifactSource => cachedSource(sha, path.join(work, "cache"));
const swarmNode = (over: Partial<SwarmNodeJob> = {}): SwarmNodeJob => ({
    managers: managers.map(remote),
    drainTimeout: 60,
    nodeTimeout: 90,
    allowTwoManagers: false,
    stackId: STACK_ID,
    maxDrained: 1,
    acceptDowntime: [],
    moveLocalData: [],
    surge: 0,
    ...over,
});
const job = (h: TestHost, sha: string, over: Partial<SwarmNodeJob> = {}) =>
    fleetHostJob({ host: remote(h), owner: owner(h), release: { sha256: sha, version: "test", binaries: RELEASE_BINARIES }, installDir: "/usr/bin", daemonJson: {}, source: source(sha), swarm: swarmNode(over), insecure: false });
/** The check that stages release SHA on every host (PRECHECK: the precheck, as the plan runs it). */
const check = (sha: string, over: { unlockKey?: string; moveLocalData?: string[]; only?: TestHost[]; precheck?: boolean } = {}) =>
    checksJob(
        over.precheck ? "precheck" : "check",
        false,
        (over.only ?? hosts).map((h) => checkedHost(remote(h), owner(h), over.precheck ? undefined : { sha256: sha, needKiB: 1024 })),
        swarmCheck({ batchSize: 2, allowTwoManagers: false, daemonJson: {}, fleetManagers: managers.map((m) => m.name), otherManagers: [], stackId: STACK_ID, unlockKey: over.unlockKey, moveLocalData: over.moveLocalData }),
        over.precheck ? undefined : source(sha),
    );
const sh = (h: TestHost, cmd: string) => {
    const r = ssh(h, cmd);
    assert.equal(r.code, 0, `${h.name}: ${cmd}: ${r.stderr}`);
    return r.stdout.trim();
};
const m1 = () => managers[0];
const releaseOf = (h: TestHost) => sh(h, "readlink /opt/forklift/current").replace(/^\/opt\/forklift\/releases\//, "");
const mainPid = (h: TestHost) => sh(h, "systemctl show -p MainPID --value docker.service");
/** Every node's availability now, by hostname. */
const availabilities = () => Object.fromEntries(hosts.map((h) => [h.name, availabilityOf(m1(), h.name)]));
/** What the first manager that answers prints for COMMAND (one may be restarting). */
const cluster = (command: string) => {
    for (const m of managers) {
        const r = ssh(m, `set -o pipefail; ${command}`);
        if (r.code === 0) return r.stdout.trim();
    }
    throw new Error(`no manager answered ${command}`);
};
/** The nodes that carry this stack's drain record. */
const recorded = () =>
    cluster(`docker node ls -q | xargs docker node inspect --format '{{.Description.Hostname}} {{with index .Spec.Labels "${DRAIN_LABEL}"}}{{.}}{{end}}'`)
        .split("\n")
        .filter((l) => l.split(" ")[1])
        .map((l) => l.split(" ")[0]);

/** A release that H does not run now (of a and b): its install changes it. */
const another = (h: TestHost) => (releaseOf(h) === rel.a ? rel.b : rel.a);

/**
 * The cluster as a test starts from: every node active, no forklift record, the services spread
 * again (a drain moves tasks away, and Swarm never moves them back: a test that drained nodes
 * leaves them crowded on the others) and whole.
 */
async function reset(): Promise<void> {
    cluster(`for n in $(docker node ls -q); do docker node update --availability active $n >/dev/null; done`);
    assert.deepEqual(recorded(), [], "no drain record left by the test before");
    cluster("docker service update -d --force web >/dev/null");
    await waitConverged(m1(), 180);
}

/** Waits until no forklift run is on H any more (its host lock free) and its cluster has it Ready. */
async function settled(h: TestHost): Promise<void> {
    for (let i = 0; i < 240; i++) {
        const free = ssh(h, "flock -n /run/lock/forklift.lock true").code === 0;
        const ready = (() => {
            try {
                return cluster(`docker node inspect ${h.name} --format '{{.Status.State}}'`) === "ready";
            } catch {
                return false;
            }
        })();
        if (free && ready) return;
        await new Promise((r) => setTimeout(r, 500));
    }
    throw new Error(`${h.name} did not settle`);
}

/** The check, then each planned step's installs at once, as `pulumi up` would. */
async function rollOut(sha: string, over: Partial<SwarmNodeJob> = {}, checkOver: Parameters<typeof check>[1] = {}): Promise<{ check: LocalRun; runs: Map<string, LocalRun> }> {
    const c = runLocal("check", check(sha, checkOver));
    assert.equal(c.code, 0, c.stderr);
    const runs = new Map<string, LocalRun>();
    for (const step of JSON.parse(c.stdout).plan as string[][]) {
        const done = await Promise.all(step.map((n) => runLocalAsync("install", job(byName(n), sha, over))));
        step.forEach((n, i) => runs.set(n, done[i]));
        for (const [i, r] of done.entries()) assert.equal(r.code, 0, `${step[i]}: ${r.stderr}`);
    }
    return { check: c, runs };
}

/** A service NAME of REPLICAS tasks, all on NODE (the others paused while it starts; they take no task back when active again). */
async function crowdedService(name: string, replicas: number, node: string, extra = ""): Promise<void> {
    const others = hosts.filter((h) => h.name !== node).map((h) => h.name);
    sh(m1(), `for n in ${others.join(" ")}; do docker node update --availability pause $n >/dev/null; done`);
    try {
        sh(m1(), `docker service create -d --name ${name} --replicas ${replicas} ${extra} --no-resolve-image --endpoint-mode dnsrr --stop-grace-period 2s ${SERVICE_IMAGE} /bin/busybox sleep 1000000 >/dev/null`);
        await waitConverged(m1(), 120);
    } finally {
        sh(m1(), `for n in ${others.join(" ")}; do docker node update --availability active $n >/dev/null; done`);
    }
    assert.equal(sh(m1(), `docker service ps ${name} --filter desired-state=running --format '{{.Node}}' | sort -u`), node, `${name}'s tasks all on ${node}`);
}

describe("a Swarm as operators run it", { timeout: 40 * 60_000 }, () => {
    before(async () => {
        hosts = await startHosts(["so-m1", "so-m2", "so-m3", "so-w1", "so-w2"].map((name, i) => ({ name, index: 221 + i, debianDocker: true, cloud: true })));
        managers = hosts.slice(0, 3);
        work = fs.mkdtempSync(path.join(os.tmpdir(), "forklift-swarm-ops-"));
        fs.mkdirSync(path.join(work, "cache"));
        // releases made of the host's own Debian binaries. raft: its dockerd leaves a Swarm state
        // behind that the engine cannot start with (as a newer Raft format would), and does not
        // start itself
        const raft = `printf '#!/bin/sh\\nfor f in /var/lib/docker/swarm/docker-state.json /var/lib/docker/swarm/state.json; do echo "written by a newer Raft" > "$f"; done\\necho dockerd: the newer engine failed after writing its state >&2\\nexit 1\\n' > $d/docker/dockerd`;
        Object.assign(rel, hostReleases(hosts[0], path.join(work, "cache"), { a: "", b: "echo b > $d/docker/NOTE", c: "echo c > $d/docker/NOTE", bad: BROKEN_DOCKERD, raft }));
        await formSwarm(hosts, 3);
        await rollOut(rel.a);
    });

    after(async () => {
        await stopHosts();
        if (work) fs.rmSync(work, { recursive: true, force: true });
    });

    for (const [phase, n, when] of [
        ["while its node is drained", "so-w1", /so-w1: drained, its tasks run elsewhere/],
        ["while its engine is replaced", "so-m1", /\[forklift so-m1\] switched to release/],
        ["while its node rejoins", "so-m2", /\[forklift so-m2\] release [0-9a-f]{64} \(test\) is running/],
    ] as [string, string, RegExp][]) {
        test(`a rollout killed ${phase}: the next run finishes it, every node's availability as its operator had it`, async () => {
            await reset();
            // the operator drained so-w2 for their own reasons: it must stay drained
            cluster("docker node update --availability drain so-w2 >/dev/null");
            const before = availabilities();
            const target = another(byName(n));
            const r = await runLocalStopped("install", job(byName(n), target), when, "SIGKILL");
            assert.ok(r.stopped, `${n}: the run did not come to ${when}: ${r.stderr}`);
            // (the host's own run goes on to its end)
            await settled(byName(n));
            assert.deepEqual(recorded(), [n], `${n}: left drained, its drain recorded in the cluster`);
            assert.equal(cluster(`docker node inspect ${n} --format '{{.Spec.Availability}}'`), "drain");
            // the plan (FORKLIFT_PLAN's command) tells the two drains apart, and gives nothing back
            const planned = runLocal("plan", planJob(check(target, { precheck: true }), { label: "test", sha256: target }, []));
            assert.equal(planned.code, 0, planned.stderr);
            const drains = new Map(PreviewPlan.parse(JSON.parse(planned.stdout)).hosts.map((r) => [r.host, r.drained]));
            assert.equal(drains.get("so-w2"), OPERATOR_DRAINED, "the operator's drain stays");
            // (drained again for its restart where its release changes: its host's run may have ended on the new one)
            assert.match(drains.get(n) ?? "", /^(yes|no)$/, `${n}: the stopped run's drain is given back first`);
            assert.deepEqual(recorded(), [n], "the plan gave nothing back");
            // the next `pulumi up`: its check gives the stopped run's node back, then the rollout
            const { check: c } = await rollOut(target);
            assert.match(c.stderr, new RegExp(`${n}: availability active restored \\(drained by a forklift run that was stopped\\)`));
            assert.deepEqual(availabilities(), before, "every node's availability as before");
            assert.deepEqual(recorded(), [], "no record left");
            for (const h of hosts) assert.equal(releaseOf(h), target, `${h.name} on the new release`);
        });
    }

    test("a run stopped (SIGINT, a terminal's Ctrl-C) while its node is being drained gives it its availability back before it exits", async () => {
        await reset();
        const w1 = byName("so-w1");
        const pid = mainPid(w1);
        const was = releaseOf(w1);
        const r = await runLocalStopped("install", job(w1, another(w1)), /so-w1: draining its node/, "SIGINT");
        assert.ok(r.stopped, r.stderr);
        assert.equal(r.code, 130, `it exits as stopped: ${r.stderr}`);
        assert.match(r.stderr, /so-w1: availability active restored/);
        assert.equal(availabilityOf(m1(), "so-w1"), "active");
        assert.deepEqual(recorded(), []);
        assert.equal(mainPid(w1), pid, "its engine was not restarted");
        assert.equal(releaseOf(w1), was);
        await waitConverged(m1(), 120);
    });

    test("an install whose SSH session is lost while its host replaces the engine: its node stays drained, recorded, until the next check gives it back", async () => {
        await reset();
        const w1 = byName("so-w1");
        // (a health check that takes 15 s keeps the host's run going well past the lost session's
        // keepalives, 3 × the connect timeout: the host's output would otherwise still get out)
        const j = fleetHostJob({ host: remoteOf(w1.name, w1, { connectTimeout: 2 }), owner: owner(w1), release: { sha256: another(w1), version: "test", binaries: RELEASE_BINARIES }, installDir: "/usr/bin", daemonJson: {}, source: source(another(w1)), swarm: swarmNode(), insecure: false, healthCheck: { command: "sleep 15", timeoutSeconds: 60 } });
        const sshPort = (op: "-I" | "-D") => spawnSync(path.join(repoRoot(), "testbed", "host.sh"), ["exec", w1.name, "iptables", op, "INPUT", "-p", "tcp", "--dport", "22", "-j", "DROP"], { encoding: "utf8" });
        let r: LocalRun & { acted: boolean };
        try {
            r = await runLocalWhen("install", j, /\[forklift so-w1\] switched to release/, () => assert.equal(sshPort("-I").status, 0));
        } finally {
            sshPort("-D");
        }
        const left = { availability: availabilityOf(m1(), "so-w1"), recorded: recorded() };
        // the host's run goes on to its end; the next check (which waits for it) gives the node back
        const c = runLocal("check", check(releaseOf(w1)));
        const after = { availability: availabilityOf(m1(), "so-w1"), recorded: recorded() };
        await settled(w1);
        await waitConverged(m1(), 120);
        assert.ok(r.acted, r.stderr);
        assert.equal(r.code, 1, r.stderr);
        assert.match(r.stderr, /so-w1 .*unreachable .*Its run on the host could not be followed to its end .*its node stays drained, recorded in its cluster/);
        assert.doesNotMatch(r.stderr, /so-w1: .*availability active (again|restored)/, "not given back while its host may be restarting its engine");
        assert.deepEqual(left, { availability: "drain", recorded: ["so-w1"] });
        assert.equal(c.code, 0, c.stderr);
        assert.deepEqual(after, { availability: "active", recorded: [] });
    });

    test("a service whose tasks all run on the node to drain is refused, named with the ways out; accepted, it goes ahead; with swarmSurge it never runs short", async () => {
        await reset();
        await crowdedService("solo", 2, "so-w1");
        const w1 = byName("so-w1");
        try {
            const pid = mainPid(w1);
            const was = releaseOf(w1);
            const refused = runLocal("install", job(w1, rel.c));
            assert.equal(refused.code, 1);
            assert.match(refused.stderr, /so-w1 was not drained: solo: all its 2 running task\(s\) are on so-w1, and a drain stops them before their replacements start elsewhere: it would have no running task for a while\. Spread it \(--replicas-max-per-node 1 .*set swarmSurge: 1 or more .*swarmAcceptDowntime: \[solo\] to go ahead\. Its engine was not restarted; nothing was changed/);
            assert.equal(availabilityOf(m1(), "so-w1"), "active");
            assert.equal(mainPid(w1), pid, "its engine was not restarted");
            assert.equal(releaseOf(w1), was);

            // with swarmSurge: extra tasks first, on the other nodes; never below 2 running
            const watcher = new Watcher(managers);
            const availability = availabilities();
            await watcher.start();
            let surged: LocalRun;
            try {
                surged = await runLocalAsync("install", job(w1, rel.c, { surge: 2 }));
            } finally {
                await watcher.finish();
            }
            assert.equal(surged.code, 0, surged.stderr);
            assert.match(surged.stderr, /so-w1: (\w+ \+\d, )*solo \+2(, \w+ \+\d)* extra task\(s\) running elsewhere \(swarmSurge/);
            assert.match(surged.stderr, /so-w1: solo: back to 2 replicas \(its 2 extra task\(s\) removed\)/);
            assertServicesKept(watcher.samples, { solo: 2 });
            assertDrainedAtMost(watcher.samples, 1, availability);
            assert.equal(sh(m1(), "docker service inspect solo --format '{{.Spec.Mode.Replicated.Replicas}} {{json .Spec.Labels}}'"), "2 {}", "scaled back, no record left");
            assert.equal(releaseOf(w1), rel.c);

            // accepted: the same crowding on so-w2, drained without surge
            sh(m1(), "docker service rm solo >/dev/null");
            await crowdedService("solo", 2, "so-w2");
            const target = another(byName("so-w2"));
            const accepted = await runLocalAsync("install", job(byName("so-w2"), target, { acceptDowntime: ["solo"] }));
            assert.equal(accepted.code, 0, accepted.stderr);
            assert.match(accepted.stderr, /so-w2: draining its node/);
            assert.equal(releaseOf(byName("so-w2")), target);
        } finally {
            ssh(m1(), "docker service rm solo >/dev/null");
        }
        await waitConverged(m1(), 120);
    });

    test("a service that keeps data on its node: the check names it; its node's drain is refused unless swarmMoveLocalData names it", async () => {
        await reset();
        sh(m1(), `docker service create -d --name db --replicas 1 --constraint node.role==worker --mount type=volume,source=dbdata,target=/data --no-resolve-image --endpoint-mode dnsrr --stop-grace-period 2s ${SERVICE_IMAGE} /bin/busybox sleep 1000000 >/dev/null`);
        try {
            await waitConverged(m1(), 120);
            const node = sh(m1(), "docker service ps db --filter desired-state=running --format '{{.Node}}'");
            const c = runLocal("check", check(rel.a));
            assert.equal(c.code, 0, c.stderr);
            assert.match(c.stderr, new RegExp(`db keeps data on its nodes \\(volume dbdata:/data\\) and runs on ${node}: a drain of those nodes is refused unless swarmMoveLocalData names it`));
            const target = another(byName(node));
            const refused = runLocal("install", job(byName(node), target));
            assert.equal(refused.code, 1);
            assert.match(refused.stderr, new RegExp(`${node} was not drained: db keeps data on ${node} \\(volume dbdata:/data\\): its 1 task\\(s\\) there would start on another node on empty data\\..*swarmMoveLocalData: \\[db\\]`));
            assert.equal(availabilityOf(m1(), node), "active");
            // (one task: moving it is downtime too, accepted as such)
            const moved = await runLocalAsync("install", job(byName(node), target, { moveLocalData: ["db"], acceptDowntime: ["db"] }));
            assert.equal(moved.code, 0, moved.stderr);
            assert.equal(releaseOf(byName(node)), target);
        } finally {
            ssh(m1(), "docker service rm db >/dev/null");
        }
        await waitConverged(m1(), 120);
    });

    test("an autolocked cluster: refused without swarmUnlockKey and with a wrong one, nothing changed; with it, each manager is unlocked after its restart, a rolled-back one too", async () => {
        await reset();
        const key = sh(m1(), "docker swarm update --autolock=true >/dev/null && docker swarm unlock-key -q");
        try {
            const releases = hosts.map(releaseOf);
            const without = runLocal("check", check(rel.b));
            assert.equal(without.code, 1);
            assert.match(without.stderr, /forklift:swarmUnlockKey: Swarm cluster \w+ has autolock on: so-m1, so-m2, so-m3 would come back locked after their engine restarts/);
            const wrong = runLocal("check", check(rel.b, { unlockKey: "SWMKEY-1-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA" }));
            assert.equal(wrong.code, 1);
            assert.match(wrong.stderr, /forklift:swarmUnlockKey is not the unlock key of Swarm cluster \w+/);
            assert.ok(!(without.stderr + wrong.stderr).includes(key.slice(9)), "the key is in no message");
            assert.deepEqual(hosts.map(releaseOf), releases, "nothing changed");

            const { runs } = await rollOut(rel.c, { unlockKey: key }, { unlockKey: key });
            for (const m of managers) {
                assert.match(runs.get(m.name)!.stderr, new RegExp(`\\[forklift ${m.name}\\] unlocked its Swarm manager \\(autolock\\)`));
                assert.equal(sh(m, "docker info --format '{{.Swarm.LocalNodeState}}'"), "active");
                assert.equal(releaseOf(m), rel.c);
            }
            for (const r of runs.values()) assert.ok(!(r.stderr + r.stdout).includes(key.slice(9)), "the key is in no output");
            // a release that does not start on a manager: rolled back, unlocked, back in its cluster
            const bad = await runLocalAsync("install", job(byName("so-m3"), rel.bad, { unlockKey: key }));
            assert.equal(bad.code, 1);
            assert.match(bad.stderr, /Rolled back to release [0-9a-f]{64}; Docker is answering; back in its Swarm/);
            assert.equal(sh(byName("so-m3"), "docker info --format '{{.Swarm.LocalNodeState}}'"), "active");
            assert.match(sh(m1(), "docker node ls --format '{{.Hostname}} {{.Status}} {{.ManagerStatus}}'"), /^so-m3 Ready (Reachable|Leader)$/m);
            assert.equal(availabilityOf(m1(), "so-m3"), "active");
        } finally {
            sh(m1(), "docker swarm update --autolock=false >/dev/null");
        }
        await waitConverged(m1(), 120);
    });

    test("a manager whose new engine leaves a Swarm state the old one cannot start with is rolled back with its Swarm state as it was before the switch", async () => {
        await reset();
        const m2 = byName("so-m2");
        const was = releaseOf(m2);
        const r = await runLocalAsync("install", job(m2, rel.raft));
        assert.equal(r.code, 1);
        assert.match(r.stderr, /putting back its Swarm state as it was before the switch/);
        assert.match(r.stderr, /Rolled back to release [0-9a-f]{64}; Docker is answering; back in its Swarm, with its Swarm state as it was before the switch/);
        assert.equal(releaseOf(m2), was);
        assert.match(sh(m1(), "docker node ls --format '{{.Hostname}} {{.Status}} {{.ManagerStatus}}'"), /^so-m2 Ready (Reachable|Leader)$/m);
        assert.equal(availabilityOf(m1(), "so-m2"), "active");
        await waitConverged(m1(), 120);
    });

    test("a node that cannot tell whether it is a Swarm node is refused, not restarted undrained: its engine stopped, no docker CLI to ask it", async () => {
        await reset();
        const w2 = byName("so-w2");
        sh(w2, "systemctl stop docker.service docker.socket");
        try {
            const r = runLocal("check", check(rel.a));
            assert.equal(r.code, 1);
            assert.match(r.stderr, /so-w2.*its engine is not running, and \/var\/lib\/docker\/swarm says it is a Swarm node/);
            const install = runLocal("install", job(w2, another(w2)));
            assert.equal(install.code, 1);
            assert.match(install.stderr, /its engine is not running, and \/var\/lib\/docker\/swarm says it is a Swarm node.*nothing was changed/);
            assert.equal(sh(w2, "systemctl is-active docker.service || true"), "inactive", "not started either");
        } finally {
            sh(w2, "systemctl start docker.service");
        }
        // no docker CLI: the links moved away for a moment
        sh(w2, "mv /opt/forklift/current/docker /opt/forklift/current/docker.away; mv /usr/bin/docker.forklift-distrib /usr/bin/docker.away 2>/dev/null || true");
        try {
            const r = runLocal("install", job(w2, rel.c));
            assert.equal(r.code, 1);
            assert.match(r.stderr, /there is no docker CLI to ask its engine with, and \/var\/lib\/docker\/swarm says it is a Swarm node/);
        } finally {
            sh(w2, "mv /opt/forklift/current/docker.away /opt/forklift/current/docker; mv /usr/bin/docker.away /usr/bin/docker.forklift-distrib 2>/dev/null || true");
        }
        await waitConverged(m1(), 120);
    });

    test("Ctrl-C while a surged node with many services is being drained: its engine is never replaced, however late the stop lands", async () => {
        await reset();
        const w1 = byName("so-w1");
        const names = ["s1", "s2", "s3", "s4"];
        for (const n of names) sh(m1(), `docker service create -d --name ${n} --replicas 5 --no-resolve-image --endpoint-mode dnsrr --stop-grace-period 2s ${SERVICE_IMAGE} /bin/busybox sleep 1000000 >/dev/null`);
        try {
            await waitConverged(m1(), 180);
            const pid = mainPid(w1);
            const was = releaseOf(w1);
            const r = await runLocalStopped("install", job(w1, another(w1), { surge: 1 }), /so-w1: draining its node/, "SIGINT");
            assert.ok(r.stopped, r.stderr);
            assert.equal(r.code, 130, r.stderr);
            // (a host run started after the stop would have switched by now)
            await new Promise((res) => setTimeout(res, 15_000));
            assert.equal(mainPid(w1), pid, `its engine was not restarted:\n${r.stderr}`);
            assert.equal(releaseOf(w1), was);
            assert.equal(availabilityOf(m1(), "so-w1"), "active");
            assert.deepEqual(recorded(), []);
            assert.equal(sh(m1(), `docker service inspect ${names.join(" ")} --format '{{.Spec.Mode.Replicated.Replicas}} {{json .Spec.Labels}}' | sort -u`), "5 {}", "scaled back, no record left");
        } finally {
            ssh(m1(), `docker service rm ${names.join(" ")} >/dev/null`);
        }
        await waitConverged(m1(), 120);
    });

    test("swarmMaxDrained 2: two workers drained at once never take a service's last task; the second is refused, named, nothing changed there", async () => {
        await reset();
        const [w1, w2] = [byName("so-w1"), byName("so-w2")];
        sh(m1(), `docker service create -d --name pair --replicas 2 --constraint node.role==worker --no-resolve-image --endpoint-mode dnsrr --stop-grace-period 2s ${SERVICE_IMAGE} /bin/busybox sleep 1000000 >/dev/null`);
        try {
            await waitConverged(m1(), 120);
            assert.equal(sh(m1(), "docker service ps pair --filter desired-state=running --format '{{.Node}}' | sort | paste -sd' '"), "so-w1 so-w2", "one task on each worker");
            const releases = [w1, w2].map(releaseOf);
            const watcher = new Watcher(managers);
            await watcher.start();
            let runs: LocalRun[];
            try {
                runs = await Promise.all([w1, w2].map((w) => runLocalAsync("install", job(w, another(w), { maxDrained: 2 }))));
            } finally {
                await watcher.finish();
            }
            assertServicesKept(watcher.samples, { pair: 1 });
            const [done, refused] = runs[0].code === 0 ? [0, 1] : [1, 0];
            assert.equal(runs[done].code, 0, runs[done].stderr);
            assert.equal(runs[refused].code, 1, runs[refused].stderr);
            const name = [w1, w2][refused].name;
            assert.match(runs[refused].stderr, new RegExp(`${name} was not drained: pair: 1 of its tasks run on ${name}, and the other nodes have room for none .*Its engine was not restarted; nothing was changed`));
            assert.equal(releaseOf([w1, w2][refused]), releases[refused]);
            assert.deepEqual([w1, w2].map((w) => availabilityOf(m1(), w.name)), ["active", "active"]);
            assert.deepEqual(recorded(), []);
        } finally {
            ssh(m1(), "docker service rm pair >/dev/null");
        }
        await waitConverged(m1(), 120);
    });

    test("swarmMaxDrained 2 with swarmSurge: two workers at once share the surge; the service ends at its own count, no record left", async () => {
        await reset();
        const [w1, w2] = [byName("so-w1"), byName("so-w2")];
        sh(m1(), `docker service create -d --name sg --replicas 5 --no-resolve-image --endpoint-mode dnsrr --stop-grace-period 2s ${SERVICE_IMAGE} /bin/busybox sleep 1000000 >/dev/null`);
        try {
            await waitConverged(m1(), 120);
            const watcher = new Watcher(managers);
            await watcher.start();
            let runs: LocalRun[];
            try {
                runs = await Promise.all([w1, w2].map((w) => runLocalAsync("install", job(w, another(w), { maxDrained: 2, surge: 1 }))));
            } finally {
                await watcher.finish();
            }
            for (const r of runs) assert.equal(r.code, 0, r.stderr);
            assert.doesNotMatch(runs.map((r) => r.stderr).join("\n"), /was changed to \d+ while forklift had it/);
            assertServicesKept(watcher.samples, { sg: 5 });
            assert.equal(sh(m1(), "docker service inspect sg --format '{{.Spec.Mode.Replicated.Replicas}} {{json .Spec.Labels}}'"), "5 {}", "its own count, no record left");
        } finally {
            ssh(m1(), "docker service rm sg >/dev/null");
        }
        await waitConverged(m1(), 120);
    });

    test("a manager that applies the node's give-back but never answers: the give-back counts as done, not failed on its repeat elsewhere", async () => {
        await reset();
        const w1 = byName("so-w1");
        const target = another(w1);
        // (a session that hangs after the write: the update lands, its answer never comes)
        sh(m1(), `cat > /usr/local/bin/docker <<'EOF'
#!/bin/sh
case " $* " in *" node update "*"--label-rm"*) /usr/bin/docker "$@"; exec sleep 300;; esac
exec /usr/bin/docker "$@"
EOF
chmod +x /usr/local/bin/docker`);
        let r: LocalRun;
        try {
            r = await runLocalAsync("install", job(w1, target));
        } finally {
            sh(m1(), "rm -f /usr/local/bin/docker");
        }
        assert.equal(r.code, 0, r.stderr);
        assert.equal(releaseOf(w1), target);
        assert.equal(availabilityOf(m1(), "so-w1"), "active");
        assert.deepEqual(recorded(), []);
        await waitConverged(m1(), 120);
    });

    test("an unlock key rotated since the last up: a manager's uninstall (pulumi destroy) and install stop before it is drained, naming the setting", async () => {
        await reset();
        const m2 = byName("so-m2");
        const key = sh(m1(), "docker swarm update --autolock=true >/dev/null && docker swarm unlock-key -q");
        try {
            sh(m1(), "docker swarm unlock-key --rotate -q >/dev/null");
            const pid = mainPid(m2);
            const was = releaseOf(m2);
            for (const [what, r] of [
                ["uninstall", await runLocalAsync("uninstall", job(m2, was, { unlockKey: key }))],
                ["install", await runLocalAsync("install", job(m2, another(m2), { unlockKey: key }))],
            ] as [string, LocalRun][]) {
                assert.equal(r.code, 1, `${what}: ${r.stderr}`);
                assert.match(r.stderr, /so-m2 is a manager of an autolocked Swarm and was not restarted: forklift:swarmUnlockKey is not the unlock key of Swarm cluster \w+ \(rotated since it was set\?\).*Nothing was changed/, what);
                assert.doesNotMatch(r.stderr, /draining its node/, what);
            }
            assert.equal(mainPid(m2), pid, "its engine was not restarted");
            assert.equal(releaseOf(m2), was);
            assert.equal(sh(m2, "docker info --format '{{.Swarm.LocalNodeState}}'"), "active");
            assert.equal(availabilityOf(m1(), "so-m2"), "active");
        } finally {
            sh(m1(), "docker swarm update --autolock=false >/dev/null");
        }
        await waitConverged(m1(), 120);
    });

    test("a manager that hangs: the node's cluster commands go through another within their bound, and the rollout goes on", async () => {
        await reset();
        const pid = sh(m1(), "systemctl show -p MainPID --value docker.service");
        const w1 = byName("so-w1");
        const target = another(w1);
        sh(m1(), `kill -STOP ${pid}`);
        let r: LocalRun;
        try {
            r = await runLocalAsync("install", job(w1, target));
        } finally {
            sh(m1(), `kill -CONT ${pid}`);
        }
        assert.equal(r.code, 0, r.stderr);
        assert.match(r.stderr, /so-w1: draining its node \(\d+ service\(s\) with tasks on it; through so-m[23]\)/);
        assert.equal(releaseOf(w1), target);
        assert.equal(availabilityOf(m1(), "so-w1"), "active");
        assert.ok(r.seconds < 240, `bounded: ${r.seconds} s`);
        await waitConverged(m1(), 120);
    });

    test("two clusters in one fleet: each node's cluster commands go to its own cluster's managers", async () => {
        await reset();
        // so-w2 leaves and makes a cluster of its own (a manager, no service)
        const w2 = byName("so-w2");
        sh(w2, `docker swarm leave >/dev/null && docker swarm init --advertise-addr ${w2.address} >/dev/null`);
        for (let i = 0; i < 60 && !/^so-w2 Down/m.test(sh(m1(), "docker node ls --format '{{.Hostname}} {{.Status}}'")); i++) await new Promise((res) => setTimeout(res, 500));
        sh(m1(), "docker node rm so-w2 >/dev/null");
        const listed = [w2, ...managers].map(remote);
        const c = runLocal("check", checksJob("check", false, hosts.map((h) => checkedHost(remote(h), owner(h), { sha256: rel.c, needKiB: 1024 })), swarmCheck({ batchSize: 2, allowTwoManagers: false, daemonJson: {}, fleetManagers: [...managers.map((m) => m.name), "so-w2"], otherManagers: [], stackId: STACK_ID }), source(rel.c)));
        assert.equal(c.code, 0, c.stderr);
        const plan = JSON.parse(c.stdout).plan as string[][];
        assert.deepEqual(plan.map((s) => [...s].sort()), [["so-m1", "so-m2", "so-m3"], ["so-w1"], ["so-w2"]]);
        // so-w1's commands: so-w2 (another cluster's manager) is listed first and left out
        const w1 = await runLocalAsync("install", job(byName("so-w1"), another(byName("so-w1")), { managers: listed }));
        assert.equal(w1.code, 0, w1.stderr);
        assert.match(w1.stderr, /so-w1: draining its node \(\d+ service\(s\) with tasks on it; through so-m\d\)/);
        // so-w2's: its own cluster (itself); the other cluster's managers are left out
        const target = another(w2);
        const own = await runLocalAsync("install", job(w2, target, { managers: managers.map(remote) }));
        assert.equal(own.code, 0, own.stderr);
        assert.match(own.stderr, /so-w2: draining its node \(0 service\(s\) with tasks on it; through so-w2\)/);
        assert.equal(releaseOf(w2), target);
        assert.equal(sh(w2, "docker info --format '{{.Swarm.LocalNodeState}} {{.Swarm.ControlAvailable}}'"), "active true");
    });
});
