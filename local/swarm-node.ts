/**
 * One Swarm node taken out of its cluster's work for its engine to restart, and given back: the
 * cluster commands run on a manager of the node's own cluster (a swarmManagers entry, else the
 * node itself when it is one), over the run's SSH, and the decisions are swarm.ts's and
 * swarm-drain.ts's.
 *
 *   a manager: the leader waits while other managers of its cluster have a run going here, one
 *   manager at a time, quorum kept → a drain slot (swarmMaxDrained per cluster) → refused when
 *   the drain would take a service down or move data (planDrain) → swarmSurge's extra tasks,
 *   the node paused meanwhile → drain, recorded → its tasks run elsewhere → ACTION (the install
 *   or uninstall) → the node back (Ready, its new engine, a manager reachable with a leader) →
 *   availability restored and the record removed → the slot given back → the extra tasks removed
 *   (by the last run out of the cluster's drains: another's drain may count on them) → its
 *   services whole again
 *
 * What this run changes in the cluster is recorded there first, under the stack's identity: a node
 * label forklift.drain.<stack> holding the availability to give back, a service label
 * forklift.surge.<stack> holding "<replicas>+<extra>". A run that is killed leaves them; the next
 * run's check puts them right (recoverRecords), and an install of that node finishes it. A stop
 * (Ctrl-C, SIGTERM) gives the node its availability back at once where its engine is not being
 * replaced at that moment.
 *
 * Every wait is bounded (drainTimeout, nodeTimeout) and every docker command too (DOCKER_SECONDS).
 * The rejoin after the restart is the host script's to wait for (rejoinWait in swarm.ts).
 */
import { DOCKER_SECONDS, dockerCommand } from "../lib/protocol/swarm";
import { RemoteHost, SwarmNodeJob } from "../lib/protocol/jobs";
import { INTERRUPT_SECONDS, isStopping, onInterrupt } from "./interrupt";
import { isHeld, takeLock, takeOneOf } from "./lock";
import { NodeRow, SwarmInfo, TaskRow, isManagerRow, isReachableManager, quorumProblem, rejoinWait, runningTasks } from "./swarm";
import { HostError } from "./remote";
import { NodeSpec, RunningTasks, ServiceSpec, planDrain, replicaCount } from "./swarm-drain";
import { Ssh } from "./ssh";

/** Seconds between two looks at the cluster while waiting. */
const POLL_SECONDS = 1;
/** Seconds a manager's quorum check looks again before it refuses (a view right after an election). */
const QUORUM_GRACE_SECONDS = 15;
/** Seconds a leader's run waits, before it first looks, for the runs of the other managers to start. */
const LEADER_SETTLE_SECONDS = 3;

/** The node label that records a drain by the stack STACK_ID: its value is the availability to give back. */
export const drainLabel = (stackId: string): string => (stackId ? `forklift.drain.${stackId}` : "forklift.drain");
/** The service label that records a surge by the stack STACK_ID: "<replicas>+<extra>". */
export const surgeLabel = (stackId: string): string => (stackId ? `forklift.surge.${stackId}` : "forklift.surge");

/** A manager the cluster commands run on. */
export interface Contact {
    alias: string;
    host: RemoteHost;
}

export class SwarmError extends Error {}

const sleep = (seconds: number) => new Promise((r) => setTimeout(r, seconds * 1000));

/**
 * The cluster of the node NODE_ID, through the first of its managers that answers: a contact that
 * manages another cluster (two clusters in one fleet), or none, is left out.
 */
export class Cluster {
    private current?: Contact;
    /** Contacts that answered as managers of this node's cluster, and those that manage another (why). */
    private readonly members = new Set<Contact>();
    private readonly others = new Map<Contact, string>();
    constructor(
        private readonly ssh: Ssh,
        private readonly contacts: Contact[],
        private readonly nodeId: string,
    ) {}

    /** Which manager answered last (for messages). */
    get via(): string {
        return this.current?.host.name ?? "?";
    }

