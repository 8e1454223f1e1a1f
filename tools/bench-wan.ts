/**
 * npm run bench -- --wan — the operator behind a slow uplink, the fleet in a cloud (issue 24).
 *
 * The build host and 16 fleet hosts are on the test bed's cloud (one bridge; they reach one another
 * and the S3-compatible store, versitygw in the cloud's netns, at full speed); this machine, where
 * `pulumi up` and Ansible run, reaches them through one link limited to 20 Mbit/s each way
 * (`testbed/host.sh shape`) during every timed run. Both refs of the docker-ce fixture fork are
 * built during the set-up; each timed run rolls v2 out to hosts on v1 (none has v2 unpacked, and
 * the store holds no v2 object before a forklift run: its upload is timed too), then the stack goes
 * back to v1 untimed and unshaped. Median of --reps (default 3) of each:
 *   forklift store   `pulumi up --yes` with artifactSource s3 (the test store), batchSize N, N = 8, 16;
 *                    at 8, then the no-change `pulumi up`, which must contact no host
 *   forklift relay   the same with artifactSource relay (each host's copy from this machine), N = 8
 *   Ansible          bench/playbook.yml, forks 8 (the controller copies the tgz to each host), N = 8
 *   cloud floor      bench/floor.sh with FORKLIFT_BENCH_URLS: each host fetches the store's object
 *                    with a presigned GET of its own, checks the sha256, unpacks, restarts, over
 *                    plain ssh, all hosts at once; N = 8, 16
 * and the bytes that crossed the shaped link in each (its interface's counters, both ways).
 *
 * Last line: `wan8_vs_relay=<r> wan8_vs_ansible=<r> wan8_vs_cloudfloor=<r> wan_growth_vs_floor=<r> operator_mb8=<x>`.
 * Writes its block into BENCHMARKS.md. `--only store8,floor8` (of store8, store16, relay8,
 * ansible8, floor8, floor16) runs those alone and prints their runs, writing nothing: a change's
 * before and after. Needs what `npm run bench` needs; test hosts wan-builder and wan-f1..f16
 * (indices 181-197).
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { Lab, PulumiCli, bootLab, configureStack, findPulumi, note, projectCheckout, setConfig } from "../testbed/lab";
import { Store, startStore } from "../testbed/s3";
import { TestHost, checkPrerequisites, cloudBytes, shapeCloud, stopHosts } from "../testbed/testbed";
import { presign } from "../local/store";
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
    r2,
    repsOf,
    ratio,
    runProgram,
    sshLogins,
    writeBenchmarkBlock,
    writeInventory,
    writeManagedFiles,
} from "./bench-common";

const RATE = "20mbit";
const SIZES = [8, 16] as const;
const BASE: Ref = "v1";
const NEXT: Ref = "v2";

/** One timed run: seconds and the bytes that crossed the shaped link. */
interface Run {
    seconds: number;
    bytes: number;
}

interface Setup {
    lab: Lab;
    cli: PulumiCli;
    store: Store;
    work: string;
    ansibleBin: string;
    artifacts: Record<Ref, { sha256: string; tgz: string }>;
}

const stackOf = (kind: "store" | "relay", n: number) => `wan-${kind}-${n}`;
const fleetOf = (s: Setup, n: number) => s.lab.fleet.slice(0, n);
/** The cloud floor's object of the artifact REF (forklift's are under forklift/<stack identity>/). */
const FLOOR_KEY = (sha256: string) => `floor/${sha256}.tgz`;
/** The stacks share the hosts: before one runs, the hosts are handed over as the README says. */
const handOver = (hosts: TestHost[]) => onAll(hosts, "rm -f /var/lib/forklift/owner /var/lib/forklift/stack-id");

