/**
 * Stack configuration: the one place where raw `forklift:*` values become a typed, defaulted,
 * validated `ForkliftConfig`. Pure: it takes the raw key/value map (as `pulumi.runtime.allConfig()`
 * returns it) and either returns the whole config or throws one `ConfigError` that lists every
 * problem as `forklift:<key>: got <value>; expected <form>`. Nothing is registered before this runs.
 */

export const PROJECT = "forklift";

export type Recipe = "docker-ce" | "docker-ce-packaging" | "moby";
export const RECIPES: readonly Recipe[] = ["docker-ce", "docker-ce-packaging", "moby"];

/** How to reach one machine over SSH. */
export interface SshTarget {
    /** Name used in resource names and messages; defaults to the address. */
    name: string;
    address: string;
    port: number;
    user: string;
    /** PEM/OpenSSH private key (a secret); absent when `useAgent` is set. */
    privateKey?: string;
    useAgent: boolean;
    /** `ssh-ed25519 AAAA...` style public host key; absent only with insecureSkipHostKeyCheck. */
    hostKey?: string;
    /** One bastion hop. */
    proxy?: Omit<SshTarget, "name" | "proxy">;
}

export interface ForkConfig {
    recipe: Recipe;
    repo: string;
    ref: string;
    cliRepo?: string;
    cliRef?: string;
    packagingRepo: string;
    packagingRef: string;
    version?: string;
    makeVars: Record<string, string>;
}

export interface Ec2Settings {
    instanceType: string;
    ami?: string;
}

export interface ForkliftConfig {
    fork: ForkConfig;
    /** An existing build host; when absent, forklift launches one on EC2. */
    builderHost?: SshTarget;
    builderEc2: Ec2Settings & { volumeGiB: number; swapGiB: number };
    fleetHosts: SshTarget[];
    fleetEc2: Ec2Settings & { count: number; volumeGiB: number };
    /** Bastion for launched fleet instances: they then get no public IP. */
    fleetBastion?: SshTarget;
    subnetId?: string;
    sshAllowedCidrs: string[];
    allowOpenSsh: boolean;
    sshUser: string;
    sshPrivateKey?: string;
    batchSize: number;
    installDir: string;
    /** The managed /etc/docker/daemon.json; null (manageDaemonJson: false) leaves the host's file alone. */
    daemonJson: Record<string, unknown> | null;
    insecureSkipHostKeyCheck: boolean;
    /** Seconds an SSH connection to an existing host may take before the host counts as unreachable. */
    sshConnectTimeout: number;
    artifactCacheDir: string;
}

/**
 * Every key the program reads, with its default (undefined: required). Optional keys default to
 * "" or {} meaning "unset": the CLI treats a key declared in Pulumi.yaml without a default as
 * required, so every optional key needs one there too.
 */
export const DEFAULTS = {
    recipe: "docker-ce-packaging",
    forkRepo: undefined,
    forkRef: undefined,
    cliRepo: "",
    cliRef: "",
    packagingRepo: "https://github.com/docker/docker-ce-packaging.git",
    packagingRef: "master",
    version: "",
    makeVars: {},
    builderHost: {},
    builderInstanceType: "t2.medium",
    builderAmi: "",
    builderVolumeGiB: 50,
    builderSwapGiB: 4,
    fleetHosts: [],
    fleetCount: 0,
    fleetInstanceType: "t3.small",
    fleetAmi: "",
    fleetVolumeGiB: 20,
    fleetBastion: {},
    subnetId: "",
    sshAllowedCidrs: [],
    allowOpenSsh: false,
    sshUser: "ubuntu",
    sshPrivateKey: "",
    batchSize: 1,
    installDir: "/usr/bin",
    daemonJson: { "live-restore": true },
    manageDaemonJson: true,
    insecureSkipHostKeyCheck: false,
    sshConnectTimeout: 10,
    artifactCacheDir: ".forklift/artifacts",
} as const;

export type ConfigKey = keyof typeof DEFAULTS;
export const CONFIG_KEYS = Object.keys(DEFAULTS) as ConfigKey[];
const SECRET_KEYS = new Set<string>(["sshPrivateKey"]);
const SECRET_FIELD = /privateKey|password|secret|token/i;

