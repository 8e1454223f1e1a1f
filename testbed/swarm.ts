/**
 * A Docker Swarm of test hosts, and a watcher of it. The hosts run Debian's Docker on the test bed's
 * cloud (they reach one another): formSwarm() makes the first MANAGERS of them its managers and the
 * rest its workers, imports the busybox image on every node (SERVICE_IMAGE) and runs two services without
 * published ports (no IPVS here): `web`, 4 replicas, and `mon`, global.
 *
 * The Watcher samples the cluster every 0.5 s while a rollout runs, from each manager in turn (one
 * long SSH session per manager runs the sampling loop; whichever answers gives the sample): the
 * leader, the managers reachable, every node's status and availability, and the services' running
 * and desired counts (the replicated service's: its tasks that run and are meant to). Its assertions are the rollout's promises to a Swarm.
 */
import * as assert from "node:assert/strict";
import { ChildProcess, spawn } from "node:child_process";
import { HOST_BUSYBOX_TARBALL, TestHost, ssh, sshOptions } from "./testbed";

export const REPLICATED = "web";
export const GLOBAL = "mon";
export const REPLICAS = 4;
/**
 * The services' image, imported on every node. A Swarm node tries to pull a task's image before
 * each start, and goes on with its own copy when the pull fails; a name on Docker Hub would have
 * each start wait ~20 s for the test bed's unanswered DNS (a task start, a drain and a node's
 * return all took 21 s), where a real cluster's registry answers in well under a second. A
 * registry name on the node's loopback, where nothing listens, is refused at once.
 */
export const SERVICE_IMAGE = "127.0.0.1:5000/forklift-test/busybox:local";

function sh(host: TestHost, command: string): string {
    const r = ssh(host, command);
    if (r.code !== 0) throw new Error(`${host.name}: \`${command}\` exited ${r.code}: ${r.stderr.trim()}`);
    return r.stdout.trim();
}

/** Forms the Swarm (the first MANAGERS hosts managers), with the two services converged. */
export async function formSwarm(hosts: TestHost[], managers: number): Promise<void> {
    const [first, ...rest] = hosts;
    sh(first, `docker swarm init --advertise-addr ${first.address} >/dev/null`);
    const token = (role: string) => sh(first, `docker swarm join-token -q ${role}`);
    const tokens = { manager: token("manager"), worker: token("worker") };
    for (const [i, h] of rest.entries()) {
        sh(h, `docker swarm join --advertise-addr ${h.address} --token ${i + 1 < managers ? tokens.manager : tokens.worker} ${first.address}:2377 >/dev/null`);
    }
    for (const h of hosts) sh(h, `docker image inspect ${SERVICE_IMAGE} >/dev/null 2>&1 || docker import ${HOST_BUSYBOX_TARBALL} ${SERVICE_IMAGE} >/dev/null`);
    const service = (name: string, mode: string) => `docker service create -d --name ${name} ${mode} --no-resolve-image --endpoint-mode dnsrr --stop-grace-period 2s ${SERVICE_IMAGE} /bin/busybox sleep 1000000 >/dev/null`;
    sh(first, service(REPLICATED, `--replicas ${REPLICAS}`));
    sh(first, service(GLOBAL, "--mode global"));
    await waitConverged(first, 120);
}

/** Waits until every service of the cluster (as MANAGER sees it) runs all it should. */
export async function waitConverged(manager: TestHost, seconds: number): Promise<void> {
    const deadline = Date.now() + seconds * 1000;
    let last = "";
    for (;;) {
        const r = ssh(manager, "docker service ls --format '{{.Name}} {{.Replicas}}'");
        last = r.stdout.trim();
        const rows = last.split("\n").map((l) => /^\S+ (\d+)\/(\d+)/.exec(l));
        if (r.code === 0 && rows.length >= 2 && rows.every((m) => m && m[1] === m[2])) return;
        if (Date.now() > deadline) throw new Error(`the services did not converge within ${seconds} s: ${last}`);
        await new Promise((res) => setTimeout(res, 500));
    }
}

