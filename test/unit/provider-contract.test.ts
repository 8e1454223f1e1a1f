/** The mocks' copy of the command provider's input contract refuses what the provider refuses. */
import { test } from "node:test";
import * as assert from "node:assert/strict";
import * as pulumi from "@pulumi/pulumi";
import { checkProviderContract } from "./provider-contract";

// how a value that is unknown at preview reaches the mocks (deserialized in a dry run)
const UNKNOWN = pulumi.unknown;

const cases: [string, string, Record<string, unknown>, RegExp | null][] = [
    ["local Command with unknown create", "command:local:Command", { create: UNKNOWN, stdin: UNKNOWN, triggers: ["a"] }, null],
    ["local Command with a misspelt input", "command:local:Command", { create: "true", trigger: ["a"] }, /unknown input property "trigger"/],
    ["remote Command with unknown create", "command:remote:Command", { connection: { host: "h" }, create: UNKNOWN }, null],
    ["remote Command with a misspelt input", "command:remote:Command", { connection: { host: "h" }, deleteCommand: "x" }, /unknown input property "deleteCommand"/],
    ["another provider's resource", "aws:ec2/instance:Instance", { anything: UNKNOWN }, null],
];

for (const [what, type, inputs, refusal] of cases) {
    test(`provider contract: ${what}`, () => {
        if (refusal) assert.throws(() => checkProviderContract(type, "r", inputs), refusal);
        else assert.doesNotThrow(() => checkProviderContract(type, "r", inputs));
    });
}
