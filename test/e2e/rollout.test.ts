/**
 * Rollout control through the real `pulumi` CLI, as a user types it: four hosts, `waves: 1,100%`
 * (a canary, then the rest), a `healthCheck` that fails on one host of the second wave and
 * `maxFailures: 1`: that host is rolled back, the others updated, `pulumi up` fails with the report;
 * the host fixed, the next `pulumi up` changes that host alone. Same plugin rule as
 * pulumi-up.test.ts; `npm run test:e2e`.
 */
import { after, before, describe, test } from "node:test";
import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { Lab, PulumiCli, bootLab, configureStack, findPulumi, note, projectCheckout, setConfig, sh } from "../../testbed/lab";
import { stopHosts } from "../../testbed/testbed";
import { releaseOf, runningDockerd } from "./checks";

let lab: Lab;
let cli: PulumiCli;
let work: string;

describe("rollout control through pulumi up: a canary, a health check, an error budget, the report", { timeout: 40 * 60_000 }, () => {
    before(async () => {
        findPulumi(); // fail at once, naming the missing plugin, before anything boots
        work = fs.mkdtempSync(path.join(os.tmpdir(), "forklift-e2e-rollout-"));
        lab = await bootLab({ builder: { name: "rc-builder", index: 191 }, fleet: ["a", "b", "c", "d"].map((n, i) => ({ name: `rc-${n}`, index: 192 + i })) });
        cli = new PulumiCli(projectCheckout(path.join(work, "project")), path.join(work, "state"), "rollout-passphrase");
        await configureStack(cli, "rollout", lab, { recipe: "docker-ce", ref: "v1" });
        await cli.ok(["up", "--yes"]);
    });

    after(async () => {
        for (const { args, code, seconds } of cli?.log ?? []) note(`timing: pulumi ${args.slice(0, 3).join(" ")} -> ${code} in ${seconds.toFixed(1)} s`);
        lab?.stopForks();
        await stopHosts();
        if (work) fs.rmSync(work, { recursive: true, force: true });
    });

    test("waves 1,100%, a health check failing on one host of the second wave, maxFailures 1: it is rolled back, the others updated, pulumi up fails with the report; fixed, the next up changes it alone", async () => {
        const [a, b, c, d] = lab.fleet;
        const v1 = (await cli.outputs()).artifact.sha256 as string;
        await setConfig(cli, { forkRef: "v2", waves: "1,100%", healthCheck: "test ! -e /etc/forklift-test-unhealthy", maxFailures: "1" });
        sh(c, "touch /etc/forklift-test-unhealthy");
        const failed = await cli.run(["up", "--yes"]);
        const said = failed.stdout + failed.stderr;
        assert.notEqual(failed.code, 0, "pulumi up fails: a host failed");
        assert.match(said, /rollout: 3 updated, 1 rolled back \(maxFailures 1\)/, "the report's summary");
        assert.match(said, /c\s+\S+ [0-9a-f]{12} → \S+ [0-9a-f]{12}\s+2\s+[\d.]+\s+rolled back: c \(.*\): new release [0-9a-f]{64} failed: its health check failed \(exit 1\)/, "the report's line of c");
        assert.match(said, /1 of 4 hosts failed, each rolled back where it changed/);
        const v2 = sh(a, "readlink /opt/forklift/current").replace(/^\/opt\/forklift\/releases\//, "");
        assert.notEqual(v2, v1);
        assert.deepEqual([a, b, c, d].map(releaseOf), [v2, v2, v1, v2], "c rolled back, the others on the new release");

        sh(c, "rm -f /etc/forklift-test-unhealthy");
        const pids = [a, b, d].map((h) => runningDockerd(h).pid);
        const again = await cli.run(["up", "--yes"]);
        assert.equal(again.code, 0, again.stdout + again.stderr);
        assert.match(again.stdout + again.stderr, /rollout: 1 updated, 3 unchanged/);
        assert.deepEqual([a, b, c, d].map(releaseOf), [v2, v2, v2, v2]);
        assert.deepEqual([a, b, d].map((h) => runningDockerd(h).pid), pids, "the others' engines untouched");
        const out = await cli.outputs();
        assert.deepEqual(
            out.rollout.hosts.map((h: { name: string; step: number; outcome: string }) => [h.name, h.step, h.outcome]),
            [["a", 1, "unchanged"], ["b", 2, "unchanged"], ["c", 2, "updated"], ["d", 2, "unchanged"]],
            "the report as the stack output rollout",
        );
    });
});
