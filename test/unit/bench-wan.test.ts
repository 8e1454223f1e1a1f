/**
 * The WAN bench's --only (tools/bench-wan.ts onlyOf): which measurements a run makes.
 */
import { test } from "node:test";
import * as assert from "node:assert/strict";
import { onlyOf } from "../../tools/bench-wan";

const ALL = ["store8", "store16", "relay8", "ansible8", "floor8", "floor16"];

const cases: { argv: string[]; kinds?: string[]; error?: RegExp }[] = [
    { argv: [], kinds: ALL },
    { argv: ["--reps", "5"], kinds: ALL },
    { argv: ["--only", "store8"], kinds: ["store8"] },
    { argv: ["--reps", "5", "--only", "store8,floor8"], kinds: ["store8", "floor8"] },
    { argv: ["--only", "store8,floor4"], error: /--only wants some of store8,store16,relay8,ansible8,floor8,floor16 \(got store8,floor4\)/ },
    { argv: ["--only"], error: /--only wants some of .* \(got nothing\)/ },
];

for (const { argv, kinds, error } of cases) {
    test(`onlyOf(${JSON.stringify(argv)})`, () => {
        if (error) assert.throws(() => onlyOf(argv), error);
        else assert.deepEqual([...onlyOf(argv)].sort(), [...kinds!].sort());
    });
}
