/**
 * npm run bench -- --swarm — a rollout over a Docker Swarm, three ways, on the same 5 test hosts
 * (3 managers, 2 workers, Debian's Docker, on the test bed's cloud; a replicated service `web` of 4
 * and a global one), each rolling the other ref of the docker-ce fixture fork out:
 *   forklift   `pulumi up --yes` (batchSize 3, swarmManagers the three managers)
 *   Ansible    bench/swarm-playbook.yml: serial 1, managers first, each node drained through
 *              another manager, `until` loops for its tasks, its return and the service
 *   naive      bench/floor.sh on one node after the other: the engine restarted in place, no drain
 * A watcher samples the cluster every 0.5 s during each (testbed/swarm.ts). For each: the
 * wall time, the task-seconds lost (web's replicas below its desired count × seconds) and the
 * fewest of web's replicas running at any sample. Median of --reps (default 3).
 *
 * The last line printed: `swarm_vs_ansible=<r> swarm_taskloss_vs_naive=<r> swarm_min_replicas=<n>/4`.
 * Writes its block into BENCHMARKS.md (between bench-swarm markers). Needs what `npm run bench` needs.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { Lab, PulumiCli, bootLab, configureStack, findPulumi, note, projectCheckout, setConfig } from "../testbed/lab";
import { REPLICAS, REPLICATED, Sample, Watcher, assertSwarmKept, availabilityOf, engineStops, formSwarm, waitConverged } from "../testbed/swarm";
import { TestHost, checkPrerequisites, sshAsync, stopHosts } from "../testbed/testbed";
import {
    BENCH_DIR,
    REFS,
    Ref,
    ansibleBin as installAnsible,
    ansibleEnv,
    clearStartLimits,
    floorEnv,
    installHostPython,
    median,
    other,
    r2,
    repsOf,
    runProgram,
    writeBenchmarkBlock,
    writeInventory,
    writeManagedFiles,
} from "./bench-common";

interface Run {
    seconds: number;
    /** forklift's: per node, the seconds of each part its lines name (see nodePhases) */
    phases?: Record<string, Record<string, number>>;
    /** web's replicas below its desired count, times seconds, over the run */
    taskSeconds: number;
    minReplicas: number;
}


const PHASES = ["drain", "engine", "rejoin", "converge"] as const;

/**
 * Where each node's time went, from forklift's own lines in the `pulumi up` output (swarm-node.ts):
 * "NODE: drained, its tasks run elsewhere (D s)", "NODE: back in its cluster, availability A again
 * (engine E s, rejoin R s)", "NODE: its services are whole again (C s)".
 */
export function nodePhases(output: string): Record<string, Record<string, number>> {
    const phases: Record<string, Record<string, number>> = {};
    const at = (node: string) => (phases[node] ??= {});
    for (const m of output.matchAll(/(\S+): drained, its tasks run elsewhere \((\d+\.\d) s\)/g)) at(m[1]).drain = Number(m[2]);
    for (const m of output.matchAll(/(\S+): back in its cluster, availability \S+ again \(engine (\d+\.\d) s, rejoin (\d+\.\d) s\)/g)) Object.assign(at(m[1]), { engine: Number(m[2]), rejoin: Number(m[3]) });
    for (const m of output.matchAll(/(\S+): its services are whole again \((\d+\.\d) s\)/g)) at(m[1]).converge = Number(m[2]);
    return phases;
}

/** Task-seconds lost: between two samples, the replicas short of the desired count times the time between them. */
export function taskSecondsLost(samples: Sample[]): number {
    let lost = 0;
    for (let i = 1; i < samples.length; i++) {
        const [running, desired] = samples[i - 1].services[REPLICATED] ?? [REPLICAS, REPLICAS];
        lost += Math.max(0, desired - running) * ((samples[i].at - samples[i - 1].at) / 1000);
    }
    return lost;
}

interface Setup {
    lab: Lab;
    cli: PulumiCli;
    work: string;
    ansibleBin: string;
    managers: TestHost[];
    artifacts: Record<Ref, { sha256: string; tgz: string }>;
    ref: Ref;
}

