/**
 * npm run bench — forklift's rollout against Ansible and against the raw-SSH floor, side by side,
 * in one run, on local systemd-nspawn hosts, with the real `pulumi` CLI (issue 11).
 *
 *   npm run bench                 N = 1, 4, 8 fleet hosts, 5 repetitions; writes BENCHMARKS.md
 *   npm run bench -- --quick      N = 1, one repetition (the smoke run; BENCHMARKS.md untouched)
 *   npm run bench -- --sizes 1,8 --reps 3
 *   npm run bench -- --swarm      a Swarm cluster rolled out three ways (tools/bench-swarm.ts)
 *   npm run bench -- --wan        the operator behind a 20 Mbit/s link, the fleet in a cloud with
 *                                 an S3 store (tools/bench-wan.ts)
 *
 * For each N, with the artifact already built and in forklift's local cache (both refs of the
 * docker-ce fixture fork are built during the set-up, so a rollout's build step is a reuse):
 *   forklift   `pulumi up --yes` that rolls the other ref's artifact out to all N hosts (batchSize
 *              N), then the following no-change `pulumi up --yes`
 *   Ansible    bench/playbook.yml with forks = N, its full run and its no-change run
 *   floor      bench/floor.sh: parallel scp + ssh doing the same steps, nothing else
 * Before each full run the release directory that run is about to unpack is removed from the
 * hosts (forklift keeps the previous release unpacked, and would otherwise copy nothing), so every
 * rollout copies, hashes and unpacks the artifact on every host.
 *
 * Each figure is the median of the repetitions. The last line printed is
 * `rollout8_vs_ansible=<r> noop8_vs_ansible=<r> rollout8_vs_floor=<r>` (with the largest N run).
 *
 * Needs what `npm run test:e2e` needs (root, the test bed, the pulumi CLI with the Node.js language
 * host and the command and random plugins; it fails at once naming a missing one), plus python3 with venv
 * (Ansible is installed from PyPI into ~/.cache/forklift/bench-venv) and Debian's apt (Python for
 * the test hosts). Test hosts bench-builder and bench-f1..f8 (indices 141-149).
 */
import { spawn, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { CliResult, Lab, PulumiCli, bootLab, configureStack, findPulumi, note, projectCheckout, setConfig } from "../testbed/lab";
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
    onAll,
    other,
    r2,
    ratio,
    runProgram,
    sshLogins,
    writeBenchmarkBlock,
    writeInventory,
    writeManagedFiles,
} from "./bench-common";

const BUILDER = { name: "bench-builder", index: 141 };
const FLEET = Array.from({ length: 8 }, (_, i) => ({ name: `bench-f${i + 1}`, index: 142 + i }));

interface Options {
    quick: boolean;
    sizes: number[];
    reps: number;
}

function parseArgs(argv: string[]): Options {
    // 5 repetitions: on a shared 2-core machine one configuration's rollout/floor ranged 1.18-1.32
    // over 3 repetitions; the medians of 5 move less
    const o: Options = { quick: false, sizes: [1, 4, 8], reps: 5 };
    for (let i = 0; i < argv.length; i++) {
        const a = argv[i];
        if (a === "--quick") Object.assign(o, { quick: true, sizes: [1], reps: 1 });
        else if (a === "--sizes" && /^[1-8](,[1-8])*$/.test(argv[i + 1] ?? "")) o.sizes = argv[++i].split(",").map(Number);
        else if (a === "--reps" && /^[1-9]\d*$/.test(argv[i + 1] ?? "")) o.reps = Number(argv[++i]);
        else throw new Error(`npm run bench: unknown argument ${a} (--quick, --sizes 1,4,8, --reps 5)`);
    }
    o.sizes = [...new Set(o.sizes)].sort((x, y) => x - y);
    return o;
}

/** One timed line of pulumi output. */
interface Line {
    t: number;
    text: string;
}

/** The pulumi CLI of the lab, which also keeps the arrival time of each output line (for the profile). */
class TimedCli extends PulumiCli {
    lines: Line[] = [];
    started = 0;

