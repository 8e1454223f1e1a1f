/**
 * URN guard. A resource's URN (its type, its name and the types of its parents) is its identity
 * in every existing stack's state: a changed URN is a delete and a create, so a restructuring that
 * moves a resource under another component replaces a running instance or uninstalls a host. Each
 * scenario's URNs are compared with urns.snapshot.json, taken before the restructuring: a URN that
 * is gone must be claimed by an `aliases` entry of the resource that took its place.
 *
 * A deliberate new resource: FORKLIFT_UPDATE_URN_SNAPSHOT=1 npm run test:unit rewrites the
 * snapshot. Never rewrite it to make a renamed resource pass: keep the alias instead.
 */
import { test } from "node:test";
import * as assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import { TEST_HOST_KEY, TEST_PRIVATE_KEY, ec2Stack, hostsStack } from "./fixtures";
import type { AliasRecord, Identity, UrnRecord } from "./program-harness";
import { runProgram } from "./run-program";

const SNAPSHOT = path.join(__dirname, "urns.snapshot.json");
const STACK = "test";
const PROJECT = "forklift";

const bastion = { address: "203.0.113.10", user: "jump", privateKey: TEST_PRIVATE_KEY, hostKey: TEST_HOST_KEY };
const scenarios: Record<string, Record<string, unknown>> = {
    "ec2 with a fleet bastion": { ...ec2Stack, sshAllowedCidrs: ["10.0.0.0/16"], fleetBastion: bastion },
    hosts: hostsStack(),
    "hosts and a launched instance": { ...hostsStack(), fleetCount: 1, sshAllowedCidrs: ["203.0.113.7/32"] },
};

interface SnapshotEntry {
    urn: string;
    /** the URNs its aliases resolve to, when it has any */
    aliases?: string[];
}

/** The URN of a resource of TYPE named NAME under the resource PARENT_URN (none: the stack). */
export function urnUnder(parentUrn: string | undefined, type: string, name: string): string {
    const qualified = parentUrn ? `${qualifiedType(parentUrn)}$${type}` : type;
    return `urn:pulumi:${STACK}::${PROJECT}::${qualified}::${name}`;
}
const qualifiedType = (urn: string) => urn.split("::")[2];
const urnName = (urn: string) => urn.split("::").slice(3).join("::");
const urnType = (urn: string) => qualifiedType(urn).split("$").pop() as string;

/** The URN of the last resource of a chain (outermost first). */
export function urnOfChain(chain: Identity[]): string | undefined {
    let urn: string | undefined;
    for (const hop of chain) urn = urnUnder(urn, hop.type, hop.name);
    return urn;
}
const urnOf = (r: UrnRecord) => urnOfChain([...r.parents, r]) as string;

/** One `aliases` entry resolved as the engine does: what is not given is the resource's own. */
export function resolveAlias(r: UrnRecord, alias: AliasRecord): string {
    if (typeof alias === "string") return alias;
    const parentUrn =
        alias.parentUrn !== undefined ? alias.parentUrn : "parent" in alias ? urnOfChain(alias.parent ?? []) : urnOfChain(r.parents);
    return urnUnder(parentUrn, alias.type ?? r.type, alias.name ?? r.name);
}

/**
 * Every URN a resource answers to besides its own: its aliases, and its parent's aliases carried
 * down (a child named "<parent>-x" follows a renamed parent), as Pulumi's allAliases does.
 */
export function aliasUrns(r: UrnRecord, all: UrnRecord[]): string[] {
    const own = (r.aliases ?? []).map((a) => resolveAlias(r, a));
    const parent = all.find((p) => urnOf(p) === urnOfChain(r.parents));
    if (!parent) return own;
    const inherited = (name: string, type: string, parentAlias: string) => {
        const aliasName = name.startsWith(parent.name) ? urnName(parentAlias) + name.slice(parent.name.length) : name;
        return urnUnder(parentAlias, type, aliasName);
    };
    const fromParent = aliasUrns(parent, all).flatMap((pa) => [
        inherited(r.name, r.type, pa),
        ...own.map((o) => inherited(urnName(o), urnType(o), pa)),
    ]);
    return [...new Set([...own, ...fromParent])];
}

