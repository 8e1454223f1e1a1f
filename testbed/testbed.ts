/**
 * Local systemd test hosts for node:test end-to-end tests (see testbed/host.sh, /work/shared/TESTBED.md).
 *
 *   import { after, before } from 'node:test';
 *   import { TestHost, startHosts, stopHosts, ssh, scp } from './testbed';
 *   let hosts: TestHost[];
 *   before(async () => { hosts = await startHosts([{ name: 'web1', index: 21, debianDocker: true }]); });
 *   after(() => stopHosts());
 *   ... const r = ssh(hosts[0], 'docker version');   // sync: { code, stdout, stderr }
 *   ... scp(hosts[0], '/local/file', '/remote/file');  // sync, throws on failure
 *
 * ssh()/scp()/copyTo()/copyFrom() are synchronous (spawnSync); sshAsync() is the concurrent variant.
 * All use the system OpenSSH client with the run's ed25519 key, StrictHostKeyChecking=yes and a
 * known_hosts file built from the host keys host.sh printed (knownHostsPath(), sshOptions()).
 * Hosts are stopped by stopHosts(), and also on process exit and SIGINT/SIGTERM/SIGHUP.
 * Needs root and the packages from `testbed/deps.sh`; throws (never skips) when they are missing.
 * The first run builds the host image (~2 min, cached under ~/.cache/forklift/testbed); a host
 * then boots in ~1-2 s. Host names (netns `fl-NAME`) and indices (subnet 10.78.INDEX.0/24) are
 * machine-wide: test files that may run at the same time must use distinct ones.
 * Environment: FORKLIFT_TESTBED_DIR (host state, default /tmp/forklift-testbed) and the other
 * FORKLIFT_TESTBED_* variables documented in testbed/host.sh are passed through.
 */
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

export interface HostSpec {
  /** [a-z0-9][a-z0-9-]{0,30}; also the hostname and the netns name suffix (fl-NAME). */
  name: string;
  /** 1..254: the host gets 10.78.INDEX.2, the machine 10.78.INDEX.1. */
  index: number;
  /** Boot with Debian's docker.socket/docker.service/containerd enabled. */
  debianDocker?: boolean;
  /**
   * On the test bed's cloud (host.sh --cloud): one bridge shared with the other cloud hosts, at
   * 10.77.0.INDEX, reached from this machine through one link that shapeCloud() can slow down.
   */
  cloud?: boolean;
}

export interface TestHost {
  name: string;
  index: number;
  address: string;
  port: number;
  user: string;
  /** Path of the ed25519 private key authorized for root on every test host of this run. */
  privateKeyPath: string;
  /** The same private key, OpenSSH PEM text. */
  privateKey: string;
  /** The host's SSH host public key, "ssh-ed25519 AAAA..." (pin it; known_hosts is built from it). */
  hostKey: string;
  debianDocker: boolean;
}

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface SshOptions {
  /** Written to the remote command's stdin. */
  input?: string | Buffer;
  /** Kill ssh after this many ms (default 600000). */
  timeoutMs?: number;
}

/** Copy of busybox-rootfs.tar (for `docker import`) inside every host image. */
export const HOST_BUSYBOX_TARBALL = '/usr/local/share/forklift-testbed/busybox-rootfs.tar';

const started = new Map<string, TestHost>();
const attempted = new Set<string>();
let keyDir: string | undefined;
let handlersInstalled = false;
/** Set by keepHostsIn(): the hosts outlive this process and the key pair lives here. */
let keptIn: string | undefined;

/** Repository root: FORKLIFT_REPO_ROOT, else the nearest directory above cwd holding testbed/host.sh. */
export function repoRoot(): string {
  const fromEnv = process.env.FORKLIFT_REPO_ROOT;
  if (fromEnv) return fromEnv;
  let dir = process.cwd();
  for (;;) {
    if (fs.existsSync(path.join(dir, 'testbed', 'host.sh'))) return dir;
    const parent = path.dirname(dir);
    if (parent === dir) {
      throw new Error(
        `forklift test bed: testbed/host.sh not found above ${process.cwd()}; run the tests from the repository or set FORKLIFT_REPO_ROOT`,
      );
    }
    dir = parent;
  }
}

