/**
 * The health check (healthCheck) of a host run again, after a soak: forklift-host.sh health, with
 * the script on stdin. It changes nothing on the host.
 */
import { FleetHostJob } from "../lib/protocol/jobs";
import { hostFailure, hostScript } from "./remote";
import { Ssh } from "./ssh";

/** "" when JOB's host passes its health check now (or has none), else why not, naming the host. */
export async function healthCheck(job: FleetHostJob): Promise<string> {
    if (!job.health) return "";
    const ssh = new Ssh(job.insecure);
    try {
        const r = await ssh.run(ssh.add(job.host), job.health, { input: [hostScript()] });
        return r.code === 0 ? "" : hostFailure(job.host, r);
    } finally {
        ssh.close();
    }
}