    /** `docker ARGS` on a manager of the cluster; the lines it printed. Throws when none answers. */
    async docker(args: string[], timeoutMs = (DOCKER_SECONDS + 5) * 1000): Promise<string[]> {
        const tried: string[] = [];
        for (const c of this.current ? [this.current, ...this.contacts.filter((x) => x !== this.current)] : this.contacts) {
            if (this.others.has(c)) {
                tried.push(`${c.host.name}: ${this.others.get(c)}`);
                continue;
            }
            const sudo = c.host.route.user !== "root";
            if (!this.members.has(c)) {
                // a manager of this node's cluster knows the node (two clusters in one fleet: each
                // node's commands go to its own cluster's managers)
                const probe = await this.ssh.run(c.alias, dockerCommand(["node", "inspect", this.nodeId, "--format", "{{.ID}}"], sudo), { timeoutMs });
                if (probe.code !== 0 && /No such node|not a swarm manager|not part of a swarm/i.test(probe.stderr)) {
                    this.others.set(c, "not a manager of this node's cluster");
                    tried.push(`${c.host.name}: ${this.others.get(c)}`);
                    continue;
                }
                if (probe.code !== 0) {
                    tried.push(`${c.host.name}: ${lastLine(probe.stderr) || `exit ${probe.code}`}`);
                    continue;
                }
                this.members.add(c);
            }
            const r = await this.ssh.run(c.alias, dockerCommand(args, sudo), { timeoutMs });
            if (r.code === 0) {
                this.current = c;
                return r.stdout.split("\n").filter((l) => l.trim());
            }
            tried.push(`${c.host.name}: ${lastLine(r.stderr) || `exit ${r.code}`}`);
            if (c === this.current) this.current = undefined;
        }
        throw new SwarmError(`no manager of its cluster answered \`docker ${args.slice(0, 2).join(" ")}\` (${tried.join("; ")})`);
    }

    async id(): Promise<string> {
        return (await this.docker(["info", "--format", "{{.Swarm.Cluster.ID}}"]))[0] ?? "";
    }
    async nodes(): Promise<NodeRow[]> {
        return (await this.docker(["node", "ls", "--format", "{{json .}}"])).map((l) => JSON.parse(l) as NodeRow);
    }
    async nodeSpecs(): Promise<NodeSpec[]> {
        const ids = await this.docker(["node", "ls", "--format", "{{.ID}}"]);
        return JSON.parse((await this.docker(["node", "inspect", ...ids])).join("\n")) as NodeSpec[];
    }
    async serviceSpecs(): Promise<ServiceSpec[]> {
        const ids = await this.docker(["service", "ls", "--format", "{{.ID}}"]);
        return ids.length === 0 ? [] : (JSON.parse((await this.docker(["service", "inspect", ...ids])).join("\n")) as ServiceSpec[]);
    }
    async tasks(nodeId: string): Promise<TaskRow[]> {
        return (await this.docker(["node", "ps", nodeId, "--format", "{{json .}}"])).map((l) => JSON.parse(l) as TaskRow);
    }
    /** Each of SERVICES' tasks that run and are meant to, by node hostname. */
    async running(services: ServiceSpec[]): Promise<RunningTasks> {
        const out: RunningTasks = new Map();
        for (const s of services) {
            const byNode = new Map<string, number>();
            const rows = (await this.docker(["service", "ps", s.ID, "--filter", "desired-state=running", "--format", "{{json .}}"])).map((l) => JSON.parse(l) as TaskRow & { Node: string });
            for (const t of rows) if (t.CurrentState.startsWith("Running")) byNode.set(t.Node, (byNode.get(t.Node) ?? 0) + 1);
            out.set(s.Spec.Name, byNode);
        }
        return out;
    }
    /** `docker node update` of NODE: its availability, a label added (one write to the cluster) or removed. */
    async updateNode(node: string, u: { availability?: string; label?: [string, string]; unlabel?: string }, timeoutMs?: number): Promise<void> {
        const args = ["node", "update", ...(u.availability ? ["--availability", u.availability] : []), ...(u.label ? ["--label-add", `${u.label[0]}=${u.label[1]}`] : []), ...(u.unlabel ? ["--label-rm", u.unlabel] : []), node];
        await this.docker(args, timeoutMs);
    }
    /**
     * Gives NODE its AVAILABILITY back and removes the record LABEL where it is there (`docker
     * node update --label-rm` refuses a label the node does not have).
     */
    async restoreNode(node: string, availability: string, label: string, timeoutMs?: number): Promise<void> {
        const state = async () => (await this.docker(["node", "inspect", node, "--format", `{{.Spec.Availability}} {{with index .Spec.Labels ${JSON.stringify(label)}}}yes{{end}}`], timeoutMs))[0]?.trim().split(" ") ?? [];
        const has = (await state())[1] === "yes";
        try {
            await this.updateNode(node, { availability, ...(has ? { unlabel: label } : {}) }, timeoutMs);
        } catch (e) {
            // an update whose answer was lost (a manager that hung after it) may have landed, and
            // its repeat on another manager then fails: what the node holds now says
            const now = await state().catch(() => undefined);
            if (!now || now[0] !== availability || now[1] === "yes") throw e;
        }
    }
    /** `docker service update` of SERVICE: its replica count, a label added or removed (no task is replaced). */
    async updateService(service: string, u: { replicas?: number; label?: [string, string]; unlabel?: string }, timeoutMs?: number): Promise<void> {
        const args = ["service", "update", "--detach", ...(u.replicas !== undefined ? ["--replicas", String(u.replicas)] : []), ...(u.label ? ["--label-add", `${u.label[0]}=${u.label[1]}`] : []), ...(u.unlabel ? ["--label-rm", u.unlabel] : []), service];
        await this.docker(args, timeoutMs);
    }
    /**
     * The services of AT_LEAST (name → the count each must run) that run fewer tasks, as
     * "web 3/4"; a service not there is left out (removed meanwhile). A service whose replica
     * count is now lower (another node's run took its extra tasks back, its owner scaled it down)
     * must run that many: waiting for more would wait for tasks nobody asks for.
     */
    async short(atLeast: Map<string, number>): Promise<string[]> {
        if (atLeast.size === 0) return [];
        const specs = (await this.serviceSpecs()).filter((s) => atLeast.has(s.Spec.Name));
        const running = await this.running(specs);
        return specs
            .map((s) => ({ name: s.Spec.Name, want: Math.min(atLeast.get(s.Spec.Name)!, replicaCount(s) ?? Infinity), up: [...(running.get(s.Spec.Name)?.values() ?? [])].reduce((a, b) => a + b, 0) }))
            .filter(({ want, up }) => up < want)
            .map(({ name, want, up }) => `${name} ${up}/${want}`);
    }
}

