/**
 * One Swarm node taken out of its cluster's work for its engine to restart, and given back: the
 * cluster commands run on a manager (a swarmManagers entry, else the node itself when it is one),
 * over the run's SSH, and the decisions are swarm.ts's.
 *
 *   quorum kept → availability remembered → drain → its tasks run elsewhere → ACTION (the install
 *   or uninstall) → the node back (Ready, its new engine, a manager reachable with a leader) →
 *   availability restored → its services whole again
 *
 * Every wait is bounded (drainTimeout, nodeTimeout); a node whose work does not move away is left
 * as it was, with its availability restored, and the rollout stops naming the services still short.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { dockerCommand } from "../lib/protocol/swarm";
import { RemoteHost, SwarmNodeJob } from "./jobs";
import { NodeRow, ServiceRow, SwarmInfo, TaskRow, isReachableManager, quorumProblem, runningCount, runningTasks, serviceOfTask, shortServices } from "./swarm";
import { Ssh } from "./ssh";

/** Seconds between two looks at the cluster while waiting. */
const POLL_SECONDS = 1;
/** Seconds a manager's quorum check looks again before it refuses (a view right after an election). */
const QUORUM_GRACE_SECONDS = 15;

/** A manager the cluster commands run on. */
interface Contact {
    alias: string;
    host: RemoteHost;
}

export class SwarmError extends Error {}

/** The cluster, through the first of its managers that answers. */
class Cluster {
    private current?: Contact;
    constructor(
        private readonly ssh: Ssh,
        private readonly contacts: Contact[],
    ) {}

    /** Which manager answered last (for messages). */
    get via(): string {
        return this.current?.host.name ?? "?";
    }

    /** `docker ARGS` on a manager; the JSON lines it printed. Throws when no manager answers. */
    async docker(args: string[]): Promise<string[]> {
        const tried: string[] = [];
        for (const c of this.current ? [this.current, ...this.contacts.filter((x) => x !== this.current)] : this.contacts) {
            const r = await this.ssh.run(c.alias, dockerCommand(args, c.host.route.user !== "root"));
            if (r.code === 0) {
                this.current = c;
                return r.stdout.split("\n").filter((l) => l.trim());
            }
            tried.push(`${c.host.name}: ${(r.stderr.trim().split("\n").pop() ?? "").slice(0, 200) || `exit ${r.code}`}`);
        }
        throw new SwarmError(`no manager answered \`docker ${args.slice(0, 2).join(" ")}\` (${tried.join("; ")})`);
    }

    async nodes(): Promise<NodeRow[]> {
        return (await this.docker(["node", "ls", "--format", "{{json .}}"])).map((l) => JSON.parse(l) as NodeRow);
    }
    async services(): Promise<ServiceRow[]> {
        return (await this.docker(["service", "ls", "--format", "{{json .}}"])).map((l) => JSON.parse(l) as ServiceRow);
    }
    async tasks(nodeId: string): Promise<TaskRow[]> {
        return (await this.docker(["node", "ps", nodeId, "--format", "{{json .}}"])).map((l) => JSON.parse(l) as TaskRow);
    }
    async setAvailability(nodeId: string, availability: string): Promise<void> {
        await this.docker(["node", "update", "--availability", availability, nodeId]);
    }
    /** The services of NAMES short of their desired count (see shortServices). */
    async short(names: Set<string>): Promise<string[]> {
        const services = (await this.services()).filter((s) => names.has(s.Name));
        const running = new Map<string, number>();
        for (const s of services) {
            const tasks = (await this.docker(["service", "ps", s.ID, "--filter", "desired-state=running", "--format", "{{json .}}"])).map((l) => JSON.parse(l) as TaskRow);
            running.set(s.Name, runningCount(tasks));
        }
        return shortServices(services, running);
    }
}

/**
 * One drain at a time from this machine: the installs of a batch of workers run at once, and two
 * nodes drained together would take two nodes' share of a service down together. Each holds this
 * lock (a directory, made or not made at once) until its node's tasks run elsewhere; the restarts
 * then go on side by side. A holder that was killed leaves its lock behind: its PID tells.
 */
async function drainLock(): Promise<() => void> {
    const dir = path.join(os.tmpdir(), `forklift-drain-${process.getuid?.() ?? "user"}`);
    for (;;) {
        try {
            fs.mkdirSync(dir, { mode: 0o700 });
            fs.writeFileSync(path.join(dir, "pid"), String(process.pid));
            return () => fs.rmSync(dir, { recursive: true, force: true });
        } catch (e) {
            if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
        }
        const holder = Number((() => {
            try {
                return fs.readFileSync(path.join(dir, "pid"), "utf8");
            } catch {
                return "0";
            }
        })());
        if (holder > 0 && !alive(holder)) fs.rmSync(dir, { recursive: true, force: true });
        else await new Promise((r) => setTimeout(r, 200));
    }
}

function alive(pid: number): boolean {
    try {
        process.kill(pid, 0);
        return true;
    } catch (e) {
        return (e as NodeJS.ErrnoException).code === "EPERM";
    }
}

/** Polls CHECK every POLL_SECONDS until it gives true, or SECONDS have passed (then false). */
async function waitFor(seconds: number, check: () => Promise<boolean>): Promise<boolean> {
    const deadline = Date.now() + seconds * 1000;
    for (;;) {
        try {
            if (await check()) return true;
        } catch {
            // a manager restarting, a node not back yet: ask again
        }
        if (Date.now() >= deadline) return false;
        await new Promise((r) => setTimeout(r, POLL_SECONDS * 1000));
    }
}