/** One look at the cluster. */
export interface Sample {
    /** ms since the epoch, as the manager's clock said */
    at: number;
    by: string;
    leader: boolean;
    /** managers Leader or Reachable, and all managers */
    reachable: number;
    managers: number;
    /** hostname → "Status Availability" */
    nodes: Record<string, { status: string; availability: string; manager?: string }>;
    /** service → [running, desired] */
    services: Record<string, [number, number]>;
    /** hostname → the replicated service's tasks running there */
    tasksOn: Record<string, number>;
    /** every replicated service → its tasks that run and are meant to */
    running: Record<string, number>;
}

// One sample: a start line with the time, node rows, service rows, an end line. A manager whose
// daemon is down prints its time and no rows (docker fails): such a sample is left out.
const LOOP = String.raw`while :; do
  t=$(date +%s%3N)
  n=$(docker node ls --format '{{.Hostname}} {{.Status}} {{.Availability}} {{.ManagerStatus}}' 2>/dev/null) &&
  s=$(docker service ls --format '{{.Name}} {{.Replicas}}' 2>/dev/null) &&
  r=$(docker service ps $(docker service ls -q --filter mode=replicated) --filter desired-state=running --format 'T {{.Name}} {{.Node}} {{.CurrentState}}' 2>/dev/null) &&
  printf 'S %s\n%s\n--\n%s\n%s\nE\n' "$t" "$n" "$s" "$r"
  sleep 0.5
done`;

export class Watcher {
    readonly samples: Sample[] = [];
    private readonly children: ChildProcess[] = [];

    constructor(private readonly managers: TestHost[]) {}

    /**
     * Starts sampling from every manager; resolves once each has given a sample, so that what
     * runs next is watched from its start (the first node of a rollout can be drained and
     * stopped within a second or two, before a loop that is still logging in samples anything).
     */
    async start(): Promise<void> {
        for (const m of this.managers) this.follow(m);
        const deadline = Date.now() + 60_000;
        const silent = () => this.managers.filter((m) => !this.samples.some((s) => s.by === m.name));
        while (silent().length > 0) {
            if (Date.now() > deadline) {
                const names = silent().map((m) => m.name).join(", ");
                this.stop();
                throw new Error(`the watcher got no sample from ${names} within 60 s`);
            }
            await new Promise((r) => setTimeout(r, 100));
        }
    }

    // (while a manager's engine restarts, its loop's docker calls fail and its samples are left
    // out: the other managers' samples cover that time)
    private follow(m: TestHost): void {
        const child = spawn("ssh", [...sshOptions(m), "-p", String(m.port), `${m.user}@${m.address}`, "bash -s"], { stdio: ["pipe", "pipe", "ignore"] });
        this.children.push(child);
        child.stdin!.end(`${LOOP}\n`);
        let buffer = "";
        child.stdout!.on("data", (d: Buffer) => {
            buffer += d.toString("utf8");
            let end: number;
            while ((end = buffer.indexOf("\nE\n")) >= 0) {
                const block = buffer.slice(0, end);
                buffer = buffer.slice(end + 3);
                const sample = parse(block, m.name);
                if (sample) this.samples.push(sample);
            }
        });
    }

    stop(): void {
        for (const c of this.children) c.kill("SIGKILL");
        this.samples.sort((a, b) => a.at - b.at);
    }

