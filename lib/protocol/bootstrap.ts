/**
 * scripts/bootstrap-builder.sh: run over SSH on an existing build host (bootstrap, cleanup), or
 * as the user data of a launched instance (bootstrap, host-key), which `wait` then waits for.
 */
import { readScript } from "./script";
import { renderUserData, runLeftScript, runScriptFromStdin } from "../shell";

/** STACK_ID (an existing build host's): the stack recorded as a user of the build host. */
export function bootstrapCommand(mode: "bootstrap" | "wait", swapGiB: number, sudo: boolean, stackId?: string): string {
    return runScriptFromStdin({ FORKLIFT_SWAP_GIB: swapGiB, FORKLIFT_STACK_ID: stackId }, [mode], { sudo });
}

/**
 * Undoes the bootstrap of an existing build host with the copy bootstrap left there, unless
 * another stack than STACK_ID still uses the host.
 */
export function builderCleanupCommand(sudo: boolean, stackId?: string): string {
    return runLeftScript("/var/lib/forklift-bootstrap/bootstrap-builder.sh", { FORKLIFT_STACK_ID: stackId }, "cleanup", sudo, "forklift: build host was not bootstrapped");
}

/** What a launched instance's user data runs: bootstrap-builder.sh's `bootstrap` or `host-key`. */
export type FirstBoot = { mode: "bootstrap"; swapGiB: number } | { mode: "host-key" };

/** A launched instance's user data: FirstBoot with the base64 of its own SSH host private key. */
export function firstBootUserData(boot: FirstBoot, hostKeyB64: string): string {
    const vars: Record<string, number> = boot.mode === "bootstrap" ? { FORKLIFT_SWAP_GIB: boot.swapGiB } : {};
    return renderUserData(readScript("bootstrap-builder.sh"), { ...vars, FORKLIFT_SSH_HOST_KEY_B64: hostKeyB64 }, [boot.mode]);
}
