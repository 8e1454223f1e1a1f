/**
 * Docker Swarm, as a rollout must respect it: which fleet hosts are nodes of which cluster, in
 * which order they may go (managers one at a time, the leader last, then the workers), whether a
 * manager may go down now (quorum), and whether a node's work has moved away and come back. Pure
 * functions over what the docker CLI prints as JSON, tested with tables (test/unit/swarm.test.ts);
 * the commands that read and change the cluster are in swarm-node.ts.
 */
import { WaveSize, checkPlan, planWaves } from "../lib/rollout";
import { NodeRow, SwarmInfo } from "../lib/protocol/results";

export type { NodeRow, SwarmInfo };

/** One row of `docker service ls --format '{{json .}}'`. */
export interface ServiceRow {
    ID: string;
    Name: string;
    /** replicated, global, replicated-job, global-job */
    Mode: string;
    /** "running/desired", e.g. "3/4" (a job's: "0/1 (1/1 completed)") */
    Replicas: string;
}

/** One row of `docker node ps NODE --format '{{json .}}'`. */
export interface TaskRow {
    ID: string;
    /** service.slot, or service.nodeID for a global service's task */
    Name: string;
    DesiredState: string;
    CurrentState: string;
}

/** A fleet host in a Swarm, as the check found it. */
export interface SwarmMember {
    host: string;
    nodeId: string;
    manager: boolean;
    cluster: string;
}

/** True when the node takes part in a Swarm: its engine restarts stop its tasks. */
export function inSwarm(info: SwarmInfo | null | undefined): info is SwarmInfo {
    return !!info && ["active", "pending", "error", "locked"].includes(info.LocalNodeState);
}

export const isManagerRow = (n: NodeRow): boolean => n.ManagerStatus !== "";
export const isReachableManager = (n: NodeRow): boolean => n.ManagerStatus === "Leader" || n.ManagerStatus === "Reachable";

/** Running and desired counts of a service row ("3/4", "2/2 (max 1 per node)"); jobs are left out. */
export function replicas(s: ServiceRow): { running: number; desired: number } | undefined {
    if (s.Mode.endsWith("job")) return undefined;
    const m = /^(\d+)\/(\d+)/.exec(s.Replicas);
    return m ? { running: Number(m[1]), desired: Number(m[2]) } : undefined;
}

/**
 * Services short of their desired count, "web 3/4" for each. RUNNING: each service's tasks that
 * run and are meant to (runningCount); `docker service ls` counts a task that is being stopped
 * (after a drain) as running too, so its count is not enough.
 */
export function shortServices(services: ServiceRow[], running: Map<string, number>, only?: Set<string>): string[] {
    return services
        .filter((s) => !only || only.has(s.Name))
        .map((s) => ({ s, desired: replicas(s)?.desired, up: running.get(s.Name) ?? 0 }))
        .filter(({ desired }) => desired !== undefined)
        .filter(({ desired, up }) => up < desired!)
        .map(({ s, desired, up }) => `${s.Name} ${up}/${desired}`);
}

/** Tasks of a service (`docker service ps`) that run and are meant to. */
export function runningCount(tasks: TaskRow[]): number {
    return tasks.filter((t) => t.DesiredState === "Running" && t.CurrentState.startsWith("Running")).length;
}

/** The service a task belongs to: its name up to the last dot (web.3 → web; mon.<node id> → mon). */
export function serviceOfTask(t: TaskRow): string {
    return t.Name.slice(0, t.Name.lastIndexOf(".") > 0 ? t.Name.lastIndexOf(".") : t.Name.length);
}

/** Tasks still meant to run on a node (what a drain must see gone). */
export function runningTasks(tasks: TaskRow[]): TaskRow[] {
    return tasks.filter((t) => t.DesiredState === "Running");
}

/**
 * Seconds the cluster's managers get to see what a node's host script saw (its node back in its
 * Swarm). The rejoin is the host script's to wait for, within swarmNodeTimeout: there it decides
 * whether the new release stays, even where the SSH session is gone. The managers learn of it
 * within a heartbeat or two (5 s each by default).
 */
export const CLUSTER_CATCHUP_SECONDS = 30;

/**
 * Seconds the local side waits for a node to be back as its cluster sees it, after its host's run
 * ended: that run waited for the rejoin itself (swarmNodeTimeout), so only the cluster's catching
 * up is left. One swarmNodeTimeout per restart, not two. (A run whose end was not seen leaves the
 * node drained instead: see withNodeDrained.)
 */
export function rejoinWait(nodeTimeout: number): number {
    return Math.min(CLUSTER_CATCHUP_SECONDS, nodeTimeout);
}

/**
 * Why the node NODE_ID (a manager) must not go down now, or undefined when it may: the cluster
 * needs a leader, every other manager reachable, and a majority of its managers left while it is
 * down. ALLOW_TWO: a cluster of 2 managers (which tolerates none down) may go ahead.
 */