async function setUp(): Promise<Setup> {
    checkPrerequisites();
    findPulumi();
    note("Ansible (ansible-core from PyPI, cached venv)");
    const ansibleBin = await installAnsible();
    const work = fs.mkdtempSync(path.join(os.tmpdir(), "forklift-bench-wan-"));
    const lab = await bootLab({
        builder: { name: "wan-builder", index: 181, cloud: true },
        fleet: Array.from({ length: 16 }, (_, i) => ({ name: `wan-f${i + 1}`, index: 182 + i, cloud: true })),
    });
    note("Python 3 for Ansible's modules on 8 fleet hosts");
    await installHostPython(fleetOf({ lab } as Setup, 8));
    note("the S3-compatible store in the cloud (testbed/s3.sh)");
    // before the CLI: its environment carries the store's credentials (as a user's AWS credentials)
    const store = await startStore();
    const cli = new PulumiCli(projectCheckout(path.join(work, "project")), path.join(work, "state"), "bench");
    const s: Setup = { lab, cli, store, work, ansibleBin, artifacts: {} as Setup["artifacts"] };
    try {
        await setUpStacks(s);
    } catch (e) {
        // (the hosts go with the process's exit handlers; the store and the git daemon do not)
        store.stop();
        lab.stopForks();
        throw e;
    }
    return s;
}

/** Both refs built and each stack up once on each (untimed); the artifacts cached for Ansible and the floor. */
async function setUpStacks(s: Setup): Promise<void> {
    const { lab, cli, store, work } = s;
    // the relay's stack first: its cache holds both artifacts for Ansible and the floor afterwards
    for (const [kind, n] of [["relay", 8], ["store", 8], ["store", 16]] as const) {
        const stack = stackOf(kind, n);
        note(`stack ${stack}: ${n} hosts, batchSize ${n}, artifactSource ${kind === "store" ? "s3 (the test store)" : "relay"}; up on ${NEXT}, then on ${BASE}`);
        await configureStack(cli, stack, { ...lab, fleet: fleetOf(s, n) }, { recipe: "docker-ce", ref: NEXT });
        await setConfig(cli, { batchSize: String(n) });
        const source = kind === "store" ? { type: "s3", endpoint: store.endpoint, bucket: store.bucket } : { type: "relay" };
        for (const [k, v] of Object.entries(source)) await cli.ok(["config", "set", "--path", `artifactSource.${k}`, v]);
        for (const ref of [NEXT, BASE]) {
            await cli.ok(["config", "set", "forkRef", ref]);
            await clearStartLimits(fleetOf(s, n));
            await handOver(fleetOf(s, n));
            const r = await cli.ok(["up", "--yes"]);
            note(`  set-up pulumi up (${ref}): ${r.seconds.toFixed(1)} s`);
            const sha256 = (await cli.outputs()).artifact.sha256 as string;
            s.artifacts[ref] ??= { sha256, tgz: path.join(cli.projectDir, ".forklift", "artifacts", `${sha256}.tgz`) };
        }
    }
    for (const ref of REFS) if (!fs.existsSync(s.artifacts[ref].tgz)) throw new Error(`the relay's stack left no cached artifact for ${ref}: ${s.artifacts[ref].tgz}`);
    writeManagedFiles(path.join(work, "files-ansible"), "/opt/bench/ansible/current", false);
    writeManagedFiles(path.join(work, "files-cloudfloor"), "/opt/bench/floor/current", false);
}

/** Runs ACTION with the link shaped; its seconds and the bytes that crossed the link meanwhile. */
async function shaped(action: () => Promise<void>): Promise<Run> {
    shapeCloud(RATE);
    try {
        const before = cloudBytes();
        const started = Date.now();
        await action();
        const seconds = (Date.now() - started) / 1000;
        const after = cloudBytes();
        return { seconds, bytes: after.sent - before.sent + (after.received - before.received) };
    } finally {
        shapeCloud("off");
    }
}