function lastLine(text: string): string {
    return (text.trim().split("\n").pop() ?? "").slice(0, 200);
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
        await sleep(POLL_SECONDS);
    }
}

/** The contacts of HOST's cluster commands: swarmManagers' entries, and the node itself where it is a manager (last). */
function contactsOf(ssh: Ssh, host: RemoteHost, info: SwarmInfo, job: SwarmNodeJob): Contact[] {
    const contacts: Contact[] = job.managers.filter((m) => m.name !== host.name).map((m) => ({ alias: ssh.add(m, { persist: true }), host: m }));
    // a manager can answer for itself, but not while its engine restarts: the others first
    if (info.ControlAvailable) contacts.push({ alias: ssh.add(host, { persist: true }), host });
    return contacts;
}

/**
 * Puts right what runs of the stack STACK_ID left in CLUSTER (killed, or stopped where they could
 * not): each node it drained gets its availability back, each service it scaled up its replica
 * count (where nobody changed it since), and the records go. Returns what it did, a line each.
 */
export async function recoverRecords(cluster: Cluster, stackId: string): Promise<string[]> {
    const done: string[] = [];
    const drain = drainLabel(stackId);
    for (const n of await cluster.nodeSpecs()) {
        const was = n.Spec.Labels?.[drain];
        if (was === undefined) continue;
        await cluster.restoreNode(n.ID, was, drain);
        done.push(`${n.Description.Hostname}: availability ${was} restored (drained by a forklift run that was stopped)`);
    }
    const surge = surgeLabel(stackId);
    for (const s of await cluster.serviceSpecs()) {
        const record = s.Spec.Labels?.[surge];
        if (record === undefined) continue;
        done.push(await unsurge(cluster, s, surge));
    }
    return done;
}

/**
 * A service's surge record (LABEL: "<replicas>+<extra>": its own replica count, and the extra
 * tasks the stack's runs added, all of them), where it holds and nobody changed the count since.
 */
