/**
 * docker buildx on test build hosts. Debian 12 (the test host image) has no docker-buildx package;
 * testbed/buildx.sh builds the real plugin once (cached under ~/.cache/forklift), and
 * installBuildx() copies it where Ubuntu's docker-buildx package puts it, so a test host looks
 * like an Ubuntu 24.04 build host with buildx installed.
 *
 *   await installBuildx(builder);   // before bootstrapping it
 */
import { spawn } from 'node:child_process';
import { TestHost, copyTo, repoRoot, ssh } from './testbed';

/** Where Ubuntu's docker-buildx package installs the CLI plugin. */
export const BUILDX_PLUGIN_PATH = '/usr/libexec/docker/cli-plugins/docker-buildx';

let built: Promise<string> | undefined;

/** Path of the docker-buildx binary built by testbed/buildx.sh (built once per process, minutes the first time). */
export function buildxBinary(): Promise<string> {
  built ??= new Promise<string>((resolve, reject) => {
    const child = spawn('bash', [`${repoRoot()}/testbed/buildx.sh`], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => {
      if (code === 0) resolve(out.trim().split('\n').pop() as string);
      else reject(new Error(`testbed/buildx.sh failed (${code}):\n${err}`));
    });
  });
  built.catch(() => (built = undefined)); // a later call may try again
  return built;
}

/** Installs the buildx CLI plugin on the host and checks that `docker buildx version` answers. */
export async function installBuildx(host: TestHost): Promise<string> {
  const binary = await buildxBinary();
  const mkdir = ssh(host, `mkdir -p ${BUILDX_PLUGIN_PATH.replace(/\/[^/]+$/, '')}`);
  if (mkdir.code !== 0) throw new Error(`${host.name}: ${mkdir.stderr}`);
  copyTo(host, binary, BUILDX_PLUGIN_PATH);
  const r = ssh(host, `chmod 0755 ${BUILDX_PLUGIN_PATH} && docker buildx version`);
  if (r.code !== 0) throw new Error(`docker buildx does not answer on ${host.name}: ${r.stderr}`);
  return r.stdout.trim();
}
