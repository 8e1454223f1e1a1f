/**
 * Runs index.ts once under pulumi.runtime.setMocks with the stack values read from stdin, and
 * prints one JSON line: every registered resource (type, name, inputs, dependsOn, deletedWith),
 * every invoke, the stack outputs, or the error that stopped the program, the @pulumi provider SDKs
 * it loaded; and, for the URN guard
 * (urns.test.ts), every resource, components included, with its parent chain and its aliases.
 */
import * as pulumi from "@pulumi/pulumi";
import * as path from "node:path";
import * as assert from "node:assert/strict";
import { MockMonitor } from "@pulumi/pulumi/runtime/mocks";
import { checkProviderContract } from "./provider-contract";
import { parseRolloutJob } from "../../local/input";
import { planWaves } from "../../lib/rollout";
import { mockKeyPair } from "./fixtures";

const resources: { type: string; name: string; inputs: unknown; dependsOn: unknown; deletedWith?: string; deleteBeforeReplace?: boolean }[] = [];
const invokes: { token: string; args: unknown }[] = [];
const names = new Map<pulumi.Resource, string>();

/** One hop of a parent chain: what a URN is made of. */
export interface Identity {
    type: string;
    name: string;
}
/** An `aliases` entry as the program wrote it; `parent: null` is the root stack (rootStackResource). */
export type AliasRecord = string | { name?: string; type?: string; parent?: Identity[] | null; parentUrn?: string };
/** A registered resource's URN-relevant identity: its parents outermost first, the root stack left out. */
export interface UrnRecord extends Identity {
    parents: Identity[];
    aliases?: AliasRecord[];
}
const urns: UrnRecord[] = [];
/** The URNs each registration told the engine to wait for (what the SDK sends, components resolved). */
const dependencies: Record<string, string[]> = {};
/** Components by TYPE::NAME, for FORKLIFT_MOCK_DEPENDENTS. */
const components = new Map<string, pulumi.Resource>();
const identities = new Map<pulumi.Resource, UrnRecord>();
/** Alias parents given as URN outputs (pulumi.createUrn), resolved before the report. */
const aliasParents: Promise<void>[] = [];

// The mock monitor qualifies a type with its parent's last type only, and with the stack's; the
// engine qualifies it with the parent's whole chain and leaves the stack out. URNs built from a
// resource's urn (an alias's old parent, pulumi.createUrn) must come out as the engine forms them.
(MockMonitor.prototype as unknown as { newUrn(parent: string, type: string, name: string): string }).newUrn = function (parent, type, name) {
    const parentType = parent ? parent.split("::")[2] : "";
    const qualified = parentType && parentType !== "pulumi:pulumi:Stack" ? `${parentType}$${type}` : type;
    return `urn:pulumi:${pulumi.getStack()}::${pulumi.getProject()}::${qualified}::${name}`;
};

const BUILD_RESULT = {
    artifact: "/var/lib/forklift-build/k/out/docker-18.03.1-ce.tgz",
    sha256: "b".repeat(64),
    size: 1234,
    version: "18.03.1-ce",
    commit: "c".repeat(40),
    cliCommit: "",
    binaries: ["containerd", "containerd-shim-runc-v2", "docker", "dockerd", "runc"],
    recipe: "docker-ce",
    buildKey: "k",
};

