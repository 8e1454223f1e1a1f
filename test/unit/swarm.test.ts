/** local/swarm.ts: the order, the quorum and the refusals of a rollout over Swarm clusters, as tables. */
import { test } from "node:test";
import * as assert from "node:assert/strict";
import { WaveSize } from "../../lib/rollout";
import { CLUSTER_CATCHUP_SECONDS, NodeRow, ServiceRow, SwarmFacts, SwarmInfo, planSteps, planSwarm, quorumProblem, rejoinWait, replicas, runningCount, serviceOfTask, shortServices } from "../../local/swarm";

const node = (id: string, manager: "" | "Leader" | "Reachable" | "Unreachable", status = "Ready", availability = "Active"): NodeRow => ({
    ID: id,
    Hostname: id,
    Status: status,
    Availability: availability,
    ManagerStatus: manager,
    EngineVersion: "20.10.24",
});
const three = [node("m1", "Reachable"), node("m2", "Leader"), node("m3", "Reachable"), node("w1", ""), node("w2", "")];

const quorum: [string, NodeRow[], string, boolean, RegExp | undefined][] = [
    ["3 managers, all reachable: one may go", three, "m1", false, undefined],
    ["the leader may go too (another is elected)", three, "m2", false, undefined],
    ["a worker is no matter of quorum", three, "w1", false, undefined],
    ["another manager unreachable: none may go", [node("m1", "Reachable"), node("m2", "Leader"), node("m3", "Unreachable", "Down")], "m1", false, /manager\(s\) m3 are not reachable/],
    ["no leader", [node("m1", "Reachable"), node("m2", "Reachable"), node("m3", "Reachable")], "m1", false, /no leader/],
    ["2 managers: refused", [node("m1", "Leader"), node("m2", "Reachable")], "m2", false, /2 managers: with one down there is no quorum \(set swarmAllowTwoManagers/],
    ["2 managers, allowed", [node("m1", "Leader"), node("m2", "Reachable")], "m2", true, undefined],
    ["1 manager: it may go (the control plane is down meanwhile)", [node("m1", "Leader")], "m1", false, undefined],
    ["5 managers, one unreachable: none may go (every other must be reachable)", [node("a", "Leader"), node("b", "Reachable"), node("c", "Reachable"), node("d", "Reachable"), node("e", "Unreachable")], "b", false, /e are not reachable/],
];
for (const [what, nodes, id, allowTwo, expected] of quorum) {
    test(`quorumProblem: ${what}`, () => {
        const problem = quorumProblem(nodes, id, allowTwo);
        if (expected) assert.match(problem ?? "", expected);
        else assert.equal(problem, undefined);
    });
}

const members = (list: [string, string, boolean, string][]) => list.map(([host, nodeId, manager, cluster]) => ({ host, nodeId, manager, cluster }));
const steps: [string, string[], ReturnType<typeof members>, string[], number | WaveSize[], string[][]][] = [
    ["no Swarm: batches in the fleet's order", ["a", "b", "c"], [], [], 2, [["a", "b"], ["c"]]],
    [
        "the managers in one step whatever the batch size (their runs go one at a time, the leader last), then the workers in batches",
        ["m1", "m2", "w1", "m3", "w2", "w3"],
        members([["m1", "n1", true, "C"], ["m2", "n2", true, "C"], ["m3", "n3", true, "C"], ["w1", "n4", false, "C"], ["w2", "n5", false, "C"], ["w3", "n6", false, "C"]]),
        ["n1"],
        3,
        [["m2", "m3", "m1"], ["w1", "w2", "w3"]],
    ],
    [
        "hosts in no Swarm first, then each cluster in the fleet's order",
        ["x1", "a1", "b1", "x2", "a2"],
        members([["a1", "na1", true, "A"], ["a2", "na2", false, "A"], ["b1", "nb1", true, "B"]]),
        ["na1", "nb1"],
        5,
        [["x1", "x2"], ["a1"], ["a2"], ["b1"]],
    ],
    ["a cluster of workers only: batches", ["w1", "w2", "w3"], members([["w1", "1", false, "C"], ["w2", "2", false, "C"], ["w3", "3", false, "C"]]), [], 2, [["w1", "w2"], ["w3"]]],
    [
        "waves: a canary then the rest, for the hosts in no Swarm and for each cluster's workers apart; the managers one step",
        ["x1", "x2", "x3", "m1", "m2", "w1", "w2", "w3", "w4"],
        members([["m1", "n1", true, "C"], ["m2", "n2", true, "C"], ["w1", "n3", false, "C"], ["w2", "n4", false, "C"], ["w3", "n5", false, "C"], ["w4", "n6", false, "C"]]),
        ["n2"],
        [1, "100%"],
        [["x1"], ["x2", "x3"], ["m1", "m2"], ["w1"], ["w2", "w3", "w4"]],
    ],
];
for (const [what, hosts, m, leaders, batch, expected] of steps) {
    test(`planSteps: ${what}`, () => assert.deepEqual(planSteps(hosts, m, new Set(leaders), typeof batch === "number" ? [batch] : batch), expected));
}

const info = (id: string, manager: boolean, cluster?: string, remote: string[] = []): SwarmInfo => ({
    NodeID: id,
    LocalNodeState: "active",
    ControlAvailable: manager,
    Managers: manager ? 3 : 0,
    Cluster: cluster ? { ID: cluster } : null,
    RemoteManagers: remote.map((r) => ({ NodeID: r, Addr: `${r}:2377` })),
});
const CLUSTER = "r941kggjl8wv92puqsld0r76f";
const clusterNodes = [node("n1", "Leader"), node("n2", "Reachable"), node("n3", "Reachable"), node("n4", ""), node("n5", "")];
const fleet = (over: Partial<Record<string, Partial<SwarmFacts>>> = {}): SwarmFacts[] =>
    [
        { name: "m1", swarm: info("n1", true, CLUSTER), nodes: clusterNodes },
        { name: "m2", swarm: info("n2", true, CLUSTER), nodes: clusterNodes },
        { name: "m3", swarm: info("n3", true, CLUSTER), nodes: clusterNodes },
        { name: "w1", swarm: info("n4", false) },
        { name: "w2", swarm: info("n5", false) },
        { name: "plain", swarm: null },
    ].map((f) => ({ ...f, ...over[f.name] }));
const settings = { batchSize: 2, allowTwoManagers: false, liveRestore: false, managers: ["m1"], unlockKey: false };

test("planSwarm: a cluster of 3 managers and 2 workers in the fleet: its members, its managers in one step (the leader last), no problem", () => {
    const plan = planSwarm(fleet(), [], settings);
    assert.deepEqual(plan.problems, []);
    assert.deepEqual(plan.members.map((m) => [m.host, m.manager]), [["m1", true], ["m2", true], ["m3", true], ["w1", false], ["w2", false]]);
    assert.deepEqual(plan.steps, [["plain"], ["m2", "m3", "m1"], ["w1", "w2"]]);
    assert.deepEqual(plan.warnings, []);
});

const refusals: [string, SwarmFacts[], SwarmFacts[], Partial<typeof settings>, RegExp][] = [
    ["live-restore set true with Swarm nodes in the fleet", fleet(), [], { liveRestore: true }, /^forklift:daemonJson: live-restore is true, and m1, m2, m3, w1, w2 are Swarm nodes: dockerd refuses swarm mode/],
    ["workers whose cluster's managers are not named in swarmManagers", fleet(), [], { managers: [] }, /^forklift:swarmManagers: w1, w2 are workers of Swarm cluster r941kggjl8wv, .*\(its managers in the fleet: m1, m2, m3\)/],
    [
        "workers of a cluster none of whose managers the check can see",
        fleet({ m1: { swarm: null, nodes: undefined }, m2: { swarm: null, nodes: undefined }, m3: { swarm: null, nodes: undefined } }),
        [],
        { managers: [] },
        /^forklift:swarmManagers: w1, w2 are Swarm workers of a cluster none of whose managers is in the fleet or in swarmManagers/,
    ],
    [
        "a manager of the cluster down before the rollout",
        fleet({ m1: { nodes: [node("n1", "Leader"), node("n2", "Reachable"), node("n3", "Unreachable", "Down"), node("n4", ""), node("n5", "")] } }),
        [],
        {},
        /^Swarm cluster r941kggjl8wv: manager\(s\) n3 are not reachable \(n3 Down Unreachable\): restarting m1, m2, m3 now could lose the cluster's quorum/,
    ],
    [
        "a cluster of 2 managers",
        [{ name: "m1", swarm: info("n1", true, CLUSTER), nodes: [node("n1", "Leader"), node("n2", "Reachable")] }, { name: "m2", swarm: info("n2", true, CLUSTER), nodes: [node("n1", "Leader"), node("n2", "Reachable")] }],
        [],
        {},
        /^forklift:swarmAllowTwoManagers: Swarm cluster r941kggjl8wv has 2 managers \(n1, n2\)/,
    ],
];
for (const [what, hosts, others, over, message] of refusals) {
    test(`planSwarm refuses: ${what}`, () => {
        const plan = planSwarm(hosts, others, { ...settings, ...over });
        assert.ok(plan.problems.some((p) => message.test(p)), `no problem matched ${message}:\n${plan.problems.join("\n")}`);
    });
}

test("planSwarm: a manager outside the fleet (swarmManagers) places the workers and is asked for their drains", () => {
    const workers = fleet({ m1: { swarm: null, nodes: undefined }, m2: { swarm: null, nodes: undefined }, m3: { swarm: null, nodes: undefined } }).filter((f) => f.name.startsWith("w") || f.name === "plain");
    const outside: SwarmFacts = { name: "ops-manager", swarm: info("n1", true, CLUSTER), nodes: clusterNodes };
    const plan = planSwarm(workers, [outside], { ...settings, managers: ["ops-manager"] });
    assert.deepEqual(plan.problems, []);
    assert.deepEqual(plan.steps, [["plain"], ["w1", "w2"]]);
});

test("planSwarm: one manager warns that its control plane is down while it restarts; allowed 2 managers are one step (their runs go one at a time)", () => {
    const one = planSwarm([{ name: "solo", swarm: info("n1", true, CLUSTER), nodes: [node("n1", "Leader")] }], [], settings);
    assert.deepEqual(one.problems, []);
    assert.match(one.warnings.join("\n"), /one manager \(solo\): its control plane is down while that node's engine restarts/);
    const two = planSwarm(
        [{ name: "a", swarm: info("n1", true, CLUSTER), nodes: [node("n1", "Leader"), node("n2", "Reachable")] }, { name: "b", swarm: info("n2", true, CLUSTER), nodes: [node("n1", "Leader"), node("n2", "Reachable")] }],
        [],
        { ...settings, allowTwoManagers: true },
    );
    assert.deepEqual(two.problems, []);
    assert.deepEqual(two.steps, [["b", "a"]]);
});

test("planSwarm: a fleet in no Swarm plans batches and finds nothing to refuse, live-restore or not", () => {
    const plan = planSwarm([{ name: "a" }, { name: "b", swarm: null }, { name: "c", swarm: { ...info("x", false), LocalNodeState: "inactive" } }], [], { ...settings, liveRestore: true, managers: [] });
    assert.deepEqual(plan, { members: [], steps: [["a", "b"], ["c"]], problems: [], warnings: [] });
});

const svc = (name: string, mode: string, replicasText: string): ServiceRow => ({ ID: name, Name: name, Mode: mode, Replicas: replicasText });
const counts: [ServiceRow, { running: number; desired: number } | undefined][] = [
    [svc("web", "replicated", "3/4"), { running: 3, desired: 4 }],
    [svc("mon", "global", "5/4"), { running: 5, desired: 4 }],
    [svc("one", "replicated", "1/1 (max 1 per node)"), { running: 1, desired: 1 }],
    [svc("job", "replicated-job", "0/1 (1/1 completed)"), undefined],
];
for (const [s, expected] of counts) {
    test(`replicas(${s.Mode} ${s.Replicas})`, () => assert.deepEqual(replicas(s), expected));
}

test("shortServices: those below their desired count by the tasks that run and are meant to, of the ones asked about", () => {
    // (service ls says 4/4 and 5/4 while a drained node's tasks are being stopped)
    const services = [svc("web", "replicated", "4/4"), svc("mon", "global", "5/4"), svc("db", "replicated", "0/1"), svc("job", "global-job", "0/5 (0/5 completed)")];
    const running = new Map([["web", 3], ["mon", 4], ["db", 0]]);
    assert.deepEqual(shortServices(services, running), ["web 3/4", "db 0/1"]);
    assert.deepEqual(shortServices(services, running, new Set(["web", "mon"])), ["web 3/4"]);
});

test("runningCount: a task counts when it runs and is meant to, not while it starts or stops", () => {
    const task = (desired: string, current: string) => ({ ID: "t", Name: "web.1", DesiredState: desired, CurrentState: current });
    assert.equal(runningCount([task("Running", "Running 3 minutes ago"), task("Running", "Preparing 2 seconds ago"), task("Shutdown", "Running 5 seconds ago"), task("Running", "Starting less than a second ago")]), 1);
});

test("serviceOfTask: replicated and global tasks name their service", () => {
    const task = (name: string) => ({ ID: "t", Name: name, DesiredState: "Running", CurrentState: "Running" });
    assert.equal(serviceOfTask(task("web.3")), "web");
    assert.equal(serviceOfTask(task("mon.a0r0z2meatlud32jtfwqlyl7i")), "mon");
    assert.equal(serviceOfTask(task("my.dotted.svc.2")), "my.dotted.svc");
});

test("planSwarm: a cluster with autolock on is refused without swarmUnlockKey, naming the setting and where the key comes from; with it, planned", () => {
    const locking = fleet().map((f) => (f.swarm?.ControlAvailable ? { ...f, swarm: { ...f.swarm, Cluster: { ID: CLUSTER, Spec: { EncryptionConfig: { AutoLockManagers: true } } } } } : f));
    const refused = planSwarm(locking, [], settings);
    assert.equal(refused.problems.length, 1);
    assert.match(refused.problems[0], /^forklift:swarmUnlockKey: Swarm cluster r941kggjl8wv has autolock on: m1, m2, m3 would come back locked after their engine restarts.*`docker swarm unlock-key -q` on a manager, then `pulumi config set --secret forklift:swarmUnlockKey <key>`/);
    assert.deepEqual(planSwarm(locking, [], { ...settings, unlockKey: true }).problems, []);
});

test("planSwarm: a manager that is locked now is refused, named, with how to unlock it", () => {
    const hosts = fleet().map((f) => (f.name === "m3" ? { name: "m3", swarm: { ...f.swarm!, LocalNodeState: "locked", ControlAvailable: false, Cluster: null } } : f));
    const plan = planSwarm(hosts, [], settings);
    assert.match(plan.problems.join("\n"), /^m3: its Swarm manager is locked \(the cluster has autolock on and the engine restarted\): unlock it first \(`docker swarm unlock` on the node/m);
});

// One swarmNodeTimeout per restart: the host script waits for the rejoin; the local side, after
// its run ended, only for the cluster to catch up.
const rejoinCases: [string, number, number][] = [
    ["the catch-up, with the default timeout", 120, CLUSTER_CATCHUP_SECONDS],
    ["a timeout shorter than the catch-up bounds it", 10, 10],
];
for (const [name, timeout, seconds] of rejoinCases) {
    test(`rejoinWait: ${name}`, () => assert.equal(rejoinWait(timeout), seconds));
}
