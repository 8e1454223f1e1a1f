/**
 * npm run bench -- --swarm — a rollout over a Docker Swarm, three ways, on the same 5 test hosts
 * (3 managers, 2 workers, Debian's Docker, on the test bed's cloud; a replicated service `web` of 4
 * and a global one), each rolling the other ref of the docker-ce fixture fork out:
 *   forklift   `pulumi up --yes` (batchSize 3, swarmManagers the three managers)
 *   Ansible    bench/swarm-playbook.yml: serial 1, managers first, each node drained through
 *              another manager, `until` loops for its tasks, its return and the service
 *   naive      bench/floor.sh on one node after the other: the engine restarted in place, no drain
 * A watcher samples the cluster every 0.5 s during each (test/support/swarm.ts). For each: the
 * wall time, the task-seconds lost (web's replicas below its desired count × seconds) and the
 * fewest of web's replicas running at any sample. Median of --reps (default 3).
 *
 * The last line printed: `swarm_vs_ansible=<r> swarm_taskloss_vs_naive=<r> swarm_min_replicas=<n>/4`.
 * Writes its block into BENCHMARKS.md (between bench-swarm markers). Needs what `npm run bench` needs.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { spawn, spawnSync } from "node:child_process";
import { renderManagedFiles, renderSwarmDaemonJson, needsContainerdUnit } from "../lib/units";
import { FIXTURE_BINARIES } from "../test/hosts/fixture-fork";
import { Lab, PulumiCli, bootLab, configureStack, findPulumi, note, projectCheckout, setConfig, sh } from "../test/support/lab";
import { REPLICAS, REPLICATED, Sample, Watcher, assertSwarmKept, availabilityOf, engineStops, formSwarm, waitConverged } from "../test/support/swarm";
import { TestHost, checkPrerequisites, copyTo, knownHostsPath, repoRoot, sshAsync, stopHosts, testKey } from "../test/support/testbed";

const BENCH_DIR = path.join(repoRoot(), "bench");
const REFS = ["v1", "v2"] as const;
type Ref = (typeof REFS)[number];
const other = (r: Ref): Ref => (r === "v1" ? "v2" : "v1");

interface Run {
    seconds: number;
    /** web's replicas below its desired count, times seconds, over the run */
    taskSeconds: number;
    minReplicas: number;
}