function snapshotOf(records: UrnRecord[]): SnapshotEntry[] {
    return records
        .map((r) => {
            const aliases = aliasUrns(r, records);
            return aliases.length ? { urn: urnOf(r), aliases } : { urn: urnOf(r) };
        })
        .sort((a, b) => a.urn.localeCompare(b.urn));
}

/** What an existing stack of the snapshot's code would see: problems, none when nothing is replaced. */
export function urnProblems(before: SnapshotEntry[], now: SnapshotEntry[]): string[] {
    const problems: string[] = [];
    const nowUrns = new Set(now.map((e) => e.urn));
    const beforeUrns = new Set(before.map((e) => e.urn));
    for (const old of before) {
        if (nowUrns.has(old.urn)) continue;
        const claimers = now.filter((e) => e.aliases?.includes(old.urn));
        if (claimers.length === 0) problems.push(`${old.urn} is gone with no alias to it: existing stacks would delete it (and create its successor)`);
        if (claimers.length > 1) problems.push(`${old.urn} is claimed by the aliases of ${claimers.map((c) => c.urn).join(" and ")}`);
    }
    for (const e of now) {
        if (beforeUrns.has(e.urn)) {
            const stolen = (e.aliases ?? []).filter((a) => nowUrns.has(a) && a !== e.urn);
            if (stolen.length) problems.push(`${e.urn} aliases ${stolen.join(", ")}, which is still registered`);
            continue;
        }
        if (e.aliases?.some((a) => beforeUrns.has(a))) continue;
        // a new component holds no state of its own: what matters is that its children keep theirs
        if (urnType(e.urn).startsWith("forklift:")) continue;
        problems.push(`${e.urn} is new: if it is meant to be, rewrite the snapshot (FORKLIFT_UPDATE_URN_SNAPSHOT=1)`);
    }
    return problems;
}

const update = process.env.FORKLIFT_UPDATE_URN_SNAPSHOT === "1";
const snapshot: Record<string, SnapshotEntry[]> = update ? {} : JSON.parse(readFileSync(SNAPSHOT, "utf8"));

for (const [scenario, stack] of Object.entries(scenarios)) {
    test(`URNs of "${scenario}" are the snapshot's, or aliased to them`, () => {
        const run = runProgram(stack);
        assert.equal(run.error, undefined);
        const now = snapshotOf(run.urns);
        if (update) {
            snapshot[scenario] = now;
            return;
        }
        assert.ok(snapshot[scenario], `no snapshot for "${scenario}"`);
        assert.deepEqual(urnProblems(snapshot[scenario], now), []);
    });
}

test.after(() => {
    if (update) writeFileSync(SNAPSHOT, JSON.stringify(snapshot, null, 4) + "\n");
});

const parent = (type: string, name: string): Identity => ({ type, name });
const C = "forklift:index:Ec2Host";
const I = "aws:ec2/instance:Instance";
test("URN guard: URNs as the engine forms them", () => {
    assert.equal(urnOfChain([parent(C, "a"), parent(I, "a")]), "urn:pulumi:test::forklift::forklift:index:Ec2Host$aws:ec2/instance:Instance::a");
    const moved: UrnRecord = { type: C, name: "a", parents: [parent("forklift:index:Fleet", "f")] };
    assert.equal(urnOf(moved), "urn:pulumi:test::forklift::forklift:index:Fleet$forklift:index:Ec2Host::a");
    assert.equal(resolveAlias(moved, { parent: null }), "urn:pulumi:test::forklift::forklift:index:Ec2Host::a", "rootStackResource: no parent");
    assert.equal(resolveAlias(moved, { name: "b" }), "urn:pulumi:test::forklift::forklift:index:Fleet$forklift:index:Ec2Host::b", "no parent key: the same parent");
    assert.equal(resolveAlias(moved, "urn:x"), "urn:x");
});

