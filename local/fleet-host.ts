/**
 * One fleet host's install and uninstall (`main.ts install`, `main.ts uninstall`: the create and
 * the delete of its resource). The install's one SSH session carries forklift-host.sh and then
 * the tgz from the local cache, which the host reads only when it does not have the release
 * unpacked already (the check stages it there before the first batch).
 */
import * as fs from "node:fs";
import { cachedArtifact, fetchArtifact, sha256File } from "./cache";
import { sha256 } from "../lib/hash";
import { FleetHostJob } from "./jobs";
import { hostFailure, hostScript } from "./remote";
import { Ssh, explainSshFailure } from "./ssh";

export async function install(job: FleetHostJob, log: (line: string) => void): Promise<string> {
    const ssh = new Ssh(job.insecure);
    try {
        const target = ssh.add(job.host);
        let tgz = cachedArtifact(job.artifact);
        let fetchError = "";
        if (!tgz) {
            try {
                tgz = await fetchArtifact(job.artifact, ssh, log);
            } catch (e) {
                // a host that has the release unpacked (staged by the check) needs no copy
                fetchError = (e as Error).message;
            }
        }
        const script = hostScript();
        if (sha256(script) !== job.hostScriptSha256) {
            throw new Error(`scripts/forklift-host.sh is not the one this install was planned with: run \`pulumi up\` again from this checkout`);
        }
        const r = await ssh.run(target, job.install, { input: tgz ? [script, { file: tgz }] : [script], onStderrLine: hostLines(log) });
        if (r.code === 0) return r.stdout.trim().split("\n").pop() ?? "";
        if (r.code === 255) throw new Error(explainSshFailure(job.host, r.stderr));
        if (!tgz && /no artifact arrived/.test(r.stderr)) throw new Error(`${job.host.name}: it needs the release and ${fetchError}`);
        if (tgz && /the artifact that arrived has sha256/.test(r.stderr) && (await sha256File(tgz)) !== job.artifact.sha256) {
            fs.rmSync(tgz, { force: true });
            throw new Error(`the cached artifact ${tgz} was corrupt; it is removed: run \`pulumi up\` again to fetch it anew`);
        }
        throw new Error(hostFailure(job.host, r));
    } finally {
        ssh.close();
    }
}

export async function uninstall(job: Pick<FleetHostJob, "insecure" | "host" | "uninstall">, log: (line: string) => void): Promise<void> {
    const ssh = new Ssh(job.insecure);
    try {
        const r = await ssh.run(ssh.add(job.host), job.uninstall, { onStderrLine: hostLines(log) });
        if (r.code === 255) throw new Error(explainSshFailure(job.host, r.stderr));
        if (r.code !== 0) throw new Error(hostFailure(job.host, r));
        if (r.stdout.trim()) log(r.stdout.trim());
    } finally {
        ssh.close();
    }
}

/**
 * Shows the host script's own lines as they come (its progress); the rest (ssh's, a fatal
 * message's continuation) goes into the failure's message instead.
 */
function hostLines(log: (line: string) => void): (line: string) => void {
    return (line) => {
        if (line.startsWith("[forklift ")) log(line);
    };
}
