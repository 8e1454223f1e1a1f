/**
 * What comes back, one zod schema per message with its TypeScript type derived from it: each
 * host script run's JSON lines on stdout (scripts/forklift-host.sh), and the JSON document each
 * local command prints (local/main.ts), which the program keeps in the state and reads
 * (components/rollout.ts). A reader takes the last line of the shape it expects (`lastOf`): a
 * failed install prints its status line and then its `fatal` line.
 *
 * Docker's own JSON inside them (`docker info`'s Swarm part, `docker node ls` rows) is Docker's:
 * typed with the fields forklift reads, checked only to be an object.
 */
import { z } from "zod";

/** `docker info --format '{{json .Swarm}}'`, the fields forklift reads. */
export interface SwarmInfo {
    NodeID: string;
    LocalNodeState: string;
    ControlAvailable: boolean;
    /** Managers of the cluster (0 on a worker, which does not know). */
    Managers: number;
    /** On a manager: the cluster, and whether its managers lock at each engine start (autolock). */
    Cluster?: { ID: string; Spec?: { EncryptionConfig?: { AutoLockManagers?: boolean } } } | null;
    RemoteManagers?: { NodeID: string; Addr: string }[] | null;
}

/** One row of `docker node ls --format '{{json .}}'`. */
export interface NodeRow {
    ID: string;
    Hostname: string;
    /** Ready, Down, Unknown, Disconnected */
    Status: string;
    /** Active, Pause, Drain */
    Availability: string;
    /** "" (worker), Leader, Reachable, Unreachable */
    ManagerStatus: string;
    EngineVersion: string;
}

const docker = <T>() => z.custom<T>((v) => typeof v === "object" && v !== null && !Array.isArray(v));

/**
 * `forklift-host.sh check` and `stage`: the host's facts. (`current`, `currentVersion` and
 * `soaked` came with 0.2: a line of 0.1's reads as a host with nothing recorded.)
 */
export const HostFacts = z.object({
    host: z.string(),
    /** "unpacked" where the release is in /opt/forklift/releases, else "absent" */
    release: z.enum(["unpacked", "absent"]),
    /** whether this run received a copy of it */
    copied: z.boolean(),
    /** the release installed by forklift ("": none) and its version */
    current: z.string().default(""),
    currentVersion: z.string().default(""),
    /** whether `current` passed a soak's health check */
    soaked: z.boolean().default(false),
    /** the running engine's version ("": none answered; absent before 0.3) */
    engine: z.string().default(""),
    /** the node's Swarm part, null outside a Swarm */
    swarm: docker<SwarmInfo>().nullable(),
    /** the cluster's nodes, on a manager */
    nodes: z.array(docker<NodeRow>()).optional(),
});
export type HostFacts = z.output<typeof HostFacts>;

/** What a host runs after an install, a rollback or a status run (install's last line). */
export const HostStatus = z.object({
    host: z.string(),
    /** forklift's release there ("": the host's own Docker) */
    sha256: z.string(),
    version: z.string(),
    dockerdSha256: z.string(),
    /** `systemctl is-active docker.service` */
    dockerService: z.string(),
    /** the engine's `docker version`, where it answered ("" otherwise; absent in 0.1's) */
    engineVersion: z.string().optional(),
    changed: z.boolean(),
    /** the node's `docker info` Swarm part where it takes part in a Swarm (null, or absent in 0.1's, otherwise) */
    swarm: docker<SwarmInfo>().nullable().optional(),
});
export type HostStatus = z.output<typeof HostStatus>;

/** A guarded run on a Swarm node changed nothing and exited 75: drain the node, then run the drained mode. */
export const DrainFirst = z.object({ host: z.string(), drainFirst: z.literal(true), swarm: docker<SwarmInfo>() });
export type DrainFirst = z.output<typeof DrainFirst>;

/** An uninstall-drained run's end: the engine's state once forklift's files are gone. */
export const Uninstalled = z.object({ host: z.string(), uninstalled: z.literal(true), dockerService: z.string() });
export type Uninstalled = z.output<typeof Uninstalled>;

/**
 * What failed, as forklift-host.sh's `fail` tells the local commands (a JSON line on stdout before
 * it exits non-zero), for them to act on:
 *
 *   artifact-missing    no artifact arrived, and the release is not unpacked on the host
 *   artifact-mismatch   the artifact that arrived has another sha256 (GOT)
 *   store-no-object     the store answered 404 for the release's object
 *   rollback-failed     a failed install's or soak's rollback did not bring Docker back (the
 *                       status line says which release the host's files are on)
 *
 * Nothing was changed on the host in the first three.
 */
export const HostErrorLine = z.discriminatedUnion("error", [
    z.object({ error: z.literal("artifact-missing") }),
    z.object({ error: z.literal("artifact-mismatch"), got: z.string() }),
    z.object({ error: z.literal("store-no-object") }),
    z.object({ error: z.literal("rollback-failed") }),
]);
export type HostErrorLine = z.output<typeof HostErrorLine>;

