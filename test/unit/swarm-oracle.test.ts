/**
 * The Swarm watcher's promises (testbed/swarm.ts assertSwarmKept) over made-up samples: the
 * oracle of the Swarm host suite and bench must refuse a rollout that takes too much of a service
 * down, and must not blame one for a sample that read the nodes before a drain and the tasks after.
 */
import { test } from "node:test";
import * as assert from "node:assert/strict";
import { Sample, assertSwarmKept } from "../../testbed/swarm";

type Node = [status: string, availability: string, tasks: number];

/** A sample by manager BY at second T: NODES name → [status, availability, web's tasks running there]. */
function sample(t: number, by: string, nodes: Record<string, Node>): Sample {
    const s: Sample = { at: t * 1000, by, leader: true, reachable: 3, managers: 3, nodes: {}, services: {}, tasksOn: {}, running: {} };
    let running = 0;
    for (const [n, [status, availability, tasks]] of Object.entries(nodes)) {
        s.nodes[n] = { status, availability, manager: n.startsWith("m") ? "Reachable" : undefined };
        s.tasksOn[n] = tasks;
        running += tasks;
    }
    s.services.web = [running, 4];
    return s;
}

const steady: Record<string, Node> = { m1: ["Ready", "Active", 2], m2: ["Ready", "Active", 1], w1: ["Ready", "Active", 1] };
/** m1 drains: its two tasks stop before their replacements run on m2 and w1. */
const draining: Record<string, Node> = { m1: ["Ready", "Drain", 0], m2: ["Ready", "Active", 1], w1: ["Ready", "Active", 1] };
/** The nodes read before the drain, the tasks after: m1 still Active with its tasks stopped. */
const torn: Record<string, Node> = { m1: ["Ready", "Active", 0], m2: ["Ready", "Active", 1], w1: ["Ready", "Active", 1] };
const moved: Record<string, Node> = { m1: ["Ready", "Drain", 0], m2: ["Ready", "Active", 2], w1: ["Ready", "Active", 2] };
const back: Record<string, Node> = { m1: ["Ready", "Active", 0], m2: ["Ready", "Active", 2], w1: ["Ready", "Active", 2] };

/** Twelve samples from two managers, NODES each at its turn. */
function run(...states: Record<string, Node>[]): Sample[] {
    return states.map((n, i) => sample(i, i % 2 ? "m2" : "m3", n));
}
const stops: Record<string, number[]> = { m1: [5500] };
const kept = (samples: Sample[], engineStops: Record<string, number[]> = stops) => () =>
    assertSwarmKept(samples, engineStops, { m1: "active", m2: "active", w1: "active" });

const cases: { name: string; samples: Sample[]; stops?: Record<string, number[]>; fails?: RegExp }[] = [
    { name: "a drain of a node with two tasks: two down while it is drained", samples: run(steady, steady, steady, steady, draining, draining, moved, moved, moved, back, back, back) },
    {
        name: "a sample torn by the drain (the manager's next sample shows it drained)",
        samples: run(steady, steady, steady, torn, draining, draining, moved, moved, moved, back, back, back),
    },
    {
        name: "two down with no node drained, in that sample or its manager's next",
        samples: run(steady, steady, steady, torn, steady, steady, steady, steady, steady, steady, steady, steady),
        stops: {},
        fails: /web fell to 2 of 4 running, more than one node's share \(1\) down/,
    },
    {
        name: "three down while the drained node had two",
        samples: run(steady, steady, steady, steady, draining, { ...draining, w1: ["Ready", "Active", 0] }, moved, moved, moved, back, back, back),
        fails: /web fell to 1 of 4 running, more than one node's share \(2\) down/,
    },
];

for (const c of cases) {
    test(`assertSwarmKept: ${c.name}`, () => {
        if (c.fails) assert.throws(kept(c.samples, c.stops), c.fails);
        else assert.deepEqual(kept(c.samples, c.stops)(), { minReplicas: 2 });
    });
}

test("assertSwarmKept: an engine stopped while its node was not drained is refused", () => {
    assert.throws(kept(run(steady, steady, steady, steady, draining, draining, moved, moved, moved, back, back, back), { m1: [5500], m2: [2500] }), /m2 was not seen drained before its engine stopped/);
});
