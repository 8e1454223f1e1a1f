/**
 * The Swarm bench's reading of forklift's own lines (tools/bench-swarm.ts nodePhases): where each
 * node's time went, as `pulumi up` printed it.
 */
import { test } from "node:test";
import * as assert from "node:assert/strict";
import { nodePhases } from "../../tools/bench-swarm";

const cases: { name: string; output: string; phases: Record<string, Record<string, number>> }[] = [
    {
        name: "a node's three lines, among the engine's",
        output: [
            "  command:local:Command fleet-bsw-m1 (swarm): bsw-m1: draining its node (2 service(s) with tasks on it; through bsw-m2)",
            "    bsw-m1: drained, its tasks run elsewhere (4.2 s)",
            "    [forklift host] bsw-m1: restarting docker",
            "    bsw-m1: back in its cluster, availability active again (engine 11.0 s, rejoin 3.5 s)",
            "    bsw-m1: its services are whole again (6.1 s)",
        ].join("\n"),
        phases: { "bsw-m1": { drain: 4.2, engine: 11, rejoin: 3.5, converge: 6.1 } },
    },
    {
        name: "two nodes, lines interleaved; a node left drained before (no availability line) has no engine or rejoin",
        output: "w1: drained, its tasks run elsewhere (1.0 s)\nw2: drained, its tasks run elsewhere (12.5 s)\nw2: its services are whole again (0.0 s)\nw1: back in its cluster, availability pause again (engine 9.9 s, rejoin 0.1 s)\nw1: its services are whole again (2.0 s)\n",
        phases: { w1: { drain: 1, engine: 9.9, rejoin: 0.1, converge: 2 }, w2: { drain: 12.5, converge: 0 } },
    },
    { name: "no Swarm lines", output: "Updating (bench)\n  + 3 created\nDuration: 25s\n", phases: {} },
];

for (const c of cases) {
    test(`nodePhases: ${c.name}`, () => assert.deepEqual(nodePhases(c.output), c.phases));
}