function script(name: string): string {
  return path.join(repoRoot(), 'testbed', name);
}

/** process.env with the sbin directories on PATH (root tools; the scripts add them too). */
function toolEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  return { ...process.env, PATH: `${process.env.PATH ?? '/usr/bin:/bin'}:/usr/local/sbin:/usr/sbin:/sbin`, ...extra };
}

function commandExists(cmd: string): boolean {
  return spawnSync('sh', ['-c', `command -v "$1" >/dev/null 2>&1`, 'sh', cmd], { env: toolEnv() }).status === 0;
}

/** Throws an Error listing every missing prerequisite of the test bed. */
export function checkPrerequisites(): void {
  const missing: string[] = [];
  if (process.platform !== 'linux') missing.push(`Linux (this is ${process.platform})`);
  if (typeof process.getuid === 'function' && process.getuid() !== 0) {
    missing.push(`root (running as uid ${process.getuid()}; nspawn, netns and mounts need root)`);
  }
  const cmds: Array<[string, string]> = [
    ['systemd-nspawn', 'systemd-container'],
    ['debootstrap', 'debootstrap'],
    ['ip', 'iproute2'],
    ['ssh', 'openssh-client'],
    ['scp', 'openssh-client'],
    ['ssh-keygen', 'openssh-client'],
    ['nsenter', 'util-linux'],
    ['setsid', 'util-linux'],
    ['mkfs.ext4', 'e2fsprogs'],
    ['busybox', 'busybox-static'],
  ];
  for (const [cmd, pkg] of cmds) {
    if (!commandExists(cmd)) missing.push(`${cmd} (Debian package ${pkg})`);
  }
  try {
    if (!/\toverlay\n/.test(fs.readFileSync('/proc/filesystems', 'utf8'))) missing.push('overlayfs in the kernel');
  } catch {
    missing.push('/proc/filesystems (overlayfs check)');
  }
  for (const s of ['image.sh', 'host.sh']) {
    try {
      fs.accessSync(script(s), fs.constants.X_OK);
    } catch {
      missing.push(`executable testbed/${s}`);
    }
  }
  if (missing.length > 0) {
    throw new Error(
      `forklift test bed prerequisites missing:\n  - ${missing.join('\n  - ')}\n` +
        'Install them as root with: testbed/deps.sh',
    );
  }
}

function run(cmd: string, args: string[], opts: { input?: string | Buffer; timeoutMs?: number } = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'], env: toolEnv() });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let timer: NodeJS.Timeout | undefined;
    if (opts.timeoutMs) {
      timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs);
    }
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d: Buffer) => err.push(d));
    child.on('error', (e) => {
      if (timer) clearTimeout(timer);
      reject(e);
    });
    child.on('close', (code, signal) => {
      if (timer) clearTimeout(timer);
      resolve({
        code: code ?? (signal ? 128 + (os.constants.signals[signal] ?? 0) : -1),
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8'),
      });
    });
    child.stdin.on('error', () => undefined); // remote side may not read stdin
    child.stdin.end(opts.input ?? '');
  });
}

/**
 * Keeps the hosts this process starts running after it exits (`npm run demo`): no exit handlers,
 * and the run's key pair in DIR (made once, reused), so a later process reaches them again with
 * adoptHosts().
 */
export function keepHostsIn(dir: string): void {
  if (keyDir) throw new Error('keepHostsIn() must come before any host is started');
  keptIn = dir;
}

/**
 * The running hosts of these specs, as started by an earlier process that called keepHostsIn()
 * with the same directory; undefined unless every one of them is up.
 */