    /**
     * Stops once a sample taken after this call has come in (or after 10 s): the last change of
     * what it watched (a node's availability given back right before the rollout returned) is then
     * in a sample.
     */
    async finish(): Promise<void> {
        const since = Date.now();
        const deadline = since + 10_000;
        while (!this.samples.some((s) => s.at > since) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
        this.stop();
    }
}

function parse(block: string, by: string): Sample | undefined {
    const lines = block.split("\n");
    const head = /^S (\d+)$/.exec(lines[0] ?? "");
    const sep = lines.indexOf("--");
    if (!head || sep < 0) return undefined;
    const sample: Sample = { at: Number(head[1]), by, leader: false, reachable: 0, managers: 0, nodes: {}, services: {}, tasksOn: {}, running: {} };
    for (const l of lines.slice(1, sep)) {
        const [hostname, status, availability, manager] = l.split(" ");
        if (!hostname) continue;
        sample.nodes[hostname] = { status, availability, manager };
        if (manager) {
            sample.managers++;
            if (manager === "Leader" || manager === "Reachable") sample.reachable++;
            if (manager === "Leader") sample.leader = true;
        }
    }
    for (const l of lines.slice(sep + 1)) {
        const t = /^T (\S+)\.\d+ (\S+) (\S+)/.exec(l);
        if (t) {
            const [, service, node, state] = t;
            if (state !== "Running") continue;
            sample.running[service] = (sample.running[service] ?? 0) + 1;
            if (service === REPLICATED) sample.tasksOn[node] = (sample.tasksOn[node] ?? 0) + 1;
            continue;
        }
        const m = /^(\S+) (\d+)\/(\d+)/.exec(l);
        if (m) sample.services[m[1]] = [Number(m[2]), Number(m[3])];
    }
    // the replicated services' tasks that run and are meant to (service ls counts one being stopped)
    if (!sample.services[REPLICATED]) return undefined;
    for (const [name, counts] of Object.entries(sample.services)) if (name !== GLOBAL) counts[0] = sample.running[name] ?? 0;
    return sample;
}

/** When HOST's engine stopped since SINCE (ms since the epoch), from its journal: systemd's "Stopping" lines. */
export function engineStops(host: TestHost, since: number): number[] {
    const out = ssh(host, `journalctl -u docker.service -o short-unix --no-pager --since @${Math.floor(since / 1000)} | grep -E 'Stopping (docker\\.service|Docker Application Container Engine)' || true`).stdout;
    return out
        .split("\n")
        .filter(Boolean)
        .map((l) => Math.round(Number(l.split(" ")[0]) * 1000));
}

/** A node's availability as the cluster has it now (active, drain, pause). */
export function availabilityOf(manager: TestHost, node: string): string {
    return sh(manager, `docker node inspect ${node} --format '{{.Spec.Availability}}'`);
}

/**
 * The rollout's promises to the cluster, over the watcher's samples. STOPS: when each node's
 * engine stopped (engineStops); AVAILABILITY: each node's before the rollout.
 * - a majority of the managers reachable: no two samples in a row without one (a single sample
 *   can be a new leader's first view, before it has heard from a follower that voted for it; a
 *   cluster that really lost its quorum has no leader, and answers no sample at all);
 * - each node drained (a sample shows it) before each stop of its engine, and back to its earlier
 *   availability at the last sample;
 * - no more of the replicated service down than one node's share: at every sample, at least
 *   REPLICAS minus the most tasks any node that is drained then had running before its drain (1
 *   when none is drained: the scheduler may have put two on one node, and a drain stops both).
 * Returns the lowest count of the replicated service's tasks running at any sample.
 */
export function assertSwarmKept(samples: Sample[], stops: Record<string, number[]>, availability: Record<string, string>): { minReplicas: number } {
    assert.ok(samples.length > 10, `only ${samples.length} samples`);
    const show = (s: Sample) =>
        `${new Date(s.at).toISOString()} ${s.reachable}/${s.managers} by ${s.by}: ${Object.entries(s.nodes)
            .map(([n, v]) => `${n} ${v.status} ${v.availability} ${v.manager || "-"} ${s.tasksOn[n] ?? 0}`)
            .join(", ")}`;
    const noMajority = (s: Sample) => s.reachable <= s.managers / 2;
    const lasting = samples.filter((s, i) => noMajority(s) && i + 1 < samples.length && noMajority(samples[i + 1]));
    const around = (t: number) => samples.filter((s) => Math.abs(s.at - t) < 8000).map(show);
    const stopTimes = Object.entries(stops).map(([n, t]) => `${n} stopped ${t.map((x) => new Date(x).toISOString()).join(" ")}`);
    assert.deepEqual(lasting.map(show), [], `samples in a row without a majority of reachable managers; around the first:\n${lasting.length ? around(lasting[0].at).join("\n") : ""}\n${stopTimes.join("\n")}`);
    for (const [n, times] of Object.entries(stops)) {
        assert.ok(times.length > 0, `${n}'s engine was not restarted`);
        for (const t of times) {
            const before = samples.filter((s) => s.at <= t && s.nodes[n]);
            assert.ok(before.some((s) => s.nodes[n].availability === "Drain"), `${n} was not seen drained before its engine stopped at ${new Date(t).toISOString()}`);
        }
        const last = [...samples].reverse().find((s) => s.nodes[n]);
        assert.equal(last?.nodes[n].availability.toLowerCase(), availability[n], `${n} is back to its availability`);
    }
    // each node's share: its running tasks at the last sample before it was seen drained. A sample
    // reads the nodes before the tasks, so a drain that falls between the two shows the node
    // Active with its tasks already stopped: a node counts as drained in a sample when that
    // manager's next sample shows it drained too.
    const next = new Map<Sample, Sample>();
    const lastBy = new Map<string, Sample>();
    for (const s of samples) {
        const prev = lastBy.get(s.by);
        if (prev) next.set(prev, s);
        lastBy.set(s.by, s);
    }
    const drained = (s: Sample, n: string) => s.nodes[n]?.availability === "Drain" || next.get(s)?.nodes[n]?.availability === "Drain";
    const seen: Record<string, number> = {};
    const share: Record<string, number> = {};
    let minReplicas = REPLICAS;
    for (const s of samples) {
        let most = 1;
        for (const n of Object.keys(s.nodes)) {
            if (drained(s, n)) {
                share[n] ??= seen[n] ?? 1;
                most = Math.max(most, share[n]);
            } else {
                delete share[n];
                seen[n] = s.tasksOn[n] ?? 0;
            }
        }
        const running = s.services[REPLICATED]?.[0] ?? REPLICAS;
        minReplicas = Math.min(minReplicas, running);
        assert.ok(running >= REPLICAS - most, `${REPLICATED} fell to ${running} of ${REPLICAS} running, more than one node's share (${most}) down: ${show(s)}\naround it:\n${around(s.at).join("\n")}`);
    }
    return { minReplicas };
}

/** The leader's engine stopped after every other manager's (STOPS as engineStops gives them): one election. */
export function assertLeaderLast(stops: Record<string, number[]>, leader: string, managers: string[]): void {
    const last = Math.max(...managers.filter((m) => m !== leader).flatMap((m) => stops[m] ?? []));
    for (const t of stops[leader] ?? []) {
        assert.ok(t > last, `the leader ${leader} stopped at ${new Date(t).toISOString()}, before another manager (last at ${new Date(last).toISOString()})`);
    }
    assert.ok((stops[leader] ?? []).length > 0, `the leader ${leader} was not restarted`);
}

/**
 * At no sample were more than MAX nodes drained or paused by the rollout (a node the operator had
 * drained or paused before, as AVAILABILITY says, is not counted).
 */
export function assertDrainedAtMost(samples: Sample[], max: number, availability: Record<string, string>): void {
    for (const s of samples) {
        const away = Object.entries(s.nodes).filter(([n, v]) => v.availability !== "Active" && availability[n] === "active").map(([n]) => n);
        assert.ok(away.length <= max, `${away.length} nodes drained or paused at once (${away.join(", ")}), more than ${max}, at ${new Date(s.at).toISOString()} by ${s.by}`);
    }
}

/**
 * No replicated service fell below AT_LEAST (service → count) at any sample where it is listed, and
 * none but those in ACCEPTED (swarmAcceptDowntime) ever had no running task.
 */
export function assertServicesKept(samples: Sample[], atLeast: Record<string, number>, accepted: string[] = []): void {
    for (const s of samples) {
        for (const [name, [running, desired]] of Object.entries(s.services)) {
            if (name === GLOBAL || desired === 0) continue;
            if (!accepted.includes(name)) assert.ok(running > 0, `${name} had no running task at ${new Date(s.at).toISOString()} (by ${s.by})`);
            if (atLeast[name] !== undefined) assert.ok(running >= atLeast[name], `${name} ran ${running}, below ${atLeast[name]}, at ${new Date(s.at).toISOString()} (by ${s.by})`);
        }
    }
}