function surgeOf(s: ServiceSpec, label: string): { base: number; extra: number } | undefined {
    const m = /^(\d+)\+(\d+)$/.exec(s.Spec.Labels?.[label] ?? "");
    if (!m || replicaCount(s) !== Number(m[1]) + Number(m[2])) return undefined;
    return { base: Number(m[1]), extra: Number(m[2]) };
}

/** S's replica count as its owner set it: without the extra tasks of a surge (see surgeOf). */
function ownCount(s: ServiceSpec, label: string): number | undefined {
    return surgeOf(s, label)?.base ?? replicaCount(s);
}

/**
 * Adds N extra tasks to service S, on top of those other runs of the stack added (runs draining
 * several nodes of a cluster at once share one record); under the cluster's plan lock.
 */
async function surgeUp(cluster: Cluster, s: ServiceSpec, label: string, n: number): Promise<number> {
    const was = surgeOf(s, label) ?? { base: replicaCount(s)!, extra: 0 };
    const record = { base: was.base, extra: was.extra + n };
    await cluster.updateService(s.ID, { replicas: record.base + record.extra, label: [label, `${record.base}+${record.extra}`] });
    return record.base + record.extra;
}

/**
 * Takes every extra task of service S away, and the record with them (the last run of the stack
 * out of the cluster's drains does, or the next run after one that was stopped); where its replica
 * count was changed since (it is not the record's), the count stays and the record goes. Under
 * the cluster's plan lock.
 */
async function unsurge(cluster: Cluster, s: ServiceSpec, label: string, timeoutMs?: number): Promise<string> {
    const r = surgeOf(s, label);
    if (!r) {
        await cluster.updateService(s.ID, { unlabel: label }, timeoutMs);
        return `${s.Spec.Name}: its replica count was changed to ${replicaCount(s)} while forklift had it scaled up (${s.Spec.Labels?.[label]}): left as it is`;
    }
    await cluster.updateService(s.ID, { replicas: r.base, unlabel: label }, timeoutMs);
    return `${s.Spec.Name}: back to ${r.base} replicas (its ${r.extra} extra task(s) removed)`;
}

/**
 * Why the manager of an autolocked cluster must not be restarted with the key KEY (the setting
 * swarmUnlockKey): its engine would come back locked, out of its cluster, and the key would not
 * open it. Asked of the cluster right before (the key may have been rotated since the check).
 */
export async function unlockKeyProblem(cluster: Cluster, clusterId: string, autolock: boolean | undefined, key: string | undefined): Promise<string | undefined> {
    if (!autolock) return undefined;
    if (!key) {
        return `forklift:swarmUnlockKey: Swarm cluster ${clusterId.slice(0, 12)} has autolock on, and no key is set: the manager would come back locked. Set it: \`docker swarm unlock-key -q\` on a manager, then \`pulumi config set --secret forklift:swarmUnlockKey <key>\``;
    }
    const current = (await cluster.docker(["swarm", "unlock-key", "-q"]))[0]?.trim();
    if (current !== key.trim()) {
        return `forklift:swarmUnlockKey is not the unlock key of Swarm cluster ${clusterId.slice(0, 12)} (rotated since it was set?): \`docker swarm unlock-key -q\` on a manager prints the current one`;
    }
    return undefined;
}

/**
 * For a Swarm node whose install had nothing to do: where a run of this stack that was stopped
 * left it drained (its record on the node), its availability back once it is Ready; and the
 * services that run scaled up, scaled back, unless a run here is draining a node of the cluster
 * now (a surge of its own).
 */