export function adoptHosts(specs: HostSpec[]): TestHost[] | undefined {
  const key = testKey();
  const listed = spawnSync(script('host.sh'), ['list'], { encoding: 'utf8', env: toolEnv() });
  const running = new Map(
    (listed.stdout ?? '').trim().split('\n').filter(Boolean).map((l) => {
      const [name, index, address, pid] = l.split(/\s+/);
      return [name, { index: Number(index), address, alive: pid !== '-' }] as const;
    }),
  );
  const runDir = process.env.FORKLIFT_TESTBED_DIR ?? '/tmp/forklift-testbed';
  const hosts: TestHost[] = [];
  for (const s of specs) {
    const r = running.get(s.name);
    const keyFile = path.join(runDir, s.name, 'ssh_host_ed25519_key.pub');
    if (!r?.alive || r.index !== s.index || !fs.existsSync(keyFile)) return undefined;
    const hostKey = fs.readFileSync(keyFile, 'utf8').trim().split(/\s+/).slice(0, 2).join(' ');
    hosts.push({ name: s.name, index: s.index, address: r.address, port: 22, user: 'root', privateKeyPath: key.privateKeyPath, privateKey: key.privateKey, hostKey, debianDocker: !!s.debianDocker });
  }
  for (const h of hosts) started.set(h.name, h);
  updateKnownHosts();
  return hosts;
}

/** The run's ed25519 key pair (generated once per process, or kept in keepHostsIn()'s directory). */
export function testKey(): { privateKeyPath: string; publicKeyPath: string; privateKey: string; publicKey: string } {
  if (!keyDir && keptIn) {
    fs.mkdirSync(keptIn, { recursive: true, mode: 0o700 });
    if (!fs.existsSync(path.join(keptIn, 'id_ed25519'))) generateKey(keptIn);
    keyDir = keptIn;
  }
  if (!keyDir) {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'forklift-testbed-key-'));
    try {
      generateKey(dir);
    } catch (e) {
      fs.rmSync(dir, { recursive: true, force: true });
      throw e;
    }
    keyDir = dir;
    installExitHandlers();
  }
  const privateKeyPath = path.join(keyDir, 'id_ed25519');
  return {
    privateKeyPath,
    publicKeyPath: `${privateKeyPath}.pub`,
    privateKey: fs.readFileSync(privateKeyPath, 'utf8'),
    publicKey: fs.readFileSync(`${privateKeyPath}.pub`, 'utf8').trim(),
  };
}

function generateKey(dir: string): void {
  const r = spawnSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'forklift-testbed', '-f', path.join(dir, 'id_ed25519')], {
    encoding: 'utf8',
  });
  if (r.status !== 0) throw new Error(`ssh-keygen failed: ${r.error?.message ?? r.stderr}`);
}

/** known_hosts file pinning the host keys of every running test host of this process. */
export function knownHostsPath(): string {
  testKey();
  const file = path.join(keyDir as string, 'known_hosts');
  if (!fs.existsSync(file)) updateKnownHosts();
  return file;
}

/** Rewrites known_hosts atomically (ssh clients may be reading it concurrently). */
function updateKnownHosts(): void {
  if (!keyDir) return;
  const file = path.join(keyDir, 'known_hosts');
  const lines = [...started.values()].map((h) => `${h.address} ${h.hostKey}`);
  fs.writeFileSync(`${file}.tmp`, lines.length ? `${lines.join('\n')}\n` : '');
  fs.renameSync(`${file}.tmp`, file);
}

/** ssh/scp options: pinned host key (StrictHostKeyChecking=yes), the test key only, no user config. */
export function sshOptions(host: TestHost): string[] {
  return [
    '-F', '/dev/null',
    '-i', host.privateKeyPath,
    '-o', 'IdentitiesOnly=yes',
    '-o', 'BatchMode=yes',
    '-o', 'StrictHostKeyChecking=yes',
    '-o', `UserKnownHostsFile=${knownHostsPath()}`,
    '-o', 'GlobalKnownHostsFile=/dev/null',
    '-o', 'ConnectTimeout=10',
    '-o', 'LogLevel=ERROR',
  ];
}

function assertStarted(host: TestHost): void {
  // Test traffic may only go to hosts this process booted in its own namespaces.
  if (started.get(host.name)?.address !== host.address) {
    throw new Error(`${host.name} (${host.address}) is not a running test host of this process`);
  }
}

const MAX_OUTPUT = 256 * 1024 * 1024;

function runSync(cmd: string, args: string[], opts: { input?: string | Buffer; timeoutMs?: number } = {}): RunResult {
  const r = spawnSync(cmd, args, {
    input: opts.input ?? '',
    timeout: opts.timeoutMs,
    killSignal: 'SIGKILL',
    maxBuffer: MAX_OUTPUT,
    env: toolEnv(),
  });
  if (r.error && !r.signal) throw r.error;
  return {
    code: r.status ?? (r.signal ? 128 + (os.constants.signals[r.signal] ?? 0) : -1),
    stdout: r.stdout?.toString('utf8') ?? '',
    stderr: r.stderr?.toString('utf8') ?? '',
  };
}

