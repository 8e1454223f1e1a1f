/**
 * The rollout (`main.ts rollout`, the check resource's command): the check of every host with the
 * release staged, the plan, then the plan carried out in one process, step by step:
 *
 *   check (staging) → plan: steps (waves of the hosts in no Swarm; a cluster's managers; its
 *   workers in waves) → each step's installs at once → after a step, soakSeconds, then the health
 *   check again of each host of it that has not passed a soak on its release (updated now, or by
 *   a run stopped before its soak ended); one that fails now is rolled back → the next step
 *
 * A host that fails is rolled back (by its install, or after the soak) and counted; the rollout
 * goes on while the failures stay within maxFailures, and stops otherwise (the hosts after are
 * "not reached"). Every host's outcome goes into the report: a table on stderr, and the JSON on
 * stdout that the program keeps (each host's resource takes its status from it). The command
 * fails when any host failed, so that the next `pulumi up` runs it again: a host done already
 * changes nothing there (its install finds it up to date), a failed one gets its release again.
 */
import { failureBudget } from "../lib/rollout";
import { CheckReport, runChecks } from "./check";
import { install, rollBack } from "./fleet-host";
import { HostError } from "./remote";
import { FleetHostJob, RolloutJob } from "../lib/protocol/jobs";
import { healthCheck } from "./health";
import { HostOutcome, Outcome } from "../lib/protocol/results";
import { inSwarm } from "./swarm";

export interface RolloutReport {
    steps: string[][];
    hosts: HostOutcome[];
    failures: number;
    budget: number;
}

/** A host's release as the report shows it, from the check's facts (current, currentVersion) or a status line (sha256, version). */
function releaseOf(sha: string | undefined, version: string | undefined): string {
    if (!sha) return "its own Docker";
    return `${version || "?"} ${sha.slice(0, 12)}`;
}