/** Why a run failed, for people: `fatal`'s message (a daemon's log may follow it on its lines). */
export const Fatal = z.object({ fatal: z.string() });

/**
 * The last of STDOUT's lines that is a SCHEMA message, or undefined: the lines of other shapes
 * (and what is not JSON at all) are skipped.
 */
export function lastOf<S extends z.ZodType>(schema: S, stdout: string): z.output<S> | undefined {
    for (const line of stdout.trim().split("\n").reverse()) {
        if (!line.startsWith("{")) continue;
        let doc: unknown;
        try {
            doc = JSON.parse(line);
        } catch {
            continue;
        }
        const r = schema.safeParse(doc);
        if (r.success) return r.data;
    }
    return undefined;
}

/**
 * The document WHAT printed as its last line on STDOUT (a build's result, the rollout's), read
 * against SCHEMA; an error that quotes the output's end, and names the fields that are wrong.
 */
export function lastDocument<S extends z.ZodType>(schema: S, stdout: string, what: string): z.output<S> {
    const last = stdout.trim().split("\n").pop() ?? "";
    let doc: unknown;
    try {
        doc = JSON.parse(last);
    } catch {
        throw new Error(`${what} printed no result line; its output ended with: ${last.slice(0, 300)}`);
    }
    const r = schema.safeParse(doc);
    if (!r.success) throw new Error(`${what}'s result is not one this forklift reads (${r.error.issues.map((i) => `${i.path.join(".") || "the document"}: ${i.message}`).join("; ")}): ${last.slice(0, 300)}`);
    return r.data;
}

/** A host in the check's result: its release, and its Swarm node (the cluster's whole state stays out). */
export const CheckedHost = z.object({
    name: z.string(),
    release: z.string().optional(),
    copied: z.boolean().optional(),
    swarm: z.object({ node: z.string(), manager: z.boolean(), state: z.string() }).nullable(),
});
export type CheckedHost = z.output<typeof CheckedHost>;

/** The steps of a rollout: lists of host names, each host of the fleet once (lib/rollout.ts checkPlan). */
export const Plan = z.array(z.array(z.string()));

/** `main.ts check`'s document (the precheck's and, before 0.2, the check's): every host, and the plan. */
export const CheckResult = z.object({ hosts: z.array(CheckedHost), plan: Plan });
export type CheckResult = z.output<typeof CheckResult>;

/** What became of one host in a rollout. */
export const Outcome = z.enum(["updated", "unchanged", "rolled back", "failed", "not reached"]);
export type Outcome = z.output<typeof Outcome>;

export const HostOutcome = z.object({
    host: z.string(),
    /** Its step in the plan (1-based). */
    step: z.number(),
    /** When its install started (ISO 8601), where it did. */
    started: z.string().optional(),
    /** The release it ran before and runs now: "<version> <sha256 12>", or "its own Docker". */
    before: z.string(),
    after: z.string(),
    seconds: z.number(),
    outcome: Outcome,
    /** Its Swarm role, where it is a Swarm node (absent in 0.2.0's report). */
    role: z.enum(["manager", "worker"]).optional(),
    /** On a Swarm node: whether forklift drained it for an install or rollback that ended well (absent in 0.2.0's report). */
    drained: z.boolean().optional(),
    /** Why it failed, naming it. */
    reason: z.string().optional(),
    /** Its install's status line (forklift-host.sh), where it ran to its end. */
    status: HostStatus.optional(),
});
export type HostOutcome = z.output<typeof HostOutcome>;

/** `main.ts rollout`'s document: the plan, and the report (0.1's check resource printed a CheckResult: no report). */
export const RolloutResult = z.object({ plan: Plan, report: z.array(HostOutcome).default([]) });
export type RolloutResult = z.output<typeof RolloutResult>;

/** One host in the plan before a rollout (`main.ts plan`, `FORKLIFT_PLAN=1 pulumi preview`). */
export const PlanRow = z.object({
    host: z.string(),
    /** Its step (1-based); 0 for a host launched by the `pulumi up` (planned once it runs). */
    step: z.number(),
    /** What runs there now: forklift's release (version, sha256) or the host's own Docker, and the engine's version. */
    current: z.string(),
    /** Whether its release changes: "yes", "no", or "if the build differs" (a build still to run). */
    change: z.enum(["yes", "no", "if the build differs", "unknown"]),
    /** Its Swarm role ("" outside a Swarm). */
    role: z.enum(["manager", "worker", ""]),
    /** Whether it is drained around its restart ("yes", "no", "" outside a Swarm; or as change says). */
    drained: z.string(),
});
export type PlanRow = z.output<typeof PlanRow>;

/**
 * `main.ts plan`'s document: the release to install, every host, and why the rollout would stop at
 * its precheck (each host that failed it, named, with the cause; its row then says "not checked").
 */
export const PreviewPlan = z.object({ target: z.string(), hosts: z.array(PlanRow), problems: z.array(z.string()).default([]) });
export type PreviewPlan = z.output<typeof PreviewPlan>;
