/**
 * Whether a Swarm node may be drained now, and how: pure functions over what `docker node
 * inspect`, `docker service inspect` and the services' running tasks say, tested with tables
 * (test/unit/swarm-drain.test.ts). A drain stops the node's tasks before their replacements run
 * elsewhere, and Swarm never moves tasks back: so before each drain forklift looks at every
 * replicated service with a task on the node.
 *
 *   - no other node can take its tasks (constraints, max replicas per node, nodes drained, paused
 *     or down), or all its running tasks are on this node: it would run short, or not at all,
 *     while the node is away: refused unless swarmAcceptDowntime names it;
 *   - it keeps data on the node (a bind mount, a local volume): its tasks would start elsewhere
 *     on empty data: refused unless swarmMoveLocalData names it;
 *   - with swarmSurge, it is first scaled up by as many extra tasks as it has on the node (at
 *     most swarmSurge, and only as many as there is room for elsewhere), so that it never runs
 *     fewer than its replica count.
 */

/** `docker node inspect`, the fields forklift reads. */
export interface NodeSpec {
    ID: string;
    Spec: { Labels?: Record<string, string> | null; Role: string; Availability: string };
    Description: {
        Hostname: string;
        Platform?: { Architecture?: string; OS?: string } | null;
        Engine?: { EngineVersion?: string; Labels?: Record<string, string> | null } | null;
    };
    Status: { State: string; Addr?: string };
    ManagerStatus?: { Leader?: boolean; Reachability?: string } | null;
}

/** A mount of a service's task template. */
export interface MountSpec {
    Type: string;
    Source?: string;
    Target: string;
    VolumeOptions?: { DriverConfig?: { Name?: string; Options?: Record<string, string> | null } | null } | null;
}

/** `docker service inspect`, the fields forklift reads. */
export interface ServiceSpec {
    ID: string;
    Spec: {
        Name: string;
        Labels?: Record<string, string> | null;
        Mode: { Replicated?: { Replicas?: number }; Global?: object; ReplicatedJob?: object; GlobalJob?: object };
        TaskTemplate: {
            ContainerSpec?: { Mounts?: MountSpec[] | null } | null;
            Placement?: { Constraints?: string[] | null; MaxReplicas?: number } | null;
        };
    };
}

/** Running tasks of each service (by name) on each node (by hostname, as `docker service ps` shows them). */
export type RunningTasks = Map<string, Map<string, number>>;

/** The replica count of a replicated service; undefined for global services and jobs. */
export function replicaCount(s: ServiceSpec): number | undefined {
    return s.Spec.Mode.Replicated ? (s.Spec.Mode.Replicated.Replicas ?? 1) : undefined;
}

/**
 * Whether node N may run a task of a service with CONSTRAINTS, as swarmkit decides it
 * (manager/constraint): `key==value` or `key!=value`, values compared without case, a missing
 * label the empty string. Keys forklift does not model (node.ip) count as met: the drain's own wait
 * still sees tasks that find no node.
 */
export function nodeMatches(constraints: string[], n: NodeSpec): boolean {
    for (const c of constraints) {
        const m = /^\s*([^=!\s]+)\s*(==|!=)\s*(.*?)\s*$/.exec(c);
        if (!m) continue;
        const [, rawKey, op, expected] = m;
        const key = rawKey.toLowerCase();
        let actual: string | undefined;
        if (key === "node.id") actual = n.ID;
        else if (key === "node.hostname") actual = n.Description.Hostname ?? "";
        else if (key === "node.role") actual = n.Spec.Role;
        else if (key === "node.platform.os") actual = n.Description.Platform?.OS ?? "";
        else if (key === "node.platform.arch") actual = n.Description.Platform?.Architecture ?? "";
        else if (key.startsWith("node.labels.")) actual = n.Spec.Labels?.[rawKey.slice("node.labels.".length)] ?? "";
        else if (key.startsWith("engine.labels.")) actual = n.Description.Engine?.Labels?.[rawKey.slice("engine.labels.".length)] ?? "";
        if (actual === undefined) continue;
        const same = actual.toLowerCase() === expected.toLowerCase();
        if (same !== (op === "==")) return false;
    }
    return true;
}

/**
 * The mounts of S that keep data on the node its task runs on: bind mounts, and named volumes of
 * the local driver that are not network file systems (an anonymous volume is new with each task).
 */
