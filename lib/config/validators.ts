/**
 * Validators: what one string value must look like, and the words a problem line uses when it
 * does not. Each is a `Validator`, `{ expected, test }`, gathered in `valid` by the kind of value
 * (git URL, CIDR, host key, ...); `expected` stands on its own, so a problem line can name it for
 * a value that is missing or not a string too. Also here: `normalizePrivateKey`, the form a valid
 * key is passed on in, and `isOpenCidr`, the CIDRs that need allowOpenSsh.
 */

import { RECIPES } from "./types";

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
    /** An S3 bucket name (the rules S3 and the S3-compatible stores share). */
    bucketName: {
        expected: "an S3 bucket name (3-63 characters: lowercase letters, digits, dots and hyphens)",
        test: (v) => /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(v) && !v.includes(".."),
    },
    httpUrl: {
        expected: "an http:// or https:// URL of the S3 endpoint (no credentials in it), e.g. https://minio.internal:9000",
        test: (v) => /^https?:\/\/[^/@\s]+(\/[^\s@]*)?$/.test(v),
    },
    awsRegion: {
        expected: "a region name such as us-east-1",
        test: (v) => /^[a-z]{2}(-[a-z]+)+-\d+$/.test(v) || /^[a-z0-9-]{2,32}$/.test(v),
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
    /** `docker swarm unlock-key -q`'s answer. */
    swarmUnlockKey: {
        expected: "a Swarm unlock key like SWMKEY-1-... (`docker swarm unlock-key -q` on a manager)",
        test: (v) => /^SWMKEY-1-[A-Za-z0-9+/=]{16,}$/.test(v.trim()),
    },
    /** A Swarm service's name, or * for every service. */
    serviceSelector: {
        expected: "a Swarm service's name, or * for every service",
        test: (v) => v === "*" || /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/.test(v),
    },
    /** A command for bash (healthCheck): a blank one would pass on every host and check nothing. */
    command: {
        expected: "a command (bash, as root on each host), not blank",
        test: (v) => v.trim() !== "",
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
