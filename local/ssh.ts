/**
 * OpenSSH from the machine of `pulumi up`, as every local command uses it: one private directory
 * per run holding an ssh_config, a known_hosts file with the pinned host keys and the private
 * keys (mode 0600), all removed when the run ends. Hosts are named by an alias in that config, so
 * a host key is checked against its alias whatever address the host has.
 */
import { spawn, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { Readable } from "node:stream";
import "./interrupt";
import { Hop, RemoteHost, Route } from "../lib/protocol/jobs";

export class SshError extends Error {}

/** The ssh_config lines, known_hosts lines and key files of one host's route. */
export interface RouteFiles {
    config: string;
    knownHosts: string;
    /** file name (in the run's directory) → private key text */
    keys: Record<string, string>;
}

/**
 * The ssh_config entry of HOST under ALIAS (and ALIAS-proxy for its bastion), with its keys in
 * DIR. Host keys are pinned unless INSECURE; a hop without a host key is refused then, naming it.
 * PERSIST: the sessions of this run share one connection to the host (a control master in DIR,
 * gone 30 s after its last session, or when the run closes it).
 */
export function renderRoute(alias: string, host: RemoteHost, dir: string, insecure: boolean, persist = false): RouteFiles {
    const out: RouteFiles = { config: "", knownHosts: "", keys: {} };
    const addHop = (hopAlias: string, hop: Hop, jump?: string) => {
        const lines = [
            `Host ${hopAlias}`,
            `  HostName ${hop.address}`,
            `  Port ${hop.port}`,
            `  User ${hop.user}`,
            "  BatchMode yes",
            `  ConnectTimeout ${host.route.connectTimeout}`,
            `  HostKeyAlias ${hopAlias}`,
            "  LogLevel ERROR",
            // a session whose host went away (network cut, machine gone) ends after 3 unanswered
            // keepalives instead of hanging until TCP gives up, hours later
            `  ServerAliveInterval ${host.route.connectTimeout}`,
            "  ServerAliveCountMax 3",
        ];
        if (hop.privateKey) {
            const file = `${hopAlias}.key`;
            // with exactly one final newline: OpenSSH refuses a key without it (`pulumi config
            // set ... < file` drops it)
            out.keys[file] = hop.privateKey.replace(/\n*$/, "\n");
            lines.push(`  IdentityFile ${path.join(dir, file)}`, "  IdentitiesOnly yes");
        }
        if (jump) lines.push(`  ProxyJump ${jump}`);
        if (persist && hopAlias === alias) lines.push("  ControlMaster auto", `  ControlPath ${path.join(dir, `cm-${alias}`)}`, "  ControlPersist 30");
        if (insecure) {
            lines.push("  StrictHostKeyChecking no", "  UserKnownHostsFile /dev/null");
        } else {
            if (!hop.hostKey) throw new SshError(`no host key for ${host.name}${jump ? "" : hopAlias.endsWith("-proxy") ? "'s bastion" : ""} (${hop.address}): set its hostKey, or opt in to insecureSkipHostKeyCheck`);
            lines.push("  StrictHostKeyChecking yes", `  UserKnownHostsFile ${path.join(dir, "known_hosts")}`, "  GlobalKnownHostsFile /dev/null");
            out.knownHosts += `${hopAlias} ${hop.hostKey.trim()}\n`;
        }
        out.config += lines.join("\n") + "\n";
    };
    const route: Route = host.route;
    if (route.proxy) addHop(`${alias}-proxy`, route.proxy);
    addHop(alias, route, route.proxy ? `${alias}-proxy` : undefined);
    return out;
}

/** Why ssh could not get a session (it exited 255), from its STDERR: names the host and what to check. */
export function explainSshFailure(host: RemoteHost, stderr: string): string {
    // (the host's own lines, where a session had begun, are not ssh's)
    const said = stderr
        .split("\n")
        .filter((l) => l.trim() && !l.startsWith("Warning: Permanently added") && !l.startsWith("[forklift "))
        .slice(-3)
        .join(" ")
        .trim();
    const where = `${host.name} (${host.route.address}:${host.route.port})`;
    if (!said) {
        // a session whose keepalives went unanswered: ssh ends it without a word at LogLevel ERROR
        return `${where}: unreachable (the SSH session was lost: the host or the network went away); check that it is up and the network path (sshConnectTimeout is ${host.route.connectTimeout}s)`;
    }
    if (/Host key verification failed|IDENTIFICATION HAS CHANGED|host key for .* has changed/.test(said)) {
        // (OpenSSH's own advice, about a known_hosts file and a host alias of this run, is not the user's)
        return `${where}: its SSH host key is not the pinned hostKey. Check its hostKey (\`ssh-keyscan -t ed25519 ${host.route.address}\` on a network you trust) and that the address is the machine you mean.`;
    }
    if (/Permission denied|Too many authentication failures/.test(said)) {
        return `${where}: the login as ${host.route.user} was refused; check its user and privateKey (or the SSH agent's keys). ssh said: ${said}`;
    }
    if (/timed out|not responding|Timeout|No route to host|Network is unreachable|Connection refused|Could not resolve|Name or service not known|Connection closed|Broken pipe/.test(said)) {
        return `${where}: unreachable; check that it is up, its address and port, and the network path (sshConnectTimeout is ${host.route.connectTimeout}s). ssh said: ${said}`;
    }
    return `${where}: SSH failed: ${said || "no message"}`;
}

export interface RunResult {
    /** The remote command's exit status; 255 when ssh could not get a session. */
    code: number;
    stdout: string;
    stderr: string;
}

/** A part of a remote command's stdin: text, bytes, or a file streamed in. */
export type InputPart = string | Buffer | { file: string };

export interface RunOptions {
    /** What the remote command reads on stdin: text, or a sequence of parts sent in turn. */
    input?: string | InputPart[];
    /** Each line of the remote command's stderr, as it arrives (shown to the user live). */
    onStderrLine?: (line: string) => void;
    /** Write stdout to this file instead of keeping it (`stdout` is then empty). */
    stdoutFile?: string;
    /** Milliseconds the command may take: then ssh is ended, and the result's code is 124. */
    timeoutMs?: number;
}

/** A run's SSH: its private directory, and the hosts added to it. */
export class Ssh {
    readonly dir: string;
    private readonly aliases = new Map<string, RemoteHost>();
    private readonly persisted: string[] = [];

    constructor(private readonly insecure: boolean) {
        // (mkdtemp makes it private to this user)
        this.dir = fs.mkdtempSync(path.join(os.tmpdir(), "forklift-ssh-"));
        fs.writeFileSync(path.join(this.dir, "config"), "");
        fs.writeFileSync(path.join(this.dir, "known_hosts"), "");
        closeOnExit.add(this);
    }

    /**
     * Makes HOST reachable under a new alias; returns the alias. PERSIST: its sessions share one
     * connection (for a run that asks a host again and again, as a wait on a Swarm does).
     */
    add(host: RemoteHost, opts: { persist?: boolean } = {}): string {
        const alias = `h${this.aliases.size}`;
        const files = renderRoute(alias, host, this.dir, this.insecure, opts.persist);
        if (opts.persist) this.persisted.push(alias);
        for (const [file, key] of Object.entries(files.keys)) fs.writeFileSync(path.join(this.dir, file), key, { mode: 0o600 });
        fs.appendFileSync(path.join(this.dir, "config"), files.config);
        fs.appendFileSync(path.join(this.dir, "known_hosts"), files.knownHosts);
        this.aliases.set(alias, host);
        return alias;
    }

    /** Runs COMMAND on the host of ALIAS (added before), feeding it INPUT. */
    run(alias: string, command: string, opts: RunOptions = {}): Promise<RunResult> {
        return new Promise((resolve, reject) => {
            const child = spawn("ssh", ["-F", path.join(this.dir, "config"), alias, command], { stdio: ["pipe", "pipe", "pipe"] });
            const stdout: Buffer[] = [];
            let stderr = "";
            let partial = "";
            const written = opts.stdoutFile ? new Promise<void>((done, failed) => child.stdout.pipe(fs.createWriteStream(opts.stdoutFile!)).on("finish", done).on("error", failed)) : Promise.resolve();
            if (!opts.stdoutFile) child.stdout.on("data", (d: Buffer) => stdout.push(d));
            child.stderr.on("data", (d: Buffer) => {
                const text = d.toString("utf8");
                stderr += text;
                if (!opts.onStderrLine) return;
                const lines = (partial + text).split("\n");
                partial = lines.pop() ?? "";
                for (const line of lines) opts.onStderrLine(line);
            });
            let timedOut = false;
            const timer = opts.timeoutMs === undefined ? undefined : setTimeout(() => ((timedOut = true), child.kill("SIGKILL")), opts.timeoutMs);
            child.on("error", (e) => reject(new SshError(`cannot run ssh: ${e.message}`)));
            child.on("close", (code, signal) => {
                if (timer) clearTimeout(timer);
                if (partial && opts.onStderrLine) opts.onStderrLine(partial);
                if (timedOut) stderr += `\nno answer within ${Math.round(opts.timeoutMs! / 1000)} s`;
                written.then(
                    () => resolve({ code: timedOut ? 124 : (code ?? (signal ? 255 : 1)), stdout: Buffer.concat(stdout).toString("utf8"), stderr }),
                    (e: Error) => reject(new SshError(`cannot write ${opts.stdoutFile}: ${e.message}`)),
                );
            });
            // the host may stop reading (a release it has already needs no copy): not an error here,
            // the command's exit status says how it went
            child.stdin.on("error", () => undefined);
            Readable.from(inputParts(opts.input)).pipe(child.stdin);
        });
    }

    /** The host added under ALIAS. */
    host(alias: string): RemoteHost {
        const h = this.aliases.get(alias);
        if (!h) throw new Error(`no host ${alias} in this run`);
        return h;
    }

    /** Closes the shared connections and removes the run's directory (and the keys in it). */
    close(): void {
        closeOnExit.delete(this);
        for (const alias of this.persisted) {
            spawnSync("ssh", ["-F", path.join(this.dir, "config"), "-O", "exit", alias], { stdio: "ignore", timeout: 5000 });
        }
        fs.rmSync(this.dir, { recursive: true, force: true });
    }
}

async function* inputParts(input: RunOptions["input"]): AsyncGenerator<Buffer> {
    if (input === undefined) return;
    for (const part of typeof input === "string" ? [input] : input) {
        if (typeof part === "string") yield Buffer.from(part, "utf8");
        else if (Buffer.isBuffer(part)) yield part;
        else for await (const chunk of fs.createReadStream(part.file)) yield chunk as Buffer;
    }
}

// the keys must not outlive the run, however it ends (a signal ends it through interrupt.ts,
// after its cleanups, which may still need SSH)
const closeOnExit = new Set<Ssh>();
process.on("exit", () => {
    for (const ssh of closeOnExit) ssh.close();
});
