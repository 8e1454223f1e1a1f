/**
 * parseConfig: the order in which the keys are read and the `ForkliftConfig` they make. It reads
 * the fork's keys, the hosts, the EC2 settings and the rest through one Reader, then the
 * cross-checks, and throws one `ConfigError` with every problem found, or returns the config.
 * Also here: the two map-valued keys, `makeVars` and `daemonJson`, which no string validator fits.
 */

import { crossCheck, unknownKeys } from "./cross-check";
import { ConfigError } from "./problems";
import { Reader, optional } from "./reader";
import { readHosts, readTarget } from "./targets";
import { ArtifactSourceConfig, DEFAULTS, ForkConfig, ForkliftConfig, PROJECT, RawConfig, Recipe, SwarmManager } from "./types";
import { WaveSize } from "../rollout";
import { normalizePrivateKey, valid } from "./validators";

/** Parse and validate the raw config map; throws ConfigError naming every bad key. */
export function parseConfig(raw: RawConfig): ForkliftConfig {
    const r = new Reader(raw);
    r.problems.push(...unknownKeys(raw));

    const recipe = r.string("recipe", valid.recipe) as Recipe;
    const fork: ForkConfig = {
        recipe: recipe ?? "docker-ce-packaging",
        repo: r.requireString("forkRepo", valid.gitUrl),
        ref: r.requireString("forkRef", valid.gitRef),
        cliRepo: r.string("cliRepo", valid.gitUrl),
        cliRef: r.string("cliRef", valid.gitRef),
        packagingRepo: r.string("packagingRepo", valid.gitUrl) ?? DEFAULTS.packagingRepo,
        packagingRef: r.string("packagingRef", valid.gitRef) ?? DEFAULTS.packagingRef,
        version: r.string("version", valid.version),
        makeVars: readMakeVars(r),
    };
    if (fork.recipe !== "docker-ce-packaging") {
        for (const k of ["cliRepo", "cliRef"] as const) {
            if (r.value(k)) r.fail(k, r.value(k), `to be unset: only recipe docker-ce-packaging builds a separate CLI (recipe is ${fork.recipe})`);
        }
    }

    const { builderHost, fleetBastion, fleetHosts, fleetIndex } = readHosts(r);

    const fleetEc2 = {
        count: r.int("fleetCount", 0, 500),
        instanceType: r.string("fleetInstanceType", valid.instanceType) ?? DEFAULTS.fleetInstanceType,
        ami: r.string("fleetAmi", valid.ami),
        volumeGiB: r.int("fleetVolumeGiB", 8, 16384),
    };
    const builderEc2 = {
        instanceType: r.string("builderInstanceType", valid.instanceType) ?? DEFAULTS.builderInstanceType,
        ami: r.string("builderAmi", valid.ami),
        volumeGiB: r.int("builderVolumeGiB", 30, 16384),
        swapGiB: r.int("builderSwapGiB", 0, 64),
    };

    const cfg: ForkliftConfig = {
        fork,
        builderHost,
        fleetBastion,
        builderEc2,
        fleetHosts,
        fleetEc2,
        subnetId: r.string("subnetId", valid.subnetId),
        sshAllowedCidrs: r.stringList("sshAllowedCidrs", valid.cidr),
        allowOpenSsh: r.bool("allowOpenSsh"),
        sshUser: r.string("sshUser", valid.sshUser) ?? DEFAULTS.sshUser,
        sshPrivateKey: optional(r.string("sshPrivateKey", valid.privateKey), normalizePrivateKey),
        batchSize: r.int("batchSize", 1, 1000),
        waves: readWaves(r, raw),
        healthCheck: ((timeoutSeconds) => optional(r.string("healthCheck", valid.command), (command) => ({ command, timeoutSeconds })))(r.int("healthCheckTimeout", 1, 3600)),
        soakSeconds: r.int("soakSeconds", 0, 86400),
        maxFailures: readMaxFailures(r),
        installDir: r.string("installDir", valid.absPath) ?? DEFAULTS.installDir,
        daemonJson: r.bool("manageDaemonJson") ? readDaemonJson(r) : null,
        swarm: {
            managers: readSwarmManagers(r),
            drainTimeout: r.int("swarmDrainTimeout", 10, 86400),
            nodeTimeout: r.int("swarmNodeTimeout", 10, 3600),
            allowTwoManagers: r.bool("swarmAllowTwoManagers"),
            unlockKey: r.string("swarmUnlockKey", valid.swarmUnlockKey),
            maxDrained: r.int("swarmMaxDrained", 1, 100),
            acceptDowntime: r.stringList("swarmAcceptDowntime", valid.serviceSelector),
            moveLocalData: r.stringList("swarmMoveLocalData", valid.serviceSelector),
            surge: r.int("swarmSurge", 0, 100),
        },
        insecureSkipHostKeyCheck: r.bool("insecureSkipHostKeyCheck"),
        sshConnectTimeout: r.int("sshConnectTimeout", 1, 300),
        artifactCacheDir: r.string("artifactCacheDir") ?? DEFAULTS.artifactCacheDir,
        artifactSource: readArtifactSource(r, builderHost === undefined || fleetEc2.count > 0),
    };

    crossCheck(r, cfg, (h) => fleetIndex.get(h) ?? -1);
    if (r.problems.length > 0) throw new ConfigError(r.problems);
    return cfg;
}