/**
 * The value with every field that holds a secret (by its name, or a PEM private key by its text)
 * replaced, at any depth: an error message shows the value it complains about, and must not show
 * a key's first bytes when it is nested in a host entry.
 */
export function redactSecrets(value: unknown): unknown {
    if (typeof value === "string") return /PRIVATE KEY/.test(value) ? "(secret value)" : value;
    if (Array.isArray(value)) return value.map(redactSecrets);
    if (value !== null && typeof value === "object") {
        return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, SECRET_FIELD.test(k) ? "(secret value)" : redactSecrets(v)]));
    }
    return value;
}

export class ConfigError extends Error {
    constructor(readonly problems: string[]) {
        super(
            `forklift: invalid stack configuration (nothing was created):\n` +
                problems.map((p) => `  - ${p}`).join("\n"),
        );
        this.name = "ConfigError";
    }
}

// ---- validators: what one string value must look like, and how to say so ----

/**
 * A rule for one string value, and the form a problem line names when a value breaks it
 * (`forklift:<key>: got <value>; expected <expected>`).
 */
export interface Validator {
    /** The good form, as it follows "expected" in a problem line (also for a value that is not a string). */
    readonly expected: string;
    /** true when `v` is good, false when not, or the words for a rule that `expected` does not say. */
    test(v: string): boolean | string;
}

const CIDR4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\/(\d{1,2})$/;

function isIpv6(a: string): boolean {
    const parts = a.split("::");
    if (parts.length > 2) return false;
    const groups = parts.flatMap((p) => (p === "" ? [] : p.split(":")));
    if (groups.some((g) => !/^[0-9a-fA-F]{1,4}$/.test(g))) return false;
    return parts.length === 2 ? groups.length < 8 : groups.length === 8;
}

/** A login name; `example` is the user the key's default or usual value suggests. */
function loginName(example: string): Validator {
    return { expected: `a login name such as ${example}`, test: (v) => /^[a-z_][a-z0-9_-]*$/.test(v) };
}

