/**
 * Reads the job document of a local command (see jobs.ts) and checks its shape, so that a job
 * the program did not render (a hand-made one, an older forklift's) fails with a message that
 * names the field instead of half-way through a rollout.
 */
import { WaveSize } from "../lib/rollout";
import { ArtifactSource, ArtifactStore, ChecksJob, FleetHostJob, Hop, JOB_VERSION, RemoteHost, RolloutJob, Route, StoreObjectJob, SwarmCheck, SwarmNodeJob } from "../lib/protocol/jobs";

export class InputError extends Error {}

type Json = Record<string, unknown>;

function obj(v: unknown, where: string): Json {
    if (typeof v !== "object" || v === null || Array.isArray(v)) throw new InputError(`${where}: expected an object`);
    return v as Json;
}
function str(o: Json, key: string, where: string, optional = false): string {
    const v = o[key];
    if (v === undefined && optional) return undefined as unknown as string;
    if (typeof v !== "string" || (v === "" && !optional)) throw new InputError(`${where}.${key}: expected a non-empty string`);
    return v;
}
function num(o: Json, key: string, where: string): number {
    const v = o[key];
    if (typeof v !== "number" || !Number.isInteger(v) || v <= 0) throw new InputError(`${where}.${key}: expected a positive whole number`);
    return v;
}
function bool(o: Json, key: string, where: string): boolean {
    if (typeof o[key] !== "boolean") throw new InputError(`${where}.${key}: expected true or false`);
    return o[key] as boolean;
}

/** O without its undefined fields: a job reads back as it was written. */
function compact<T extends object>(o: T): T {
    return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
}

function hop(v: unknown, where: string): Hop {
    const o = obj(v, where);
    return compact({
        address: str(o, "address", where),
        port: num(o, "port", where),
        user: str(o, "user", where),
        hostKey: str(o, "hostKey", where, true),
        privateKey: str(o, "privateKey", where, true),
    });
}

function route(v: unknown, where: string): Route {
    const o = obj(v, where);
    return compact({ ...hop(o, where), proxy: o.proxy === undefined ? undefined : hop(o.proxy, `${where}.proxy`), connectTimeout: num(o, "connectTimeout", where) });
}

function remoteHost(v: unknown, where: string): RemoteHost {
    const o = obj(v, where);
    return { name: str(o, "name", where), route: route(o.route, `${where}.route`) };
}

function store(v: unknown, where: string): ArtifactStore {
    const o = obj(v, where);
    if (o.type === "s3") {
        return compact({
            type: "s3" as const,
            endpoint: str(o, "endpoint", where, true),
            bucket: str(o, "bucket", where),
            region: str(o, "region", where),
            key: str(o, "key", where),
            pathStyle: bool(o, "pathStyle", where),
        });
    }
    throw new InputError(`${where}.type: expected "s3"`);
}

function artifact(v: unknown, where: string): ArtifactSource {
    const o = obj(v, where);
    const sha256 = str(o, "sha256", where);
    if (!/^[0-9a-f]{64}$/.test(sha256)) throw new InputError(`${where}.sha256: expected a sha256 (64 hex digits)`);
    return compact({
        sha256,
        path: str(o, "path", where),
        builder: remoteHost(o.builder, `${where}.builder`),
        cacheDir: str(o, "cacheDir", where),
        store: o.store === undefined ? undefined : store(o.store, `${where}.store`),
    });
}

function commandHost(v: unknown, where: string): RemoteHost & { command: string } {
    return { ...remoteHost(v, where), command: str(obj(v, where), "command", where) };
}

function list(o: Json, key: string, where: string): unknown[] {
    if (!Array.isArray(o[key])) throw new InputError(`${where}.${key}: expected a list`);
    return o[key] as unknown[];
}

/** A list of wave sizes (counts, or percentages like "25%"); absent in an older job. */
function waves(o: Json, key: string, where: string): WaveSize[] | undefined {
    if (o[key] === undefined) return undefined;
    return list(o, key, where).map((w, i) => waveSizeOf(w, `${where}.${key}[${i}]`));
}

function waveSizeOf(w: unknown, where: string): WaveSize {
    if (typeof w === "number" && Number.isInteger(w) && w >= 0) return w;
    if (typeof w === "string" && /^\d{1,3}%$/.test(w)) return w as WaveSize;
    throw new InputError(`${where}: expected a number of hosts or a percentage like "25%"`);
}

function swarmCheck(v: unknown, where: string): SwarmCheck {
    const o = obj(v, where);
    const w = waves(o, "waves", where);
    return {
        batchSize: num(o, "batchSize", where),
        ...(w ? { waves: w } : {}),
        allowTwoManagers: bool(o, "allowTwoManagers", where),
        liveRestore: bool(o, "liveRestore", where),
        managers: list(o, "managers", where).map((m, i) => {
            if (typeof m !== "string" || !m) throw new InputError(`${where}.managers[${i}]: expected a host name`);
            return m;
        }),
        probes: list(o, "probes", where).map((p, i) => commandHost(p, `${where}.probes[${i}]`)),
        stackId: o.stackId === undefined ? "" : (str(o, "stackId", where, true) ?? ""),
        ...(o.unlockKey === undefined ? {} : { unlockKey: str(o, "unlockKey", where) }),
        moveLocalData: serviceNames(o, "moveLocalData", where),
    };
}

