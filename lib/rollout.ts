/**
 * Rollout waves: a group of hosts (the hosts in no Swarm, or one cluster's workers) goes in waves,
 * each starting when the one before is done. `waves` lists their sizes as counts or percentages
 * of the group, the last repeated, as Ansible's `serial` does: [1, "25%", "100%"] is a canary,
 * then a quarter of the fleet at a time, then the rest. A plain `batchSize: N` is [N].
 */
import type { PreviewPlan } from "./protocol/results";

/** One wave's size: a number of hosts, or a percentage of the group ("25%"). */
export type WaveSize = number | `${number}%`;

/** The size WAVE stands for in a group of TOTAL hosts: a percentage rounded down, and at least 1 (as Ansible's serial). */
export function waveSize(wave: WaveSize, total: number): number {
    if (typeof wave === "number") return wave;
    const pct = Number(wave.slice(0, -1));
    return Math.max(1, Math.floor((pct / 100) * total));
}

/**
 * The sizes of the waves of a group of TOTAL hosts: WAVES in turn, the last repeated until every
 * host has its wave; a wave is never larger than what is left.
 */
export function waveSizes(total: number, waves: readonly WaveSize[]): number[] {
    if (waves.length === 0) throw new Error("waves: expected at least one wave size");
    const sizes: number[] = [];
    let left = total;
    for (let i = 0; left > 0; i++) {
        const size = waveSize(waves[Math.min(i, waves.length - 1)], total);
        if (!Number.isInteger(size) || size < 1) throw new Error(`waves: a wave of ${JSON.stringify(waves[i])} is no number of hosts`);
        sizes.push(Math.min(size, left));
        left -= sizes[sizes.length - 1];
    }
    return sizes;
}

/** HOSTS, in their order, split into waves (see waveSizes). */
export function planWaves<T>(hosts: readonly T[], waves: readonly WaveSize[]): T[][] {
    const out: T[][] = [];
    let at = 0;
    for (const size of waveSizes(hosts.length, waves)) {
        out.push(hosts.slice(at, at + size));
        at += size;
    }
    return out;
}

/** HOSTS in batches of BATCH_SIZE: the waves [BATCH_SIZE]. */
export function planBatches<T>(hosts: readonly T[], batchSize: number): T[][] {
    if (!Number.isInteger(batchSize) || batchSize < 1) throw new Error(`batchSize must be a whole number >= 1, got ${batchSize}`);
    return planWaves(hosts, [batchSize]);
}

/**
 * The error budget (`maxFailures`: a count, or a percentage of the fleet rounded down) for a fleet
 * of TOTAL hosts: how many may fail, each rolled back, before the rollout stops.
 */
export function failureBudget(maxFailures: WaveSize, total: number): number {
    if (typeof maxFailures === "number") return maxFailures;
    return Math.floor((Number(maxFailures.slice(0, -1)) / 100) * total);
}

/**
 * PLAN, if its steps hold every host of HOSTS exactly once and nothing else; otherwise an error
 * naming the hosts missing, named twice or unknown. The order of the installs is the plan's: a
 * host outside it would have no place in that order, and is never given one by default.
 */
export function checkPlan(plan: readonly (readonly string[])[], hosts: readonly string[]): string[][] {
    const seen = new Map<string, number>();
    for (const step of plan) for (const h of step) seen.set(h, (seen.get(h) ?? 0) + 1);
    const fleet = new Set(hosts);
    const missing = hosts.filter((h) => !seen.has(h));
    const twice = [...seen].filter(([, n]) => n > 1).map(([h]) => h);
    const unknown = [...seen.keys()].filter((h) => !fleet.has(h));
    const empty = plan.some((s) => s.length === 0);
    const wrong = [
        missing.length ? `not in any step: ${missing.join(", ")}` : "",
        twice.length ? `in more than one step: ${twice.join(", ")}` : "",
        unknown.length ? `not in the fleet: ${unknown.join(", ")}` : "",
        empty ? "an empty step" : "",
    ].filter(Boolean);
    if (wrong.length) throw new Error(`the rollout's plan does not cover exactly the fleet (${wrong.join("; ")}): this is a bug of forklift, nothing was changed`);
    return plan.map((s) => [...s]);
}

/** The plan before a rollout (local/plan.ts) as a table for people: the preview's message. */
export function planTable(plan: PreviewPlan): string {
    const head = ["step", "host", "now", "release changes", "swarm", "drained"];
    const body = plan.hosts.map((r) => [r.step ? String(r.step) : "-", r.host, r.current, r.change, r.role || "-", r.drained || "-"]);
    const widths = head.map((h, i) => Math.max(h.length, ...body.map((row) => row[i].length)));
    const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i])).join("  ").trimEnd();
    const stops = plan.problems.length === 0 ? [] : [`\`pulumi up\` would stop at the precheck, before any change, as ${plan.problems.length} of ${plan.hosts.length} hosts failed it:`, ...plan.problems.map((p) => `  ${p}`)];
    return [`the plan: install ${plan.target}`, line(head), ...body.map(line), ...stops].join("\n");
}