export async function finishStoppedRun(ssh: Ssh, host: RemoteHost, info: SwarmInfo, job: SwarmNodeJob, log: (line: string) => void): Promise<void> {
    const contacts = contactsOf(ssh, host, info, job);
    if (contacts.length === 0) return;
    const cluster = new Cluster(ssh, contacts, info.NodeID);
    const drain = drainLabel(job.stackId);
    const me = (await cluster.nodeSpecs()).find((n) => n.ID === info.NodeID);
    const was = me?.Spec.Labels?.[drain];
    if (me && was !== undefined) {
        if (!(await waitFor(job.nodeTimeout, async () => (await cluster.nodes()).find((n) => n.ID === info.NodeID)?.Status === "Ready"))) {
            throw new SwarmError(`${host.name}: a forklift run that was stopped left its node drained, and it is not Ready in its cluster within ${job.nodeTimeout}s (swarmNodeTimeout): left drained`);
        }
        await cluster.restoreNode(info.NodeID, was, drain);
        log(`${host.name}: availability ${was} restored (drained by a forklift run that was stopped)`);
    }
    const surge = surgeLabel(job.stackId);
    if (!(await cluster.serviceSpecs()).some((s) => s.Spec.Labels?.[surge] !== undefined)) return;
    const clusterId = (await cluster.id()).slice(0, 25) || "cluster";
    const planned = await takeLock(`plan-${clusterId}`);
    try {
        for (let i = 0; i < job.maxDrained; i++) if (await isHeld(`drain-${clusterId}-${i}`)) return;
        const left = (await cluster.serviceSpecs()).filter((s) => s.Spec.Labels?.[surge] !== undefined);
        for (const s of left) log(`${host.name}: ${await unsurge(cluster, s, surge)} (scaled up by a forklift run that was stopped)`);
    } finally {
        planned();
    }
}

/** What ACTION reports: the node's engine version once it is back (none: any will do); GONE: it has no engine now. */
export interface NodeAction {
    engineVersion?: string;
    gone?: boolean;
}

/**
 * Runs ACTION on the Swarm node HOST (whose `docker info` Swarm part is INFO) drained, as the
 * module's comment says. ACTION's own failure (a rolled-back install) is thrown after the node is
 * back and its availability restored.
 */