async function setUp(): Promise<Setup> {
    checkPrerequisites();
    findPulumi();
    const ansibleBin = await installAnsible();
    const work = fs.mkdtempSync(path.join(os.tmpdir(), "forklift-bench-swarm-"));
    const lab = await bootLab({
        builder: { name: "bsw-builder", index: 161 },
        fleet: ["m1", "m2", "m3", "w1", "w2"].map((n, i) => ({ name: `bsw-${n}`, index: 162 + i, debianDocker: true, cloud: true })),
    });
    const managers = lab.fleet.slice(0, 3);
    note("Python 3 for Ansible's modules on the nodes");
    await installHostPython(lab.fleet);
    note("forming the Swarm: 3 managers, 2 workers, web (4 replicas) and mon (global)");
    await formSwarm(lab.fleet, 3);
    const cli = new PulumiCli(projectCheckout(path.join(work, "project")), path.join(work, "state"), "bench");
    await configureStack(cli, "swarm", lab, { recipe: "docker-ce", ref: "v1" });
    await setConfig(cli, { batchSize: "3" });
    for (const [i, m] of ["m1", "m2", "m3"].entries()) await cli.ok(["config", "set", "--path", `swarmManagers[${i}].name`, m]);
    const artifacts = {} as Setup["artifacts"];
    for (const ref of REFS) {
        await cli.ok(["config", "set", "forkRef", ref]);
        const r = await cli.ok(["up", "--yes"]);
        note(`set-up pulumi up (${ref}): ${r.seconds.toFixed(1)} s`);
        const out = await cli.outputs();
        artifacts[ref] = { sha256: out.artifact.sha256, tgz: path.join(cli.projectDir, ".forklift", "artifacts", `${out.artifact.sha256}.tgz`) };
    }
    // the units and daemon.json of the Ansible and floor installs (a Swarm node's: no live-restore)
    writeManagedFiles(path.join(work, "files-ansible"), "/opt/bench/ansible/current", true);
    for (const ref of REFS) writeManagedFiles(path.join(work, `floor-${ref}`), "/opt/bench/floor/current", true, artifacts[ref].tgz);
    return { lab, cli, work, ansibleBin, managers, artifacts, ref: "v2" };
}

/** Runs ACTION with the watcher on; checks every node was restarted and the services are whole after. */
async function watched(s: Setup, what: string, action: () => Promise<void>, strict: boolean): Promise<Run> {
    await clearStartLimits(s.lab.fleet);
    const availability = Object.fromEntries(s.lab.fleet.map((h) => [h.name, availabilityOf(s.managers[0], h.name)]));
    const watcher = new Watcher(s.managers);
    const since = Date.now();
    await watcher.start();
    const started = Date.now();
    try {
        await action();
    } finally {
        await watcher.finish();
    }
    const seconds = (Date.now() - started) / 1000;
    const stops = Object.fromEntries(s.lab.fleet.map((h) => [h.name, engineStops(h, since)]));
    for (const [n, t] of Object.entries(stops)) if (t.length === 0) throw new Error(`${what}: ${n}'s engine was not restarted`);
    const minReplicas = Math.min(...watcher.samples.map((x) => x.services[REPLICATED]?.[0] ?? REPLICAS));
    // forklift's promises hold (the naive restart's do not: that is the point of it)
    if (strict) assertSwarmKept(watcher.samples, stops, availability);
    await waitConverged(s.managers[0], 180);
    const r = { seconds, taskSeconds: taskSecondsLost(watcher.samples), minReplicas };
    note(`${what}: ${seconds.toFixed(1)} s, ${r.taskSeconds.toFixed(1)} task-seconds lost, ${REPLICATED} at least ${minReplicas}/${REPLICAS}`);
    return r;
}

async function forklift(s: Setup): Promise<Run> {
    const ref = other(s.ref);
    await s.cli.ok(["config", "set", "forkRef", ref]);
    let output = "";
    const r = await watched(s, `forklift (${ref})`, async () => void (output = (await s.cli.ok(["up", "--yes"])).stdout), true);
    s.ref = ref;
    return { ...r, phases: nodePhases(output) };
}

async function ansible(s: Setup, ref: Ref): Promise<Run> {
    const inventory = writeInventory(path.join(s.work, "inventory.ini"), { managers: s.managers, workers: s.lab.fleet.slice(3) });
    const env = ansibleEnv(s.work, 5);
    const { sha256, tgz } = s.artifacts[ref];
    // a new release on every node: nothing of it unpacked there
    await Promise.all(s.lab.fleet.map((h) => sshAsync(h, `rm -rf /opt/bench/ansible/releases/${sha256}`)));
    return watched(
        s,
        `Ansible (${ref})`,
        async () => {
            await runProgram(path.join(s.ansibleBin, "ansible-playbook"), ["-i", inventory, path.join(BENCH_DIR, "swarm-playbook.yml"), "-e", JSON.stringify({ artifact: tgz, sha256, files_dir: path.join(s.work, "files-ansible"), service: REPLICATED, replicas: REPLICAS })], env);
        },
        false,
    );
}

async function naive(s: Setup, ref: Ref): Promise<Run> {
    return watched(
        s,
        `naive restart (${ref})`,
        async () => {
            for (const h of s.lab.fleet) await runProgram("bash", [path.join(BENCH_DIR, "floor.sh"), path.join(s.work, `floor-${ref}`), s.artifacts[ref].sha256, h.address], floorEnv());
        },
        false,
    );
}