/** LOG: the rollout's own lines; PASS: the installs' (the hosts' lines, as they come). */
export async function runRollout(job: RolloutJob, log: (line: string) => void, pass: (line: string) => void): Promise<RolloutReport> {
    const checked: CheckReport = await runChecks(job.check, log, { pass });
    const jobs = new Map<string, { job: FleetHostJob }>(job.installs.map((j) => [j.host.name, { job: j }]));
    const facts = new Map(checked.hosts.map((h) => [h.name, h.facts]));
    const budget = failureBudget(job.maxFailures, job.installs.length);
    const outcomes = new Map<string, HostOutcome>();
    let failures = 0;
    const before = (host: string) => releaseOf(facts.get(host)?.current, facts.get(host)?.currentVersion);
    const role = (host: string): HostOutcome["role"] => {
        const swarm = facts.get(host)?.swarm;
        return inSwarm(swarm) ? (swarm.ControlAvailable ? "manager" : "worker") : undefined;
    };
    const base = (host: string, step: number): HostOutcome => {
        const r = role(host);
        return { host, step, before: before(host), after: before(host), seconds: 0, outcome: "not reached", ...(r ? { role: r, drained: false } : {}) };
    };
    checked.steps.forEach((step, i) => step.forEach((h) => outcomes.set(h, base(h, i + 1))));
    for (const [i, step] of checked.steps.entries()) {
        if (failures > budget) break;
        log(`step ${i + 1} of ${checked.steps.length}: ${step.join(", ")}`);
        const one = async (host: string) => {
            const o = outcomes.get(host)!;
            const started = Date.now();
            o.started = new Date(started).toISOString();
            try {
                const { status, drained } = await install(jobs.get(host)!.job, pass);
                if (drained) o.drained = true;
                o.status = status;
                o.after = releaseOf(status.sha256, status.version);
                o.outcome = status.changed ? "updated" : "unchanged";
            } catch (e) {
                failures++;
                // (a host whose install rolled it back says what it runs now; one whose rollback
                // failed too, what its files are)
                const now = e instanceof HostError ? e.status : undefined;
                const rolledBack = now && !(e instanceof HostError && e.error?.error === "rollback-failed");
                o.outcome = rolledBack ? "rolled back" : "failed";
                o.after = now ? releaseOf(now.sha256, now.version) : "?";
                o.reason = (e as Error).message;
            }
            o.seconds = (Date.now() - started) / 1000;
        };
        // a cluster's managers go one at a time (their runs would wait for each other anyway), and
        // none starts once the failures are past the budget: a refused manager stops the leader
        const managers = step.length > 1 && step.every((h) => facts.get(h)?.swarm?.ControlAvailable);
        if (managers) {
            for (const host of step) if (failures <= budget) await one(host);
        } else {
            await Promise.all(step.map(one));
        }
        // (a host that has passed no soak on its release: updated now, or, with a health check to
        // run, by a run stopped before its soak ended or whose soak the budget cut short)
        const unsoaked = step.filter((h) => {
            const o = outcomes.get(h)!;
            return o.outcome === "updated" || (o.outcome === "unchanged" && jobs.get(h)!.job.health !== undefined && facts.get(h)?.soaked !== true);
        });
        if (job.soakSeconds > 0 && unsoaked.length > 0 && failures <= budget) {
            log(`step ${i + 1}: soaking ${job.soakSeconds} s before the health checks of ${unsoaked.join(", ")} run again`);
            await new Promise((r) => setTimeout(r, job.soakSeconds * 1000));
            await Promise.all(
                unsoaked.map(async (host) => {
                    const o = outcomes.get(host)!;
                    const j = jobs.get(host)!.job;
                    const sick = await healthCheck(j);
                    if (!sick) return;
                    failures++;
                    o.outcome = "rolled back";
                    o.reason = `${host}: its health check failed after ${job.soakSeconds} s (soakSeconds): ${sick}`;
                    try {
                        const { status, drained } = await rollBack(j, pass);
                        if (drained) o.drained = true;
                        o.status = status;
                        o.after = releaseOf(status.sha256, status.version);
                    } catch (e) {
                        o.outcome = "failed";
                        o.reason += `; its rollback failed too: ${(e as Error).message}`;
                        // (what its files are now, where it said)
                        if (e instanceof HostError && e.status) o.after = releaseOf(e.status.sha256, e.status.version);
                    }
                }),
            );
        }
        if (failures > budget) log(`${failures} host(s) failed, more than maxFailures allows (${budget}): the rollout stops here`);
    }
    const report: RolloutReport = { steps: checked.steps, hosts: [...outcomes.values()], failures, budget };
    for (const line of reportTable(report)) log(line);
    return report;
}

/**
 * The report as a table, a line each: one per host, before → after, its step, its Swarm role and
 * whether it was drained (where the fleet has Swarm nodes), seconds and outcome.
 */
export function reportTable(r: RolloutReport): string[] {
    const swarm = r.hosts.some((h) => h.role);
    const node = (h: HostOutcome) => (swarm ? [h.role ? `${h.role}${h.drained ? ", drained" : ""}` : "-"] : []);
    const rows = r.hosts.map((h) => [h.host, `${h.before} → ${h.after}`, String(h.step), ...node(h), h.seconds.toFixed(1), h.reason ? `${h.outcome}: ${h.reason.split("\n")[0]}` : h.outcome]);
    const head = ["host", "before → after", "step", ...(swarm ? ["swarm"] : []), "s", "outcome"];
    const widths = head.map((c, i) => Math.max(c.length, ...rows.map((row) => row[i].length)));
    const line = (cells: string[]) => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]))).join("  ");
    const count = (o: Outcome) => r.hosts.filter((h) => h.outcome === o).length;
    const summary = (["updated", "unchanged", "rolled back", "failed", "not reached"] as Outcome[]).filter((o) => count(o) > 0).map((o) => `${count(o)} ${o}`);
    return [`rollout: ${summary.join(", ")} (maxFailures ${r.budget})`, line(head), ...rows.map(line)];
}