const median = (xs: number[]): number => {
    const s = [...xs].sort((a, b) => a - b);
    return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const r2 = (x: number) => (Number.isFinite(x) ? x.toFixed(2) : "?");

/** Task-seconds lost: between two samples, the replicas short of the desired count times the time between them. */
export function taskSecondsLost(samples: Sample[]): number {
    let lost = 0;
    for (let i = 1; i < samples.length; i++) {
        const [running, desired] = samples[i - 1].services[REPLICATED] ?? [REPLICAS, REPLICAS];
        lost += Math.max(0, desired - running) * ((samples[i].at - samples[i - 1].at) / 1000);
    }
    return lost;
}

function run(cmd: string, args: string[], env: NodeJS.ProcessEnv = process.env): Promise<{ code: number; out: string }> {
    return new Promise((resolve) => {
        const child = spawn(cmd, args, { cwd: BENCH_DIR, env, stdio: ["ignore", "pipe", "pipe"] });
        let out = "";
        child.stdout.on("data", (d) => (out += d));
        child.stderr.on("data", (d) => (out += d));
        child.on("close", (code) => resolve({ code: code ?? -1, out }));
    });
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
    const venv = await run("bash", [path.join(BENCH_DIR, "ansible-venv.sh")]);
    if (venv.code !== 0) throw new Error(`bench/ansible-venv.sh failed:\n${venv.out}`);
    const ansibleBin = venv.out.trim().split("\n").pop()!;
    const work = fs.mkdtempSync(path.join(os.tmpdir(), "forklift-bench-swarm-"));
    const lab = await bootLab({
        builder: { name: "bsw-builder", index: 161 },
        fleet: ["m1", "m2", "m3", "w1", "w2"].map((n, i) => ({ name: `bsw-${n}`, index: 162 + i, debianDocker: true, cloud: true })),
    });
    const managers = lab.fleet.slice(0, 3);
    note("Python 3 for Ansible's modules on the nodes");
    const installed = sh(lab.fleet[0], "dpkg-query -W -f '${Package}\\n'");
    const py = spawnSync("bash", [path.join(BENCH_DIR, "host-python.sh")], { input: installed, encoding: "utf8" });
    if (py.status !== 0) throw new Error(`bench/host-python.sh failed:\n${py.stderr}`);
    for (const h of lab.fleet) {
        copyTo(h, py.stdout.trim().split("\n").pop()!, "/var/tmp/bench-python.tar.gz");
        sh(h, "tar --keep-directory-symlink -xzf /var/tmp/bench-python.tar.gz -C / && rm -f /var/tmp/bench-python.tar.gz");
    }
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
    const files = (dir: string, installDir: string) => {
        fs.mkdirSync(dir, { recursive: true });
        const rendered = renderManagedFiles({ installDir, shipsContainerd: needsContainerdUnit(FIXTURE_BINARIES["docker-ce"]) }, {});
        for (const [name, text] of Object.entries(rendered)) fs.writeFileSync(path.join(dir, name), name === "daemon.json" ? renderSwarmDaemonJson({})! : (text as string));
    };
    files(path.join(work, "files-ansible"), "/opt/bench/ansible/current");
    for (const ref of REFS) {
        files(path.join(work, `floor-${ref}`), "/opt/bench/floor/current");
        fs.symlinkSync(artifacts[ref].tgz, path.join(work, `floor-${ref}`, "docker.tgz"));
    }
    return { lab, cli, work, ansibleBin, managers, artifacts, ref: "v2" };
}

/** Runs ACTION with the watcher on; checks every node was restarted and the services are whole after. */
async function watched(s: Setup, what: string, action: () => Promise<void>, strict: boolean): Promise<Run> {
    await Promise.all(s.lab.fleet.map((h) => sshAsync(h, "systemctl reset-failed docker.service docker.socket containerd.service 2>/dev/null || true")));
    const availability = Object.fromEntries(s.lab.fleet.map((h) => [h.name, availabilityOf(s.managers[0], h.name)]));
    const watcher = new Watcher(s.managers);
    const since = Date.now();
    watcher.start();
    const started = Date.now();
    try {
        await action();
    } finally {
        watcher.stop();
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
    const r = await watched(s, `forklift (${ref})`, async () => void (await s.cli.ok(["up", "--yes"])), true);
    s.ref = ref;
    return r;
}

async function ansible(s: Setup, ref: Ref): Promise<Run> {
    const key = testKey().privateKeyPath;
    const inventory = path.join(s.work, "inventory.ini");
    fs.writeFileSync(
        inventory,
        [
            "[managers]",
            ...s.managers.map((h) => `${h.name} ansible_host=${h.address}`),
            "[workers]",
            ...s.lab.fleet.slice(3).map((h) => `${h.name} ansible_host=${h.address}`),
            "[all:vars]",
            "ansible_user=root",
            `ansible_ssh_private_key_file=${key}`,
            `ansible_ssh_common_args='-o IdentitiesOnly=yes -o StrictHostKeyChecking=yes -o UserKnownHostsFile=${knownHostsPath()} -o GlobalKnownHostsFile=/dev/null'`,
            "ansible_python_interpreter=/usr/bin/python3",
            "",
        ].join("\n"),
    );
    const env = { ...process.env, ANSIBLE_PIPELINING: "True", ANSIBLE_SSH_CONTROL_PATH_DIR: fs.mkdtempSync(path.join(s.work, "cp-")), ANSIBLE_HOST_KEY_CHECKING: "True", ANSIBLE_NOCOLOR: "1", ANSIBLE_LOCAL_TEMP: path.join(s.work, "ansible-tmp") };
    const { sha256, tgz } = s.artifacts[ref];
    // a new release on every node: nothing of it unpacked there
    await Promise.all(s.lab.fleet.map((h) => sshAsync(h, `rm -rf /opt/bench/ansible/releases/${sha256}`)));
    return watched(
        s,
        `Ansible (${ref})`,
        async () => {
            const r = await run(path.join(s.ansibleBin, "ansible-playbook"), ["-i", inventory, path.join(BENCH_DIR, "swarm-playbook.yml"), "-e", JSON.stringify({ artifact: tgz, sha256, files_dir: path.join(s.work, "files-ansible"), service: REPLICATED, replicas: REPLICAS })], env);
            if (r.code !== 0) throw new Error(`ansible-playbook exited ${r.code}:\n${r.out.split("\n").slice(-25).join("\n")}`);
        },
        false,
    );
}

async function naive(s: Setup, ref: Ref): Promise<Run> {
    const env = { ...process.env, FORKLIFT_BENCH_KEY: testKey().privateKeyPath, FORKLIFT_BENCH_KNOWN_HOSTS: knownHostsPath() };
    return watched(
        s,
        `naive restart (${ref})`,
        async () => {
            for (const h of s.lab.fleet) {
                const r = await run("bash", [path.join(BENCH_DIR, "floor.sh"), path.join(s.work, `floor-${ref}`), s.artifacts[ref].sha256, h.address], env);
                if (r.code !== 0) throw new Error(`floor.sh on ${h.name} exited ${r.code}:\n${r.out}`);
            }
        },
        false,
    );
}

function writeBenchmarks(report: string): void {
    const file = path.join(repoRoot(), "BENCHMARKS.md");
    const begin = "<!-- bench-swarm:begin (written by npm run bench -- --swarm) -->";
    const end = "<!-- bench-swarm:end -->";
    const block = `${begin}\n${report}\n${end}`;
    const old = fs.readFileSync(file, "utf8");
    const next = old.includes(begin) && old.includes(end) ? old.slice(0, old.indexOf(begin)) + block + old.slice(old.indexOf(end) + end.length) : `${old.trimEnd()}\n\n## A Swarm cluster: \`npm run bench -- --swarm\`\n\n${block}\n`;
    fs.writeFileSync(file, next);
}

export async function main(argv: string[]): Promise<void> {
    const repsAt = argv.indexOf("--reps");
    const reps = repsAt >= 0 ? Number(argv[repsAt + 1]) : 3;
    if (!Number.isInteger(reps) || reps < 1) throw new Error("--reps wants a whole number");
    const s = await setUp();
    let last = "";
    try {
        const runs: Record<"forklift" | "ansible" | "naive", Run[]> = { forklift: [], ansible: [], naive: [] };
        for (let i = 0; i < reps; i++) {
            runs.forklift.push(await forklift(s));
            runs.ansible.push(await ansible(s, other(s.ref)));
            runs.naive.push(await naive(s, s.ref));
        }
        const m = (k: keyof typeof runs, f: keyof Run) => median(runs[k].map((r) => r[f]));
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
            `- never more than one node's share of ${REPLICATED} down: fewest ${min}/${REPLICAS} — ${min >= REPLICAS - 1 ? "met" : "MISSED"}`,
            `- fewer task-seconds lost than the naive restart: ${r2(lossVsNaive)}× — ${lossVsNaive < 1 ? "met" : "MISSED"}; no more than the playbook: ${m("forklift", "taskSeconds").toFixed(1)} against ${m("ansible", "taskSeconds").toFixed(1)} — ${m("forklift", "taskSeconds") <= m("ansible", "taskSeconds") ? "met" : "MISSED"}`,
            `- time ≤ 0.7× the playbook's: ${r2(vsAnsible)}× — ${vsAnsible <= 0.7 ? "met" : "MISSED"}`,
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