function mockState(type: string, name: string, inputs: any): Record<string, unknown> {
    // in a preview no command has run: their stdout stays unknown
    if (PREVIEW && type.startsWith("command:")) return inputs;
    switch (type) {
        case "tls:index/privateKey:PrivateKey":
            return { ...inputs, ...mockKeyPair(name) };
        case "aws:ec2/instance:Instance":
            return { ...inputs, publicIp: `198.51.100.${resources.length}`, privateIp: "10.0.0.9" };
        case "random:index/randomId:RandomId":
            return { ...inputs, hex: "5eed5eed5eed5eed" };
        case "aws:s3/bucket:Bucket":
            return { ...inputs, bucket: `${inputs.bucketPrefix}0123`, region: "eu-west-1" };
        case "aws:ec2/keyPair:KeyPair":
            return { ...inputs, keyName: `${name}-mock` };
        case "command:remote:Command":
            if (name.endsWith("-build")) return { ...inputs, stdout: `building\n${JSON.stringify(BUILD_RESULT)}\n` };
            return { ...inputs, stdout: "{}" };
        case "command:local:Command":
            if (name.endsWith("-install")) {
                // (local/main.ts install NAME RELEASE)
                const host = String(inputs.create).split(" ")[5] ?? "?";
                return { ...inputs, stdout: JSON.stringify({ host, sha256: BUILD_RESULT.sha256, version: BUILD_RESULT.version, dockerdSha256: "d".repeat(64), dockerService: "active", changed: true }) };
            }
            // FORKLIFT_MOCK_CHECK_STDOUT: what the rollout printed (its plan of the steps, its report);
            // else the plan local/check.ts makes of a fleet in no Swarm: the job's hosts in its waves
            if (name.endsWith("-check")) return { ...inputs, stdout: process.env.FORKLIFT_MOCK_CHECK_STDOUT || plainRollout(inputs.stdin?.[SECRET_SIG] === SECRET_VALUE ? inputs.stdin.value : inputs.stdin) };
            return { ...inputs, stdout: "{}" };
        default:
            return inputs;
    }
}

/** The rollout's document for a fleet in no Swarm: the plan of its job JOB, and no report. */
function plainRollout(job: string): string {
    const j = parseRolloutJob(job);
    return JSON.stringify({ plan: planWaves(j.installs.map((i) => i.host.name), j.check.swarm.waves ?? [j.check.swarm.batchSize]), report: [] });
}

// FORKLIFT_MOCK_PREVIEW=1: run as `pulumi preview` does on a new stack, where nothing has run yet
// and every output the mocks do not state (the build's stdout, say) is unknown.
const PREVIEW = process.env.FORKLIFT_MOCK_PREVIEW === "1";

/** A user's own resource (FORKLIFT_MOCK_DEPENDENTS). */
class Dependent extends pulumi.CustomResource {
    constructor(name: string, opts: pulumi.CustomResourceOptions) {
        super("test:index:Dependent", name, {}, opts);
    }
}

// what each registration asks the engine to wait for: the URNs the SDK resolved its dependsOn to
const mockRegister = (MockMonitor.prototype as any).registerResource;
(MockMonitor.prototype as any).registerResource = function (req: any, callback: any) {
    dependencies[req.getName()] = req.getDependenciesList();
    return mockRegister.call(this, req, callback);
};

pulumi.runtime.setMocks(
    {
        newResource(args) {
            // what the real provider would refuse fails here too (see provider-contract.ts)
            checkProviderContract(args.type, args.name, args.inputs);
            if (args.type !== "pulumi:pulumi:Stack") {
                const rec = resources.find((r) => r.name === args.name && r.type === args.type);
                if (rec) rec.inputs = args.inputs;
            }
            return { id: `${args.name}-id`, state: mockState(args.type, args.name, args.inputs) };
        },
        call(args) {
            invokes.push({ token: args.token, args: args.inputs });
            switch (args.token) {
                case "aws:ec2/getAmi:getAmi":
                    return { id: "ami-0123456789abcdef0" };
                case "aws:ec2/getSubnet:getSubnet":
                    return { id: args.inputs.id, vpcId: "vpc-0123456789abcdef0" };
                case "tls:index/getPublicKey:getPublicKey":
                    return { publicKeyOpenssh: "ssh-ed25519 AAAAmockpublic\n" };
                case "command:local:run":
                    return { stdout: `/cache/${BUILD_RESULT.sha256}.tgz\n`, stderr: "" };
                default:
                    return args.inputs;
            }
        },
    },
    "forklift",
    "test",
    PREVIEW,
);

