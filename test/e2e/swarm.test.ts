/**
 * A Swarm fleet through the real `pulumi` CLI, as a user types it: three managers and two workers
 * (test hosts on the test bed's cloud, Debian's Docker, a replicated service of 4 and a global
 * one), `batchSize: 3`, swarmManagers naming the three managers. A watcher samples the cluster every
 * 0.5 s during `pulumi up` and `pulumi destroy`: a majority of managers reachable at every sample,
 * each node drained before its engine stops and back to its availability, the replicated service
 * never more than one node's share down, no replicated service without a running task, the managers restarted
 * one at a time, and every service whole when the command returns. Then what operators meet: a
 * `pulumi up` killed while a node is drained (one the operator drained stays so), finished by the
 * next; `swarmSurge` (no service below its replica count); an autolocked cluster, refused without
 * its key and rolled out with it. Same plugin rule as pulumi-up.test.ts; `npm run test:e2e`.
 */
import { after, before, describe, test } from "node:test";
import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { Lab, PulumiCli, bootLab, configureStack, findPulumi, note, projectCheckout, setConfig, sh } from "../../testbed/lab";
import { GLOBAL, REPLICAS, REPLICATED, Sample, Watcher, assertServicesKept, assertSwarmKept, availabilityOf, engineStops, formSwarm } from "../../testbed/swarm";
import { TestHost, stopHosts } from "../../testbed/testbed";
import { descendants, waitUntil } from "./checks";

let lab: Lab;
let cli: PulumiCli;
let work: string;
let managers: TestHost[];

/** Runs `pulumi ARGS` with the watcher on; returns the samples and when each node's engine stopped. */
async function watched(args: string[]): Promise<{ samples: Sample[]; stops: Record<string, number[]>; availability: Record<string, string> }> {
    const availability = Object.fromEntries(lab.fleet.map((h) => [h.name, availabilityOf(managers[0], h.name)]));
    const watcher = new Watcher(managers);
    const since = Date.now();
    await watcher.start();
    try {
        const r = await cli.ok(args);
        note(`pulumi ${args.join(" ")}: ${r.seconds.toFixed(1)} s`);
    } finally {
        await watcher.finish();
    }
    return { samples: watcher.samples, stops: Object.fromEntries(lab.fleet.map((h) => [h.name, engineStops(h, since)])), availability };
}

/** Asserts that no manager's engine stopped before the one stopped before it was back (Ready, reachable). */
function assertManagersOneAtATime(samples: Sample[], stops: Record<string, number[]>): void {
    const order = managers.map((m) => ({ name: m.name, at: stops[m.name][0] })).sort((a, b) => a.at - b.at);
    for (let i = 1; i < order.length; i++) {
        const prev = order[i - 1];
        const backBetween = samples.some((s) => s.at > prev.at + 1000 && s.at < order[i].at && s.nodes[prev.name]?.status === "Ready");
        assert.ok(backBetween, `${order[i].name} stopped before ${prev.name} was back`);
    }
}

