/**
 * Hashing helpers. Build and install triggers are hashes of canonical JSON, so the same inputs
 * give the same trigger on every machine and key order in the stack file does not matter.
 */
import { createHash } from "node:crypto";

/** JSON with object keys sorted at every depth; arrays keep their order. */
export function canonicalJson(value: unknown): string {
    if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
    if (value !== null && typeof value === "object") {
        const entries = Object.keys(value as object)
            .sort()
            .filter((k) => (value as Record<string, unknown>)[k] !== undefined)
            .map((k) => `${JSON.stringify(k)}:${canonicalJson((value as Record<string, unknown>)[k])}`);
        return `{${entries.join(",")}}`;
    }
    return JSON.stringify(value) ?? "null";
}

export function sha256(data: string | Buffer): string {
    return createHash("sha256").update(data).digest("hex");
}

/** sha256 of canonicalJson(value): a stable key for a set of inputs. */
export function hashInputs(value: unknown): string {
    return sha256(canonicalJson(value));
}