function readMakeVars(r: Reader): Record<string, string> {
    const v = r.value("makeVars");
    if (typeof v !== "object" || v === null || Array.isArray(v)) {
        r.fail("makeVars", v, "a map of MAKE_VARIABLE: value");
        return {};
    }
    const out: Record<string, string> = {};
    for (const [k, x] of Object.entries(v as Record<string, unknown>)) {
        if (!/^[A-Z_][A-Z0-9_]*$/.test(k)) r.fail(`makeVars.${k}`, k, "a make variable name of A-Z, 0-9 and _");
        else if (typeof x !== "string" && typeof x !== "number" && typeof x !== "boolean") r.fail(`makeVars.${k}`, x, "a plain value");
        else if (/[\n\r\0]/.test(String(x))) r.fail(`makeVars.${k}`, x, "a single-line value");
        else out[k] = String(x);
    }
    return out;
}

function readDaemonJson(r: Reader): Record<string, unknown> | null {
    const v = r.value("daemonJson");
    if (typeof v !== "object" || v === null || Array.isArray(v)) {
        r.fail("daemonJson", v, "a map of daemon.json settings (manageDaemonJson: false leaves the host's file alone)");
        return null;
    }
    // docker.service starts dockerd with -H fd:// (socket activation): dockerd refuses to start
    // when daemon.json names hosts too, so every host would roll back
    if ("hosts" in v) {
        r.fail("daemonJson.hosts", (v as Record<string, unknown>).hosts, "no hosts in daemonJson: docker.service passes -H fd:// (socket activation) and dockerd refuses both; add a TCP listener with a systemd drop-in instead");
    }
    return v as Record<string, unknown>;
}

/**
 * swarmManagers: `{name}` alone names a fleet host (checked against the fleet in cross-check.ts);
 * an entry with an address is a machine of its own, like builderHost.
 */
function readSwarmManagers(r: Reader): SwarmManager[] {
    const v = r.value("swarmManagers");
    if (!Array.isArray(v)) {
        r.fail("swarmManagers", v, "a list of {name: FLEET_HOST} entries, or of manager entries like builderHost's");
        return [];
    }
    const out: SwarmManager[] = [];
    v.forEach((entry, i) => {
        const o = entry as Record<string, unknown>;
        if (typeof o === "object" && o !== null && !Array.isArray(o) && Object.keys(o).length === 1 && typeof o.name === "string") {
            out.push({ fleetHost: o.name });
            return;
        }
        const t = readTarget(r, `swarmManagers[${i}]`, entry, true);
        if (t) out.push({ external: t });
    });
    return out;
}

/**
 * artifactSource: `{}` is a bucket forklift creates when it LAUNCHES anything (its instances reach
 * S3 in their region), else the relay through the machine of `pulumi up`; `s3` a store the user
 * runs.
 */