/** forklift's rollout of NEXT on the stack of KIND and N (then, untimed, back to BASE); the no-op too if NOOP. */
async function forklift(s: Setup, kind: "store" | "relay", n: number, noop: boolean): Promise<{ run: Run; noop?: number }> {
    const stack = stackOf(kind, n);
    const hosts = fleetOf(s, n);
    const { sha256 } = s.artifacts[NEXT];
    await s.cli.ok(["stack", "select", stack]);
    await onAll(hosts, `rm -rf /opt/forklift/releases/${sha256}`);
    // (the stack's last rollout back to BASE removed NEXT's object already: this is in case it failed)
    if (kind === "store") fs.rmSync(s.store.objectPath(`forklift/${(await s.cli.outputs()).stackIdentity}/${sha256}.tgz`), { force: true });
    await clearStartLimits(hosts);
    await handOver(hosts);
    await s.cli.ok(["config", "set", "forkRef", NEXT]);
    const run = await shaped(async () => void (await s.cli.ok(["up", "--yes"])));
    const out = await s.cli.outputs();
    const wrong = (out.hosts as { name: string; sha256: string }[]).filter((h) => h.sha256 !== sha256);
    if (out.hosts.length !== n || wrong.length > 0) throw new Error(`${stack} did not roll ${NEXT} out everywhere: ${JSON.stringify(out.hosts)}`);
    if (kind === "store") {
        // the store holds the stack's new object only: the old one went at the end of the `pulumi up`
        const object = (ref: Ref) => s.store.objectPath(`forklift/${out.stackIdentity}/${s.artifacts[ref].sha256}.tgz`);
        if (!fs.existsSync(object(NEXT)) || fs.existsSync(object(BASE))) throw new Error(`${stack}: the store should hold ${NEXT}'s object and not ${BASE}'s`);
    }
    let noopSeconds: number | undefined;
    if (noop) {
        const all = [s.lab.builder, ...hosts];
        const before = await sshLogins(all);
        noopSeconds = (await shaped(async () => void (await s.cli.ok(["up", "--yes", "--expect-no-changes"])))).seconds;
        const after = await sshLogins(all);
        const contacted = all.filter((_, i) => after[i] !== before[i] + 1).map((h) => h.name);
        if (contacted.length > 0) throw new Error(`${stack}: the no-change pulumi up logged in to ${contacted.join(", ")}`);
    }
    note(`forklift ${kind} N=${n}: ${run.seconds.toFixed(1)} s, ${(run.bytes / 1e6).toFixed(2)} MB over the link${noopSeconds === undefined ? "" : `; no-op ${noopSeconds.toFixed(1)} s`}`);
    await back(s, stack, hosts);
    return { run, noop: noopSeconds };
}

/** The stack and its hosts back on BASE, untimed and unshaped. */
async function back(s: Setup, stack: string, hosts: TestHost[]): Promise<void> {
    await s.cli.ok(["stack", "select", stack]);
    await s.cli.ok(["config", "set", "forkRef", BASE]);
    await clearStartLimits(hosts);
    await handOver(hosts);
    await s.cli.ok(["up", "--yes"]);
}

/** Ansible's playbook on 8 hosts, forks 8: the controller copies the tgz to each. */
async function ansible(s: Setup): Promise<Run> {
    const hosts = fleetOf(s, 8);
    const { sha256, tgz } = s.artifacts[NEXT];
    const inventory = writeInventory(path.join(s.work, "inventory.ini"), { fleet: hosts });
    await onAll(hosts, `rm -rf /opt/bench/ansible/releases/${sha256} /var/tmp/bench-ansible-docker.tgz`);
    await clearStartLimits(hosts);
    const run = await shaped(async () => {
        const args = ["-i", inventory, "-f", "8", path.join(BENCH_DIR, "playbook.yml"), "-e", JSON.stringify({ artifact: tgz, sha256, files_dir: path.join(s.work, "files-ansible") })];
        await runProgram(path.join(s.ansibleBin, "ansible-playbook"), args, ansibleEnv(s.work, 8));
    });
    note(`Ansible N=8: ${run.seconds.toFixed(1)} s, ${(run.bytes / 1e6).toFixed(1)} MB over the link`);
    return run;
}

/** The cloud floor on N hosts: each fetches the store's object itself (the object is put there first, untimed). */
async function cloudFloor(s: Setup, n: number): Promise<Run> {
    const hosts = fleetOf(s, n);
    const { sha256, tgz } = s.artifacts[NEXT];
    fs.mkdirSync(path.dirname(s.store.objectPath(FLOOR_KEY(sha256))), { recursive: true });
    fs.copyFileSync(tgz, s.store.objectPath(FLOOR_KEY(sha256)));
    const object = { type: "s3" as const, endpoint: s.store.endpoint, bucket: s.store.bucket, region: "us-east-1", key: FLOOR_KEY(sha256), pathStyle: true };
    const urls = path.join(s.work, "urls");
    fs.writeFileSync(urls, (await Promise.all(hosts.map(() => presign(object, "GET")))).join("\n") + "\n");
    await clearStartLimits(hosts);
    const run = await shaped(async () => {
        await runProgram("bash", [path.join(BENCH_DIR, "floor.sh"), path.join(s.work, "files-cloudfloor"), sha256, ...hosts.map((h) => h.address)], floorEnv({ FORKLIFT_BENCH_URLS: urls }));
    });
    const current = await onAll(hosts, "readlink /opt/bench/floor/current");
    if (current.some((c) => !c.endsWith(sha256))) throw new Error(`the cloud floor did not install ${NEXT} everywhere`);
    note(`cloud floor N=${n}: ${run.seconds.toFixed(1)} s, ${(run.bytes / 1e6).toFixed(2)} MB over the link`);
    return run;
}