/** What ACTION reports: the node's engine version once it is back (none: any will do). */
export interface NodeAction {
    engineVersion?: string;
}

/**
 * Runs ACTION on the Swarm node HOST (whose `docker info` Swarm part is INFO) drained, as the
 * module's comment says. ACTION's own failure (a rolled-back install) is thrown after the node is
 * back and its availability restored.
 */
export async function withNodeDrained(ssh: Ssh, host: RemoteHost, info: SwarmInfo, job: SwarmNodeJob, log: (line: string) => void, action: () => Promise<NodeAction>): Promise<void> {
    const name = host.name;
    const contacts: Contact[] = job.managers.filter((m) => m.name !== name).map((m) => ({ alias: ssh.add(m, { persist: true }), host: m }));
    // a manager can answer for itself, but not while its engine restarts: the others first
    if (info.ControlAvailable) contacts.push({ alias: ssh.add(host, { persist: true }), host });
    if (contacts.length === 0) {
        throw new SwarmError(`${name} is a Swarm worker: forklift drains it through a manager of its cluster, and swarmManagers names none. Nothing was changed`);
    }
    const cluster = new Cluster(ssh, contacts);
    const nodes = await cluster.nodes();
    const me = nodes.find((n) => n.ID === info.NodeID);
    if (!me) throw new SwarmError(`${name}: its node ${info.NodeID.slice(0, 12)} is not in the cluster that ${cluster.via} manages. Nothing was changed`);
    if (info.ControlAvailable) {
        // a new leader's first view can show a follower that voted for it as unreachable: look
        // again for a few seconds before refusing
        let problem = quorumProblem(nodes, info.NodeID, job.allowTwoManagers);
        if (problem) await waitFor(QUORUM_GRACE_SECONDS, async () => !(problem = quorumProblem(await cluster.nodes(), info.NodeID, job.allowTwoManagers)));
        if (problem) throw new SwarmError(`${name} is a Swarm manager and was not restarted: ${problem}. Nothing was changed`);
        if (nodes.filter((n) => n.ManagerStatus !== "").length === 1) log(`${name} is its cluster's only manager: the control plane is down while its engine restarts`);
    }
    const availability = me.Availability.toLowerCase();
    const onNode = new Set(runningTasks(await cluster.tasks(info.NodeID)).map(serviceOfTask));
    const replicated = new Set((await cluster.services()).filter((s) => s.Mode === "replicated" && onNode.has(s.Name)).map((s) => s.Name));
    let restore = false;
    let unlock: (() => void) | undefined;
    // each line says how long its part took: where a node's time goes (drain, restart, rejoin,
    // its services converging) is what a user tunes swarmDrainTimeout and their services by
    let mark = Date.now();
    const took = () => {
        const s = ((Date.now() - mark) / 1000).toFixed(1);
        mark = Date.now();
        return `${s} s`;
    };
    try {
        unlock = await drainLock();
        took();
        if (availability !== "drain") {
            log(`${name}: draining its node (${onNode.size} service(s) with tasks on it; through ${cluster.via})`);
            await cluster.setAvailability(info.NodeID, "drain");
            restore = true;
        }
        let short: string[] = [];
        const moved = await waitFor(job.drainTimeout, async () => {
            const left = runningTasks(await cluster.tasks(info.NodeID));
            short = await cluster.short(replicated);
            return left.length === 0 && short.length === 0;
        });
        if (!moved) {
            throw new SwarmError(`${name}: its tasks did not all run elsewhere within ${job.drainTimeout}s (swarmDrainTimeout)${short.length ? `; still short: ${short.join(", ")}` : ""}. Its engine was not restarted`);
        }
        unlock();
        unlock = undefined;
        log(`${name}: drained, its tasks run elsewhere (${took()})`);
        let failure: Error | undefined;
        let done: NodeAction = {};
        try {
            done = await action();
        } catch (e) {
            failure = e as Error;
        }
        const acted = took();
        const back = await waitFor(job.nodeTimeout, async () => {
            const now = (await cluster.nodes()).find((n) => n.ID === info.NodeID);
            if (!now || now.Status !== "Ready") return false;
            if (!failure && done.engineVersion && now.EngineVersion !== done.engineVersion) return false;
            if (info.ControlAvailable) return isReachableManager(now) && (await cluster.nodes()).some((n) => n.ManagerStatus === "Leader");
            return true;
        });
        if (!back) {
            throw failure ?? new SwarmError(`${name}: its node was not back in its cluster within ${job.nodeTimeout}s (swarmNodeTimeout: Ready, engine ${done.engineVersion ?? "?"}${info.ControlAvailable ? ", a reachable manager with a leader elected" : ""})`);
        }
        if (restore) {
            await cluster.setAvailability(info.NodeID, availability);
            restore = false;
            log(`${name}: back in its cluster, availability ${availability} again (engine ${acted}, rejoin ${took()})`);
        }
        if (failure) throw failure;
        let stillShort: string[] = [];
        const whole = await waitFor(job.drainTimeout, async () => {
            stillShort = await cluster.short(onNode);
            return stillShort.length === 0;
        });
        if (!whole) throw new SwarmError(`${name}: its services were not whole again within ${job.drainTimeout}s (swarmDrainTimeout): ${stillShort.join(", ")}`);
        log(`${name}: its services are whole again (${took()})`);
    } finally {
        unlock?.();
        if (restore) {
            // however it ended, the node gets its availability back
            await cluster.setAvailability(info.NodeID, availability).then(
                () => log(`${name}: availability ${availability} restored`),
                (e: Error) => log(`${name}: could not restore its availability (${availability}): ${e.message}`),
            );
        }
    }
}