export function quorumProblem(nodes: NodeRow[], nodeId: string, allowTwo: boolean): string | undefined {
    const managers = nodes.filter(isManagerRow);
    const me = managers.find((n) => n.ID === nodeId);
    if (!me) return undefined;
    if (!managers.some((n) => n.ManagerStatus === "Leader")) return "the cluster has no leader";
    const unreachable = managers.filter((n) => n.ID !== nodeId && !isReachableManager(n));
    if (unreachable.length > 0) return `manager(s) ${unreachable.map((n) => n.Hostname).join(", ")} are not reachable`;
    const left = managers.length - 1;
    if (managers.length === 2 && !allowTwo) return "the cluster has 2 managers: with one down there is no quorum (set swarmAllowTwoManagers to go ahead anyway)";
    if (managers.length > 2 && left <= managers.length / 2) return `${left} of ${managers.length} managers would be left: no majority`;
    return undefined;
}

/**
 * The steps of a rollout: each a list of hosts installed at once, a step starting when the one
 * before is done. Hosts in no Swarm go first, in WAVES (lib/rollout.ts) in the fleet's order; then
 * each cluster: its managers (in one step: their runs go one at a time whatever the waves say,
 * the leader last, which they decide among themselves as they run, see swarm-node.ts: the leader
 * when `pulumi destroy` runs is not the one the plan saw), then its workers in batches. LEADERS
 * order the managers' step for the eye only.
 */
export function planSteps(hosts: string[], members: SwarmMember[], leaders: Set<string>, waves: readonly WaveSize[]): string[][] {
    const batches = (list: string[]) => planWaves(list, waves);
    const byHost = new Map(members.map((m) => [m.host, m]));
    const steps = batches(hosts.filter((h) => !byHost.has(h)));
    const clusters = [...new Set(hosts.filter((h) => byHost.has(h)).map((h) => byHost.get(h)!.cluster))];
    for (const cluster of clusters) {
        const inCluster = hosts.filter((h) => byHost.get(h)?.cluster === cluster);
        const managers = inCluster.filter((h) => byHost.get(h)!.manager);
        const ordered = [...managers.filter((h) => !leaders.has(byHost.get(h)!.nodeId)), ...managers.filter((h) => leaders.has(byHost.get(h)!.nodeId))];
        if (ordered.length > 0) steps.push(ordered);
        steps.push(...batches(inCluster.filter((h) => !byHost.get(h)!.manager)));
    }
    return checkPlan(steps, hosts);
}

/** What the check found of a host's Swarm: its `docker info` part and, on a manager, `docker node ls`. */
export interface SwarmFacts {
    name: string;
    swarm?: SwarmInfo | null;
    nodes?: NodeRow[];
}

export interface SwarmSettings {
    batchSize: number;
    /** The waves of the hosts in no Swarm and of each cluster's workers; none: [batchSize]. */
    waves?: WaveSize[];
    /** swarmAllowTwoManagers */
    allowTwoManagers: boolean;
    /** daemonJson sets live-restore true (dockerd refuses swarm mode with it). */
    liveRestore: boolean;
    /** The entries of swarmManagers: the hosts the cluster commands of workers run on. */
    managers: string[];
    /** swarmUnlockKey is set. */
    unlockKey: boolean;
}

export interface SwarmPlan {
    /** The fleet hosts in a Swarm whose cluster is known. */
    members: SwarmMember[];
    /** The rollout's steps (see planSteps). */
    steps: string[][];
    /** Why the rollout must not start, each naming the hosts and the setting. */
    problems: string[];
    warnings: string[];
}

/**
 * The fleet's Swarm clusters from the check's facts of every fleet host (HOSTS, in rollout order)
 * and of the swarmManagers that are not fleet hosts (OTHERS): the members, the rollout's steps,
 * and what refuses the rollout before any host changes.
 */