export async function withNodeDrained(ssh: Ssh, host: RemoteHost, info: SwarmInfo, job: SwarmNodeJob, log: (line: string) => void, action: () => Promise<NodeAction>): Promise<void> {
    const name = host.name;
    const contacts = contactsOf(ssh, host, info, job);
    if (contacts.length === 0) {
        throw new SwarmError(`${name} is a Swarm worker: forklift drains it through a manager of its cluster, and swarmManagers names none. Nothing was changed`);
    }
    const cluster = new Cluster(ssh, contacts, info.NodeID);
    const clusterId = (await cluster.id()).slice(0, 25) || "cluster";
    const manager = info.ControlAvailable;
    const releases: (() => void)[] = [];
    const releaseAll = () => releases.splice(0).reverse().forEach((r) => r());
    const drain = drainLabel(job.stackId);
    const surge = surgeLabel(job.stackId);
    // what this run changed and must give back: the node's availability (services scaled up are
    // recorded on the services themselves, and given back by the last run holding a drain slot)
    let restore: string | undefined;
    let phase: "before" | "changing" | "acting" = "before";
    let mark = Date.now();
    // each line says how long its part took: where a node's time goes (drain, restart, rejoin,
    // its services converging) is what a user tunes swarmDrainTimeout and their services by
    const took = () => {
        const s = ((Date.now() - mark) / 1000).toFixed(1);
        mark = Date.now();
        return `${s} s`;
    };
    // the change to the cluster under way, if any: a stop waits for it before it gives back
    // and none starts once a stop began (its give-back may have run already)
    let inflight: Promise<unknown> = Promise.resolve();
    const change = <T>(what: string, make: () => Promise<T>): Promise<T> => {
        if (isStopping()) return Promise.reject(new SwarmError(`${name}: stopped before ${what}`));
        const p = make();
        inflight = p.catch(() => undefined);
        return p;
    };
    // the cluster's drain slots (swarmMaxDrained), and the one this run holds
    const slots = Array.from({ length: job.maxDrained }, (_, i) => `drain-${clusterId}-${i}`);
    let mySlot: { name: string; release: () => void } | undefined;
    // one give-back at a time (a stop's and the run's own): each takes what is left to give
    let givingBack: Promise<void> = Promise.resolve();
    const giveBack = (timeoutMs?: number): Promise<void> => {
        const next = givingBack.then(async () => {
            await inflight;
            if (restore !== undefined) {
                const to = restore;
                await cluster.restoreNode(info.NodeID, to, drain, timeoutMs);
                restore = undefined;
                log(`${name}: availability ${to} restored`);
            }
            if (job.surge > 0 && mySlot) {
                // The extra tasks stay while another run drains a node of the cluster: its drain
                // may count on them (its node can hold more of a service's tasks than its own
                // surge adds, those that moved there from this node). The last run out takes them
                // all. This run's slot goes first, under the plan lock, so that of two runs ending
                // together one sees the other gone.
                const planned = await takeLock(`plan-${clusterId}`);
                try {
                    // (its own slot is not looked at: a released lock is free a moment later)
                    const mine = mySlot.name;
                    mySlot.release();
                    mySlot = undefined;
                    let others = false;
                    for (const s of slots) if (s !== mine && !others && (await isHeld(s))) others = true;
                    for (const spec of (await cluster.serviceSpecs()).filter((x) => x.Spec.Labels?.[surge] !== undefined)) {
                        log(`${name}: ${others ? `${spec.Spec.Name}: its extra task(s) stay while another node of the cluster is drained` : await unsurge(cluster, spec, surge, timeoutMs)}`);
                    }
                } finally {
                    planned();
                }
            }
        });
        givingBack = next.catch(() => undefined);
        return next;
    };
    const stopped = onInterrupt(async () => {
        if (phase === "acting") {
            log(`${name}: stopped while its engine is being replaced: it stays drained, recorded in its cluster (${drain}); the next \`pulumi up\` gives it its availability back`);
            return;
        }
        await giveBack((INTERRUPT_SECONDS - 1) * 1000).catch((e: Error) => log(`${name}: could not give back what this run changed (${e.message}); the next \`pulumi up\` does`));
    });
    try {
        let me = (await cluster.nodeSpecs()).find((n) => n.ID === info.NodeID);
        if (!me) throw new SwarmError(`${name}: its node ${info.NodeID.slice(0, 12)} is not in the cluster that ${cluster.via} manages. Nothing was changed`);
        // a run that was stopped drained it: its record says what to give back
        const recorded = me.Spec.Labels?.[drain];
        const availability = recorded ?? me.Spec.Availability;
        if (recorded !== undefined) {
            restore = recorded;
            log(`${name}: drained by a forklift run that was stopped (availability ${recorded} before it): finishing its rollout`);
        }
        if (manager) releases.push(await takeLock(`present-${clusterId}-${info.NodeID}`));
        for (;;) {
            if (manager) await leaderLast(cluster, clusterId, info.NodeID, name, log);
            const slot = await takeOneOf(slots);
            mySlot = slot;
            releases.push(slot.release);
            if (!manager) break;
            releases.push(await takeLock(`manager-${clusterId}`));
            // (leadership moves only when a leader's engine stops: still the same, but look)
            if (!(await othersBusy(cluster, clusterId, info.NodeID))) break;
            releases.splice(1).reverse().forEach((r) => r());
        }
        took();
        const nodes = await cluster.nodes();
        if (manager) {
            // a new leader's first view can show a follower that voted for it as unreachable: look
            // again for a few seconds before refusing
            let problem = quorumProblem(nodes, info.NodeID, job.allowTwoManagers);
            if (problem) await waitFor(QUORUM_GRACE_SECONDS, async () => !(problem = quorumProblem(await cluster.nodes(), info.NodeID, job.allowTwoManagers)));
            if (problem) throw new SwarmError(`${name} is a Swarm manager and was not restarted: ${problem}. Nothing was changed`);
            if (nodes.filter(isManagerRow).length === 1) log(`${name} is its cluster's only manager: the control plane is down while its engine restarts`);
        }
        if (manager) {
            const problem = await unlockKeyProblem(cluster, clusterId, info.Cluster?.Spec?.EncryptionConfig?.AutoLockManagers, job.unlockKey);
            if (problem) throw new SwarmError(`${name} is a manager of an autolocked Swarm and was not restarted: ${problem}. Nothing was changed`);
        }
        // The plan and the changes that take the node out of others' plans (its pause or drain,
        // the surge) are made under the cluster's plan lock: runs that drain several nodes at once
        // (swarmMaxDrained) each plan with the others' drains and surges in view.
        const planned = await takeLock(`plan-${clusterId}`);
        let desired: Map<string, number>;
        let plan: ReturnType<typeof planDrain>;
        const extra = new Map<string, number>();
        try {
            const specs = await cluster.nodeSpecs();
            me = specs.find((n) => n.ID === info.NodeID)!;
            const services = await cluster.serviceSpecs();
            plan = planDrain({
                node: me.Description.Hostname,
                nodes: specs,
                services,
                running: await cluster.running(services),
                acceptDowntime: job.acceptDowntime,
                moveLocalData: job.moveLocalData,
                surge: job.surge,
            });
            if (plan.refusals.length > 0) {
                throw new SwarmError(`${name} was not drained: ${plan.refusals.join("; ")}. Its engine was not restarted${recorded !== undefined ? "" : "; nothing was changed"}`);
            }
            phase = "changing";
            // (the counts the services' owners set: without the extra tasks of runs draining other nodes)
            desired = new Map(services.filter((s) => plan.onNode.has(s.Spec.Name)).map((s) => [s.Spec.Name, ownCount(s, surge)!]));
            if (plan.surge.size > 0 && me.Spec.Availability === "active") {
                // paused first (no new task lands on it), then the extra tasks elsewhere
                // (what to give back is known before the change: a stop during it gives it back)
                restore = availability;
                await change("pausing its node", () => cluster.updateNode(info.NodeID, { availability: "pause", label: [drain, availability] }));
            }
            for (const s of services.filter((x) => plan.surge.has(x.Spec.Name))) {
                const n = plan.surge.get(s.Spec.Name)!;
                extra.set(s.Spec.Name, await change("scaling up its services", () => surgeUp(cluster, s, surge, n)));
            }
            if (plan.surge.size === 0 && me.Spec.Availability !== "drain") {
                log(`${name}: draining its node (${plan.onNode.size} service(s) with tasks on it; through ${cluster.via})`);
                restore = availability;
                await change("draining its node", () => cluster.updateNode(info.NodeID, { availability: "drain", label: [drain, availability] }));
            }
        } finally {
            planned();
        }
        if (plan.surge.size > 0) {
            let short: string[] = [];
            if (!(await waitFor(job.drainTimeout, async () => (short = await cluster.short(extra)).length === 0))) {
                throw new SwarmError(`${name}: swarmSurge's extra tasks did not all run within ${job.drainTimeout}s (swarmDrainTimeout): ${short.join(", ")}. Its engine was not restarted`);
            }
            log(`${name}: ${[...plan.surge].map(([s, n]) => `${s} +${n}`).join(", ")} extra task(s) running elsewhere (swarmSurge, ${took()})`);
        }
        if (plan.surge.size > 0 && me.Spec.Availability !== "drain") {
            log(`${name}: draining its node (${plan.onNode.size} service(s) with tasks on it; through ${cluster.via})`);
            restore = availability;
            await change("draining its node", () => cluster.updateNode(info.NodeID, { availability: "drain", label: [drain, availability] }));
        }
        let short: string[] = [];
        const whole = new Map([...plan.waitWhole].map((s) => [s, desired.get(s)!]));
        const moved = await waitFor(job.drainTimeout, async () => {
            const left = runningTasks(await cluster.tasks(info.NodeID));
            short = await cluster.short(whole);
            return left.length === 0 && short.length === 0;
        });
        if (!moved) {
            throw new SwarmError(`${name}: its tasks did not all run elsewhere within ${job.drainTimeout}s (swarmDrainTimeout)${short.length ? `; still short: ${short.join(", ")}` : ""}. Its engine was not restarted`);
        }
        log(`${name}: drained, its tasks run elsewhere (${took()})`);
        let failure: Error | undefined;
        let done: NodeAction = {};
        // (no await between this look and the phase: a stop either comes before, and the engine is
        // not touched, or finds the node acting, and leaves it drained for the next run)
        if (isStopping()) throw new SwarmError(`${name}: stopped before its engine was replaced`);
        phase = "acting";
        try {
            done = await action();
        } catch (e) {
            failure = e as Error;
        }
        phase = "changing";
        const acted = took();
        if (!failure && done.gone) {
            // given back to a host without a Docker of its own: out of its cluster, Down, until one runs
            await change("giving its availability back", () => cluster.restoreNode(info.NodeID, restore ?? availability, drain)).then(
                () => log(`${name}: given back to a host without a Docker of its own: its node stays in its cluster, Down, with its Swarm state (\`docker node rm\` on a manager takes it out); availability ${restore ?? availability} again`),
                (e: Error) => log(`${name}: given back to a host without a Docker of its own: its node stays in its cluster, Down, with its Swarm state; its availability could not be given back (${e.message})`),
            );
            restore = undefined;
            await giveBack();
            return;
        }
        if (failure && !(failure instanceof HostError)) {
            // the host's run was not seen to its end (its SSH session lost): it may still be
            // replacing the engine, or rolling it back. The node stays drained, recorded; the next
            // run's check, which waits for the host's run to end (its lock), gives it back
            restore = undefined;
            throw new SwarmError(`${failure.message}. Its run on the host could not be followed to its end and may still be replacing its engine: its node stays drained, recorded in its cluster (${drain}); the next \`pulumi up\` gives it its availability back`);
        }
        // the host's run ended (its status, or its exit): it waited for the rejoin itself
        const wait = rejoinWait(job.nodeTimeout);
        const back = await waitFor(wait, async () => {
            const now = (await cluster.nodes()).find((n) => n.ID === info.NodeID);
            if (!now || now.Status !== "Ready") return false;
            if (!failure && done.engineVersion && now.EngineVersion !== done.engineVersion) return false;
            if (manager) return isReachableManager(now) && (await cluster.nodes()).some((n) => n.ManagerStatus === "Leader");
            return true;
        });
        if (!back) {
            throw failure ?? new SwarmError(`${name}: its host saw its node back in its Swarm, but its cluster did not within ${wait}s (Ready, engine ${done.engineVersion ?? "?"}${manager ? ", a reachable manager with a leader elected" : ""})`);
        }
        if (restore !== undefined) {
            const to = restore;
            await change("giving its availability back", () => cluster.restoreNode(info.NodeID, to, drain));
            restore = undefined;
            log(`${name}: back in its cluster, availability ${to} again (engine ${acted}, rejoin ${took()})`);
        }
        await giveBack();
        if (failure) throw failure;
        let stillShort: string[] = [];
        const again = await waitFor(job.drainTimeout, async () => {
            stillShort = await cluster.short(desired);
            return stillShort.length === 0;
        });
        if (!again) throw new SwarmError(`${name}: its services were not whole again within ${job.drainTimeout}s (swarmDrainTimeout): ${stillShort.join(", ")}`);
        log(`${name}: its services are whole again (${took()})`);
    } finally {
        // however it ended, what this run still holds goes back: the availability (none left to
        // give where its host's run went on unseen: that node stays drained, recorded) and the
        // extra tasks
        await giveBack().catch((e: Error) => log(`${name}: could not give back what this run changed (${e.message}); the next \`pulumi up\` does`));
        stopped();
        releaseAll();
    }
}