async function main(): Promise<void> {
    let input = "";
    for await (const chunk of process.stdin) input += chunk;
    const stack = JSON.parse(input) as Record<string, unknown>;
    const config: Record<string, string> = {};
    for (const [k, v] of Object.entries(stack)) config[`forklift:${k}`] = typeof v === "string" ? v : JSON.stringify(v);
    pulumi.runtime.setAllConfig(config, Object.keys(config).filter((k) => /privateKey/i.test(k)));

    let error: string | undefined;
    let outputs: Record<string, unknown> = {};
    try {
        const exported = await pulumi.runtime.runInPulumiStack(async () => {
            pulumi.runtime.registerStackTransformation((t) => {
                names.set(t.resource, t.name);
                if (t.type.startsWith("forklift:")) components.set(`${t.type}::${t.name}`, t.resource);
                recordIdentity(t.resource, t.type, t.name, t.opts);
                // dependsOn may be a promise (the first batch waits for every host's check)
                const deps = depNames(t.opts.dependsOn);
                resources.push({
                    type: t.type,
                    name: t.name,
                    inputs: t.props,
                    dependsOn: deps,
                    deletedWith: t.opts.deletedWith ? (names.get(t.opts.deletedWith) ?? "?") : undefined,
                    deleteBeforeReplace: (t.opts as pulumi.CustomResourceOptions).deleteBeforeReplace,
                });
                return undefined;
            });
            // the program is an async function (as the Pulumi runtime runs it: it awaits what
            // the module exports, called when it is a function)
            const mod = await import(path.join(__dirname, "..", "..", "index.ts"));
            const main = typeof mod === "function" ? mod : mod.default;
            assert.equal(typeof main, "function", "index.ts exports the program as a function");
            const exported = await main();
            // FORKLIFT_MOCK_DEPENDENTS=TYPE::NAME,...: after the program, one resource that depends
            // on each of those components, as a user's own resource would (`dependsOn: [rollout]`)
            for (const component of (process.env.FORKLIFT_MOCK_DEPENDENTS ?? "").split(",").filter(Boolean)) {
                const target = components.get(component);
                assert.ok(target, `no component named ${component}`);
                new Dependent(`dependent-of-${component.split("::")[1]}`, { dependsOn: [target] });
            }
            return exported;
        });
        outputs = await resolve(exported ?? {});
    } catch (e) {
        error = e instanceof Error ? e.message : String(e);
    }
    // let the last mocked registrations land
    await new Promise((r) => setTimeout(r, 50));
    await report(error, outputs);
}

async function report(error: string | undefined, outputs: Record<string, unknown>): Promise<never> {
    await Promise.all(aliasParents).catch((e) => (error ??= e instanceof Error ? e.message : String(e)));
    const custom = resources.filter((r) => !r.type.startsWith("forklift:") && r.type !== "pulumi:pulumi:Stack");
    const plain = await resolve(custom);
    for (let i = 0; i < custom.length; i++) plain[i].redacted = redact(custom[i].inputs);
    // which of the heavy provider SDKs the program loaded (a hosts-mode run needs no EC2 ones)
    const sdks = ["aws", "tls", "random", "command"].filter((sdk) => Object.keys(require.cache).some((f) => f.includes(`${path.sep}@pulumi${path.sep}${sdk}${path.sep}`)));
    // exit only once the (large) line is flushed: a pipe takes it in chunks
    process.stdout.write(JSON.stringify({ resources: plain, invokes, outputs, error, urns, sdks, dependencies }) + "\n", () => process.exit(0));
    return new Promise<never>(() => undefined);
}

// A RunError thrown while the program module loads surfaces as an uncaught error.
process.on("uncaughtException", (e) => void report(e instanceof Error ? e.message : String(e), {}));
process.on("unhandledRejection", (e) => void report(e instanceof Error ? e.message : String(e), {}));

