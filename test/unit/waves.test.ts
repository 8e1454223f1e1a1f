/** lib/rollout.ts: the wave arithmetic (counts, percentages, rounding, lists longer and shorter than the fleet) and the error budget. */
import { test } from "node:test";
import * as assert from "node:assert/strict";
import { WaveSize, checkPlan, failureBudget, planWaves, waveSizes } from "../../lib/rollout";
import { planOf } from "../../components/rollout";
import { planSteps } from "../../local/swarm";
import { reportTable } from "../../local/rollout";
import { HostOutcome } from "../../lib/protocol/results";

const sizes: [string, number, WaveSize[], number[]][] = [
    ["one count, repeated", 5, [2], [2, 2, 1]],
    ["a canary, then the rest", 4, [1, "100%"], [1, 3]],
    ["a canary, a quarter, then all", 10, [1, "25%", "100%"], [1, 2, 7]],
    ["a percentage rounds down", 10, ["33%"], [3, 3, 3, 1]],
    ["a percentage of a small fleet is at least 1", 3, ["10%"], [1, 1, 1]],
    ["the last size repeats", 9, [1, 2], [1, 2, 2, 2, 2]],
    ["a list longer than the fleet: the rest unused", 2, [1, 1, 5, 5], [1, 1]],
    ["a wave larger than what is left takes what is left", 3, [1, 10], [1, 2]],
    ["100% of one host", 1, ["100%"], [1]],
    ["no hosts: no wave", 0, [1, "50%"], []],
    ["percentages of the group, not of what is left", 8, ["25%", "25%", "50%"], [2, 2, 4]],
];
for (const [what, total, waves, expected] of sizes) {
    test(`waveSizes: ${what} (${total} hosts, ${JSON.stringify(waves)})`, () => assert.deepEqual(waveSizes(total, waves), expected));
}

test("planWaves keeps the hosts' order and gives each host one wave", () => {
    const hosts = ["a", "b", "c", "d", "e"];
    assert.deepEqual(planWaves(hosts, [1, "50%"]), [["a"], ["b", "c"], ["d", "e"]]);
});

test("waveSizes refuses an empty list and a size below 1", () => {
    assert.throws(() => waveSizes(3, []), /at least one wave size/);
    assert.throws(() => waveSizes(3, [0]), /no number of hosts/);
});

const budgets: [WaveSize, number, number][] = [
    [0, 10, 0],
    [1, 10, 1],
    ["10%", 10, 1],
    ["10%", 9, 0],
    ["25%", 10, 2],
    ["100%", 4, 4],
];
for (const [max, total, expected] of budgets) {
    test(`failureBudget(${JSON.stringify(max)}, ${total} hosts) = ${expected}`, () => assert.equal(failureBudget(max, total), expected));
}

// a plan that does not cover exactly the fleet is an error naming the hosts, never a fallback
const plans: [string, string[][], string[], RegExp | undefined][] = [
    ["every host once", [["a"], ["b", "c"]], ["a", "b", "c"], undefined],
    ["a host missing", [["a"], ["c"]], ["a", "b", "c"], /not in any step: b\b/],
    ["a host twice", [["a", "b"], ["b", "c"]], ["a", "b", "c"], /in more than one step: b\b/],
    ["a host not in the fleet", [["a", "b", "c", "x"]], ["a", "b", "c"], /not in the fleet: x\b/],
    ["an empty step", [["a"], [], ["b"]], ["a", "b"], /an empty step/],
    ["no plan for hosts", [], ["a"], /not in any step: a\b/],
];
for (const [what, plan, hosts, error] of plans) {
    test(`checkPlan: ${what}`, () => {
        if (error) assert.throws(() => checkPlan(plan, hosts), error);
        else assert.deepEqual(checkPlan(plan, hosts), plan);
    });
}

const hostsABC = ["a", "b", "c"].map((name) => ({ name }) as Parameters<typeof planOf>[1][number]);
const rolloutResults: [string, string, string[][] | RegExp][] = [
    ["the rollout's plan", JSON.stringify({ plan: [["b"], ["a", "c"]], report: [] }), [["b"], ["a", "c"]]],
    ["0.1's check result (hosts and plan, no report)", JSON.stringify({ hosts: [], plan: [["a", "b", "c"]] }), [["a", "b", "c"]]],
    ["a host missing from the plan", JSON.stringify({ plan: [["b"], ["a"]], report: [] }), /not in any step: c\b/],
    ["a host twice", JSON.stringify({ plan: [["a", "b"], ["b", "c"]], report: [] }), /in more than one step: b\b/],
    ["a host not in the fleet", JSON.stringify({ plan: [["a", "b", "c", "d"]], report: [] }), /not in the fleet: d\b/],
    ["a plan that is no list of steps", JSON.stringify({ plan: "b,a" }), /not one this forklift reads \(plan: /],
    ["no plan at all: an error, never batches", JSON.stringify({ hosts: {} }), /not one this forklift reads \(plan: /],
    ["no JSON", "checked\n", /printed no result line; its output ended with: checked/],
];
for (const [what, stdout, expected] of rolloutResults) {
    test(`planOf: ${what}`, () => {
        if (expected instanceof RegExp) assert.throws(() => planOf(stdout, hostsABC), expected);
        else assert.deepEqual(planOf(stdout, hostsABC), expected);
    });
}

test("planSteps covers exactly the fleet: Swarm members and plain hosts each in one step", () => {
    const members = [
        { host: "m1", nodeId: "n1", cluster: "c", manager: true },
        { host: "w1", nodeId: "n2", cluster: "c", manager: false },
    ] as Parameters<typeof planSteps>[1];
    assert.deepEqual(planSteps(["p1", "m1", "w1", "p2"], members, new Set(["n1"]), [1]), [["p1"], ["p2"], ["m1"], ["w1"]]);
});

const outcome = (host: string, extra: Partial<HostOutcome> = {}): HostOutcome => ({ host, step: 1, before: "its own Docker", after: "v1 aaaaaaaaaaaa", seconds: 2.04, outcome: "updated", ...extra });
test("reportTable: a Swarm column, with the role and the drain, only where the fleet has Swarm nodes", () => {
    const plain = reportTable({ steps: [["a"]], hosts: [outcome("a")], failures: 0, budget: 0 });
    assert.deepEqual(plain.slice(1).map((l) => l.split(/\s{2,}/)), [["host", "before → after", "step", "s", "outcome"], ["a", "its own Docker → v1 aaaaaaaaaaaa", "1", "2.0", "updated"]]);
    const swarm = reportTable({ steps: [["m"], ["w", "p"]], hosts: [outcome("m", { role: "manager", drained: true }), outcome("w", { role: "worker", drained: false, outcome: "unchanged", step: 2 }), outcome("p", { step: 2 })], failures: 0, budget: 0 });
    assert.equal(swarm[0], "rollout: 2 updated, 1 unchanged (maxFailures 0)");
    assert.deepEqual(
        swarm.slice(1).map((l) => l.split(/\s{2,}/)),
        [
            ["host", "before → after", "step", "swarm", "s", "outcome"],
            ["m", "its own Docker → v1 aaaaaaaaaaaa", "1", "manager, drained", "2.0", "updated"],
            ["w", "its own Docker → v1 aaaaaaaaaaaa", "2", "worker", "2.0", "unchanged"],
            ["p", "its own Docker → v1 aaaaaaaaaaaa", "2", "-", "2.0", "updated"],
        ],
    );
});