/**
 * The leader of a cluster restarts last, so that the cluster elects a new one once: a leader's
 * run waits while another manager of its cluster has a run here (each holds its presence lock
 * until it ends), looking first after LEADER_SETTLE_SECONDS so that the runs started with it
 * have taken theirs. Leadership moves only when a leader's engine stops.
 */
async function leaderLast(cluster: Cluster, clusterId: string, nodeId: string, name: string, log: (line: string) => void): Promise<void> {
    let said = false;
    if ((await cluster.nodes()).find((n) => n.ID === nodeId)?.ManagerStatus !== "Leader") return;
    await sleep(LEADER_SETTLE_SECONDS);
    for (;;) {
        const busy = await othersBusy(cluster, clusterId, nodeId);
        if (!busy) return;
        if (!said) log(`${name} is its cluster's leader: it goes after ${busy} (one election)`);
        said = true;
        await sleep(POLL_SECONDS);
    }
}

/** When NODE_ID is its cluster's leader and other managers of it have a run here, their hostnames. */
async function othersBusy(cluster: Cluster, clusterId: string, nodeId: string): Promise<string | undefined> {
    const nodes = await cluster.nodes();
    if (nodes.find((n) => n.ID === nodeId)?.ManagerStatus !== "Leader") return undefined;
    const busy: string[] = [];
    for (const n of nodes.filter((x) => isManagerRow(x) && x.ID !== nodeId)) {
        if (await isHeld(`present-${clusterId}-${n.ID}`)) busy.push(n.Hostname);
    }
    return busy.length > 0 ? busy.join(", ") : undefined;
}
