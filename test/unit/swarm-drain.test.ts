/** local/swarm-drain.ts: whether a node may be drained now, and with what surge, as tables. */
import { test } from "node:test";
import * as assert from "node:assert/strict";
import { MountSpec, NodeSpec, RunningTasks, ServiceSpec, localDataMounts, nodeMatches, planDrain } from "../../local/swarm-drain";

const node = (hostname: string, over: { role?: string; availability?: string; state?: string; labels?: Record<string, string>; engineLabels?: Record<string, string>; arch?: string } = {}): NodeSpec => ({
    ID: `id-${hostname}`,
    Spec: { Labels: over.labels ?? {}, Role: over.role ?? "worker", Availability: over.availability ?? "active" },
    Description: { Hostname: hostname, Platform: { Architecture: over.arch ?? "x86_64", OS: "linux" }, Engine: { EngineVersion: "20.10.24", Labels: over.engineLabels ?? null } },
    Status: { State: over.state ?? "ready" },
});
const service = (name: string, replicas: number | "global", over: { constraints?: string[]; max?: number; mounts?: MountSpec[] } = {}): ServiceSpec => ({
    ID: `svc-${name}`,
    Spec: {
        Name: name,
        Mode: replicas === "global" ? { Global: {} } : { Replicated: { Replicas: replicas } },
        TaskTemplate: { ContainerSpec: { Mounts: over.mounts ?? null }, Placement: { Constraints: over.constraints ?? null, MaxReplicas: over.max ?? 0 } },
    },
});
const running = (table: Record<string, Record<string, number>>): RunningTasks => new Map(Object.entries(table).map(([s, byNode]) => [s, new Map(Object.entries(byNode))]));

const matches: [string, string[], NodeSpec, boolean][] = [
    ["no constraint", [], node("w1"), true],
    ["hostname ==, any case", ["node.hostname==W1"], node("w1"), true],
    ["hostname !=", ["node.hostname != w1"], node("w1"), false],
    ["role", ["node.role==manager"], node("w1"), false],
    ["role of a manager", ["node.role == manager"], node("m1", { role: "manager" }), true],
    ["a node label", ["node.labels.zone==a"], node("w1", { labels: { zone: "a" } }), true],
    ["a node label the node lacks is empty: == fails", ["node.labels.zone==a"], node("w1"), false],
    ["a node label the node lacks is empty: != holds", ["node.labels.zone!=a"], node("w1"), true],
    ["an engine label", ["engine.labels.disk==ssd"], node("w1", { engineLabels: { disk: "ssd" } }), true],
    ["the platform", ["node.platform.arch==aarch64"], node("w1"), false],
    ["every constraint must hold", ["node.role==worker", "node.labels.zone==b"], node("w1", { labels: { zone: "a" } }), false],
    ["node.ip is not modelled: met", ["node.ip==10.0.0.1"], node("w1"), true],
];
for (const [what, constraints, n, expected] of matches) {
    test(`nodeMatches: ${what}`, () => assert.equal(nodeMatches(constraints, n), expected));
}

test("localDataMounts: bind mounts and named local volumes keep data on the node; tmpfs, anonymous, NFS and other drivers do not", () => {
    const s = service("db", 1, {
        mounts: [
            { Type: "bind", Source: "/srv/db", Target: "/data" },
            { Type: "volume", Source: "dbdata", Target: "/var/lib/db" },
            { Type: "volume", Source: "shared", Target: "/shared", VolumeOptions: { DriverConfig: { Name: "local", Options: { type: "nfs", o: "addr=10.0.0.9" } } } },
            { Type: "volume", Source: "cloud", Target: "/cloud", VolumeOptions: { DriverConfig: { Name: "rexray/ebs" } } },
            { Type: "volume", Target: "/scratch" },
            { Type: "tmpfs", Target: "/tmp" },
        ],
    });
    assert.deepEqual(localDataMounts(s), ["bind /srv/db:/data", "volume dbdata:/var/lib/db"]);
});

