/**
 * Remote commands are data until they run: these helpers build the exact command strings that
 * `remote.Command` sends, quoting every value once. Scripts travel on stdin, values in the
 * command line (sshd's AcceptEnv is not needed), so a changed value shows up in the diff.
 */

/** POSIX single-quote a value for bash. */
export function shq(value: string): string {
    if (/^[A-Za-z0-9_@%+=:,./-]+$/.test(value)) return value;
    return `'${value.replace(/'/g, `'\\''`)}'`;
}

/** Throws unless NAME can be an environment variable's name. */
export function assertEnvName(name: string): void {
    if (!/^[A-Z_][A-Z0-9_]*$/.test(name)) throw new Error(`not an environment variable name: ${name}`);
}

/** `K='v' K2='v2'`, keys sorted so the rendering is stable. */
export function envPrefix(vars: Record<string, string | number | boolean | undefined>): string {
    return Object.keys(vars)
        .sort()
        .filter((k) => vars[k] !== undefined)
        .map((k) => {
            assertEnvName(k);
            return `${k}=${shq(String(vars[k]))}`;
        })
        .join(" ");
}

/**
 * Runs a script that arrives on stdin: it is saved to a private temp file first (so it can
 * re-exec itself detached or install a copy of itself), run with the given variables and
 * arguments, and removed afterwards. The exit code is the script's. With SCRIPT_BYTES, only that
 * many bytes of stdin are the script, and the rest is the script's own stdin. QUIET: see
 * QUIET_SHELL (the host commands; the build's and the bootstrap's command lines stay as they
 * were, as a changed command line runs them again).
 */
export function runScriptFromStdin(vars: Record<string, string | number | boolean | undefined>, args: string[], opts: { sudo?: boolean; scriptBytes?: number; quiet?: boolean } = {}): string {
    const prefix = envPrefix(vars);
    const run = `${opts.sudo ? "sudo -n " : ""}env ${prefix ? prefix + " " : ""}bash "$f" ${args.map(shq).join(" ")}`.trimEnd();
    // GNU head -c reads no byte past the count, even from a pipe
    const save = opts.scriptBytes === undefined ? `cat > "$f"` : `head -c ${opts.scriptBytes} > "$f"`;
    const end = `; rc=$?; rm -f "$f"; exit $rc`;
    if (!opts.quiet) return [`f=$(mktemp /tmp/forklift.XXXXXX.sh)`, save, run].join(" && ") + end;
    return `${QUIET_SHELL}; ` + [`f=$(mktemp /tmp/forklift.XXXXXX.sh 2>&3)`, `${save} 2>&3`, `${run} 2>&3`].join(" && ") + end;
}

/**
 * The start of a command line whose commands write to fd 3 (`2>&3`), the shell's own stderr going
 * nowhere: bash reports a command that a signal killed with the command's text ("Killed env
 * FORKLIFT_...=<base64 units> bash ..."), which would become the failure's message; the exit
 * status (128 + the signal) tells it instead (local/remote.ts hostFailure).
 */
const QUIET_SHELL = "exec 3>&2 2>/dev/null";

/** base64 of UTF-8 text, for multi-line values passed in a command line. */
export function b64(text: string): string {
    return Buffer.from(text, "utf8").toString("base64");
}

/**
 * Runs a script an earlier run left on the host (for deletes, which get no stdin); where there is
 * none, says ABSENT instead.
 */
export function runLeftScript(script: string, vars: Record<string, string | undefined>, arg: string, sudo: boolean, absent: string, quiet = false): string {
    const run = [sudo ? "sudo -n" : "", "env", envPrefix(vars), "bash", script, arg].filter(Boolean).join(" ");
    return quiet ? `${QUIET_SHELL}; if [ -f ${script} ]; then ${run} 2>&3; else echo ${shq(absent)}; fi` : `if [ -f ${script} ]; then ${run}; else echo ${shq(absent)}; fi`;
}

/** EC2 user data: the script with its variables set in front (cloud-init runs it as root). */
export function renderUserData(script: string, vars: Record<string, string | number>, args: string[]): string {
    const body = script.replace(/^#!.*\n/, "");
    const exports = Object.keys(vars)
        .sort()
        .map((k) => `export ${envPrefix({ [k]: vars[k] })}`)
        .join("\n");
    return `#!/usr/bin/env bash\n${exports}\nset -- ${args.map(shq).join(" ")}\n${body}`;
}