const writeBenchmarks = (report: string) =>
    writeBenchmarkBlock("<!-- bench-swarm:begin (written by npm run bench -- --swarm) -->", "<!-- bench-swarm:end -->", "## A Swarm cluster: `npm run bench -- --swarm`", report);

export async function main(argv: string[]): Promise<void> {
    const reps = repsOf(argv, 3);
    const s = await setUp();
    let last = "";
    try {
        const runs: Record<"forklift" | "ansible" | "naive", Run[]> = { forklift: [], ansible: [], naive: [] };
        for (let i = 0; i < reps; i++) {
            runs.forklift.push(await forklift(s));
            runs.ansible.push(await ansible(s, other(s.ref)));
            runs.naive.push(await naive(s, s.ref));
        }
        const m = (k: keyof typeof runs, f: "seconds" | "taskSeconds" | "minReplicas") => median(runs[k].map((r) => r[f]));
        const min = Math.min(...runs.forklift.map((r) => r.minReplicas));
        const vsAnsible = m("forklift", "seconds") / m("ansible", "seconds");
        const lossVsNaive = m("forklift", "taskSeconds") / m("naive", "taskSeconds");
        const rows = (["forklift", "ansible", "naive"] as const).map(
            (k) => `| ${k === "forklift" ? "forklift (`pulumi up`, batchSize 3)" : k === "ansible" ? "Ansible (serial 1, drain, waits)" : "naive restart (one node after the other, no drain)"} | ${m(k, "seconds").toFixed(1)} | ${m(k, "taskSeconds").toFixed(1)} | ${Math.min(...runs[k].map((r) => r.minReplicas))}/${REPLICAS} |`,
        );
        const report = [
            `Median of ${reps} run(s) each, on 5 nodes (3 managers, 2 workers) sharing the machine's cores; ${REPLICATED}: ${REPLICAS} replicas; task-seconds lost: ${REPLICATED}'s replicas below ${REPLICAS} × seconds, from samples every 0.5 s.`,
            "",
            `- date: ${new Date().toISOString().slice(0, 16).replace("T", " ")} UTC; ${os.cpus().length} × ${os.cpus()[0]?.model.trim()}`,
            "",
            "| rollout | s | task-seconds lost | fewest replicas running |",
            "|---|---:|---:|---:|",
            ...rows,
            "",
            // (assertSwarmKept checks each forklift run sample by sample, and a run that breaks it fails the bench)
            `- never more than one node's share of ${REPLICATED} down (every sample of every forklift run): met; fewest running ${min}/${REPLICAS}`,
            `- fewer task-seconds lost than the naive restart: ${r2(lossVsNaive)}× — ${lossVsNaive < 1 ? "met" : "MISSED"}; no more than the playbook: ${m("forklift", "taskSeconds").toFixed(1)} against ${m("ansible", "taskSeconds").toFixed(1)} — ${m("forklift", "taskSeconds") <= m("ansible", "taskSeconds") ? "met" : "MISSED"}`,
            `- time ≤ 0.7× the playbook's: ${r2(vsAnsible)}× — ${vsAnsible <= 0.7 ? "met" : "MISSED"}`,
            "",
            `Where each node's time went in forklift's rollouts (seconds, from its own lines; median over the runs):`,
            "",
            `| node | ${PHASES.join(" | ")} |`,
            `|---|${PHASES.map(() => "---:").join("|")}|`,
            ...Object.keys(runs.forklift[0]?.phases ?? {})
                .sort()
                .map((n) => `| ${n} | ${PHASES.map((p) => {
                    const xs = runs.forklift.map((r) => r.phases?.[n]?.[p]).filter((x): x is number => x !== undefined);
                    return xs.length ? median(xs).toFixed(1) : "?";
                }).join(" | ")} |`),
            "",
            `- each run: forklift ${runs.forklift.map((r) => r.seconds.toFixed(1)).join(", ")} s; Ansible ${runs.ansible.map((r) => r.seconds.toFixed(1)).join(", ")} s; naive ${runs.naive.map((r) => r.seconds.toFixed(1)).join(", ")} s`,
        ].join("\n");
        console.log(`\n${report}\n`);
        writeBenchmarks(report);
        last = `swarm_vs_ansible=${r2(vsAnsible)} swarm_taskloss_vs_naive=${r2(lossVsNaive)} swarm_min_replicas=${min}/${REPLICAS}`;
    } finally {
        s.lab.stopForks();
        await stopHosts();
        fs.rmSync(s.work, { recursive: true, force: true });
    }
    console.log(last);
}
