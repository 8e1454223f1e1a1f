/**
 * The input contract of the providers' resources, enforced by program-harness.ts so that CI, which
 * cannot run the providers, fails where a user's `pulumi preview` would: an input the provider does
 * not know (mocks take anything) is refused. What each resource type knows is read from the
 * provider's SDK as installed (node_modules/@pulumi/<package>), which is generated from the
 * provider's schema: the lists follow a version bump, nothing is copied by hand.
 */
import { existsSync, readFileSync } from "node:fs";
import * as path from "node:path";

const NODE_MODULES = path.join(__dirname, "..", "..", "node_modules");

/**
 * The SDK module of resource type TYPE (`pkg:module[/file]:Name`): node_modules/@pulumi/pkg/module/
 * file.js (the package's root for module "index"), the file named after the resource (camelCase)
 * where the token does not name it.
 */
export function sdkModuleOf(type: string): string | undefined {
    const m = /^([a-z0-9-]+):([A-Za-z0-9]+)(?:\/([A-Za-z0-9]+))?:([A-Za-z0-9]+)$/.exec(type);
    if (!m) return undefined;
    const [, pkg, mod, file, name] = m;
    return path.join(NODE_MODULES, "@pulumi", pkg, mod === "index" ? "" : mod, `${file ?? name[0].toLowerCase() + name.slice(1)}.js`);
}

const known = new Map<string, Set<string> | undefined>();

/**
 * The inputs the SDK of TYPE sends (its `resourceInputs["x"] = …args?.x…` lines, outputs left out);
 * undefined where TYPE is not a provider resource of an installed SDK (a component of forklift's).
 */
export function knownInputs(type: string): Set<string> | undefined {
    if (known.has(type)) return known.get(type);
    const file = sdkModuleOf(type);
    let inputs: Set<string> | undefined;
    if (file && existsSync(file)) {
        const js = readFileSync(file, "utf8");
        if (!js.includes(`__pulumiType = '${type}'`)) throw new Error(`${file} is not the SDK module of ${type} (no __pulumiType '${type}' in it)`);
        inputs = new Set([...js.matchAll(/resourceInputs\["(\w+)"\] = [^;\n]*\bargs\?\.\1\b/g)].map((x) => x[1]));
        if (inputs.size === 0) throw new Error(`${file}: no inputs found for ${type} (has the SDK's generated code changed shape?)`);
    }
    known.set(type, inputs);
    return inputs;
}

/** Throws the provider's error for inputs it would refuse at registration. */
export function checkProviderContract(type: string, name: string, inputs: Record<string, unknown>): void {
    const knows = knownInputs(type);
    if (!knows) return;
    for (const prop of Object.keys(inputs)) {
        if (!knows.has(prop)) throw new Error(`${type} resource '${name}': unknown input property "${prop}"`);
    }
}