/**
 * Runs `command` on the host as root through the system ssh client (synchronously) and returns
 * its exit code (128+N when killed by signal N, e.g. on `timeoutMs`), stdout and stderr.
 * Never throws on a non-zero exit.
 */
export function ssh(host: TestHost, command: string, opts: SshOptions = {}): RunResult {
  assertStarted(host);
  return runSync('ssh', [...sshOptions(host), '-p', String(host.port), `${host.user}@${host.address}`, command], {
    input: opts.input,
    timeoutMs: opts.timeoutMs ?? 600_000,
  });
}

/** Like ssh(), without blocking the event loop (for commands that must run concurrently). */
export function sshAsync(host: TestHost, command: string, opts: SshOptions = {}): Promise<RunResult> {
  assertStarted(host);
  return run('ssh', [...sshOptions(host), '-p', String(host.port), `${host.user}@${host.address}`, command], {
    input: opts.input,
    timeoutMs: opts.timeoutMs ?? 600_000,
  });
}

function scpRun(host: TestHost, args: string[]): void {
  assertStarted(host);
  const r = runSync('scp', ['-q', '-r', ...sshOptions(host), '-P', String(host.port), ...args], { timeoutMs: 600_000 });
  if (r.code !== 0) throw new Error(`scp ${args.join(' ')} failed (${r.code}): ${r.stderr.trim()}`);
}

/** Copies a local file or directory to `remotePath` on the host (scp -r); throws on failure. */
export function copyTo(host: TestHost, localPath: string, remotePath: string): void {
  scpRun(host, [localPath, `${host.user}@${host.address}:${remotePath}`]);
}

/** Copies `remotePath` from the host to a local file or directory (scp -r); throws on failure. */
export function copyFrom(host: TestHost, remotePath: string, localPath: string): void {
  scpRun(host, [`${host.user}@${host.address}:${remotePath}`, localPath]);
}

/** scp-like upload: same as copyTo(host, localPath, remotePath). */
export const scp = copyTo;

/** Builds/reuses the host image, then boots all hosts in parallel. On any failure, stops them all and throws. */
export async function startHosts(specs: HostSpec[]): Promise<TestHost[]> {
  checkPrerequisites();
  const names = new Set<string>();
  const indices = new Set<number>();
  for (const s of specs) {
    if (!/^[a-z0-9][a-z0-9-]{0,30}$/.test(s.name)) throw new Error(`invalid test host name '${s.name}'`);
    if (!Number.isInteger(s.index) || s.index < 1 || s.index > 254) throw new Error(`invalid index ${s.index} for ${s.name}`);
    if (names.has(s.name) || started.has(s.name)) throw new Error(`duplicate test host name '${s.name}'`);
    if (indices.has(s.index) || [...started.values()].some((h) => h.index === s.index)) {
      throw new Error(`duplicate test host index ${s.index}`);
    }
    names.add(s.name);
    indices.add(s.index);
  }
  const key = testKey();
  const image = await run(script('image.sh'), []);
  if (image.code !== 0) throw new Error(`testbed/image.sh failed (${image.code}):\n${image.stderr}`);
  const imageDir = image.stdout.trim().split('\n').pop() as string;

  const results = await Promise.allSettled(
    specs.map(async (s): Promise<TestHost> => {
      attempted.add(s.name);
      const args = ['up', s.name, String(s.index), ...(s.debianDocker ? ['--debian-docker'] : []), ...(s.cloud ? ['--cloud'] : [])];
      const r = await runWithEnv(script('host.sh'), args, {
        FORKLIFT_TESTBED_PUBKEY: key.publicKeyPath,
        FORKLIFT_TESTBED_IMAGE: imageDir,
      });
      if (r.code !== 0) throw new Error(`testbed/host.sh ${args.join(' ')} failed (${r.code}):\n${r.stderr}`);
      const [address, hostKey] = r.stdout.trim().split('\n');
      if (!/^10\.(78\.\d+\.2|77\.0\.\d+)$/.test(address ?? '') || !/^ssh-ed25519 \S+$/.test(hostKey ?? '')) {
        throw new Error(`unexpected output of testbed/host.sh ${args.join(' ')}:\n${r.stdout}`);
      }
      const host: TestHost = {
        name: s.name,
        index: s.index,
        address,
        port: 22,
        user: 'root',
        privateKeyPath: key.privateKeyPath,
        privateKey: key.privateKey,
        hostKey,
        debianDocker: !!s.debianDocker,
      };
      started.set(s.name, host);
      updateKnownHosts();
      return host;
    }),
  );
  const failures = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failures.length > 0) {
    await stopHosts(specs.map((s) => s.name)).catch(() => undefined);
    throw new Error(`starting test hosts failed:\n${failures.map((f) => String(f.reason?.message ?? f.reason)).join('\n')}`);
  }
  return results.map((r) => (r as PromiseFulfilledResult<TestHost>).value);
}