    /** Runs `pulumi ARGS` like run(), timestamping each line. */
    timed(args: string[]): Promise<CliResult> {
        const started = Date.now();
        this.started = started;
        this.lines = [];
        return new Promise((resolve, reject) => {
            const child = spawn(this.pulumi, args, { cwd: this.projectDir, env: this.env, stdio: ["ignore", "pipe", "pipe"] });
            let stdout = "";
            let stderr = "";
            let partial = "";
            child.stdout.on("data", (d: Buffer) => {
                const now = Date.now();
                stdout += d.toString();
                const parts = (partial + d.toString()).split("\n");
                partial = parts.pop() ?? "";
                for (const text of parts) this.lines.push({ t: now, text });
            });
            child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
            child.on("error", reject);
            child.on("close", (code) => {
                const seconds = (Date.now() - started) / 1000;
                this.log.push({ args, code: code ?? -1, seconds });
                resolve({ code: code ?? -1, stdout, stderr, seconds });
            });
        });
    }

    async timedOk(args: string[]): Promise<CliResult> {
        const r = await this.timed(args);
        if (r.code !== 0) {
            // the errors, not the outputs' diff that ends the output
            const all = (r.stdout + r.stderr).trimEnd().split("\n");
            const errors = all.filter((l) => /error|ERROR|failed/.test(l)).slice(0, 40);
            throw new Error(`pulumi ${args.join(" ")} exited ${r.code} after ${r.seconds}s:\n${(errors.length ? errors : all.slice(-40)).join("\n")}`);
        }
        return r;
    }
}

/** Figures of one fleet size: every repetition's seconds. */
interface SizeFigures {
    rollout: number[];
    noop: number[];
    ansible: number[];
    ansibleNoop: number[];
    floor: number[];
}

/** What one rollout's time went to, from the CLI's output and the hosts' journals. */
interface Profile {
    n: number;
    total: number;
    lines: Line[];
    started: number;
    /** Per host: sshd connections [accepted, closed] (epoch s) and docker.service stop/started. */
    hosts: { name: string; connections: [number, number][]; stopping?: number; started?: number }[];
}

interface Bench {
    opts: Options;
    lab: Lab;
    cli: TimedCli;
    work: string;
    ansibleBin: string;
    /** Current ref of each stack (what its last `pulumi up` rolled out). */
    stackRef: Map<number, Ref>;
    /** sha256 and cached tgz of each ref's artifact. */
    artifacts: Record<Ref, { sha256: string; tgz: string; size: number }>;
}

const stackOf = (n: number) => `bench-n${n}`;
/**
 * The bench's stacks (one per fleet size) share the hosts, and a host refuses a stack other than
 * its owner: before a stack's rollout its hosts are handed over as the README says.
 */
const handOver = (hosts: TestHost[]) => onAll(hosts, "rm -f /var/lib/forklift/owner /var/lib/forklift/stack-id");

/** Boots the hosts, prepares Ansible, one stack per fleet size, and both artifacts built and cached. */
async function setUp(opts: Options): Promise<Bench> {
    checkPrerequisites();
    findPulumi(); // names a missing plugin before anything boots
    note("Ansible (ansible-core from PyPI, cached venv)");
    const ansibleBin = await installAnsible();
    const work = fs.mkdtempSync(path.join(os.tmpdir(), "forklift-bench-"));
    const maxN = Math.max(...opts.sizes);
    const lab = await bootLab({ builder: BUILDER, fleet: FLEET.slice(0, maxN) });
    note("Python 3 for Ansible's modules on the fleet hosts");
    await installHostPython(lab.fleet);
    const cli = new TimedCli(projectCheckout(path.join(work, "project")), path.join(work, "state"), "bench");
    const bench: Bench = { opts, lab, cli, work, ansibleBin, stackRef: new Map(), artifacts: {} as Bench["artifacts"] };
    for (const n of opts.sizes) {
        const stack = stackOf(n);
        note(`stack ${stack}: ${n} fleet host(s), batchSize ${n}; builds v1 and v2 (or reuses them) and installs both`);
        await configureStack(cli, stack, { ...lab, fleet: lab.fleet.slice(0, n) }, { recipe: "docker-ce", ref: "v1" });
        await setConfig(cli, { batchSize: String(n) });
        for (const ref of REFS) {
            await cli.ok(["config", "set", "--stack", stack, "forkRef", ref]);
            await clearStartLimits(lab.fleet.slice(0, n));
            await handOver(lab.fleet.slice(0, n));
            const r = await cli.timedOk(["up", "--yes", "--stack", stack]);
            note(`  set-up pulumi up (${ref}): ${r.seconds.toFixed(1)} s`);
            const out = await cli.ok(["stack", "output", "--json", "--stack", stack], "", false);
            const artifact = JSON.parse(out.stdout).artifact;
            const tgz = path.join(cli.projectDir, ".forklift", "artifacts", `${artifact.sha256}.tgz`);
            bench.artifacts[ref] = { sha256: artifact.sha256, tgz, size: fs.statSync(tgz).size };
        }
        bench.stackRef.set(n, "v2");
    }
    writeManagedFiles(path.join(work, "files-ansible"), "/opt/bench/ansible/current", false);
    for (const ref of REFS) writeManagedFiles(path.join(work, `floor-${ref}`), "/opt/bench/floor/current", false, bench.artifacts[ref].tgz);
    return bench;
}

