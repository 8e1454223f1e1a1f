/** local/plan.ts and lib/rollout.ts planTable: the plan before a rollout, as tables. */
import { test } from "node:test";
import * as assert from "node:assert/strict";
import * as pulumi from "@pulumi/pulumi";
import { OPERATOR_DRAINED, changeOf, currentOf, planOfFleet } from "../../local/plan";
import { planTable } from "../../lib/rollout";
import { HostFacts, SwarmInfo } from "../../lib/protocol/results";
import { PlanJob } from "../../lib/protocol/jobs";
import { checkedHost, checksJob, planJob } from "../../lib/protocol/local";
import { defaultSwarmCheck } from "../support/local";
import { knownNow } from "../../components/rollout";

const OWNER = { stack: "p/s", stackId: "abc", host: "h" };
const SHA_A = "a".repeat(64);
const SHA_B = "b".repeat(64);
const facts = (host: string, over: Partial<HostFacts> = {}): HostFacts => ({ host, release: "absent", copied: false, current: "", currentVersion: "", soaked: false, engine: "20.10.24", swarm: null, ...over });
const swarm = (manager: boolean): SwarmInfo => ({ NodeID: "n", LocalNodeState: "active", ControlAvailable: manager, Managers: 1, Cluster: manager ? { ID: "c" } : null });
const host = (name: string) => checkedHost({ name, route: { address: "10.0.0.1", port: 22, user: "root", connectTimeout: 10, hostKey: "k" } } as never, OWNER);
const job = (names: string[], sha256?: string, launched: string[] = []): PlanJob => planJob(checksJob("precheck", false, names.map(host), defaultSwarmCheck()), { label: "github.com/me/docker-ce@v2", ...(sha256 ? { sha256 } : {}) }, launched);