/** Every validator, by the kind of value it checks. */
export const valid = {
    recipe: {
        expected: `one of ${RECIPES.join(", ")}`,
        test: (v) => (RECIPES as readonly string[]).includes(v),
    },
    gitUrl: {
        expected: "a git URL (https://, ssh://, git://, file:// or user@host:path)",
        test(v) {
            if (/\s/.test(v) || v.startsWith("-")) return false;
            // a token or password in the URL would land in the state, the build log and the artifact
            if (/^(https?|git|file):\/\/[^/]*@/.test(v) || /^[a-z+]+:\/\/[^/@]*:[^/@]*@/i.test(v) || /^[^/@:]*:[^/@]*@[^:/]+:/.test(v)) {
                return "a git URL without credentials (give the build host a deploy key or credential helper instead)";
            }
            if (/^(https?|ssh|git|file):\/\/[^/]*\/?\S*$/.test(v)) return /^(https?|ssh|git):\/\/[^/]+\/\S+/.test(v) || /^file:\/\/\/\S+/.test(v);
            return /^[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:\S+$/.test(v);
        },
    },
    /** `git check-ref-format` rules, plus plain commit ids. */
    gitRef: {
        expected: "a git branch, tag or commit (no spaces, '..', '~', '^', ':', '?', '*', '[', '\\')",
        test(v) {
            if (v === "" || v === "@" || v.startsWith("-") || v.startsWith("/") || v.endsWith("/") || v.endsWith(".")) return false;
            if (/[\s~^:?*[\\\x00-\x1f\x7f]/.test(v) || v.includes("..") || v.includes("@{") || v.includes("//")) return false;
            return !v.split("/").some((c) => c.startsWith(".") || c.endsWith(".lock"));
        },
    },
    version: {
        expected: "a version such as 28.0.1 or 0.0.0-myfork",
        test: (v) => /^[0-9A-Za-z][0-9A-Za-z.+~-]{0,63}$/.test(v),
    },
    instanceType: {
        expected: "an EC2 instance type such as t2.medium",
        test: (v) => /^[a-z][a-z0-9-]*\d[a-z0-9-]*\.(nano|micro|small|medium|large|xlarge|\d+xlarge|metal(-\d+xl)?)$/.test(v),
    },
    ami: {
        expected: "an AMI id such as ami-0123456789abcdef0",
        test: (v) => /^ami-[0-9a-f]{8}([0-9a-f]{9})?$/.test(v),
    },
    subnetId: {
        expected: "a subnet id such as subnet-0123456789abcdef0",
        test: (v) => /^subnet-[0-9a-f]{8}([0-9a-f]{9})?$/.test(v),
    },
    cidr: {
        expected: "a CIDR block such as 203.0.113.7/32 or 2001:db8::/64",
        test(v) {
            const m = CIDR4.exec(v);
            if (m) return m.slice(1, 5).every((o) => Number(o) <= 255) && Number(m[5]) <= 32;
            if (!/^[0-9a-fA-F:]+\/\d{1,3}$/.test(v) || !v.includes(":")) return false;
            const [addr, bits] = v.split("/");
            return Number(bits) <= 128 && isIpv6(addr);
        },
    },
    sshUser: loginName("ubuntu"),
    privateKey: {
        expected: "a PEM or OpenSSH private key (-----BEGIN ... PRIVATE KEY-----)",
        test: (v) =>
            /^-----BEGIN ((RSA|EC|DSA|OPENSSH) )?PRIVATE KEY-----\r?\n[\s\S]+\r?\n-----END ((RSA|EC|DSA|OPENSSH) )?PRIVATE KEY-----\s*$/.test(v.trim() + "\n"),
    },
    hostKey: {
        expected: "a public host key line such as 'ssh-ed25519 AAAAC3Nz...'",
        test: (v) => /^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(256|384|521)) [A-Za-z0-9+/]+={0,3}( \S.*)?$/.test(v.trim()),
    },
    hostAddress: {
        expected: "a host name or IP address",
        test: (v) => /^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$/.test(v) || /^[0-9a-fA-F:]+$/.test(v),
    },
    hostName: {
        expected: "a short name of a-z, 0-9 and -",
        test: (v) => /^[a-z0-9][a-z0-9-]{0,40}$/.test(v),
    },
    hostUser: loginName("root"),
    absPath: {
        expected: "an absolute path like /usr/bin",
        test: (v) => /^\/[A-Za-z0-9._/-]*$/.test(v) && !v.split("/").includes(".."),
    },
    /** Any text, for a key whose value forklift only passes on (artifactCacheDir). */
    nonEmptyString: {
        expected: "a non-empty string",
        test: (v) => v !== "",
    },
} satisfies Record<string, Validator>;

export function isOpenCidr(v: string): boolean {
    return v === "0.0.0.0/0" || v === "::/0";
}

/**
 * A private key as OpenSSH reads it: LF line ends and one final newline. `pulumi config set
 * --secret ... < keyfile` stores the key without its last newline, which the provider's SSH
 * accepts and OpenSSH (the artifact copies) refuses.
 */
export function normalizePrivateKey(v: string): string {
    return v.replace(/\r\n/g, "\n").trim() + "\n";
}

// ---- parsing ----

type Raw = Record<string, string>;

class Reader {
    readonly problems: string[] = [];
    constructor(private readonly raw: Raw) {}

    private show(key: string, value: unknown): string {
        if (SECRET_KEYS.has(key) || SECRET_FIELD.test(key)) return "(secret value)";
        const s = JSON.stringify(redactSecrets(value)) ?? String(value);
        return s.length > 80 ? s.slice(0, 77) + "..." : s;
    }

    fail(key: string, value: unknown, expected: string): void {
        const shown = value === undefined ? "nothing" : this.show(key, value);
        this.problems.push(`${PROJECT}:${key}: got ${shown}; expected ${expected}`);
    }

    has(key: ConfigKey): boolean {
        return this.raw[`${PROJECT}:${key}`] !== undefined;
    }

    /** The value as YAML gave it: strings stay strings, objects/arrays/numbers/bools are parsed. */
    value(key: ConfigKey): unknown {
        const s = this.raw[`${PROJECT}:${key}`];
        if (s === undefined) return DEFAULTS[key];
        if (/^[[{]/.test(s.trim())) {
            try {
                return JSON.parse(s);
            } catch {
                return s;
            }
        }
        return s;
    }

    /** `v` when it is a string that `validator` passes; otherwise a problem for `key`, and undefined. */
    checked(key: string, v: unknown, validator: Validator, notAString = validator.expected): string | undefined {
        const verdict = typeof v === "string" ? validator.test(v) : notAString;
        if (verdict === true) return v as string;
        this.fail(key, v, verdict === false ? validator.expected : verdict);
        return undefined;
    }

    /** An optional string key: undefined when unset or "". */
    string(key: ConfigKey, validator: Validator = valid.nonEmptyString): string | undefined {
        const v = this.value(key);
        if (v === undefined || v === "") return undefined;
        return this.checked(key, v, validator);
    }

    requireString(key: ConfigKey, validator: Validator): string {
        const v = this.value(key);
        if (v === undefined || v === "" || (typeof v === "string" && v.trim() === "")) {
            this.fail(key, v, validator.expected);
            return "";
        }
        return this.string(key, validator) ?? "";
    }

    int(key: ConfigKey, min: number, max: number): number {
        const v = this.value(key);
        const n = typeof v === "number" ? v : typeof v === "string" && /^-?\d+$/.test(v.trim()) ? Number(v) : NaN;
        if (!Number.isInteger(n) || n < min || n > max) {
            this.fail(key, v, `a whole number from ${min} to ${max}`);
            return Number(DEFAULTS[key] ?? min);
        }
        return n;
    }

    bool(key: ConfigKey): boolean {
        const v = this.value(key);
        if (v === true || v === "true") return true;
        if (v === false || v === "false") return false;
        this.fail(key, v, "true or false");
        return false;
    }

    stringList(key: ConfigKey, validator: Validator): string[] {
        const v = this.value(key);
        if (!Array.isArray(v)) {
            this.fail(key, v, "a list of strings");
            return [];
        }
        const out: string[] = [];
        v.forEach((item, i) => {
            const good = this.checked(`${key}[${i}]`, item, validator, "a string");
            if (good !== undefined) out.push(good);
        });
        return out;
    }
}

/** A host entry (fleetHosts[i], builderHost) or a proxy entry. */
function readTarget(r: Reader, key: string, v: unknown, withProxy: boolean): SshTarget | undefined {
    if (typeof v !== "object" || v === null || Array.isArray(v)) {
        r.fail(key, v, "an object with address, user, privateKey (or useAgent: true) and hostKey");
        return undefined;
    }
    const o = v as Record<string, unknown>;
    const allowed = ["name", "address", "port", "user", "privateKey", "useAgent", "hostKey", ...(withProxy ? ["proxy"] : [])];
    for (const k of Object.keys(o)) {
        if (!allowed.includes(k)) r.fail(`${key}.${k}`, o[k], `no such field (known: ${allowed.join(", ")})`);
    }
    let ok = true;
    const str = (field: string, validator: Validator, required: boolean): string | undefined => {
        if (o[field] === undefined && !required) return undefined;
        const good = r.checked(`${key}.${field}`, o[field], validator);
        if (good === undefined) ok = false;
        return good;
    };
    const address = str("address", valid.hostAddress, true);
    const name = str("name", valid.hostName, false);
    const user = str("user", valid.hostUser, false) ?? "root";
    const privateKey = optional(str("privateKey", valid.privateKey, false), normalizePrivateKey);
    const hostKey = str("hostKey", valid.hostKey, false);
    let port = 22;
    if (o.port !== undefined) {
        const p = typeof o.port === "string" && /^\d+$/.test(o.port) ? Number(o.port) : o.port;
        if (typeof p !== "number" || !Number.isInteger(p) || p < 1 || p > 65535) {
            r.fail(`${key}.port`, o.port, "a port number from 1 to 65535");
            ok = false;
        } else port = p;
    }
    let useAgent = false;
    if (o.useAgent !== undefined) {
        if (o.useAgent === true || o.useAgent === "true") useAgent = true;
        else if (!(o.useAgent === false || o.useAgent === "false")) {
            r.fail(`${key}.useAgent`, o.useAgent, "true or false");
            ok = false;
        }
    }
    if (o.privateKey === undefined && !useAgent) {
        r.fail(`${key}.privateKey`, undefined, "a private key (a secret: pulumi config set --secret --path ...), or useAgent: true");
        ok = false;
    }
    let proxy: SshTarget["proxy"];
    if (withProxy && o.proxy !== undefined) {
        const p = readTarget(r, `${key}.proxy`, o.proxy, false);
        if (!p) ok = false;
        else proxy = { address: p.address, port: p.port, user: p.user, privateKey: p.privateKey, useAgent: p.useAgent, hostKey: p.hostKey };
    }
    if (!ok || !address) return undefined;
    return { name: name ?? address.replace(/[^A-Za-z0-9-]/g, "-").toLowerCase(), address, port, user, privateKey, useAgent, hostKey, proxy };
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

/** Parse and validate the raw config map; throws ConfigError naming every bad key. */
export function parseConfig(raw: Raw): ForkliftConfig {
    const r = new Reader(raw);

    for (const fullKey of Object.keys(raw)) {
        if (!fullKey.startsWith(`${PROJECT}:`)) continue;
        const key = fullKey.slice(PROJECT.length + 1);
        if (!(CONFIG_KEYS as string[]).includes(key)) {
            const near = nearestKey(key);
            r.problems.push(`${fullKey}: unknown key${near ? ` (did you mean ${PROJECT}:${near}?)` : ""}; expected one of ${CONFIG_KEYS.join(", ")}`);
        }
    }

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

    const optionalTarget = (key: "builderHost" | "fleetBastion"): SshTarget | undefined => {
        const v = r.value(key);
        const unset = v === undefined || (typeof v === "object" && v !== null && Object.keys(v).length === 0);
        return unset ? undefined : readTarget(r, key, v, false);
    };
    const builderHost = optionalTarget("builderHost");
    const fleetBastion = optionalTarget("fleetBastion");

    const hostsRaw = r.value("fleetHosts");
    const fleetHosts: SshTarget[] = [];
    /** fleetHosts[i] of the stack file for each parsed entry: an invalid entry shifts no index. */
    const fleetIndex = new Map<SshTarget, number>();
    if (!Array.isArray(hostsRaw)) r.fail("fleetHosts", hostsRaw, "a list of host objects");
    else hostsRaw.forEach((h, i) => {
        const t = readTarget(r, `fleetHosts[${i}]`, h, true);
        if (t) {
            fleetHosts.push(t);
            fleetIndex.set(t, i);
        }
    });

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
        installDir: r.string("installDir", valid.absPath) ?? DEFAULTS.installDir,
        daemonJson: r.bool("manageDaemonJson") ? readDaemonJson(r) : null,
        insecureSkipHostKeyCheck: r.bool("insecureSkipHostKeyCheck"),
        sshConnectTimeout: r.int("sshConnectTimeout", 1, 300),
        artifactCacheDir: r.string("artifactCacheDir") ?? DEFAULTS.artifactCacheDir,
    };

    crossCheck(r, cfg, (h) => fleetIndex.get(h) ?? -1);
    if (r.problems.length > 0) throw new ConfigError(r.problems);
    return cfg;
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

/** Rules that involve more than one key. */
function crossCheck(r: Reader, cfg: ForkliftConfig, indexOf: (h: SshTarget) => number): void {
    const fleetSize = cfg.fleetHosts.length + cfg.fleetEc2.count;
    if (fleetSize === 0 && !r.problems.some((p) => p.startsWith(`${PROJECT}:fleet`))) {
        r.fail("fleetHosts", r.value("fleetHosts"), "at least one fleet host (fleetHosts entries or fleetCount > 0)");
    }
    if (fleetSize > 0 && cfg.batchSize > fleetSize) {
        r.fail("batchSize", cfg.batchSize, `a number no larger than the fleet (${fleetSize} hosts)`);
    }

    const seen = new Map<string, string>();
    const names = new Map<string, number>();
    cfg.fleetHosts.forEach((h) => {
        const i = indexOf(h);
        const id = `${h.address.toLowerCase()}:${h.port}`;
        if (seen.has(id)) r.fail(`fleetHosts[${i}].address`, h.address, `an address not already used by ${seen.get(id)}`);
        else seen.set(id, `fleetHosts[${i}]`);
        if (names.has(h.name)) r.fail(`fleetHosts[${i}].name`, h.name, `a name not already used by fleetHosts[${names.get(h.name)}]`);
        else if (launchedFleetNames(cfg.fleetEc2.count).includes(h.name)) {
            r.fail(`fleetHosts[${i}].name`, h.name, `a name other than those of the ${cfg.fleetEc2.count} launched fleet instances (forklift-fleet-N)`);
        } else names.set(h.name, i);
    });

    if (cfg.fleetBastion && cfg.fleetEc2.count === 0) {
        r.fail("fleetBastion", "(set)", "to be unset when fleetCount is 0: it is the bastion of launched fleet instances (existing hosts take a proxy of their own)");
    }
    const launches = cfg.fleetEc2.count > 0 || cfg.builderHost === undefined;
    if (launches) {
        if (cfg.sshAllowedCidrs.length === 0 && r.problems.every((p) => !p.startsWith(`${PROJECT}:sshAllowedCidrs`))) {
            r.fail("sshAllowedCidrs", r.value("sshAllowedCidrs"), "at least one CIDR allowed to reach SSH on launched instances (e.g. your office /32)");
        }
        cfg.sshAllowedCidrs.forEach((c, i) => {
            if (isOpenCidr(c) && !cfg.allowOpenSsh) {
                r.fail(`sshAllowedCidrs[${i}]`, c, "a narrower CIDR; opening SSH to the internet needs allowOpenSsh: true");
            }
        });
    }

    if (!cfg.insecureSkipHostKeyCheck) {
        const targets: [string, SshTarget | SshTarget["proxy"]][] = [];
        cfg.fleetHosts.forEach((h, i) => {
            targets.push([`fleetHosts[${i}]`, h]);
            if (h.proxy) targets.push([`fleetHosts[${i}].proxy`, h.proxy]);
        });
        if (cfg.fleetBastion) targets.push(["fleetBastion", cfg.fleetBastion]);
        if (cfg.builderHost) {
            targets.push(["builderHost", cfg.builderHost]);
            if (cfg.builderHost.proxy) targets.push(["builderHost.proxy", cfg.builderHost.proxy]);
        }
        for (const [key, t] of targets) {
            if (t && !t.hostKey) {
                r.fail(`${key}.hostKey`, undefined, "the host's public SSH key (ssh-keyscan -t ed25519 HOST), or insecureSkipHostKeyCheck: true");
            }
        }
    }
}

/** Names of the fleet instances forklift launches (fleetCount); fleetHosts may not take them. */
export function launchedFleetNames(count: number): string[] {
    return Array.from({ length: count }, (_, i) => `forklift-fleet-${i + 1}`);
}

function optional<T, U>(v: T | undefined, f: (v: T) => U): U | undefined {
    return v === undefined ? undefined : f(v);
}

function nearestKey(key: string): string | undefined {
    let best: [number, string] | undefined;
    for (const k of CONFIG_KEYS) {
        const d = editDistance(key.toLowerCase(), k.toLowerCase());
        if (d <= 3 && (!best || d < best[0])) best = [d, k];
    }
    return best?.[1];
}

function editDistance(a: string, b: string): number {
    const dp = Array.from({ length: b.length + 1 }, (_, j) => j);
    for (let i = 1; i <= a.length; i++) {
        let prev = dp[0];
        dp[0] = i;
        for (let j = 1; j <= b.length; j++) {
            const cur = dp[j];
            dp[j] = Math.min(dp[j] + 1, dp[j - 1] + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
            prev = cur;
        }
    }
    return dp[b.length];
}
