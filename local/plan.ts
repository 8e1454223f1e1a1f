/**
 * The plan before anything changes (`main.ts plan`, shown by `FORKLIFT_PLAN=1 pulumi preview`):
 * for each host, what it runs now and whether its release changes, its step, its Swarm role and
 * whether it is drained — from the precheck's facts (read-only on the hosts) and the steps that
 * the check after the build computes the same way (planSwarm). Pure: the precheck runs in
 * main.ts.
 */
import { PlanJob } from "../lib/protocol/jobs";
import { HostFacts, PlanRow, PreviewPlan } from "../lib/protocol/results";
import { inSwarm } from "./swarm";

/** What HOST runs now, as the plan says it. */
export function currentOf(f: HostFacts | undefined): string {
    if (!f) return "not checked (see below)";
    const engine = f.engine ? `engine ${f.engine}` : "no engine answering";
    if (f.current) return `forklift ${f.currentVersion || "?"} (${f.current.slice(0, 12)}), ${engine}`;
    return `the host's own Docker, ${engine}`;
}

/** Whether a host on release CURRENT changes to the target SHA256 (undefined: a build still to run). */
export function changeOf(current: string | undefined, sha256: string | undefined): PlanRow["change"] {
    if (current === undefined) return "unknown";
    if (sha256 === undefined) return "if the build differs";
    return current === sha256 ? "no" : "yes";
}

/** The drain column of a node drained before the rollout: forklift leaves its availability as it finds it. */
export const OPERATOR_DRAINED = "already: its operator's drain stays";

/** Step 0 (a launched host, planned once it runs) sorts last. */
const order = (step: number) => step || Number.MAX_SAFE_INTEGER;

/**
 * The plan of JOB's hosts, from each host's FACTS (by name) and the STEPS (host names, in order);
 * the hosts forklift launches come last, at step 0. PROBLEMS: why hosts failed the precheck (they
 * have no facts; the rollout would stop there, so there are no steps either). DRAIN_RECORDS: the
 * nodes (IDs) that stopped runs of this stack left drained.
 */
export function planOfFleet(job: PlanJob, facts: Map<string, HostFacts>, steps: string[][], problems: string[] = [], drainRecords: string[] = []): PreviewPlan {
    const stepOf = new Map(steps.flatMap((hosts, i) => hosts.map((h) => [h, i + 1] as const)));
    // each node's availability, as the fleet's managers list it: a node its operator drained stays
    // so; one a stopped run of this stack drained (DRAIN_RECORDS) is given back by the check first
    const availability = new Map([...facts.values()].flatMap((f) => f.nodes ?? []).map((n) => [n.ID, n.Availability]));
    for (const id of drainRecords) availability.delete(id);
    const rows: PlanRow[] = job.checks.hosts.map((h) => {
        const f = facts.get(h.name);
        const change = changeOf(f?.current, job.target.sha256);
        const swarm = f?.swarm;
        const role = inSwarm(swarm) ? (swarm.ControlAvailable ? "manager" : "worker") : "";
        // a Swarm node is drained when its release changes
        const drained = role === "" ? "" : availability.get(swarm!.NodeID) === "Drain" ? OPERATOR_DRAINED : change === "if the build differs" ? change : change === "no" ? "no" : "yes";
        return { host: h.name, step: stepOf.get(h.name) ?? 0, current: currentOf(f), change, role, drained };
    });
    for (const host of job.launched) rows.push({ host, step: 0, current: "launched by this `pulumi up`", change: "yes", role: "", drained: "" });
    const sha = job.target.sha256 ? `sha256 ${job.target.sha256.slice(0, 12)}` : "a build still to run";
    return { target: `${job.target.label} (${sha})`, hosts: rows.sort((a, b) => order(a.step) - order(b.step)), problems };
}
