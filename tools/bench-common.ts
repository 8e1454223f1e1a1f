/**
 * What the benches share (tools/bench.ts, bench-swarm.ts, bench-wan.ts): the two refs of the
 * fixture fork, medians, local programs, commands on every host, the Ansible baseline's venv,
 * inventory and environment, the files the Ansible and floor installs copy, BENCHMARKS.md blocks.
 */
import { spawn, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { needsContainerdUnit, renderManagedFiles, renderSwarmDaemonJson } from "../lib/units";
import { FIXTURE_BINARIES } from "../testbed/fixture-fork";
import { sh } from "../testbed/lab";
import { TestHost, copyTo, knownHostsPath, repoRoot, sshAsync, testKey } from "../testbed/testbed";

export const BENCH_DIR = path.join(repoRoot(), "bench");
export const REFS = ["v1", "v2"] as const;
export type Ref = (typeof REFS)[number];
export const other = (r: Ref): Ref => (r === "v1" ? "v2" : "v1");

export const median = (xs: number[]): number => {
    const s = [...xs].sort((a, b) => a - b);
    return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
export const ratio = (a: number, b: number) => (b > 0 ? a / b : NaN);
export const r2 = (x: number) => (Number.isFinite(x) ? x.toFixed(2) : "n/a");

/** The --reps N of ARGV (FALLBACK without one). */
export function repsOf(argv: string[], fallback: number): number {
    const at = argv.indexOf("--reps");
    const reps = at >= 0 ? Number(argv[at + 1]) : fallback;
    if (!Number.isInteger(reps) || reps < 1) throw new Error("--reps wants a whole number");
    return reps;
}

/** Runs a local program; resolves with its wall time and output, throws with the output's tail on failure. */
export function runProgram(cmd: string, args: string[], env: NodeJS.ProcessEnv = process.env, cwd = BENCH_DIR): Promise<{ seconds: number; stdout: string }> {
    const started = Date.now();
    return new Promise((resolve, reject) => {
        const child = spawn(cmd, args, { cwd, env, stdio: ["ignore", "pipe", "pipe"] });
        let out = "";
        child.stdout.on("data", (d: Buffer) => (out += d.toString()));
        child.stderr.on("data", (d: Buffer) => (out += d.toString()));
        child.on("error", reject);
        child.on("close", (code) => {
            if (code !== 0) reject(new Error(`${path.basename(cmd)} ${args.slice(0, 2).join(" ")} exited ${code}:\n${out.trimEnd().split("\n").slice(-40).join("\n")}`));
            else resolve({ seconds: (Date.now() - started) / 1000, stdout: out });
        });
    });
}

/** Runs COMMAND on every host at once; throws naming the hosts where it failed. */
export async function onAll(hosts: TestHost[], command: string): Promise<string[]> {
    const results = await Promise.all(hosts.map((h) => sshAsync(h, command)));
    const bad = results.map((r, i) => (r.code === 0 ? "" : `${hosts[i].name}: ${r.stderr.trim()}`)).filter(Boolean);
    if (bad.length > 0) throw new Error(`\`${command}\` failed on ${bad.join("; ")}`);
    return results.map((r) => r.stdout.trim());
}

/** How many SSH logins each host has accepted so far (this check's own included). */
export const sshLogins = async (hosts: TestHost[]) => (await onAll(hosts, "journalctl -u ssh.service --no-pager -o cat | grep -c 'Accepted publickey' || true")).map(Number);

/**
 * Clears systemd's start rate limit of the Docker units (StartLimitBurst=3 per 60 s in the units):
 * the benches restart Docker on the same hosts several times a minute, which no rollout does.
 */
export const clearStartLimits = (hosts: TestHost[]) => onAll(hosts, "systemctl reset-failed docker.service docker.socket containerd.service 2>/dev/null || true");

/** Ansible (ansible-core from PyPI, a cached venv): the directory of its programs. */
export async function ansibleBin(): Promise<string> {
    const venv = await runProgram("bash", [path.join(BENCH_DIR, "ansible-venv.sh")]);
    return venv.stdout.trim().split("\n").pop()!;
}

/** Python 3 on HOSTS (Ansible's modules need it; the test bed's image has none). */
export async function installHostPython(hosts: TestHost[]): Promise<void> {
    const installed = sh(hosts[0], "dpkg-query -W -f '${Package}\\n'");
    const r = spawnSync("bash", [path.join(BENCH_DIR, "host-python.sh")], { input: installed, encoding: "utf8" });
    if (r.status !== 0) throw new Error(`bench/host-python.sh failed:\n${r.stderr}`);
    const tarball = r.stdout.trim().split("\n").pop()!;
    for (const h of hosts) copyTo(h, tarball, "/var/tmp/bench-python.tar.gz");
    await onAll(hosts, "tar --keep-directory-symlink -xzf /var/tmp/bench-python.tar.gz -C / && rm -f /var/tmp/bench-python.tar.gz && python3 -c 'import json, zipfile, hashlib'");
}

/** An Ansible inventory at FILE: one group per entry of GROUPS, root with the test key, host keys pinned. */
export function writeInventory(file: string, groups: Record<string, TestHost[]>): string {
    const lines = Object.entries(groups).flatMap(([group, hosts]) => [`[${group}]`, ...hosts.map((h) => `${h.name} ansible_host=${h.address}`)]);
    fs.writeFileSync(
        file,
        [
            ...lines,
            "[all:vars]",
            "ansible_user=root",
            `ansible_ssh_private_key_file=${testKey().privateKeyPath}`,
            `ansible_ssh_common_args='-o IdentitiesOnly=yes -o StrictHostKeyChecking=yes -o UserKnownHostsFile=${knownHostsPath()} -o GlobalKnownHostsFile=/dev/null'`,
            "ansible_python_interpreter=/usr/bin/python3",
            "",
        ].join("\n"),
    );
    return file;
}

/**
 * Ansible as its docs tune it for speed: pipelining on, the default ControlPersist connections
 * (fresh for each run: a cold start, like forklift's), FORKS hosts at once.
 */
export function ansibleEnv(work: string, forks: number): NodeJS.ProcessEnv {
    return {
        ...process.env,
        ANSIBLE_PIPELINING: "True",
        ANSIBLE_SSH_CONTROL_PATH_DIR: fs.mkdtempSync(path.join(work, "ansible-cp-")),
        ANSIBLE_HOST_KEY_CHECKING: "True",
        ANSIBLE_FORKS: String(forks),
        ANSIBLE_NOCOLOR: "1",
        ANSIBLE_LOCAL_TEMP: path.join(work, "ansible-tmp"),
    };
}

/** The environment of bench/floor.sh: the test key and the pinned host keys. */
export const floorEnv = (extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv => ({ ...process.env, FORKLIFT_BENCH_KEY: testKey().privateKeyPath, FORKLIFT_BENCH_KNOWN_HOSTS: knownHostsPath(), ...extra });

/**
 * The units and daemon.json forklift would install for the install dir INSTALL_DIR, written into
 * INTO (the Ansible and floor installs copy them); SWARM: a Swarm node's daemon.json (no
 * live-restore). TGZ: linked in as docker.tgz (floor.sh's scp carries it).
 */
export function writeManagedFiles(into: string, installDir: string, swarm: boolean, tgz?: string): void {
    fs.mkdirSync(into, { recursive: true });
    const files = renderManagedFiles({ installDir, shipsContainerd: needsContainerdUnit(FIXTURE_BINARIES["docker-ce"]) }, swarm ? {} : { "live-restore": true });
    for (const [name, text] of Object.entries(files)) fs.writeFileSync(path.join(into, name), name === "daemon.json" && swarm ? renderSwarmDaemonJson({})! : (text as string));
    if (tgz) fs.symlinkSync(tgz, path.join(into, "docker.tgz"));
}

/** Replaces the block between BEGIN and END in BENCHMARKS.md with REPORT (appended under HEADING if absent). */
export function writeBenchmarkBlock(begin: string, end: string, heading: string, report: string): void {
    const file = path.join(repoRoot(), "BENCHMARKS.md");
    const block = `${begin}\n${report}\n${end}`;
    const old = fs.existsSync(file) ? fs.readFileSync(file, "utf8") : "# Benchmarks\n";
    const next = old.includes(begin) && old.includes(end) ? old.slice(0, old.indexOf(begin)) + block + old.slice(old.indexOf(end) + end.length) : `${old.trimEnd()}\n\n${heading ? `${heading}\n\n` : ""}${block}\n`;
    fs.writeFileSync(file, next);
}