/** forklift: `pulumi up` rolling the other ref out to N hosts; returns seconds and the profile. */
async function forkliftRollout(b: Bench, n: number, extraArgs: string[] = []): Promise<Profile> {
    const hosts = b.lab.fleet.slice(0, n);
    const stack = stackOf(n);
    const ref = other(b.stackRef.get(n)!);
    const { sha256 } = b.artifacts[ref];
    await onAll(hosts, `rm -rf /opt/forklift/releases/${sha256}`);
    await clearStartLimits(hosts);
    await handOver(hosts);
    await b.cli.ok(["config", "set", "--stack", stack, "forkRef", ref]);
    const r = await b.cli.timedOk(["up", "--yes", "--stack", stack, ...extraArgs]);
    b.stackRef.set(n, ref);
    const out = JSON.parse((await b.cli.ok(["stack", "output", "--json", "--stack", stack], "", false)).stdout);
    const wrong = (out.hosts as { name: string; sha256: string }[]).filter((h) => h.sha256 !== sha256);
    if (out.hosts.length !== n || wrong.length > 0) throw new Error(`forklift did not roll ${ref} out everywhere: ${JSON.stringify(out.hosts)}`);
    const lines = b.cli.lines;
    const started = b.cli.started;
    return { n, total: r.seconds, lines, started, hosts: await journals(hosts, started) };
}

/** The sshd connections and docker.service restarts of each host since STARTED (ms epoch). */
async function journals(hosts: TestHost[], started: number): Promise<Profile["hosts"]> {
    const since = Math.floor(started / 1000) - 1;
    const texts = await onAll(hosts, `journalctl --since @${since} -o short-unix --no-pager -u ssh.service -u docker.service`);
    return texts.map((text, i) => {
        const open = new Map<string, number>();
        const connections: [number, number][] = [];
        let stopping: number | undefined;
        let startedAt: number | undefined;
        for (const line of text.split("\n")) {
            const t = Number(line.split(" ")[0]);
            if (!(t * 1000 >= started)) continue;
            const accepted = /Accepted publickey for \S+ from \S+ port (\d+)/.exec(line);
            const closed = /Disconnected from user \S+ \S+ port (\d+)/.exec(line);
            if (accepted) open.set(accepted[1], t);
            else if (closed && open.has(closed[1])) {
                connections.push([open.get(closed[1])!, t]);
                open.delete(closed[1]);
            } else if (/Stopping (docker\.service|Docker Application)/.test(line) && stopping === undefined) stopping = t;
            else if (/Started (docker\.service|Docker Application)/.test(line)) startedAt = t;
        }
        return { name: hosts[i].name, connections: connections.sort((x, y) => x[0] - y[0]), stopping, started: startedAt };
    });
}

