/** The mocks' check of the providers' input contract refuses what the providers refuse. */
import { test } from "node:test";
import * as assert from "node:assert/strict";
import * as pulumi from "@pulumi/pulumi";
import { checkProviderContract, knownInputs } from "./provider-contract";

// how a value that is unknown at preview reaches the mocks (deserialized in a dry run)
const UNKNOWN = pulumi.unknown;

const cases: [string, string, Record<string, unknown>, RegExp | null][] = [
    ["local Command with unknown create", "command:local:Command", { create: UNKNOWN, stdin: UNKNOWN, triggers: ["a"] }, null],
    ["local Command with a misspelt input", "command:local:Command", { create: "true", trigger: ["a"] }, /unknown input property "trigger"/],
    ["local Command given an output as an input", "command:local:Command", { create: "true", stdout: "x" }, /unknown input property "stdout"/],
    ["remote Command with unknown create", "command:remote:Command", { connection: { host: "h" }, create: UNKNOWN }, null],
    ["remote Command with a misspelt input", "command:remote:Command", { connection: { host: "h" }, deleteCommand: "x" }, /unknown input property "deleteCommand"/],
    ["remote Command given local's interpreter", "command:remote:Command", { connection: { host: "h" }, interpreter: ["bash"] }, /unknown input property "interpreter"/],
    ["an S3 bucket's inputs (a file named in the token)", "aws:s3/bucketOwnershipControls:BucketOwnershipControls", { bucket: "b", rule: {} }, null],
    ["an S3 bucket with a misspelt input", "aws:s3/bucket:Bucket", { bucket: "b", forceDelete: true }, /unknown input property "forceDelete"/],
    ["a random id (module index: the package's root)", "random:index/randomId:RandomId", { byteLength: 8, keepers: {} }, null],
    ["a random id with a misspelt input", "random:index/randomId:RandomId", { bytes: 8 }, /unknown input property "bytes"/],
    ["a TLS key", "tls:index/privateKey:PrivateKey", { algorithm: "ED25519" }, null],
    ["a security group's input with a default (`(args?.description) ?? …`)", "aws:ec2/securityGroup:SecurityGroup", { description: "d", ingress: [] }, null],
    ["a component of forklift's (no provider)", "forklift:index:Fleet", { anything: UNKNOWN }, null],
];

for (const [what, type, inputs, refusal] of cases) {
    test(`provider contract: ${what}`, () => {
        if (refusal) assert.throws(() => checkProviderContract(type, "r", inputs), refusal);
        else assert.doesNotThrow(() => checkProviderContract(type, "r", inputs));
    });
}

test("provider contract: read from the installed SDKs, inputs only", () => {
    const local = knownInputs("command:local:Command");
    assert.ok(local, "the command SDK is installed");
    for (const input of ["create", "update", "delete", "environment", "stdin", "triggers", "interpreter", "dir"]) assert.ok(local.has(input), input);
    for (const output of ["stdout", "stderr", "assets", "archive"]) assert.ok(!local.has(output), `${output} is an output`);
    assert.ok(knownInputs("command:remote:Command")?.has("connection"));
    assert.ok(knownInputs("tls:index/privateKey:PrivateKey")?.has("algorithm"), "a module index resource: the package root");
    assert.equal(knownInputs("forklift:index:Fleet"), undefined);
});
