/**
 * A user's resource that depends on one of forklift's components (`dependsOn: [rollout]`) waits
 * for everything the component made: the SDK collects a component's children when it is
 * constructed, so a child made later (after the constructor returned) would be missed. Checked
 * on the dependencies the SDK sends to the engine, under mocks, for both modes.
 */
import { test } from "node:test";
import * as assert from "node:assert/strict";
import { ec2Stack, hostsStack } from "./fixtures";
import { runProgram } from "./run-program";

const ROLLOUT = "forklift:index:Rollout::forklift";
const FLEET = "forklift:index:Fleet::forklift-fleet";
const BUILD_HOST = "forklift:index:BuildHost::forklift-builder";
const FORK_BUILD = "forklift:index:ForkBuild::forklift-fork";

// (hosts mode launches nothing: its Fleet has no resources of its own)
const cases: [string, Record<string, unknown>, string[]][] = [
    ["hosts mode", hostsStack(), [ROLLOUT, BUILD_HOST, FORK_BUILD]],
    ["EC2 mode", ec2Stack, [ROLLOUT, FLEET, BUILD_HOST, FORK_BUILD]],
];

for (const [mode, stack, components] of cases) {
    test(`${mode}: a dependent of each component waits for every resource under it`, () => {
        const run = runProgram(stack, "up", components);
        assert.equal(run.error, undefined);
        for (const component of components) {
            const [type, name] = component.split("::");
            const under = run.urns
                .filter((u) => !u.type.startsWith("forklift:") && u.parents.some((p) => p.name === name && p.type === type))
                .map((u) => u.name)
                .sort();
            assert.ok(under.length > 0, `${name} has resources under it`);
            const waited = (run.dependencies[`dependent-of-${name}`] ?? []).map((urn) => urn.split("::").pop()!).sort();
            assert.deepEqual(
                under.filter((n) => !waited.includes(n)),
                [],
                `a dependent of ${name} waits for ${waited.join(", ")}; it must wait for all of ${under.join(", ")}`,
            );
        }
    });
}