/** forklift's no-change `pulumi up`; checks that it contacted no host (builder included). */
async function forkliftNoop(b: Bench, n: number, extraArgs: string[] = []): Promise<number> {
    const hosts = [b.lab.builder, ...b.lab.fleet.slice(0, n)];
    const before = await sshLogins(hosts);
    const r = await b.cli.timedOk(["up", "--yes", "--expect-no-changes", "--stack", stackOf(n), ...extraArgs]);
    const after = await sshLogins(hosts);
    const contacted = hosts.filter((_, i) => after[i] !== before[i] + 1).map((h) => h.name);
    if (contacted.length > 0) throw new Error(`the no-change pulumi up logged in to ${contacted.join(", ")}`);
    return r.seconds;
}

/** Ansible: bench/playbook.yml on N hosts with forks = N; returns seconds and the recap's changed counts. */
async function ansible(b: Bench, n: number, ref: Ref): Promise<{ seconds: number; changed: number[] }> {
    const hosts = b.lab.fleet.slice(0, n);
    const inventory = writeInventory(path.join(b.work, `inventory-${n}.ini`), { fleet: hosts });
    const env = ansibleEnv(b.work, n);
    const { sha256, tgz } = b.artifacts[ref];
    await clearStartLimits(hosts);
    const r = await runProgram(
        path.join(b.ansibleBin, "ansible-playbook"),
        ["-i", inventory, "-f", String(n), path.join(BENCH_DIR, "playbook.yml"), "-e", JSON.stringify({ artifact: tgz, sha256, files_dir: path.join(b.work, "files-ansible") })],
        env,
    );
    const changed = [...r.stdout.matchAll(/^\S+\s+:\s+ok=\d+\s+changed=(\d+)\s+unreachable=0\s+failed=0/gm)].map((m) => Number(m[1]));
    if (changed.length !== n) throw new Error(`ansible-playbook's recap does not show ${n} good hosts:\n${r.stdout.split("\n").slice(-15).join("\n")}`);
    return { seconds: r.seconds, changed };
}

/** The floor: bench/floor.sh on N hosts. */
async function floor(b: Bench, n: number, ref: Ref): Promise<number> {
    const hosts = b.lab.fleet.slice(0, n);
    await clearStartLimits(hosts);
    const r = await runProgram("bash", [path.join(BENCH_DIR, "floor.sh"), path.join(b.work, `floor-${ref}`), b.artifacts[ref].sha256, ...hosts.map((h) => h.address)], floorEnv());
    const current = await onAll(hosts, "readlink /opt/bench/floor/current");
    if (current.some((c) => !c.endsWith(b.artifacts[ref].sha256))) throw new Error(`the floor did not install ${ref} everywhere`);
    return r.seconds;
}

/** One repetition at fleet size N: forklift rollout + no-op, Ansible full + no-change, floor. */
async function repetition(b: Bench, n: number, figures: SizeFigures): Promise<Profile> {
    const hosts = b.lab.fleet.slice(0, n);
    const profile = await forkliftRollout(b, n);
    const ref = b.stackRef.get(n)!;
    figures.rollout.push(profile.total);
    figures.noop.push(await forkliftNoop(b, n));
    // a new artifact for Ansible's hosts too: nothing of this ref staged or unpacked there
    await onAll(hosts, `rm -rf /opt/bench/ansible/releases/${b.artifacts[ref].sha256} /var/tmp/bench-ansible-docker.tgz`);
    const full = await ansible(b, n, ref);
    if (full.changed.some((c) => c === 0)) throw new Error(`Ansible's full run changed nothing on some host: ${full.changed}`);
    figures.ansible.push(full.seconds);
    const again = await ansible(b, n, ref);
    if (again.changed.some((c) => c !== 0)) throw new Error(`Ansible's no-change run changed something: ${again.changed}`);
    figures.ansibleNoop.push(again.seconds);
    figures.floor.push(await floor(b, n, ref));
    note(
        `N=${n}: forklift ${profile.total.toFixed(1)} s, no-op ${figures.noop.at(-1)!.toFixed(1)} s; ` +
            `Ansible ${full.seconds.toFixed(1)} s, no-change ${again.seconds.toFixed(1)} s; floor ${figures.floor.at(-1)!.toFixed(1)} s`,
    );
    return profile;
}