function readArtifactSource(r: Reader, launches: boolean): ArtifactSourceConfig {
    const v = r.value("artifactSource");
    const expected = "{} (the default), or {type: relay | bucket | s3, ...}";
    if (typeof v !== "object" || v === null || Array.isArray(v)) {
        r.fail("artifactSource", v, expected);
        return { type: "relay" };
    }
    const o = v as Record<string, unknown>;
    const type = o.type ?? (launches ? "bucket" : "relay");
    const allowed: Record<string, string[]> = { relay: [], bucket: [], s3: ["endpoint", "bucket", "region", "prefix", "pathStyle"] };
    if (typeof type !== "string" || !(type in allowed)) {
        r.fail("artifactSource.type", o.type, "relay, bucket or s3");
        return { type: "relay" };
    }
    for (const k of Object.keys(o)) {
        if (k !== "type" && !allowed[type].includes(k)) r.fail(`artifactSource.${k}`, o[k], `no such field for type ${type} (known: ${allowed[type].join(", ") || "none"})`);
    }
    switch (type) {
        case "relay":
        case "bucket":
            return { type };
        default: {
            const bucket = r.checked("artifactSource.bucket", o.bucket, valid.bucketName) ?? "";
            const endpoint = o.endpoint === undefined ? undefined : r.checked("artifactSource.endpoint", o.endpoint, valid.httpUrl);
            const region = o.region === undefined ? "us-east-1" : (r.checked("artifactSource.region", o.region, valid.awsRegion) ?? "us-east-1");
            const prefix = o.prefix === undefined ? "forklift/" : typeof o.prefix === "string" && /^[A-Za-z0-9!_.*'()\/-]*$/.test(o.prefix) ? o.prefix : (r.fail("artifactSource.prefix", o.prefix, "an object key prefix of letters, digits and !_.*'()/-"), "forklift/");
            // path-style by default where the store is the user's own (MinIO, Ceph: no bucket DNS names)
            let pathStyle = endpoint !== undefined;
            if (o.pathStyle === true || o.pathStyle === "true") pathStyle = true;
            else if (o.pathStyle === false || o.pathStyle === "false") pathStyle = false;
            else if (o.pathStyle !== undefined) r.fail("artifactSource.pathStyle", o.pathStyle, "true or false");
            return { type: "s3", endpoint, bucket, region, prefix, pathStyle };
        }
    }
}

/** A count of hosts (whole, at least MIN) or a percentage from 1% to 100%, as the config gives it. */
function waveSizeOf(v: unknown, min: number): WaveSize | undefined {
    if (typeof v === "number" && Number.isInteger(v) && v >= min) return v;
    if (typeof v !== "string") return undefined;
    if (/^\d+$/.test(v.trim()) && Number(v) >= min) return Number(v);
    const pct = /^(\d{1,3})%$/.exec(v.trim());
    return pct && Number(pct[1]) >= Math.max(min, 1) && Number(pct[1]) <= 100 ? (`${Number(pct[1])}%` as WaveSize) : undefined;
}

/**
 * waves: wave sizes, comma-separated ("1,25%,100%"; a YAML list of them reads the same), the last
 * repeated; batchSize alone where it is empty (refused with it).
 */
function readWaves(r: Reader, raw: RawConfig): WaveSize[] | undefined {
    const v = r.value("waves");
    const items = Array.isArray(v) ? v : typeof v === "string" ? (v.trim() === "" ? [] : v.split(",").map((w) => w.trim())) : typeof v === "number" ? [v] : undefined;
    if (items === undefined) {
        r.fail("waves", v, 'wave sizes, counts or percentages, comma-separated, like "1,25%,100%"');
        return undefined;
    }
    if (items.length === 0) return undefined;
    const out: WaveSize[] = [];
    items.forEach((w, i) => {
        const size = waveSizeOf(w, 1);
        if (size === undefined) r.fail("waves", v, `wave sizes, counts (1 or more) or percentages from 1% to 100%, comma-separated, like "1,25%,100%" (${JSON.stringify(w)}, the ${i + 1}. one, is neither)`);
        else out.push(size);
    });
    // (the CLI hands every key its Pulumi.yaml default: a batchSize of 1 is as good as unset)
    const batch = raw[`${PROJECT}:batchSize`];
    if (batch !== undefined && batch.trim() !== "1") r.fail("waves", v, `to be unset while batchSize is set (${batch}): give the rollout's batches with one of them ("N" is batchSize N)`);
    return out;
}

/** maxFailures: a count (0 or more) or a percentage of the fleet. */
function readMaxFailures(r: Reader): WaveSize {
    const v = r.value("maxFailures");
    const size = waveSizeOf(v, 0);
    if (size === undefined) {
        r.fail("maxFailures", v, 'a number of hosts (0 or more) or a percentage of the fleet like "10%"');
        return 0;
    }
    return size;
}