test("URN guard: a moved component's alias covers its children; a missing alias is reported", () => {
    const before = snapshotOf([
        { type: C, name: "a", parents: [] },
        { type: I, name: "a", parents: [parent(C, "a")] },
    ]);
    const fleet = parent("forklift:index:Fleet", "f");
    const withAlias: UrnRecord[] = [
        { type: "forklift:index:Fleet", name: "f", parents: [] },
        { type: C, name: "a", parents: [fleet], aliases: [{ parent: null }] },
        { type: I, name: "a", parents: [fleet, parent(C, "a")] },
    ];
    assert.deepEqual(urnProblems(before, snapshotOf(withAlias)), []);
    const without = withAlias.map((r) => ({ ...r, aliases: undefined }));
    const problems = urnProblems(before, snapshotOf(without));
    assert.equal(problems.length, 3, problems.join("\n"));
    assert.match(problems[1], /::forklift:index:Ec2Host\$aws:ec2\/instance:Instance::a is gone/);
    assert.match(problems[2], /Fleet\$forklift:index:Ec2Host\$aws:ec2\/instance:Instance::a is new/);
    const renamed: UrnRecord[] = [
        { type: C, name: "b", parents: [], aliases: [{ name: "a" }] },
        { type: I, name: "b", parents: [parent(C, "b")] },
    ];
    assert.deepEqual(urnProblems(before, snapshotOf(renamed)), [], "a renamed parent carries its '<name>' children along");
    assert.match(urnProblems(before, snapshotOf([...before.map((e) => ({ type: urnType(e.urn), name: urnName(e.urn), parents: [] }))])).join(), /is new/);
});

test("URN guard: a child's alias to an old parent given as a URN (pulumi.createUrn) resolves under that parent", () => {
    const R = "forklift:index:Rollout";
    const F = "forklift:index:FleetHost";
    const L = "command:local:Command";
    const rollout = parent(R, "r");
    const oldParent = urnOfChain([rollout, parent(F, "r-old")]) as string;
    assert.equal(oldParent, "urn:pulumi:test::forklift::forklift:index:Rollout$forklift:index:FleetHost::r-old");
    const child: UrnRecord = { type: L, name: "x-install", parents: [rollout, parent(F, "new")] };
    assert.equal(
        resolveAlias(child, { name: "r-old-install", parentUrn: oldParent }),
        "urn:pulumi:test::forklift::forklift:index:Rollout$forklift:index:FleetHost$command:local:Command::r-old-install",
    );
    const before = snapshotOf([
        { type: R, name: "r", parents: [] },
        { type: F, name: "r-old", parents: [rollout] },
        { type: L, name: "r-old-install", parents: [rollout, parent(F, "r-old")] },
    ]);
    // "x-install" does not start with its parent's name "new", so the parent's alias carries its
    // name along unchanged ("x-install" under r-old), not to "r-old-install": the child needs its own
    const renamed = (childAliases?: UrnRecord["aliases"]): UrnRecord[] => [
        { type: R, name: "r", parents: [] },
        { type: F, name: "new", parents: [rollout], aliases: [{ name: "r-old" }] },
        { ...child, aliases: childAliases },
    ];
    assert.deepEqual(urnProblems(before, snapshotOf(renamed([{ name: "r-old-install", parentUrn: oldParent }]))), []);
    const problems = urnProblems(before, snapshotOf(renamed()));
    assert.equal(problems.length, 2, problems.join("\n"));
    assert.match(problems[0], /FleetHost\$command:local:Command::r-old-install is gone/);
    assert.match(problems[1], /FleetHost\$command:local:Command::x-install is new/);
});
