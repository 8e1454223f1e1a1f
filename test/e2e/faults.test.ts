/**
 * Faults through the real engine, as a user meets them: a build that fails, a fork whose daemon
 * does not start, and a host that is down during `pulumi destroy`. Each case checks the hosts over
 * SSH afterwards and that the documented recovery (the next `pulumi up` or `pulumi destroy`)
 * converges. Same lab and plugin rule as pulumi-up.test.ts; `npm run test:e2e`.
 */
import { after, before, describe, test } from "node:test";
import * as assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { Lab, LabHost, PulumiCli, bootLab, configureStack, ensureBusybox, findPulumi, note, projectCheckout, setConfig, sh } from "../support/lab";
import { repoRoot, stopHosts } from "../support/testbed";
import { assertOnRelease, releaseOf } from "./checks";

let lab: Lab;
let cli: PulumiCli;
let work: string;
let a: LabHost, b: LabHost, c: LabHost;
const project = () => path.join(work, "project");

/** How many SSH logins the host's sshd accepted so far (this query's own included). */
const logins = (h: LabHost) => Number(sh(h, "journalctl -u ssh.service -o cat --no-pager | grep -c '^Accepted' || true"));
/** Makes HOST drop SSH (as if it were down) until the returned function is called. */
function takeDown(h: LabHost): () => void {
    const rule = (op: string) => execFileSync(path.join(repoRoot(), "testbed", "host.sh"), ["exec", h.name, "iptables", op, "INPUT", "-p", "tcp", "--dport", "22", "-j", "DROP"]);
    rule("-I");
    return () => rule("-D");
}

describe("faults through pulumi up and destroy, on real hosts", { timeout: 45 * 60_000 }, () => {
    before(async () => {
        findPulumi();
        work = fs.mkdtempSync(path.join(os.tmpdir(), "forklift-faults-"));
        lab = await bootLab({
            builder: { name: "flt-builder", index: 111 },
            fleet: [
                { name: "flt-a", index: 112 },
                { name: "flt-b", index: 113 },
                { name: "flt-c", index: 114, debianDocker: true },
            ],
        });
        [a, b, c] = lab.fleet;
        cli = new PulumiCli(projectCheckout(project()), path.join(work, "state"), "faults-passphrase");
        await configureStack(cli, "faults", lab, { recipe: "docker-ce", ref: "v1" });
        const r = await cli.ok(["up", "--yes"]);
        note(`first up: ${r.seconds.toFixed(1)} s`);
    });

    after(async () => {
        lab?.stopForks();
        await stopHosts();
        if (work) fs.rmSync(work, { recursive: true, force: true });
    });

    test("the build fails: pulumi up shows the end of the build log and contacts no fleet host; fixed, up converges", async () => {
        const v1 = (await cli.outputs()).artifact.sha256;
        await setConfig(cli, { forkRef: "broken" });
        const before = [a, b, c].map(logins);
        const r = await cli.run(["up", "--yes"]);
        note(`up with a broken ref: exit ${r.code} after ${r.seconds.toFixed(1)} s`);
        assert.notEqual(r.code, 0);
        const text = r.stdout + r.stderr;
        assert.match(text, /build forklift-build-[0-9a-f]{16} failed/);
        assert.match(text, /compile error: swarmkit\/manager\.go:42: undefined: timeoutFromFork/, "the build log's last lines");
        assert.doesNotMatch(text, /forklift-[abc]-(check|install)\s+(creating|updating)/, "no fleet host's command started");
        assert.deepEqual([a, b, c].map(logins), before.map((n) => n + 1), "no fleet host saw a login but this query's own");
        for (const h of [a, b, c]) assert.equal(releaseOf(h), v1, `${h.name} kept its release`);

        await setConfig(cli, { forkRef: "v2" });
        await cli.ok(["up", "--yes"]);
        const out = await cli.outputs();
        for (const h of [a, b, c]) assertOnRelease(project(), h, out.artifact.sha256);
    });

    test("the new daemon does not start: the first host rolls back by itself, containers untouched, later batches do not start", async () => {
        const v2 = (await cli.outputs()).artifact.sha256;
        ensureBusybox(a);
        sh(a, "docker run -d --name live busybox:local sleep 1000000 >/dev/null");
        const livePid = sh(a, "docker inspect -f '{{.State.Pid}}' live");
        await setConfig(cli, { forkRef: "bad-daemon" });
        const r = await cli.run(["up", "--yes"]);
        note(`up with a daemon that does not start: exit ${r.code} after ${r.seconds.toFixed(1)} s`);
        assert.notEqual(r.code, 0);
        const text = r.stdout + r.stderr;
        assert.match(text, /\[forklift a\] ERROR: new release [0-9a-f]{64} failed: .*Rolled back to release [0-9a-f]{64}; Docker is answering\. Daemon log:/s);
        assert.match(text, /dockerd: fork patch broke startup/, "the daemon's own last log lines");
        assertOnRelease(project(), a, v2);
        assert.equal(sh(a, "docker inspect -f '{{.State.Running}} {{.State.Pid}}' live"), `true ${livePid}`, "a's container lived through it");
        for (const h of [b, c]) assert.equal(releaseOf(h), v2, `${h.name}: its batch did not start`);

        await setConfig(cli, { forkRef: "v1" });
        await cli.ok(["up", "--yes"]);
        const out = await cli.outputs();
        for (const h of [a, b, c]) assertOnRelease(project(), h, out.artifact.sha256);
        assert.equal(sh(a, "docker inspect -f '{{.State.Running}}' live"), "true");
    });

    test("destroy with a host down: later batches are given back, the down host (and the batches it waits for) stay in the stack; back up, destroy finishes", async () => {
        const bringBack = takeDown(b);
        let r;
        try {
            r = await cli.run(["destroy", "--yes"]);
            note(`destroy with b down: exit ${r.code} after ${r.seconds.toFixed(1)} s`);
        } finally {
            bringBack();
        }
        assert.notEqual(r.code, 0);
        assert.match(r.stdout + r.stderr, /cannot reach b \(10\.78\.113\.2:22\) over SSH: check that it is up/, "the error names the down host and its address");
        assert.equal(releaseOf(c), "", "c (a later batch) was given back");
        assert.equal(sh(c, "systemctl is-active docker.service"), "active", "Debian's Docker answers on c");
        assert.notEqual(releaseOf(b), "", "b still has its release");
        assert.notEqual(releaseOf(a), "", "a, which b's install depends on, is kept until b is gone");
        const left = (await cli.ok(["stack", "--show-urns"])).stdout;
        assert.match(left, /forklift-b-install/, "b's install stays in the stack");
        assert.doesNotMatch(left, /forklift-c-install/);

        await cli.ok(["destroy", "--yes"]);
        for (const h of [a, b]) assert.equal(releaseOf(h), "", `${h.name} was given back`);
        assert.doesNotMatch((await cli.ok(["stack", "--show-urns"])).stdout, /forklift-[ab]-install/);
    });
});