/** Records what the URN of a resource is made of: type, name, the parent chain, and its aliases. */
function recordIdentity(resource: pulumi.Resource, type: string, name: string, opts: pulumi.ResourceOptions): void {
    const chain = (r: pulumi.Resource | undefined): Identity[] | null => {
        const rec = r && identities.get(r);
        return rec ? [...rec.parents, { type: rec.type, name: rec.name }] : null;
    };
    const rec: UrnRecord = { type, name, parents: chain(opts.parent) ?? [] };
    if (opts.aliases?.length) {
        rec.aliases = opts.aliases.map((a): AliasRecord => {
            if (typeof a === "string") return a;
            if (pulumi.Output.isInstance(a) || a instanceof Promise) throw new Error(`${name}: an alias must be a plain value for the URN guard`);
            const spec = a as pulumi.Alias;
            if (spec.stack !== undefined || spec.project !== undefined) throw new Error(`${name}: the URN guard knows no alias to another stack or project`);
            if (pulumi.Output.isInstance(spec.name) || pulumi.Output.isInstance(spec.type)) throw new Error(`${name}: an alias's name and type must be plain strings for the URN guard`);
            const record: Exclude<AliasRecord, string> = {
                ...(spec.name !== undefined ? { name: String(spec.name) } : {}),
                ...(spec.type !== undefined ? { type: String(spec.type) } : {}),
                // a `parent` key that is present but unset (rootStackResource) means "no parent"
                ...(typeof spec.parent === "string"
                    ? { parentUrn: spec.parent }
                    : "parent" in spec && !pulumi.Output.isInstance(spec.parent)
                      ? { parent: chain(spec.parent as pulumi.Resource | undefined) }
                      : {}),
            };
            // an old parent that is gone, given as its URN (pulumi.createUrn(oldName, type, grandparent))
            const parentUrn = spec.parent;
            if (pulumi.Output.isInstance(parentUrn)) {
                aliasParents.push(
                    resolve(parentUrn).then((urn) => {
                        if (typeof urn !== "string" || !urn.startsWith("urn:pulumi:")) throw new Error(`${name}: an alias's parent resolved to ${urn}, not a URN`);
                        record.parentUrn = urn;
                    }),
                );
            }
            return record;
        });
    }
    identities.set(resource, rec);
    urns.push(rec);
}

/** The serialized inputs with every secret replaced by "[secret]": what the state would show in clear. */
function redact(value: any): any {
    if (value && value[SECRET_SIG] === SECRET_VALUE) return "[secret]";
    if (Array.isArray(value)) return value.map(redact);
    if (value && typeof value === "object" && !pulumi.Output.isInstance(value)) {
        return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, redact(v)]));
    }
    return value;
}

// how a secret looks in serialized mock inputs
const SECRET_SIG = "4dabf18193072939515e22adb298388d";
const SECRET_VALUE = "1b47061264138c4ac30d75fd1eb44270";

/**
 * Names of the resources in a dependsOn, which may be a promise or an output of them. An output
 * unknown in a preview gives the resources it comes from, as the SDK then waits for those.
 */
async function depNames(deps: unknown): Promise<string[]> {
    if (deps instanceof Promise) return depNames(await deps);
    if (pulumi.Output.isInstance(deps)) {
        const out = deps as pulumi.Output<unknown> & { isKnown: Promise<boolean>; allResources?: () => Promise<Set<pulumi.Resource>> };
        if (!(await out.isKnown)) return [...((await out.allResources?.()) ?? [])].map((r) => names.get(r) ?? "?").sort();
        return depNames(await new Promise((r) => out.apply(r)));
    }
    return ([] as unknown[]).concat(deps ?? []).map((r) => names.get(r as pulumi.Resource) ?? "?");
}

/** Resolves nested Outputs (secrets unwrapped) into plain JSON. */
async function resolve(value: any): Promise<any> {
    if (value instanceof Promise) return resolve(await value);
    if (pulumi.Output.isInstance(value)) return resolve(await new Promise((r) => pulumi.unsecret(value).apply(r)));
    if (pulumi.asset.Asset.isInstance?.(value)) return { asset: await (value as any).path };
    if (Array.isArray(value)) return Promise.all(value.map(resolve));
    if (value && value[SECRET_SIG] === SECRET_VALUE) return resolve(value.value);
    if (value && typeof value === "object" && !(value instanceof pulumi.Resource)) {
        const out: Record<string, unknown> = {};
        for (const [k, v] of Object.entries(value)) out[k] = await resolve(v);
        return out;
    }
    return value;
}

main();
