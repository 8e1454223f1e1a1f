// End-to-end check of the local test bed: boots two real systemd hosts (one with Debian's Docker),
// checks SSH with a pinned host key, Docker, file copy, and teardown.
// Run (root, after testbed/deps.sh): npx --yes tsx --test test/hosts/testbed.test.ts
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  HOST_BUSYBOX_TARBALL,
  TestHost,
  copyFrom,
  copyTo,
  ssh,
  sshAsync,
  startHosts,
  stopHosts,
  sshOptions,
} from '../../testbed/testbed';
import { spawnSync } from 'node:child_process';

let plain: TestHost;
let docker: TestHost;

before(async () => {
  [plain, docker] = await startHosts([
    { name: 'tb-plain', index: 201 },
    { name: 'tb-docker', index: 202, debianDocker: true },
  ]);
});

after(async () => {
  await stopHosts();
});

test('hosts answer over ssh as root with their own hostname and a running systemd', () => {
  for (const h of [plain, docker]) {
    assert.equal(h.user, 'root');
    assert.equal(h.port, 22);
    assert.equal(h.address, `10.78.${h.index}.2`);
    assert.match(h.hostKey, /^ssh-ed25519 AAAA\S+$/);
    assert.match(h.privateKey, /BEGIN OPENSSH PRIVATE KEY/);
    const r = ssh(h, 'echo "$(id -un) $(hostname) $(systemctl is-system-running)"');
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout.trim(), new RegExp(`^root ${h.name} (running|degraded)$`));
  }
});

test('the host key is pinned: a wrong key is refused', () => {
  // ssh to tb-plain while expecting tb-docker's host key must fail host key verification
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'forklift-kh-'));
  try {
    const kh = path.join(dir, 'known_hosts');
    fs.writeFileSync(kh, `${plain.address} ${docker.hostKey}\n`);
    const opts = sshOptions(plain).map((o) => (o.startsWith('UserKnownHostsFile=') ? `UserKnownHostsFile=${kh}` : o));
    const r = spawnSync('ssh', [...opts, `root@${plain.address}`, 'true'], { encoding: 'utf8' });
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /HOST IDENTIFICATION HAS CHANGED|Host key verification failed/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('ssh timeouts cut the connection; sshAsync runs concurrently', async () => {
  const t0 = Date.now();
  const cut = ssh(plain, 'sleep 30', { timeoutMs: 1000 });
  assert.equal(cut.code, 137);
  assert.ok(Date.now() - t0 < 10_000);
  const both = await Promise.all([sshAsync(plain, 'sleep 1; echo a'), sshAsync(docker, 'sleep 1; echo b')]);
  assert.deepEqual(both.map((r) => [r.code, r.stdout.trim()]), [[0, 'a'], [0, 'b']]);
});

test('stdin input and file copies work', () => {
  const r = ssh(plain, 'cat > /root/in.txt && wc -c < /root/in.txt', { input: 'hello forklift\n' });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout.trim(), '15');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'forklift-scp-'));
  try {
    fs.writeFileSync(path.join(dir, 'up.txt'), 'up\n');
    copyTo(plain, path.join(dir, 'up.txt'), '/root/up.txt');
    assert.equal(ssh(plain, 'cat /root/up.txt').stdout, 'up\n');
    copyFrom(plain, '/root/in.txt', path.join(dir, 'down.txt'));
    assert.equal(fs.readFileSync(path.join(dir, 'down.txt'), 'utf8'), 'hello forklift\n');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test("Debian's Docker answers on the --debian-docker host only", () => {
  const v = ssh(docker, "docker version --format '{{.Server.Version}}'");
  assert.equal(v.code, 0, v.stderr);
  assert.match(v.stdout.trim(), /^20\.10\./);
  const run = ssh(
    docker,
    `docker import ${HOST_BUSYBOX_TARBALL} testbed/busybox:1 >/dev/null && docker run --rm testbed/busybox:1 /bin/busybox echo ok`,
  );
  assert.equal(run.code, 0, run.stderr);
  assert.equal(run.stdout.trim(), 'ok');
  const off = ssh(plain, 'systemctl is-enabled docker.service docker.socket; systemctl is-active docker.service');
  assert.deepEqual(off.stdout.trim().split('\n'), ['disabled', 'disabled', 'inactive']);
});

test('stopHosts tears everything down', async () => {
  await stopHosts();
  for (const h of [plain, docker]) {
    assert.equal(fs.existsSync(`/run/netns/fl-${h.name}`), false, `netns fl-${h.name} left behind`);
    const mounts = fs.readFileSync('/proc/mounts', 'utf8');
    assert.equal(mounts.includes(`/${h.name}/root `), false, `overlay of ${h.name} left mounted`);
  }
  assert.throws(() => ssh(plain, 'true'), /not a running test host/);
});