function runWithEnv(cmd: string, args: string[], env: Record<string, string>): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], env: toolEnv(env) });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d: Buffer) => err.push(d));
    child.on('error', reject);
    child.on('close', (code) =>
      resolve({ code: code ?? -1, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') }),
    );
  });
}

/**
 * Stops the given hosts (default: every host this process started or tried to start) and removes
 * their state. Safe to call repeatedly; use it from `after()`. Throws if a teardown failed.
 */
export async function stopHosts(names?: string[]): Promise<void> {
  const targets = names ?? [...new Set([...attempted, ...started.keys()])];
  if (targets.length === 0) return;
  const results = await Promise.all(
    targets.map(async (name) => {
      const r = await runWithEnv(script('host.sh'), ['down', name], {});
      started.delete(name);
      attempted.delete(name);
      return r.code === 0 ? undefined : `${name}: ${r.stderr.trim()}`;
    }),
  );
  updateKnownHosts();
  const errors = results.filter((e): e is string => !!e);
  if (errors.length > 0) throw new Error(`stopping test hosts failed:\n${errors.join('\n')}`);
}

/** Synchronous teardown for process exit/signals. */
function stopHostsSync(): void {
  for (const name of new Set([...attempted, ...started.keys()])) {
    try {
      spawnSync(script('host.sh'), ['down', name], { stdio: 'ignore', timeout: 60_000, env: toolEnv() });
    } catch {
      // best effort at exit
    }
    started.delete(name);
    attempted.delete(name);
  }
  if (keyDir) {
    fs.rmSync(keyDir, { recursive: true, force: true });
    keyDir = undefined;
  }
}

function installExitHandlers(): void {
  if (handlersInstalled) return;
  handlersInstalled = true;
  process.on('exit', stopHostsSync);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(sig, () => {
      stopHostsSync();
      process.exit(128 + (os.constants.signals[sig] ?? 0));
    });
  }
}

/** The netns of the test bed's cloud: programs started in it are on the cloud's side of its link. */
export const CLOUD_NETNS = 'fl-cloud';
/** This machine's end of its link to the cloud (where a cloud host reaches this machine). */
export const CLOUD_UPLINK = '10.76.0.1';
/** The cloud bridge's own address (where a program started in CLOUD_NETNS listens). */
export const CLOUD_ADDRESS = '10.77.0.254';

/** Limits this machine's link to the cloud to RATE each way (e.g. "20mbit"), or lifts it ("off"). */
export function shapeCloud(rate: string): void {
  const r = spawnSync(script('host.sh'), ['shape', rate], { encoding: 'utf8', env: toolEnv() });
  if (r.status !== 0) throw new Error(`host.sh shape ${rate} failed: ${r.stderr}`);
}

/** Bytes that crossed this machine's link to the cloud so far: sent and received. */
export function cloudBytes(): { sent: number; received: number } {
  const r = spawnSync(script('host.sh'), ['cloud-bytes'], { encoding: 'utf8', env: toolEnv() });
  if (r.status !== 0) throw new Error(`host.sh cloud-bytes failed: ${r.stderr}`);
  const [sent, received] = r.stdout.trim().split(' ').map(Number);
  return { sent, received };
}