export function planSwarm(hosts: SwarmFacts[], others: SwarmFacts[], s: SwarmSettings): SwarmPlan {
    const problems: string[] = [];
    const warnings: string[] = [];
    // each cluster's nodes, as one of its managers sees them
    const clusters = new Map<string, NodeRow[]>();
    for (const f of [...hosts, ...others]) {
        if (inSwarm(f.swarm) && f.swarm.ControlAvailable && f.swarm.Cluster?.ID && f.nodes && !clusters.has(f.swarm.Cluster.ID)) clusters.set(f.swarm.Cluster.ID, f.nodes);
    }
    const clusterOf = (info: SwarmInfo): string | undefined => {
        if (info.ControlAvailable && info.Cluster?.ID) return info.Cluster.ID;
        for (const [id, nodes] of clusters) if (nodes.some((n) => n.ID === info.NodeID)) return id;
        return undefined;
    };
    const members: SwarmMember[] = [];
    const lost: string[] = [];
    const locked = hosts.filter((f) => f.swarm?.LocalNodeState === "locked").map((f) => f.name);
    if (locked.length > 0) {
        problems.push(`${locked.join(", ")}: ${locked.length === 1 ? "its Swarm manager is" : "their Swarm managers are"} locked (the cluster has autolock on and the engine restarted): unlock ${locked.length === 1 ? "it" : "them"} first (\`docker swarm unlock\` on the node, with the key \`docker swarm unlock-key -q\` prints on another manager)`);
    }
    for (const f of hosts) {
        if (!inSwarm(f.swarm) || locked.includes(f.name)) continue;
        const cluster = clusterOf(f.swarm);
        if (cluster) members.push({ host: f.name, nodeId: f.swarm.NodeID, manager: f.swarm.ControlAvailable, cluster });
        else lost.push(f.name);
    }
    const swarmHosts = hosts.filter((f) => inSwarm(f.swarm)).map((f) => f.name);
    if (s.liveRestore && swarmHosts.length > 0) {
        problems.push(`forklift:daemonJson: live-restore is true, and ${swarmHosts.join(", ")} ${swarmHosts.length === 1 ? "is a Swarm node" : "are Swarm nodes"}: dockerd refuses swarm mode with live-restore. Leave it out of daemonJson (forklift leaves it out of a Swarm node's daemon.json)`);
    }
    if (lost.length > 0) {
        problems.push(`forklift:swarmManagers: ${lost.join(", ")} ${lost.length === 1 ? "is a Swarm worker" : "are Swarm workers"} of a cluster none of whose managers is in the fleet or in swarmManagers; forklift drains a worker through a manager of its cluster: name one in swarmManagers`);
    }
    const listedManager = new Map<string, Set<string>>();
    for (const f of [...hosts, ...others]) {
        if (!s.managers.includes(f.name) || !inSwarm(f.swarm) || !f.swarm.ControlAvailable || !f.swarm.Cluster?.ID) continue;
        listedManager.set(f.swarm.Cluster.ID, (listedManager.get(f.swarm.Cluster.ID) ?? new Set()).add(f.name));
    }
    for (const [cluster, nodes] of clusters) {
        const inFleet = members.filter((m) => m.cluster === cluster);
        if (inFleet.length === 0) continue;
        const workers = inFleet.filter((m) => !m.manager).map((m) => m.host);
        const fleetManagers = inFleet.filter((m) => m.manager).map((m) => m.host);
        if (workers.length > 0 && !listedManager.has(cluster)) {
            const hint = fleetManagers.length > 0 ? `its managers in the fleet: ${fleetManagers.join(", ")}` : "a manager of it (an entry like builderHost's)";
            problems.push(`forklift:swarmManagers: ${workers.join(", ")} ${workers.length === 1 ? "is a worker" : "are workers"} of Swarm cluster ${cluster.slice(0, 12)}, and forklift drains a worker through a manager of its cluster: name one in swarmManagers (${hint})`);
        }
        if (fleetManagers.length === 0) continue;
        const managers = nodes.filter(isManagerRow);
        const unreachable = managers.filter((n) => !isReachableManager(n));
        if (unreachable.length > 0) {
            problems.push(`Swarm cluster ${cluster.slice(0, 12)}: manager(s) ${unreachable.map((n) => n.Hostname).join(", ")} are not reachable (${unreachable.map((n) => `${n.Hostname} ${n.Status} ${n.ManagerStatus}`).join(", ")}): restarting ${fleetManagers.join(", ")} now could lose the cluster's quorum. Bring them back first`);
        } else if (!managers.some((n) => n.ManagerStatus === "Leader")) {
            problems.push(`Swarm cluster ${cluster.slice(0, 12)} has no leader: bring its managers back before a rollout`);
        }
        if (managers.length === 2 && !s.allowTwoManagers) {
            problems.push(`forklift:swarmAllowTwoManagers: Swarm cluster ${cluster.slice(0, 12)} has 2 managers (${managers.map((n) => n.Hostname).join(", ")}): while one restarts there is no quorum (nothing can be scheduled or changed). Add a third manager, or set swarmAllowTwoManagers: true to go ahead anyway`);
        }
        if (managers.length === 1) {
            warnings.push(`Swarm cluster ${cluster.slice(0, 12)} has one manager (${fleetManagers.join(", ")}): its control plane is down while that node's engine restarts (running tasks keep running)`);
        }
        const seen = [...hosts, ...others].find((f) => f.swarm?.Cluster?.ID === cluster);
        if (seen?.swarm?.Cluster?.Spec?.EncryptionConfig?.AutoLockManagers && !s.unlockKey) {
            problems.push(`forklift:swarmUnlockKey: Swarm cluster ${cluster.slice(0, 12)} has autolock on: ${fleetManagers.join(", ")} would come back locked after their engine restarts, and out of the cluster until unlocked. Set the key: \`docker swarm unlock-key -q\` on a manager, then \`pulumi config set --secret forklift:swarmUnlockKey <key>\``);
        }
    }
    const leaders = new Set([...clusters.values()].flatMap((nodes) => nodes.filter((n) => n.ManagerStatus === "Leader").map((n) => n.ID)));
    const steps = planSteps(
        hosts.map((f) => f.name).filter((h) => !lost.includes(h)),
        members,
        leaders,
        s.waves && s.waves.length > 0 ? s.waves : [s.batchSize],
    );
    return { members, steps, problems, warnings };
}
