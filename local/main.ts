/**
 * forklift's local commands: what `pulumi up` and `pulumi destroy` run on the machine they run on
 * (the command provider's local commands), with OpenSSH to the hosts.
 *
 *   node --require tsx/cjs local/main.ts check [PHASE KEY]    precheck or check of every host
 *   node --require tsx/cjs local/main.ts rollout [KEY]        check of every host, then the rollout
 *   node --require tsx/cjs local/main.ts install [NAME KEY]   one fleet host's install
 *   node --require tsx/cjs local/main.ts uninstall [NAME]     one fleet host's uninstall
 *   node --require tsx/cjs local/main.ts store-delete [KEY]   the artifact's object out of the store
 *   node --require tsx/cjs local/main.ts plan                 the plan before a rollout (FORKLIFT_PLAN=1 pulumi preview)
 *
 * The job is one JSON document on stdin (lib/protocol/jobs.ts); the words after the job's name are only
 * there for `pulumi preview`'s plan (what the command is about) and are not read. Progress and
 * the hosts' own messages go to stderr; the result (a JSON line) to stdout. Exits 1 with one
 * message naming the host and the cause when the job failed.
 */
import { HostCheck, runChecks } from "./check";
import { inSwarm } from "./swarm";
import { CheckedHost } from "../lib/protocol/results";
import { install, uninstall } from "./fleet-host";
import { InputError, parseChecksJob, parseFleetHostJob, parsePlanJob, parseRolloutJob, parseStoreObjectJob } from "./input";
import { planOfFleet } from "./plan";
import { runRollout } from "./rollout";
import { deleteObject, describe } from "./store";
import { legacyUninstallJob } from "./legacy";

async function readStdin(): Promise<string> {
    let text = "";
    for await (const chunk of process.stdin) text += chunk;
    return text;
}

/** A host in the check's result: the release, and its Swarm node (the cluster's whole state stays out). */
function summary(r: HostCheck): CheckedHost {
    const swarm = r.facts?.swarm;
    return {
        name: r.name,
        release: r.facts?.release,
        copied: r.facts?.copied,
        swarm: inSwarm(swarm) ? { node: swarm.NodeID, manager: swarm.ControlAvailable, state: swarm.LocalNodeState } : null,
    };
}

async function main(job: string | undefined): Promise<void> {
    const log = (line: string) => process.stderr.write(`[forklift ${job}] ${line}\n`);
    const pass = (line: string) => process.stderr.write(`${line}\n`);
    switch (job) {
        case "check": {
            const report = await runChecks(parseChecksJob(await readStdin()), log, { pass });
            // (kept in the state: each install waits for the step before its own in `plan`)
            process.stdout.write(JSON.stringify({ hosts: report.hosts.map(summary), plan: report.steps }) + "\n");
            return;
        }
        case "rollout": {
            const rollout = await runRollout(parseRolloutJob(await readStdin()), log, pass);
            // (kept in the state: each install waits for the step before its own in `plan`, and
            // takes its host's status from `report`)
            process.stdout.write(JSON.stringify({ plan: rollout.steps, report: rollout.hosts }) + "\n");
            if (rollout.failures > 0) {
                const failed = rollout.hosts.filter((h) => h.outcome === "failed" || h.outcome === "rolled back");
                throw new Error(`${failed.length} of ${rollout.hosts.length} hosts failed, each rolled back where it changed (see the report above): ${failed.map((h) => h.reason ?? h.host).join("; ")}. The next \`pulumi up\` rolls them out again`);
            }
            return;
        }
        case "plan": {
            // the precheck (read-only on the hosts), and what the rollout would do with what it found
            const job = parsePlanJob(await readStdin());
            const report = await runChecks({ ...job.checks, phase: "precheck", artifact: undefined }, log, { pass, forPlan: true });
            const facts = new Map(report.hosts.filter((h) => h.facts).map((h) => [h.name, h.facts!]));
            const plan = planOfFleet(job, facts, report.steps, report.hosts.flatMap((h) => (h.problem ? [h.problem] : [])), report.drainRecords);
            // (the table is the preview's to show, once: its progress comes from these stderr lines)
            process.stdout.write(JSON.stringify(plan) + "\n");
            return;
        }
        case "install":
            process.stdout.write(JSON.stringify((await install(parseFleetHostJob(await readStdin()), pass)).status) + "\n");
            return;
        case "uninstall":
            await uninstall(parseFleetHostJob(await readStdin()), pass);
            return;
        case "store-delete": {
            const { store } = parseStoreObjectJob(await readStdin());
            await deleteObject(store);
            log(`${describe(store)} removed`);
            return;
        }
        // an older forklift's delete command, handed on by scripts/artifact.sh (see legacy.ts)
        case "legacy-uninstall":
            await uninstall(legacyUninstallJob(process.env, await readStdin()), pass);
            return;
        default:
            throw new InputError(`usage: local/main.ts check|rollout|install|uninstall|store-delete|plan < job.json (got ${job ?? "nothing"})`);
    }
}

main(process.argv[2]).catch((e: Error) => {
    process.stderr.write(`[forklift ${process.argv[2] ?? ""}] ERROR: ${e.message}\n`);
    process.exitCode = 1;
});