/** After a failed rollout: an untimed `pulumi up` finishes it, so the next one goes to every host again. */
async function converge(b: Bench, n: number): Promise<void> {
    const stack = stackOf(n);
    const ref = (await b.cli.ok(["config", "get", "forkRef", "--stack", stack], "", false)).stdout.trim() as Ref;
    await clearStartLimits(b.lab.fleet.slice(0, n));
    await handOver(b.lab.fleet.slice(0, n));
    await b.cli.timedOk(["up", "--yes", "--stack", stack]);
    b.stackRef.set(n, ref);
}

/** The Docker and containerd journal of each fleet host, next to the work directory, after a failed repetition. */
async function saveDockerLogs(b: Bench, n: number, attempt: number): Promise<void> {
    const hosts = b.lab.fleet.slice(0, n);
    const logs = await Promise.all(hosts.map((h) => sshAsync(h, "journalctl -u docker.service -u containerd.service -u docker.socket -n 60 --no-pager")));
    const file = path.join(b.work, "..", `forklift-bench-failure-${attempt}.log`);
    fs.writeFileSync(file, logs.map((r, i) => `==== ${hosts[i].name}\n${r.stdout}`).join("\n"));
    note(`the hosts' Docker logs: ${file}`);
}

// ---- the profile ----

/** Seconds from the CLI's start to the first output line matching RE (after line index FROM). */
function lineAt(p: Profile, re: RegExp, from = 0): { i: number; s: number } | undefined {
    for (let i = from; i < p.lines.length; i++) if (re.test(p.lines[i].text)) return { i, s: (p.lines[i].t - p.started) / 1000 };
    return undefined;
}

