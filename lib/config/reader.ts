/**
 * The reader: typed access to one raw key at a time. It gives a key's value or its default, turns
 * the text the CLI hands over into a string, whole number, boolean or list, runs the key's
 * validator, and, instead of throwing, records a problem line for each bad value and goes on with
 * a stand-in, so that one run finds every problem. Which keys are read, and in what order, is
 * parse.ts's business; a host entry's fields are targets.ts's.
 */

import { problemLine } from "./problems";
import { ConfigKey, DEFAULTS, PROJECT, RawConfig } from "./types";
import { Validator, valid } from "./validators";

export class Reader {
    /** Every problem found so far, as problem lines, in the order found. */
    readonly problems: string[] = [];
    constructor(private readonly raw: RawConfig) {}

    fail(key: string, value: unknown, expected: string): void {
        this.problems.push(problemLine(key, value, expected));
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

/** `f(v)`, or undefined when `v` is: for a key that is optional and passed on transformed. */
export function optional<T, U>(v: T | undefined, f: (v: T) => U): U | undefined {
    return v === undefined ? undefined : f(v);
}