/**
 * Runs one measurement; a failure (a daemon that does not start under the load of 16 hosts on 2
 * cores) is noted and the measurement run again, at most 3 times, after RECOVER.
 */
async function retried<T>(what: string, failures: string[], measure: () => Promise<T>, recover: () => Promise<void>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
        try {
            return await measure();
        } catch (e) {
            shapeCloud("off");
            failures.push(`${what}: ${(e as Error).message.split("\n").slice(0, 3).join(" / ")}`);
            note(`failed, run again: ${failures.at(-1)}`);
            if (attempt >= 3) throw e;
            await recover();
        }
    }
}

function report(runs: Record<string, Run[]>, noops: number[], failures: string[], reps: number, s: Setup) {
    const m = (k: string, f: keyof Run = "seconds") => median(runs[k].map((r) => r[f]));
    const mb = (k: string) => m(k, "bytes") / 1e6;
    const vsRelay = ratio(m("store8"), m("relay8"));
    const vsAnsible = ratio(m("store8"), m("ansible8"));
    const vsFloor = ratio(m("store8"), m("floor8"));
    const growth = ratio(ratio(m("store16"), m("store8")), ratio(m("floor16"), m("floor8")));
    const rows: [string, string, string][] = [
        ["forklift, artifactSource s3 (`pulumi up`)", "store8", "8"],
        ["forklift, artifactSource s3 (`pulumi up`)", "store16", "16"],
        ["forklift, artifactSource relay (`pulumi up`)", "relay8", "8"],
        ["Ansible (bench/playbook.yml, forks 8)", "ansible8", "8"],
        ["cloud floor (bench/floor.sh, each host fetches from the store)", "floor8", "8"],
        ["cloud floor (bench/floor.sh, each host fetches from the store)", "floor16", "16"],
    ];
    const size = fs.statSync(s.artifacts.v1.tgz).size;
    const text = [
        `Seconds and MB (10^6 bytes, both ways) across this machine's link to the cloud, limited to ${RATE}; median of ${reps} run(s) each; each run rolls v2 out to hosts on v1.`,
        "",
        `- date: ${new Date().toISOString().slice(0, 16).replace("T", " ")} UTC; ${os.cpus().length} × ${os.cpus()[0]?.model.trim()}; the build host, the fleet and the store share those cores`,
        `- artifact: the docker-ce fixture fork's static tgz, ${(size / 2 ** 20).toFixed(0)} MiB; the store: versitygw (testbed/s3.sh) in the cloud`,
        "",
        "| rollout | N | s | MB over the link |",
        "|---|---:|---:|---:|",
        ...rows.map(([what, k, n]) => `| ${what} | ${n} | ${m(k).toFixed(1)} | ${mb(k).toFixed(k.startsWith("store") || k.startsWith("floor") ? 2 : 0)} |`),
        "",
        `- forklift(8) ≤ 0.1× the relay: ${r2(vsRelay)}× — ${vsRelay <= 0.1 ? "met" : "MISSED"}`,
        `- forklift(8) ≤ 0.1× Ansible: ${r2(vsAnsible)}× — ${vsAnsible <= 0.1 ? "met" : "MISSED"}`,
        `- forklift(8) ≤ 1.5× the cloud floor: ${r2(vsFloor)}× — ${vsFloor <= 1.5 ? "met" : "MISSED"}`,
        `- ≤ 2 MB across the link for the rollout to 8: ${mb("store8").toFixed(2)} MB — ${mb("store8") <= 2 ? "met" : "MISSED"}`,
        `- growth forklift(16)/forklift(8) = ${r2(ratio(m("store16"), m("store8")))} vs floor(16)/floor(8) = ${r2(ratio(m("floor16"), m("floor8")))}: ${r2(growth)}× (≤ 1.2×) — ${growth <= 1.2 ? "met" : "MISSED"}`,
        `- the no-change \`pulumi up\` of the store's stack at 8: ${median(noops).toFixed(1)} s, no host contacted (sshd's journals)`,
        `- each run (s): ${Object.entries(runs).map(([k, xs]) => `${k} ${xs.map((r) => r.seconds.toFixed(1)).join("/")}`).join("; ")}`,
        ...(failures.length ? [`- runs that failed (each is run again, up to 3 times; ${failures.length}): ${failures.map((f) => f.replace(/\|/g, "\\|")).join("; ")}`] : []),
    ].join("\n");
    const last = `wan8_vs_relay=${r2(vsRelay)} wan8_vs_ansible=${r2(vsAnsible)} wan8_vs_cloudfloor=${r2(vsFloor)} wan_growth_vs_floor=${r2(growth)} operator_mb8=${mb("store8").toFixed(2)}`;
    return { text, last };
}