const three = [node("n1"), node("n2"), node("n3")];
const base = { acceptDowntime: [], moveLocalData: [], surge: 0 };
const plans: [string, Parameters<typeof planDrain>[0], { refusals: RegExp[]; surge?: Record<string, number>; waitWhole?: string[] }][] = [
    ["spread over three nodes: drained, its task moves", { ...base, node: "n1", nodes: three, services: [service("web", 3)], running: running({ web: { n1: 1, n2: 1, n3: 1 } }) }, { refusals: [], waitWhole: ["web"] }],
    ["a global service is no matter: its task stops and comes back with the node", { ...base, node: "n1", nodes: three, services: [service("mon", "global")], running: running({ mon: { n1: 1, n2: 1, n3: 1 } }) }, { refusals: [] }],
    [
        "every running task on this node (the others were drained before it): refused, naming the service and the ways out",
        { ...base, node: "n1", nodes: three, services: [service("web", 3)], running: running({ web: { n1: 3 } }) },
        { refusals: [/^web: all its 3 running task\(s\) are on n1, .*no running task for a while\. Spread it \(--replicas-max-per-node 1.*set swarmSurge: 1 or more.*swarmAcceptDowntime: \[web\]/] },
    ],
    ["the same, accepted", { ...base, acceptDowntime: ["web"], node: "n1", nodes: three, services: [service("web", 3)], running: running({ web: { n1: 3 } }) }, { refusals: [], waitWhole: [] }],
    ["the same, with swarmSurge: extra tasks first, no refusal", { ...base, surge: 5, node: "n1", nodes: three, services: [service("web", 3)], running: running({ web: { n1: 3 } }) }, { refusals: [], surge: { web: 3 }, waitWhole: ["web"] }],
    ["swarmSurge scales by at most its own number", { ...base, surge: 1, node: "n1", nodes: three, services: [service("web", 4)], running: running({ web: { n1: 2, n2: 1, n3: 1 } }) }, { refusals: [], surge: { web: 1 } }],
    [
        "a single-node swarm: no other node has room",
        { ...base, node: "n1", nodes: [node("n1")], services: [service("web", 2)], running: running({ web: { n1: 2 } }) },
        { refusals: [/^web: 2 of its tasks run on n1, and the other nodes have room for none .*it would run 0\/2 until n1 is back/] },
    ],
    [
        "pinned by a constraint to the node: no room elsewhere",
        { ...base, node: "n1", nodes: three, services: [service("pinned", 1, { constraints: ["node.hostname==n1"] })], running: running({ pinned: { n1: 1 } }) },
        { refusals: [/^pinned: 1 of its tasks run on n1, and the other nodes have room for none/] },
    ],
    [
        "one per node, and the other nodes full: it would run short",
        { ...base, node: "n1", nodes: three, services: [service("web", 3, { max: 1 })], running: running({ web: { n1: 1, n2: 1, n3: 1 } }) },
        { refusals: [/^web: 1 of its tasks run on n1, and the other nodes have room for none \(its constraints, at most 1 per node, .*it would run 2\/3 until n1 is back/] },
    ],
    [
        "drained, paused and down nodes take no task",
        { ...base, node: "n1", nodes: [node("n1"), node("n2", { availability: "drain" }), node("n3", { availability: "pause" }), node("n4", { state: "down" })], services: [service("web", 2)], running: running({ web: { n1: 2 } }) },
        { refusals: [/room for none/] },
    ],
    [
        "swarmSurge without room for the extra tasks: refused, saying so",
        { ...base, surge: 1, node: "n1", nodes: three, services: [service("web", 2, { max: 1, constraints: ["node.hostname!=n3"] })], running: running({ web: { n1: 1 } }) },
        { refusals: [/^web: all its 1 running task\(s\) are on n1, .*give it room for swarmSurge's extra tasks \(the other nodes have room for 1/] },
    ],
    [
        "data on the node: refused, naming the mounts and the setting",
        { ...base, node: "n1", nodes: three, services: [service("db", 1, { mounts: [{ Type: "volume", Source: "dbdata", Target: "/data" }] })], running: running({ db: { n1: 1 } }) },
        { refusals: [/^db keeps data on n1 \(volume dbdata:\/data\): its 1 task\(s\) there would start on another node on empty data\..*swarmMoveLocalData: \[db\]/] },
    ],
    ["data on the node, moving it accepted (with *)", { ...base, moveLocalData: ["*"], node: "n1", nodes: three, services: [service("db", 1, { mounts: [{ Type: "bind", Source: "/srv", Target: "/data" }] })], running: running({ db: { n1: 1, n2: 1 } }) }, { refusals: [] }],
    ["a service with no task on the node is no matter", { ...base, node: "n1", nodes: three, services: [service("web", 1, { constraints: ["node.hostname==n2"] })], running: running({ web: { n2: 1 } }) }, { refusals: [], waitWhole: [] }],
];
for (const [what, input, expected] of plans) {
    test(`planDrain: ${what}`, () => {
        const plan = planDrain(input);
        assert.equal(plan.refusals.length, expected.refusals.length, plan.refusals.join("\n"));
        expected.refusals.forEach((re, i) => assert.match(plan.refusals[i], re));
        if (expected.surge) assert.deepEqual(Object.fromEntries(plan.surge), expected.surge);
        else assert.equal(plan.surge.size, 0);
        if (expected.waitWhole) assert.deepEqual([...plan.waitWhole].sort(), expected.waitWhole);
    });
}
