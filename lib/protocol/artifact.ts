/**
 * scripts/artifact.sh: run locally, in the project directory, by the command provider. It
 * fetches the artifact from the build host into the local cache, copies it to a fleet host and
 * runs forklift-host.sh there (host.ts renders that remote command), or checks the host first.
 */
import { b64, envPrefix } from "../shell";

/**
 * The local command (scripts/artifact.sh MODE) that brings the release onto one fleet host
 * (`install`), takes it off (`uninstall`) or checks the host first (`check`).
 * Keys and the remote commands travel on its stdin (artifactStdin).
 */
export function artifactCommand(mode: "install" | "uninstall" | "check", vars: Record<string, string>): string {
    return `${envPrefix(vars)} bash scripts/artifact.sh ${mode}`;
}

/** stdin of scripts/artifact.sh: "<name> <base64>" lines, for keys and remote commands. */
export function artifactStdin(entries: Record<string, string | undefined>): string {
    return Object.entries(entries)
        .filter(([, v]) => v)
        .map(([k, v]) => `${k} ${b64(v as string)}\n`)
        .join("");
}
