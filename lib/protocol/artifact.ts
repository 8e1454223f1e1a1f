/**
 * scripts/artifact.sh: run locally, in the project directory, by the command provider. It
 * fetches the artifact from the build host into the local cache, copies it to a fleet host and
 * runs forklift-host.sh there (host.ts renders that remote command), or checks the host first.
 */
import { assertEnvName, b64, envPrefix } from "../shell";

/**
 * The local command (scripts/artifact.sh MODE) that brings the release onto one fleet host
 * (`install`), takes it off (`uninstall`), checks the host first (`check`), or checks several
 * hosts at once (`prechecks` while the fork builds, `checks` after). Keys and the remote commands
 * travel on its stdin (artifactStdin, precheckStdin).
 */
export function artifactCommand(mode: "install" | "uninstall" | "check" | "prechecks" | "checks", vars: Record<string, string>): string {
    return `${envPrefix(vars)} bash scripts/artifact.sh ${mode}`;
}

/** stdin of scripts/artifact.sh: "<name> <base64>" lines, for keys and remote commands. */
export function artifactStdin(entries: Record<string, string | undefined>): string {
    return Object.entries(entries)
        .filter(([, v]) => v)
        .map(([k, v]) => `${k} ${b64(v as string)}\n`)
        .join("");
}

/** One host for `artifact.sh prechecks` or `checks`: its variables for `check`, and its keys (artifactStdin's). */
export interface PrecheckHost {
    vars: Record<string, string>;
    keys: Record<string, string | undefined>;
}

/**
 * stdin of `artifact.sh prechecks` and `checks`: per host, a "vars <base64>" line (its variables as
 * NUL-separated NAME=value pairs, names sorted), then its key lines.
 */
export function precheckStdin(hosts: PrecheckHost[]): string {
    return hosts
        .map(({ vars, keys }) => {
            const pairs = Object.keys(vars)
                .sort()
                .map((k) => {
                    assertEnvName(k);
                    if (vars[k].includes("\0")) throw new Error(`${k} contains a NUL byte`);
                    return `${k}=${vars[k]}\0`;
                })
                .join("");
            return `vars ${b64(pairs)}\n${artifactStdin(keys)}`;
        })
        .join("");
}