describe("a Swarm fleet through pulumi up and destroy", { timeout: 60 * 60_000 }, () => {
    before(async () => {
        findPulumi(); // fail at once, naming the missing plugin, before anything boots
        work = fs.mkdtempSync(path.join(os.tmpdir(), "forklift-e2e-swarm-"));
        lab = await bootLab({
            builder: { name: "swe-builder", index: 131 },
            fleet: ["m1", "m2", "m3", "w1", "w2"].map((n, i) => ({ name: `swe-${n}`, index: 132 + i, debianDocker: true, cloud: true })),
        });
        managers = lab.fleet.slice(0, 3);
        note("forming the Swarm: 3 managers, 2 workers, web (4 replicas) and mon (global)");
        await formSwarm(lab.fleet, 3);
        cli = new PulumiCli(projectCheckout(path.join(work, "project")), path.join(work, "state"), "swarm-passphrase");
        await configureStack(cli, "swarm", lab, { recipe: "docker-ce", ref: "v1" });
        await setConfig(cli, { batchSize: "3" });
        for (const [i, m] of ["m1", "m2", "m3"].entries()) await cli.ok(["config", "set", "--path", `swarmManagers[${i}].name`, m]);
    });

    after(async () => {
        lab?.stopForks();
        await stopHosts();
        if (work) fs.rmSync(work, { recursive: true, force: true });
    });

    test("pulumi up (batchSize 3): managers one at a time, each node drained first, quorum and web kept; the services whole when it returns", async () => {
        const { samples, stops, availability } = await watched(["up", "--yes"]);
        const { minReplicas } = assertSwarmKept(samples, stops, availability);
        assertServicesKept(samples, {});
        assertManagersOneAtATime(samples, stops);
        const services = sh(managers[0], "docker service ls --format '{{.Name}} {{.Replicas}}'");
        assert.match(services, new RegExp(`^${REPLICATED} ${REPLICAS}/${REPLICAS}$`, "m"));
        assert.match(services, new RegExp(`^${GLOBAL} 5/5$`, "m"));
        note(`${samples.length} samples; ${REPLICATED} at least ${minReplicas}/${REPLICAS}`);
        const out = await cli.outputs();
        for (const h of lab.fleet) assert.equal(sh(h, "readlink /opt/forklift/current"), `/opt/forklift/releases/${out.artifact.sha256}`);
    });

    test("a ref change rolls out the same way", async () => {
        await setConfig(cli, { forkRef: "v2" });
        const { samples, stops, availability } = await watched(["up", "--yes"]);
        assertSwarmKept(samples, stops, availability);
        assertManagersOneAtATime(samples, stops);
        const out = await cli.outputs();
        for (const h of lab.fleet) assert.equal(sh(h, "readlink /opt/forklift/current"), `/opt/forklift/releases/${out.artifact.sha256}`);
    });

    test("a second pulumi up changes nothing and drains nothing", async () => {
        await cli.ok(["preview", "--expect-no-changes"]);
        const since = Date.now();
        await cli.ok(["up", "--yes"]);
        for (const h of lab.fleet) assert.deepEqual(engineStops(h, since), [], `${h.name} was not restarted`);
    });

    test("pulumi up killed while a node is drained: cancel, refresh and a second pulumi up finish the rollout, every node's availability as before", async () => {
        // the operator drained swe-w2 for their own reasons
        sh(managers[0], "docker node update --availability drain swe-w2 >/dev/null");
        const before = Object.fromEntries(lab.fleet.map((h) => [h.name, availabilityOf(managers[0], h.name)]));
        const drainedByForklift = () => sh(managers[0], "for n in $(docker node ls -q); do docker node inspect $n --format '{{.Description.Hostname}} {{json .Spec.Labels}}'; done").split("\n").filter((l) => /forklift\.drain\./.test(l)).map((l) => l.split(" ")[0]);
        await setConfig(cli, { forkRef: "v1" });
        const run = cli.start(["up", "--yes"]);
        await waitUntil("forklift drained a node", () => drainedByForklift().length > 0, 600);
        // as a crash of the machine would: the engine and every plugin it started, at once
        for (const pid of [run.pid, ...descendants(run.pid)]) process.kill(pid, "SIGKILL");
        await run.done;
        const left = drainedByForklift();
        note(`pulumi up killed with ${left.join(", ")} drained`);
        assert.ok(left.length > 0);
        await cli.ok(["cancel", "--yes"]);
        await cli.ok(["refresh", "--clear-pending-creates", "--yes"]);
        const { samples } = await watched(["up", "--yes"]);
        assertServicesKept(samples, {});
        assert.deepEqual(drainedByForklift(), [], "no node left drained by forklift");
        assert.deepEqual(Object.fromEntries(lab.fleet.map((h) => [h.name, availabilityOf(managers[0], h.name)])), before, "every node's availability as before");
        const out = await cli.outputs();
        for (const h of lab.fleet) assert.equal(sh(h, "readlink /opt/forklift/current"), `/opt/forklift/releases/${out.artifact.sha256}`);
        sh(managers[0], "docker node update --availability active swe-w2 >/dev/null");
    });

    test("swarmSurge: pulumi up keeps every replicated service at its replica count", async () => {
        await setConfig(cli, { forkRef: "v2", swarmSurge: "2" });
        const { samples, stops, availability } = await watched(["up", "--yes"]);
        assertSwarmKept(samples, stops, availability);
        assertServicesKept(samples, { [REPLICATED]: REPLICAS });
        assert.equal(sh(managers[0], `docker service inspect ${REPLICATED} --format '{{.Spec.Mode.Replicated.Replicas}}'`), String(REPLICAS), "scaled back");
        await setConfig(cli, { swarmSurge: "0" });
    });

    test("an autolocked cluster: pulumi up refused without swarmUnlockKey, nothing changed; with it, every manager unlocked after its restart", async () => {
        const key = sh(managers[0], "docker swarm update --autolock=true >/dev/null && docker swarm unlock-key -q");
        try {
            const out = await cli.outputs();
            await setConfig(cli, { forkRef: "v1" });
            const refused = await cli.run(["up", "--yes"]);
            assert.notEqual(refused.code, 0);
            assert.match(refused.stdout + refused.stderr, /forklift:swarmUnlockKey: Swarm cluster \w+ has autolock on/);
            for (const h of lab.fleet) assert.equal(sh(h, "readlink /opt/forklift/current"), `/opt/forklift/releases/${out.artifact.sha256}`, `${h.name} unchanged`);
            await cli.ok(["config", "set", "--secret", "swarmUnlockKey", key]);
            const { samples, stops, availability } = await watched(["up", "--yes"]);
            assertSwarmKept(samples, stops, availability);
            for (const m of managers) assert.equal(sh(m, "docker info --format '{{.Swarm.LocalNodeState}}'"), "active", `${m.name} unlocked`);
            assert.ok(!fs.readFileSync(path.join(work, "project", "Pulumi.swarm.yaml"), "utf8").includes(key.slice(9)), "the key only encrypted in the stack file");
        } finally {
            sh(managers[0], "docker swarm update --autolock=false >/dev/null");
        }
    });

    test("pulumi destroy gives every node back to Debian's Docker the same way", async () => {
        const { samples, stops, availability } = await watched(["destroy", "--yes"]);
        assertSwarmKept(samples, stops, availability);
        assertManagersOneAtATime(samples, stops);
        for (const h of lab.fleet) {
            assert.equal(sh(h, "test -e /opt/forklift && echo left || echo gone"), "gone");
            assert.equal(sh(h, "systemctl show -p FragmentPath --value docker.service"), "/lib/systemd/system/docker.service");
        }
    });
});
