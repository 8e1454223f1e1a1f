/**
 * The input contract of the real `command` provider (1.2.1) where it differs from what mocks
 * accept, enforced by program-harness.ts so that CI, which cannot run the provider, fails where a
 * user's `pulumi preview` would. Each rule quotes the provider's own error.
 */
import * as pulumi from "@pulumi/pulumi";

/** Inputs that the provider's Check requires to be a known asset or archive, even in a preview. */
const ASSET_INPUTS: Record<string, string[]> = {
    "command:remote:CopyToRemote": ["source"],
};

/** Inputs the provider does not know: a misspelt one would be silently dropped by mocks. */
const KNOWN_INPUTS: Record<string, string[]> = {
    "command:remote:Command": ["connection", "create", "update", "delete", "environment", "stdin", "triggers", "logging", "addPreviousOutputInEnv"],
    "command:local:Command": ["create", "update", "delete", "environment", "stdin", "triggers", "logging", "addPreviousOutputInEnv", "dir", "interpreter", "assetPaths", "archivePaths"],
    "command:remote:CopyToRemote": ["connection", "source", "remotePath", "triggers"],
};

const isAssetOrArchive = (v: unknown) => pulumi.asset.Asset.isInstance(v) || pulumi.asset.Archive.isInstance(v);

/** Throws the provider's error for inputs it would refuse at registration. */
export function checkProviderContract(type: string, name: string, inputs: Record<string, unknown>): void {
    for (const prop of ASSET_INPUTS[type] ?? []) {
        if (!isAssetOrArchive(inputs[prop])) {
            throw new Error(`${type} resource '${name}': property ${prop === "source" ? "asset" : prop} value {<nil>} has a problem: either asset or archive must be set`);
        }
    }
    const known = KNOWN_INPUTS[type];
    if (known) {
        for (const prop of Object.keys(inputs)) {
            if (!known.includes(prop)) throw new Error(`${type} resource '${name}': unknown input property "${prop}"`);
        }
    }
}