/** The rollout's phases: engine and preview, build reuse, checks, per-host steps, the tail. */
function breakdown(p: Profile): { rows: [string, string][]; text: string } {
    const rel = (t: number) => t - p.started / 1000;
    const update = lineAt(p, /^Updating \(/);
    const after = update?.i ?? 0;
    const buildStart = lineAt(p, /forklift-fork-build\s+updating/, after);
    const buildDone = lineAt(p, /forklift-fork-build\s+updated/, after);
    const precheckStart = lineAt(p, /forklift-precheck\s+updating/, after);
    const precheckDone = lineAt(p, /forklift-precheck\s+updated/, after);
    const checkStart = lineAt(p, /forklift-check\s+updating/, after);
    // (the check's command is the whole rollout: the staging on every host, then the steps)
    const firstStep = lineAt(p, /forklift-check\s+updating.*\[forklift rollout\] step 1 of \d+:/, after);
    const rows: [string, string][] = [];
    const fmt = (x: number | undefined) => (x === undefined || Number.isNaN(x) ? "?" : x.toFixed(2));
    const diff = (a?: { s: number }, b?: { s: number }) => (a && b ? b.s - a.s : undefined);
    rows.push(["`pulumi up` start → \"Updating\" (engine, plugins, program run + preview)", fmt(update?.s)]);
    rows.push(["\"Updating\" → build step starts (program run again, plugins)", fmt(diff(update, buildStart))]);
    rows.push(["build step (SSH to the builder, build-fork.sh reuses the finished build)", fmt(diff(buildStart, buildDone))]);
    // per host, from the CLI's lines (each command's output arrives as it is printed) and the
    // host's journal (docker.service stopping and started)
    const perHost = p.hosts.map((h) => {
        const entry = h.name.replace(/^[a-z0-9]+-/, "");
        const at = (re: string) => lineAt(p, new RegExp(re), after)?.s ?? NaN;
        // the check stages the release on every host (copy, sha256, unpack) before any install
        const received = at(`forklift-check\\s+updating.*\\[forklift ${entry}\\] received \\d+ bytes`);
        const unpacked = at(`forklift-check\\s+updating.*\\[forklift ${entry}\\] unpacked release`);
        // its install: from its step's start to its "is running" line, in the rollout's output
        const installStart = at(`forklift-check\\s+updating.*\\[forklift rollout\\] step \\d+ of \\d+: (.*, )?${entry}(,|\\s*$)`);
        const installDone = at(`forklift-check\\s+updating.*\\[forklift ${entry}\\] release [0-9a-f]{64} .*is running`);
        return {
            installStart,
            copy: received - (checkStart?.s ?? NaN),
            unpack: unpacked - received,
            toStop: h.stopping ? rel(h.stopping) - installStart : NaN,
            restart: h.stopping && h.started ? h.started - h.stopping : NaN,
            verify: h.started ? installDone - rel(h.started) : NaN,
            installDone,
        };
    });
    type Row = (typeof perHost)[number];
    const med = (f: (x: Row) => number) => median(perHost.map(f).filter((x) => !Number.isNaN(x)));
    const last = (f: (x: Row) => number) => Math.max(...perHost.map(f).filter((x) => !Number.isNaN(x)));
    rows.push(["\"Updating\" → precheck starts", fmt(diff(update, precheckStart))]);
    rows.push(["precheck of every host, while the build runs (one local command, the hosts' SSH logins at once; the connections stay open)", fmt(diff(precheckStart, precheckDone))]);
    rows.push(["the rollout command (forklift-check) after the build: the check of every host, the release staged on each (disk space, copy, sha256, unpack)", fmt(diff(checkStart, firstStep))]);
    rows.push(["build done → staging done, the first step starts", fmt(diff(buildDone, firstStep))]);
    rows.push(["the steps: first step starts → last host's release running", fmt(firstStep ? last((x) => x.installDone) - firstStep.s : undefined)]);
    rows.push(["per host, in the check: its start → the tgz received, sha256 checked on the host", fmt(med((x) => x.copy))]);
    rows.push(["per host, in the check: unpack (gzip; the hosts share the machine's cores)", fmt(med((x) => x.unpack))]);
    rows.push(["per host: install start → docker stop (links, units, daemon.json)", fmt(med((x) => x.toStop))]);
    rows.push(["per host: docker stop → dockerd started", fmt(med((x) => x.restart))]);
    rows.push(["per host: verify, record, end of the install", fmt(med((x) => x.verify))]);
    rows.push(["last host done → `pulumi up` exits (the report, each host's status resource, outputs, state, summary)", fmt(p.total - last((x) => x.installDone))]);
    rows.push(["SSH logins per fleet host in this `pulumi up` (sshd's journal; the precheck's connection carries the rest)", fmt(median(p.hosts.map((h) => h.connections.length)))]);
    rows.push(["total", fmt(p.total)]);
    const text = p.lines.map((l) => `${((l.t - p.started) / 1000).toFixed(2).padStart(7)}  ${l.text}`).join("\n");
    return { rows, text };
}

/** Extra single runs at size N for the profile: one SSH login, the preview alone, the preview skipped. */
async function whatIfs(b: Bench, n: number): Promise<[string, string][]> {
    const rows: [string, string][] = [];
    const h = b.lab.fleet[0];
    const handshakes: number[] = [];
    for (let i = 0; i < 5; i++) {
        const t = Date.now();
        await onAll([h], "true");
        handshakes.push((Date.now() - t) / 1000);
    }
    rows.push(["`ssh host true` (one SSH connection: handshake, auth, session)", median(handshakes).toFixed(2)]);
    const preview = await b.cli.timedOk(["preview", "--stack", stackOf(n)]);
    rows.push([`no-change \`pulumi preview\` (N=${n})`, preview.seconds.toFixed(2)]);
    rows.push([`no-change \`pulumi up --skip-preview\` (N=${n})`, (await forkliftNoop(b, n, ["--skip-preview"])).toFixed(2)]);
    rows.push([`rollout \`pulumi up --skip-preview\` (N=${n})`, (await forkliftRollout(b, n, ["--skip-preview"])).total.toFixed(2)]);
    return rows;
}

// ---- the report ----


function table(sizes: number[], figs: Map<number, SizeFigures>): string {
    const rows = [
        ["N", "forklift rollout", "forklift no-op", "Ansible full", "Ansible no-change", "floor", "rollout/Ansible", "no-op/Ansible no-change", "rollout/floor"],
        ["---:", "---:", "---:", "---:", "---:", "---:", "---:", "---:", "---:"],
    ];
    for (const n of sizes) {
        const f = figs.get(n)!;
        const [ro, no, an, ann, fl] = [f.rollout, f.noop, f.ansible, f.ansibleNoop, f.floor].map(median);
        rows.push([String(n), ro, no, an, ann, fl].map((x) => (typeof x === "number" ? x.toFixed(1) : x)).concat([r2(ratio(ro, an)), r2(ratio(no, ann)), r2(ratio(ro, fl))]));
    }
    return rows.map((r) => `| ${r.join(" | ")} |`).join("\n");
}

function targets(sizes: number[], figs: Map<number, SizeFigures>): string[] {
    const big = Math.max(...sizes);
    const f = figs.get(big)!;
    const m = (xs: number[]) => median(xs);
    const each = f.rollout.map((r, i) => `${r.toFixed(1)}/${f.floor[i].toFixed(1)} = ${r2(ratio(r, f.floor[i]))}×`).join(", ");
    const lines = [
        `rollout to ${big} host(s) ≤ 0.5× Ansible: ${r2(ratio(m(f.rollout), m(f.ansible)))}× — ${ratio(m(f.rollout), m(f.ansible)) <= 0.5 ? "met" : "MISSED"}`,
        `rollout to ${big} host(s) ≤ 1.25× the floor: ${r2(ratio(m(f.rollout), m(f.floor)))}× — ${ratio(m(f.rollout), m(f.floor)) <= 1.25 ? "met" : "MISSED"}`,
        `(each repetition at ${big} host(s), forklift/floor: ${each}; the target is the ratio of the medians)`,
        `no-op on ${big} host(s) ≤ 0.25× Ansible's no-change run: ${r2(ratio(m(f.noop), m(f.ansibleNoop)))}× — ${ratio(m(f.noop), m(f.ansibleNoop)) <= 0.25 ? "met" : "MISSED"} (contacted no host: checked in sshd's journal of every host)`,
    ];
    const small = Math.min(...sizes);
    if (big !== small) {
        const s = figs.get(small)!;
        const growth = ratio(m(f.rollout), m(s.rollout));
        const floorGrowth = ratio(m(f.floor), m(s.floor));
        lines.push(
            `growth forklift(${big})/forklift(${small}) = ${r2(growth)} vs floor(${big})/floor(${small}) = ${r2(floorGrowth)}: ${r2(ratio(growth, floorGrowth))}× (≤ 1.2×) — ${ratio(growth, floorGrowth) <= 1.2 ? "met" : "MISSED"}`,
        );
    }
    return lines;
}

function machine(b: Bench): string {
    const cpus = os.cpus();
    const pulumiVersion = spawnSync(b.cli.pulumi, ["version"], { encoding: "utf8" }).stdout.trim();
    const ansibleVersion = (spawnSync(path.join(b.ansibleBin, "ansible-playbook"), ["--version"], { encoding: "utf8" }).stdout ?? "").split("\n")[0];
    return [
        `- date: ${new Date().toISOString().slice(0, 16).replace("T", " ")} UTC`,
        `- machine: ${cpus.length} × ${cpus[0]?.model.trim()}, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, Linux ${os.release()}; the fleet hosts are systemd-nspawn containers sharing those cores`,
        `- pulumi ${pulumiVersion} (local file backend), Node.js ${process.version}, ${ansibleVersion}`,
        `- artifact: the docker-ce fixture fork's static tgz, ${(b.artifacts.v1.size / 2 ** 20).toFixed(0)} MiB (v1 and v2 alternate)`,
    ].join("\n");
}

const writeBenchmarks = (report: string) => writeBenchmarkBlock("<!-- bench:begin (written by npm run bench) -->", "<!-- bench:end -->", "", report);

async function main(): Promise<void> {
    const opts = parseArgs(process.argv.slice(2));
    const b = await setUp(opts);
    const figs = new Map<number, SizeFigures>();
    const profiles = new Map<number, Profile>();
    const failures: string[] = [];
    let last = "";
    try {
        for (const n of opts.sizes) {
            const f: SizeFigures = { rollout: [], noop: [], ansible: [], ansibleNoop: [], floor: [] };
            figs.set(n, f);
            for (let rep = 0; rep < opts.reps; rep++) {
                try {
                    profiles.set(n, await repetition(b, n, f));
                } catch (e) {
                    // a daemon that fails to start under the load of 8 hosts on 2 cores: say so, keep
                    // the hosts' Docker logs, and run the repetition again (at most five times per
                    // size: on these hosts systemd sometimes cannot set up docker.socket, 219/CGROUP,
                    // for any of the three tools)
                    failures.push(`N=${n}: ${(e as Error).message.split("\n").slice(0, 3).join(" / ")}`);
                    await saveDockerLogs(b, n, failures.length);
                    if (failures.filter((x) => x.startsWith(`N=${n}:`)).length > 5) throw e;
                    note(`repetition failed, run again: ${failures.at(-1)}`);
                    await converge(b, n);
                    for (const xs of Object.values(f) as number[][]) xs.length = rep;
                    rep--;
                }
            }
            // the stacks share the hosts: leave them on the ref every other stack's state says
            // they are on (v2, where the set-up left them); otherwise the next size's rollout
            // finds some of its hosts already running the release it brings (and removes that
            // release's directory under the running daemon, to make the copy happen)
            if (b.stackRef.get(n) !== "v2") await forkliftRollout(b, n);
        }
        const big = Math.max(...opts.sizes);
        const prof = breakdown(profiles.get(big)!);
        let extra: [string, string][] = [];
        if (!opts.quick) {
            // for the profile only: a failure here is reported, and the figures above still count
            extra = await whatIfs(b, big).catch((e: Error) => [["what-if runs failed", e.message.split("\n").slice(0, 6).join(" / ")]]);
        }
        const tbl = table(opts.sizes, figs);
        const goals = targets(opts.sizes, figs);
        const report = [
            `Seconds, median of ${opts.reps} run(s) each. forklift: \`pulumi up --yes\` (preview included, as typed), batchSize N.`,
            "",
            machine(b),
            "",
            tbl,
            "",
            ...goals.map((g) => `- ${g}`),
            "",
            `Where the last forklift rollout to ${big} host(s) spent its time (seconds; per-host rows are medians over the hosts, from their journals):`,
            "",
            "| phase | s |",
            "|---|---:|",
            ...prof.rows.map(([k, v]) => `| ${k} | ${v} |`),
            ...(failures.length ? ["", `Repetitions that failed and were run again (${failures.length}):`, "", ...failures.map((x) => `- ${x.replace(/\|/g, "\\|")}`)] : []),
            ...(extra.length ? ["", "Single runs for the profile:", "", "| what | s |", "|---|---:|", ...extra.map(([k, v]) => `| ${k} | ${v} |`)] : []),
        ].join("\n");
        console.log(`\n${report}\n`);
        const logFile = path.join(b.work, "..", `forklift-bench-profile-${big}.log`);
        fs.writeFileSync(logFile, prof.text + "\n");
        note(`the profiled run's pulumi output, with times: ${logFile}`);
        if (!opts.quick) writeBenchmarks(report);
        const f = figs.get(big)!;
        const m = median;
        last = (
            `rollout${big}_vs_ansible=${r2(ratio(m(f.rollout), m(f.ansible)))} noop${big}_vs_ansible=${r2(ratio(m(f.noop), m(f.ansibleNoop)))} rollout${big}_vs_floor=${r2(ratio(m(f.rollout), m(f.floor)))}`
        );
    } finally {
        b.lab.stopForks();
        await stopHosts();
        fs.rmSync(b.work, { recursive: true, force: true });
    }
    console.log(last);
}

// --swarm, --wan: the Swarm bench (tools/bench-swarm.ts), the WAN bench (tools/bench-wan.ts)
const args = process.argv.slice(2);
const entry = args.includes("--swarm")
    ? import("./bench-swarm").then((m) => m.main(args.filter((a) => a !== "--swarm")))
    : args.includes("--wan")
      ? import("./bench-wan").then((m) => m.main(args.filter((a) => a !== "--wan")))
      : main();
entry.catch((e) => {
    process.stderr.write(`\nnpm run bench: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exit(1);
});

