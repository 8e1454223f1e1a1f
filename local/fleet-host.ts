/**
 * One fleet host's install and uninstall (`main.ts install`, `main.ts uninstall`: the create and
 * the delete of its resource). The install's one SSH session carries forklift-host.sh and then
 * the tgz from the local cache, which the host reads only when it does not have the release
 * unpacked already (the check stages it there before the first batch). A Swarm node that would
 * change answers so without a change; it is then drained around a second run (swarm-node.ts).
 */
import { sha256 } from "../lib/hash";
import { EXIT_SEND_ARTIFACT, delivery } from "./delivery";
import { FleetHostJob, SwarmNodeJob } from "../lib/protocol/jobs";
import { DrainFirst, HostErrorLine, HostStatus, SwarmInfo, Uninstalled, lastOf } from "../lib/protocol/results";
import { HostError, hostFailure, hostLines, hostScript } from "./remote";
import { RunResult, Ssh, explainSshFailure } from "./ssh";
import { finishStoppedRun, withNodeDrained } from "./swarm-node";

/** Exit status of a host script run that a Swarm node needs drained first (forklift-host.sh). */
const EXIT_DRAIN_FIRST = 75;

/** What an install or a rollback did: the host's status line, and whether its Swarm node was drained for it. */
export interface Changed {
    status: HostStatus;
    drained: boolean;
}

/** The install of JOB's host (its resource's create). */
export function install(job: FleetHostJob, log: (line: string) => void): Promise<Changed> {
    return change(job, job.install, job.installDrained, log);
}

/**
 * Back to the release before on JOB's host, after the current one failed its health check once
 * committed (a soak).
 */
export function rollBack(job: FleetHostJob, log: (line: string) => void): Promise<Changed> {
    if (!job.rollback || !job.rollbackDrained) throw new Error(`${job.host.name}: this job was made by an older forklift, which cannot roll a host back after its install`);
    return change(job, job.rollback, job.rollbackDrained, log);
}

/**
 * Runs FIRST (an install, a rollback) on JOB's host with forklift-host.sh and the artifact on its
 * stdin; a Swarm node that it would change answers so without a change, and is drained around
 * DRAINED.
 */
async function change(job: FleetHostJob, firstCommand: string, drainedCommand: string, log: (line: string) => void): Promise<Changed> {
    const ssh = new Ssh(job.insecure);
    try {
        const target = ssh.add(job.host);
        const script = hostScript();
        if (sha256(script) !== job.hostScriptSha256) {
            throw new Error(`scripts/forklift-host.sh is not the one this install was planned with: run \`pulumi up\` again from this checkout`);
        }
        // (the check staged the release on every host: this copy is for a host that lost it since)
        const artifact = await delivery(job.artifact, ssh, log, false);
        const run = async (command: string, ask = true, key: string[] = []): Promise<RunResult> => {
            const r = await ssh.run(target, command, { input: [script, ...key, ...(await artifact.input(ask))], onStderrLine: hostLines(log) });
            // (a host that lost the release since the check asks for it: nothing changed there)
            if (r.code === EXIT_SEND_ARTIFACT && ask) return run(command, false, key);
            if (r.code === 0 || r.code === EXIT_DRAIN_FIRST) return r;
            if (r.code === 255) throw new Error(explainSshFailure(job.host, r.stderr));
            const error = lastOf(HostErrorLine, r.stdout);
            const failure = artifact.explain(job.host.name, error) ?? hostFailure(job.host, r);
            const advice = await artifact.finish([error], log);
            throw new HostError(advice && !failure.includes(advice) ? `${failure}. ${advice}` : failure, lastOf(HostStatus, r.stdout), error);
        };
        const first = await run(firstCommand);
        if (first.code === 0) {
            // up to date; a run that was stopped after its install may have left the node drained
            const status = statusOf(job.host.name, first.stdout);
            if (status.swarm?.NodeID) await finishStoppedRun(ssh, job.host, status.swarm, job.swarm, log);
            return { status, drained: false };
        }
        // a Swarm node the install would change: drained first (the release is unpacked there now)
        let status: HostStatus | undefined;
        const swarm = swarmOf(first.stdout);
        await withNodeDrained(ssh, job.host, swarm, job.swarm, log, async () => {
            const r = await run(drainedCommand, true, unlockLine(job.swarm, swarm));
            status = statusOf(job.host.name, r.stdout);
            return { engineVersion: status.engineVersion || undefined };
        });
        return { status: status!, drained: true };
    } finally {
        ssh.close();
    }
}

/** The uninstall; an older forklift's delete job (legacy.ts) has no Swarm part: its workers cannot be drained. */
export async function uninstall(job: Pick<FleetHostJob, "insecure" | "host" | "uninstall"> & Partial<Pick<FleetHostJob, "uninstallDrained" | "swarm">>, log: (line: string) => void): Promise<void> {
    const ssh = new Ssh(job.insecure);
    try {
        const target = ssh.add(job.host);
        const run = async (command: string, key: string[] = []) => {
            const r = await ssh.run(target, command, { input: key, onStderrLine: hostLines(log) });
            if (r.code === 255) throw new Error(explainSshFailure(job.host, r.stderr));
            if (r.code !== 0 && r.code !== EXIT_DRAIN_FIRST) throw new Error(hostFailure(job.host, r));
            return r;
        };
        const first = await run(job.uninstall);
        if (first.code === EXIT_DRAIN_FIRST) {
            const { swarm, uninstallDrained } = job;
            if (!swarm || !uninstallDrained) {
                throw new Error(`${job.host.name} is a Swarm node, and this delete was planned by an older forklift that does not drain one: run \`pulumi up\` once (it changes nothing on the hosts), then \`pulumi destroy\`. Nothing was changed`);
            }
            const info = swarmOf(first.stdout);
            await withNodeDrained(ssh, job.host, info, swarm, log, async () => {
                const r = await run(uninstallDrained, unlockLine(swarm, info));
                // a host that had no Docker before forklift has none now: its node stays out of its cluster
                const said = lastOf(Uninstalled, r.stdout);
                return { gone: said !== undefined && said.dockerService !== "active" };
            });
        } else if (first.stdout.trim()) {
            log(first.stdout.trim());
        }
    } finally {
        ssh.close();
    }
}

/**
 * The first line of a drained run's stdin: the unlock key for a manager (its engine comes back
 * locked where the cluster has autolock on), an empty line otherwise.
 */
function unlockLine(swarm: SwarmNodeJob, info: SwarmInfo): string[] {
    return [`${info.ControlAvailable && swarm.unlockKey ? swarm.unlockKey : ""}\n`];
}

/** The status line an install that ended well printed (HOST's). */
function statusOf(host: string, stdout: string): HostStatus {
    const status = lastOf(HostStatus, stdout);
    if (!status) throw new Error(`${host}: the install printed no status line; its output ended with: ${stdout.trim().slice(-300)}`);
    return status;
}

/** The Swarm part of the host script's answer when it asked to be drained first. */
function swarmOf(stdout: string): SwarmInfo {
    const answer = lastOf(DrainFirst, stdout);
    if (!answer?.swarm.NodeID) throw new Error(`the host asked to be drained but gave no Swarm node: ${stdout.trim().slice(-200)}`);
    return answer.swarm;
}
