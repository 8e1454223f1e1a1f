/**
 * What a configuration problem says, and what it never shows. Each problem is one line,
 * `forklift:<key>: got <value>; expected <form>`, with the value as JSON cut at 80 characters and
 * every secret in it replaced (by the key's name, a field's name at any depth, or a PEM private
 * key's text); `ConfigError` carries all the lines of one run, so a bad stack is refused once,
 * naming every bad key.
 */

import { PROJECT } from "./types";

const SECRET_KEYS = new Set<string>(["sshPrivateKey", "swarmUnlockKey"]);
const SECRET_FIELD = /privateKey|password|secret|token/i;

/**
 * The value with every field that holds a secret (by its name, or a PEM private key by its text)
 * replaced, at any depth: an error message shows the value it complains about, and must not show
 * a key's first bytes when it is nested in a host entry.
 */
export function redactSecrets(value: unknown): unknown {
    // (a URL's user and password too: a token in a fork's URL, a store's key in its endpoint)
    if (typeof value === "string") return /PRIVATE KEY/.test(value) ? "(secret value)" : value.replace(/^([a-z][a-z0-9+.-]*:\/\/)[^/@\s]+@/i, "$1(credentials hidden)@");
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

/** The problem line for `key` (a top-level key, or a path in one such as `fleetHosts[0].port`). */
export function problemLine(key: string, value: unknown, expected: string): string {
    const shown = value === undefined ? "nothing" : show(key, value);
    return `${PROJECT}:${key}: got ${shown}; expected ${expected}`;
}

function show(key: string, value: unknown): string {
    if (SECRET_KEYS.has(key) || SECRET_FIELD.test(key)) return "(secret value)";
    const s = JSON.stringify(redactSecrets(value)) ?? String(value);
    return s.length > 80 ? s.slice(0, 77) + "..." : s;
}