export function localDataMounts(s: ServiceSpec): string[] {
    const mounts = s.Spec.TaskTemplate.ContainerSpec?.Mounts ?? [];
    return mounts
        .filter((m) => {
            if (m.Type === "bind") return true;
            if (m.Type !== "volume" || !m.Source) return false;
            const driver = m.VolumeOptions?.DriverConfig?.Name || "local";
            const fsType = m.VolumeOptions?.DriverConfig?.Options?.type ?? "";
            return driver === "local" && !/^(nfs4?|cifs|smb3?)$/.test(fsType);
        })
        .map((m) => `${m.Type} ${m.Source ?? ""}:${m.Target}`);
}

/** True when LIST (swarmAcceptDowntime, swarmMoveLocalData) names SERVICE, or has "*". */
export function names(list: string[], service: string): boolean {
    return list.includes("*") || list.includes(service);
}

export interface DrainInput {
    /** The node to drain (its hostname). */
    node: string;
    nodes: NodeSpec[];
    services: ServiceSpec[];
    running: RunningTasks;
    acceptDowntime: string[];
    moveLocalData: string[];
    /** swarmSurge: extra tasks per service at most (0: none). */
    surge: number;
}

export interface DrainPlan {
    /** Why the node must not be drained now, each naming a service and the way out. */
    refusals: string[];
    /** Extra tasks each service is scaled up by before the drain (only those with some). */
    surge: Map<string, number>;
    /** The replicated services with tasks on the node, each with its tasks there. */
    onNode: Map<string, number>;
    /** Of those, the ones the drain waits to see whole elsewhere before the engine restarts (not the accepted ones). */
    waitWhole: Set<string>;
}

/** What draining INPUT.node now would do to its services (see the module's comment). */
export function planDrain(input: DrainInput): DrainPlan {
    const refusals: string[] = [];
    const surge = new Map<string, number>();
    const onNode = new Map<string, number>();
    const waitWhole = new Set<string>();
    const others = input.nodes.filter((n) => n.Description.Hostname !== input.node && n.Status.State === "ready" && n.Spec.Availability === "active");
    for (const s of input.services) {
        const desired = replicaCount(s);
        const name = s.Spec.Name;
        const here = input.running.get(name)?.get(input.node) ?? 0;
        if (desired === undefined || here === 0) continue;
        onNode.set(name, here);
        const local = localDataMounts(s);
        if (local.length > 0 && !names(input.moveLocalData, name)) {
            refusals.push(`${name} keeps data on ${input.node} (${local.join(", ")}): its ${here} task(s) there would start on another node on empty data. Give it storage all its nodes share, pin it to this node (--constraint node.hostname==${input.node}: it then waits for the node), or set swarmMoveLocalData: [${name}] to move it anyway`);
            continue;
        }
        const constraints = s.Spec.TaskTemplate.Placement?.Constraints ?? [];
        const max = s.Spec.TaskTemplate.Placement?.MaxReplicas ?? 0;
        const total = [...(input.running.get(name)?.values() ?? [])].reduce((a, b) => a + b, 0);
        const elsewhere = total - here;
        let room = 0;
        for (const n of others.filter((o) => nodeMatches(constraints, o))) {
            room += max > 0 ? Math.max(0, max - (input.running.get(name)?.get(n.Description.Hostname) ?? 0)) : Infinity;
        }
        const extra = Math.max(0, Math.min(input.surge, here, room - here));
        if (extra > 0) surge.set(name, extra);
        const accepted = names(input.acceptDowntime, name);
        if (!accepted) waitWhole.add(name);
        if (accepted) continue;
        if (room < here) {
            refusals.push(`${name}: ${here} of its tasks run on ${input.node}, and the other nodes have room for ${room === 0 ? "none" : `only ${room}`} (its constraints, ${max > 0 ? `at most ${max} per node, ` : ""}nodes drained, paused or down): it would run ${elsewhere}/${desired} until ${input.node} is back. Give it room elsewhere, or set swarmAcceptDowntime: [${name}] to go ahead`);
        } else if (elsewhere + extra === 0) {
            const way = input.surge > 0 ? `give it room for swarmSurge's extra tasks (the other nodes have room for ${room}, its ${here} task(s) there take it all)` : "set swarmSurge: 1 or more (extra tasks first, where there is room)";
            refusals.push(`${name}: all its ${here} running task(s) are on ${input.node}, and a drain stops them before their replacements start elsewhere: it would have no running task for a while. Spread it (--replicas-max-per-node 1 with more nodes than replicas), ${way}, or set swarmAcceptDowntime: [${name}] to go ahead`);
        }
    }
    return { refusals, surge, onNode, waitWhole };
}