const currents: [string, HostFacts | undefined, RegExp][] = [
    ["the host's own Docker", facts("h"), /^the host's own Docker, engine 20\.10\.24$/],
    ["forklift's release", facts("h", { current: SHA_A, currentVersion: "24.0.9-fork", engine: "24.0.9-fork" }), /^forklift 24\.0\.9-fork \(aaaaaaaaaaaa\), engine 24\.0\.9-fork$/],
    ["no engine answering", facts("h", { engine: "" }), /no engine answering/],
    ["no facts (the host failed the precheck)", undefined, /^not checked \(see below\)$/],
];
for (const [what, f, expected] of currents) test(`currentOf: ${what}`, () => assert.match(currentOf(f), expected));

const changes: [string, string | undefined, string | undefined, string][] = [
    ["same release", SHA_A, SHA_A, "no"],
    ["another release", SHA_A, SHA_B, "yes"],
    ["no release of forklift's yet", "", SHA_B, "yes"],
    ["a build still to run", SHA_A, undefined, "if the build differs"],
    ["the host not checked", undefined, SHA_A, "unknown"],
];
for (const [what, current, target, expected] of changes) test(`changeOf: ${what}`, () => assert.equal(changeOf(current, target), expected));

test("planOfFleet: each host's step, role and drain; a Swarm node whose release stays is not drained; launched hosts last", () => {
    const f = new Map([
        ["plain", facts("plain", { current: SHA_A })],
        ["m1", facts("m1", { current: SHA_A, swarm: swarm(true) })],
        ["w1", facts("w1", { current: SHA_B, swarm: swarm(false) })],
    ]);
    const plan = planOfFleet(job(["w1", "m1", "plain"], SHA_B, ["ec2-1"]), f, [["plain"], ["m1"], ["w1"]]);
    assert.equal(plan.target, "github.com/me/docker-ce@v2 (sha256 bbbbbbbbbbbb)");
    assert.deepEqual(
        plan.hosts.map((r) => [r.step, r.host, r.change, r.role, r.drained]),
        [
            [1, "plain", "yes", "", ""],
            [2, "m1", "yes", "manager", "yes"],
            [3, "w1", "no", "worker", "no"],
            [0, "ec2-1", "yes", "", ""],
        ],
    );
});

test("planOfFleet: a node drained before the rollout (by its operator) says its drain stays, as the managers list it", () => {
    const node = (ID: string, Availability: string) => ({ ID, Hostname: ID, Status: "Ready", Availability, ManagerStatus: "", EngineVersion: "20.10.24" });
    const f = new Map([
        ["m1", facts("m1", { swarm: { ...swarm(true), NodeID: "nm" }, nodes: [node("nm", "Active"), node("nw", "Drain"), node("nx", "Pause")] })],
        ["w1", facts("w1", { swarm: { ...swarm(false), NodeID: "nw" } })],
        ["w2", facts("w2", { swarm: { ...swarm(false), NodeID: "nx" } })],
    ]);
    for (const sha of [SHA_B, undefined]) {
        const plan = planOfFleet(job(["m1", "w1", "w2"], sha), f, [["w1"], ["w2"], ["m1"]]);
        const expected = sha ? "yes" : "if the build differs";
        assert.deepEqual(
            plan.hosts.map((r) => [r.host, r.drained]),
            [
                ["w1", OPERATOR_DRAINED],
                ["w2", expected],
                ["m1", expected],
            ],
        );
    }
});

test("planOfFleet: a node a stopped run of this stack left drained is given back first: it reads as any other", () => {
    const node = (ID: string, Availability: string) => ({ ID, Hostname: ID, Status: "Ready", Availability, ManagerStatus: "", EngineVersion: "20.10.24" });
    const f = new Map([
        ["m1", facts("m1", { swarm: { ...swarm(true), NodeID: "nm" }, nodes: [node("nm", "Active"), node("nw", "Drain")] })],
        ["w1", facts("w1", { current: SHA_A, swarm: { ...swarm(false), NodeID: "nw" } })],
    ]);
    const drained = (records: string[]) => planOfFleet(job(["m1", "w1"], SHA_B), f, [["w1"], ["m1"]], [], records).hosts.find((r) => r.host === "w1")!.drained;
    assert.equal(drained([]), OPERATOR_DRAINED);
    assert.equal(drained(["nw"]), "yes");
});

test("planOfFleet: a build still to run: every change and drain is conditional", () => {
    const plan = planOfFleet(job(["w1"]), new Map([["w1", facts("w1", { swarm: swarm(false) })]]), [["w1"]]);
    assert.equal(plan.target, "github.com/me/docker-ce@v2 (a build still to run)");
    assert.deepEqual([plan.hosts[0].change, plan.hosts[0].drained], ["if the build differs", "if the build differs"]);
});

test("planOfFleet and planTable: hosts that failed the precheck are rows without facts, and the table ends with why `pulumi up` would stop", () => {
    const plan = planOfFleet(job(["a", "b"], SHA_A), new Map([["a", facts("a")]]), [], ["b (10.0.0.1:22): unreachable"]);
    assert.deepEqual(
        plan.hosts.map((r) => [r.step, r.host, r.current, r.change]),
        [
            [0, "a", "the host's own Docker, engine 20.10.24", "yes"],
            [0, "b", "not checked (see below)", "unknown"],
        ],
    );
    const lines = planTable(plan).split("\n");
    assert.deepEqual(lines.slice(-2), ["`pulumi up` would stop at the precheck, before any change, as 1 of 2 hosts failed it:", "  b (10.0.0.1:22): unreachable"]);
    assert.equal(planTable({ ...plan, problems: [] }).split("\n").length, 4, "no such lines without a failure");
});

test("planTable: one line per host under a header, columns aligned, the target first", () => {
    const plan = planOfFleet(job(["a-long-host-name", "b"], SHA_A), new Map([["a-long-host-name", facts("a-long-host-name")], ["b", facts("b", { current: SHA_A, swarm: swarm(true) })]]), [["a-long-host-name", "b"]]);
    const lines = planTable(plan).split("\n");
    assert.equal(lines[0], "the plan: install github.com/me/docker-ce@v2 (sha256 aaaaaaaaaaaa)");
    assert.match(lines[1], /^step +host +now +release changes +swarm +drained$/);
    assert.equal(lines.length, 4);
    assert.match(lines[2], /^1 +a-long-host-name +the host's own Docker, engine 20\.10\.24 +yes +- +-$/);
    assert.match(lines[3], /^1 +b +forklift \? \(aaaaaaaaaaaa\), engine 20\.10\.24 +no +manager +no$/);
    const col = lines[1].indexOf("host");
    assert.equal(lines[3].indexOf("b "), col, "the host column lines up");
});

test("knownNow: a known value, and one still to come (a preview's unknown), without waiting for it", async () => {
    assert.equal(await knownNow(pulumi.output("x")), "x");
    assert.equal(await knownNow(pulumi.secret("s")), "s");
    assert.equal(await knownNow(pulumi.output(pulumi.unknown as unknown as string)), undefined);
});