const KINDS = ["store8", "store16", "relay8", "ansible8", "floor8", "floor16"];

/** The measurements --only names (all without it). */
export function onlyOf(argv: string[]): Set<string> {
    const at = argv.indexOf("--only");
    if (at < 0) return new Set(KINDS);
    const kinds = (argv[at + 1] ?? "").split(",");
    const unknown = kinds.filter((k) => !KINDS.includes(k));
    if (unknown.length > 0) throw new Error(`--only wants some of ${KINDS.join(",")} (got ${argv[at + 1] ?? "nothing"})`);
    return new Set(kinds);
}

export async function main(argv: string[]): Promise<void> {
    const reps = repsOf(argv, 3);
    const only = onlyOf(argv);
    const s = await setUp();
    let last = "";
    try {
        const runs: Record<string, Run[]> = { store8: [], store16: [], relay8: [], ansible8: [], floor8: [], floor16: [] };
        const noops: number[] = [];
        const failures: string[] = [];
        const recoverStack = (kind: "store" | "relay", n: number) => () => back(s, stackOf(kind, n), fleetOf(s, n));
        const recoverHosts = async () => void (await clearStartLimits(s.lab.fleet));
        for (let rep = 1; rep <= reps; rep++) {
            note(`repetition ${rep} of ${reps}`);
            for (const n of SIZES.filter((n) => only.has(`store${n}`))) {
                const r = await retried(`forklift store N=${n}`, failures, () => forklift(s, "store", n, n === 8), recoverStack("store", n));
                runs[`store${n}`].push(r.run);
                if (r.noop !== undefined) noops.push(r.noop);
            }
            if (only.has("relay8")) runs.relay8.push((await retried("forklift relay N=8", failures, () => forklift(s, "relay", 8, false), recoverStack("relay", 8))).run);
            // (a playbook that fails three times, as one did on a busy host, is reported as such;
            // forklift's runs must succeed)
            const played = only.has("ansible8") ? await retried("Ansible N=8", failures, () => ansible(s), recoverHosts).catch(() => undefined) : undefined;
            if (played) runs.ansible8.push(played);
            for (const n of SIZES.filter((n) => only.has(`floor${n}`))) runs[`floor${n}`].push(await retried(`cloud floor N=${n}`, failures, () => cloudFloor(s, n), recoverHosts));
        }
        if (only.size < KINDS.length) {
            for (const k of only) console.log(`${k}: median ${median(runs[k].map((r) => r.seconds)).toFixed(1)} s of ${runs[k].map((r) => r.seconds.toFixed(1)).join("/")}`);
            if (failures.length) console.log(`runs that failed and were run again: ${failures.join("; ")}`);
            return;
        }
        const r = report(runs, noops, failures, reps, s);
        console.log(`\n${r.text}\n`);
        writeBenchmarkBlock("<!-- bench-wan:begin (written by npm run bench -- --wan) -->", "<!-- bench-wan:end -->", "## A slow uplink, the fleet in a cloud: `npm run bench -- --wan`", r.text);
        last = r.last;
    } finally {
        shapeCloud("off");
        s.store.stop();
        s.lab.stopForks();
        await stopHosts();
        fs.rmSync(s.work, { recursive: true, force: true });
    }
    console.log(last);
}