/** A list of service names (or "*"), [] where an older job has none. */
function serviceNames(o: Json, key: string, where: string): string[] {
    if (o[key] === undefined) return [];
    return list(o, key, where).map((s, i) => {
        if (typeof s !== "string" || !s) throw new InputError(`${where}.${key}[${i}]: expected a service name`);
        return s;
    });
}

/** A whole number of at least 0, DEFAULT where an older job has none. */
function count(o: Json, key: string, where: string, fallback: number): number {
    const v = o[key] ?? fallback;
    if (typeof v !== "number" || !Number.isInteger(v) || v < 0) throw new InputError(`${where}.${key}: expected a whole number`);
    return v;
}

function swarmNode(v: unknown, where: string): SwarmNodeJob {
    const o = obj(v, where);
    return {
        managers: list(o, "managers", where).map((m, i) => remoteHost(m, `${where}.managers[${i}]`)),
        drainTimeout: num(o, "drainTimeout", where),
        nodeTimeout: num(o, "nodeTimeout", where),
        allowTwoManagers: bool(o, "allowTwoManagers", where),
        stackId: o.stackId === undefined ? "" : (str(o, "stackId", where, true) ?? ""),
        maxDrained: Math.max(1, count(o, "maxDrained", where, 1)),
        acceptDowntime: serviceNames(o, "acceptDowntime", where),
        moveLocalData: serviceNames(o, "moveLocalData", where),
        surge: count(o, "surge", where, 0),
        ...(o.unlockKey === undefined ? {} : { unlockKey: str(o, "unlockKey", where) }),
    };
}

function versioned(text: string): Json {
    let doc: unknown;
    try {
        doc = JSON.parse(text);
    } catch (e) {
        throw new InputError(`stdin is not a JSON document: ${(e as Error).message}`);
    }
    const o = obj(doc, "job");
    if (o.v !== JOB_VERSION) throw new InputError(`job.v: expected ${JOB_VERSION}, got ${JSON.stringify(o.v)} (a job from another forklift version)`);
    return o;
}

/** The document of `main.ts check`. */
export function parseChecksJob(text: string): ChecksJob {
    const o = versioned(text);
    const phase = o.phase;
    if (phase !== "precheck" && phase !== "check") throw new InputError(`job.phase: expected "precheck" or "check"`);
    if (!Array.isArray(o.hosts) || o.hosts.length === 0) throw new InputError("job.hosts: expected at least one host");
    return compact({
        v: JOB_VERSION,
        phase,
        insecure: bool(o, "insecure", "job"),
        hosts: o.hosts.map((h, i) => commandHost(h, `job.hosts[${i}]`)),
        artifact: o.artifact === undefined ? undefined : artifact(o.artifact, "job.artifact"),
        swarm: swarmCheck(o.swarm, "job.swarm"),
    });
}

/** The document of `main.ts store-delete`. */
export function parseStoreObjectJob(text: string): StoreObjectJob {
    const o = versioned(text);
    return { v: JOB_VERSION, store: store(o.store, "job.store") };
}

/** The document of `main.ts install` and `main.ts uninstall`. */
export function parseFleetHostJob(text: string): FleetHostJob {
    return fleetHostJob(versioned(text), "job");
}

/** The document of `main.ts rollout`. */
export function parseRolloutJob(text: string): RolloutJob {
    const o = versioned(text);
    const check = obj(o.check, "job.check");
    if (check.phase !== "check") throw new InputError(`job.check.phase: expected "check"`);
    return {
        v: JOB_VERSION,
        check: parseChecksJob(JSON.stringify(check)),
        installs: list(o, "installs", "job").map((j, i) => fleetHostJob(obj(j, `job.installs[${i}]`), `job.installs[${i}]`)),
        maxFailures: waveSizeOf(o.maxFailures ?? 0, "job.maxFailures"),
        soakSeconds: count(o, "soakSeconds", "job", 0),
    };
}

function fleetHostJob(o: Json, where: string): FleetHostJob {
    const optionalCommand = (key: string) => (o[key] === undefined ? {} : { [key]: str(o, key, where) });
    return {
        v: JOB_VERSION,
        insecure: bool(o, "insecure", where),
        host: remoteHost(o.host, `${where}.host`),
        install: str(o, "install", where),
        installDrained: str(o, "installDrained", where),
        uninstall: str(o, "uninstall", where),
        uninstallDrained: str(o, "uninstallDrained", where),
        ...optionalCommand("health"),
        ...optionalCommand("rollback"),
        ...optionalCommand("rollbackDrained"),
        swarm: swarmNode(o.swarm, `${where}.swarm`),
        hostScriptSha256: str(o, "hostScriptSha256", where),
        artifact: artifact(o.artifact, `${where}.artifact`),
    };
}
