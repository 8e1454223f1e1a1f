/** What the end-to-end suites check on a host over SSH, shared by their test files. */
import * as assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { ensureBusybox, sh } from "../../testbed/lab";
import { TestHost } from "../../testbed/testbed";

/** sha256 of the dockerd the host's docker.service runs, and that service's main PID. */
export function runningDockerd(h: TestHost): { pid: string; sha: string } {
    const [pid, sha] = sh(h, `pid=$(systemctl show -p MainPID --value docker.service); echo "$pid"; sha256sum /proc/$pid/exe | cut -d' ' -f1`).split("\n");
    return { pid, sha };
}

/** sha256 of docker/dockerd inside the artifact the project cached for SHA256. */
export function artifactDockerd(projectDir: string, sha256: string): string {
    const tgz = path.join(projectDir, ".forklift", "artifacts", `${sha256}.tgz`);
    return execFileSync("bash", ["-c", `tar -xzOf "$1" docker/dockerd | sha256sum | cut -d' ' -f1`, "_", tgz], { encoding: "utf8" }).trim();
}

/** Everything a rolled-out host must show: units, socket activation, the artifact's dockerd, docker run. */
export function assertOnRelease(projectDir: string, h: TestHost, sha256: string): void {
    const dockerd = artifactDockerd(projectDir, sha256);
    assert.match(sh(h, "head -n 1 /etc/systemd/system/docker.service"), /Managed by forklift/, `${h.name}: forklift's docker.service`);
    assert.match(sh(h, "head -n 1 /etc/systemd/system/docker.socket"), /Managed by forklift/, `${h.name}: forklift's docker.socket`);
    assert.equal(sh(h, "systemctl is-enabled docker.socket; systemctl is-active docker.socket"), "enabled\nactive", `${h.name}: socket activation`);
    assert.equal(sh(h, "stat -c '%a %U:%G' /run/docker.sock"), "660 root:docker", `${h.name}: the socket's mode and owner`);
    assert.equal(runningDockerd(h).sha, dockerd, `${h.name}: the running dockerd is the artifact's`);
    assert.equal(sh(h, "readlink /opt/forklift/current"), `/opt/forklift/releases/${sha256}`);
    ensureBusybox(h);
    assert.equal(sh(h, "docker run --rm busybox:local echo ok"), "ok", `${h.name}: docker run`);
}

/** The release a host is on (the target of /opt/forklift/current), or "" without one. */
export function releaseOf(h: TestHost): string {
    return sh(h, "readlink /opt/forklift/current || true").replace(/^\/opt\/forklift\/releases\//, "");
}

/** Waits until COND holds, looking every 100 ms; fails after SECONDS naming WHAT. */
export async function waitUntil(what: string, cond: () => boolean, seconds = 180): Promise<void> {
    const deadline = Date.now() + seconds * 1000;
    while (!cond()) {
        if (Date.now() > deadline) throw new Error(`timed out after ${seconds} s waiting until ${what}`);
        await new Promise((r) => setTimeout(r, 100));
    }
}

/** The PIDs of every process below PID (children first found, then theirs). */
export function descendants(pid: number): number[] {
    const parentOf = new Map<number, number>();
    for (const entry of fs.readdirSync("/proc")) {
        if (!/^\d+$/.test(entry)) continue;
        try {
            // "pid (comm) state ppid ...": comm may hold spaces, so split after its closing paren
            const stat = fs.readFileSync(`/proc/${entry}/stat`, "utf8");
            parentOf.set(Number(entry), Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]));
        } catch {
            // gone meanwhile
        }
    }
    const found: number[] = [];
    for (let i = -1; i < found.length; i++) {
        const parent = i < 0 ? pid : found[i];
        for (const [child, p] of parentOf) if (p === parent) found.push(child);
    }
    return found;
}
