/**
 * An upgrade of forklift itself, through the real `pulumi` CLI: stacks rolled out by the release
 * before this one (CHANGELOG.md names its commit; a git worktree of it), then driven by this
 * checkout's code, as a user who pulls a new forklift does:
 *   - `pulumi destroy` at once, on the older release's state (its jobs read as it wrote them):
 *     every host given back;
 *   - `pulumi up` (the rebuilt release rolled out once, as CHANGELOG.md says), a second `pulumi up`
 *     that changes and restarts nothing, then `pulumi destroy`: every host given back.
 * Same plugin rule as pulumi-up.test.ts; `npm run test:e2e`.
 */
import { after, before, describe, test } from "node:test";
import * as assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { Lab, PulumiCli, bootLab, configureStack, findPulumi, note, projectCheckout, sh } from "../../testbed/lab";
import { repoRoot, stopHosts } from "../../testbed/testbed";
import { traceSnapshot } from "../support/trace";
import { releaseOf, runningDockerd } from "./checks";

let lab: Lab;
let work: string;
let previous: string;
const before0 = new Map<string, string>();

/** The commit of the release before this one, as CHANGELOG.md names it (its second release). */
function previousRelease(): string {
    const heads = [...fs.readFileSync(path.join(repoRoot(), "CHANGELOG.md"), "utf8").matchAll(/^## (\S+) — (?:commit `([0-9a-f]{7,40})`|tag `([^`]+)`)/gm)];
    assert.ok(heads.length >= 2 && heads[1][2], `CHANGELOG.md names no commit for the release before ${heads[0]?.[1]}`);
    return heads[1][2];
}

/** A stack NAME of the previous release's code in its own project directory, rolled out to the lab. */
async function olderStack(name: string): Promise<PulumiCli> {
    const cli = new PulumiCli(projectCheckout(path.join(work, name), path.join(work, "previous")), path.join(work, `state-${name}`), "upgrade-passphrase");
    await configureStack(cli, name, lab, { recipe: "docker-ce", ref: "v1" });
    await cli.ok(["up", "--yes"]);
    return cli;
}

/** Every fleet host as forklift found it (what traceSnapshot records), as before the first stack. */
function assertGivenBack(): void {
    for (const h of lab.fleet) {
        assert.equal(sh(h, "test -e /opt/forklift && echo left || echo gone"), "gone", `${h.name}: forklift's files gone`);
        assert.equal(traceSnapshot(h, { daemonData: h.debianDocker }), before0.get(h.name), `${h.name} is as forklift found it`);
    }
}

describe("an upgrade of forklift: stacks of the release before, driven by this one", { timeout: 60 * 60_000 }, () => {
    before(async () => {
        findPulumi(); // fail at once, naming the missing plugin, before anything boots
        work = fs.mkdtempSync(path.join(os.tmpdir(), "forklift-e2e-upgrade-"));
        previous = previousRelease();
        const wt = spawnSync("git", ["worktree", "add", "--detach", path.join(work, "previous"), previous], { cwd: repoRoot(), encoding: "utf8" });
        assert.equal(wt.status, 0, `git worktree add of ${previous}: ${wt.stderr}`);
        note(`the release before: ${previous}`);
        lab = await bootLab({ builder: { name: "ug-builder", index: 196 }, fleet: [{ name: "ug-a", index: 197 }, { name: "ug-b", index: 198, debianDocker: true }] });
        for (const h of lab.fleet) before0.set(h.name, traceSnapshot(h, { daemonData: h.debianDocker }));
    });

    after(async () => {
        lab?.stopForks();
        await stopHosts();
        if (work) {
            spawnSync("git", ["worktree", "remove", "--force", path.join(work, "previous")], { cwd: repoRoot() });
            fs.rmSync(work, { recursive: true, force: true });
        }
    });

    test("pulumi destroy with this release, on a stack the release before rolled out: every host given back", async () => {
        const cli = await olderStack("older-destroyed");
        projectCheckout(cli.projectDir); // the upgrade: this checkout's code, the stack and its state kept
        await cli.ok(["destroy", "--yes"]);
        assertGivenBack();
    });

    test("pulumi up with this release on a stack of the release before: rolled out once, then a pulumi up that changes and restarts nothing; pulumi destroy gives every host back", async () => {
        const cli = await olderStack("older");
        const older = lab.fleet.map(releaseOf);
        projectCheckout(cli.projectDir);
        const up = await cli.run(["up", "--yes"]);
        assert.equal(up.code, 0, up.stdout + up.stderr);
        const out = await cli.outputs();
        assert.ok(out.artifact.provenance, "the rebuilt artifact has its provenance");
        assert.notDeepEqual(lab.fleet.map(releaseOf), older, "the release of a new format, rolled out once (CHANGELOG.md)");
        for (const h of lab.fleet) assert.equal(releaseOf(h), out.artifact.sha256);
        const pids = lab.fleet.map((h) => runningDockerd(h).pid);
        const again = await cli.run(["up", "--yes", "--expect-no-changes"]);
        assert.equal(again.code, 0, `a second up changes nothing: ${again.stdout}${again.stderr}`);
        assert.deepEqual(lab.fleet.map((h) => runningDockerd(h).pid), pids, "and restarts nothing");
        await cli.ok(["destroy", "--yes"]);
        assertGivenBack();
    });
});
