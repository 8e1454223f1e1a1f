/**
 * The end-to-end lab: a build host and fleet hosts on the nspawn test bed, the fixture forks of
 * every recipe served to the build host, and the real `pulumi` CLI driving forklift exactly as a
 * user types it (plain `pulumi config set`, `preview`, `up`, `destroy`; local file backend,
 * passphrase secrets). Used by test/e2e (torn down afterwards) and by `npm run demo` (kept until
 * `npm run demo -- --down`).
 *
 *   const lab = await bootLab(E2E_LAYOUT);               // hosts up, forks served
 *   const cli = new PulumiCli(projectDir, stateDir);     // fails at once naming a missing plugin
 *   await configureStack(cli, "e2e", lab, { recipe: "docker-ce", ref: "v1" });
 *   await cli.run(["up", "--yes"]);
 */
import { spawn, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { Recipe } from "../lib/config";
import { FixtureForks, serveFixtureForks } from "./fixture-fork";
import { installBuildx } from "./buildx";
import { CLOUD_UPLINK, HOST_BUSYBOX_TARBALL, HostSpec, TestHost, repoRoot, ssh, startHosts } from "./testbed";

/** The resource plugins a hosts-mode stack loads, at the versions of package.json. */
export const RESOURCE_PLUGINS = [
    { name: "command", version: "1.2.1" },
    { name: "random", version: "4.21.2" },
];

/** Which test hosts a lab boots, and how the fleet logs in. */
export interface LabLayout {
    builder: HostSpec;
    /** Fleet hosts in rollout order; `user` other than root gets a sudo account on that host. */
    fleet: (HostSpec & { user?: string })[];
    /** Booted too, but not in the stack: a machine to move a fleet entry to. */
    spare?: HostSpec;
}

export interface LabHost extends TestHost {
    /** The login forklift uses (root, or a user with passwordless sudo). */
    login: string;
}

export interface Lab {
    builder: TestHost;
    fleet: LabHost[];
    spare?: TestHost;
    forks: FixtureForks;
    /** Stops the git daemon; the hosts are stopped by stopHosts(). */
    stopForks(): void;
}

/** A one-line timestamped progress note on stderr. */
export function note(text: string): void {
    process.stderr.write(`[forklift lab ${new Date().toISOString().slice(11, 19)}] ${text}\n`);
}

/** Runs a command on a test host as root and returns its stdout; throws with stderr on failure. */
export function sh(host: TestHost, command: string): string {
    const r = ssh(host, command);
    if (r.code !== 0) throw new Error(`${host.name}: \`${command}\` exited ${r.code}: ${r.stderr.trim()}`);
    return r.stdout.trim();
}

/**
 * Boots the hosts, gives non-root fleet logins a passwordless-sudo account, installs buildx on the
 * build host (as Ubuntu's docker-buildx would), starts a container under Debian's Docker where it
 * runs, and serves the fixture forks to the builder.
 */
export async function bootLab(layout: LabLayout): Promise<Lab> {
    const specs = [layout.builder, ...layout.fleet, ...(layout.spare ? [layout.spare] : [])];
    note(`booting ${specs.length} hosts: ${specs.map((s) => s.name).join(", ")}`);
    const hosts = await startHosts(specs.map(({ name, index, debianDocker, cloud }) => ({ name, index, debianDocker, cloud })));
    const byName = new Map(hosts.map((h) => [h.name, h]));
    const builder = byName.get(layout.builder.name)!;
    const fleet = layout.fleet.map((s) => ({ ...byName.get(s.name)!, login: s.user ?? "root" }));
    for (const h of fleet) {
        if (h.login !== "root") addSudoUser(h, h.login);
        if (h.debianDocker) {
            ensureBusybox(h);
            sh(h, "docker run -d --name keeper busybox:local sleep 1000000 >/dev/null");
        }
    }
    note("installing buildx on the build host");
    await installBuildx(builder);
    // this machine as the build host sees it: across its own link, or the cloud's
    const gateway = layout.builder.cloud ? CLOUD_UPLINK : builder.address.replace(/\.2$/, ".1");
    note(`serving the fixture forks on git://${gateway}`);
    const forks = await serveFixtureForks(gateway);
    return { builder, fleet, spare: layout.spare ? byName.get(layout.spare.name) : undefined, forks, stopForks: () => forks.stop() };
}

/** Imports the image busybox:local (no registry is reachable) unless the running daemon has it. */
export function ensureBusybox(h: TestHost): void {
    sh(h, `docker image inspect busybox:local >/dev/null 2>&1 || docker import ${HOST_BUSYBOX_TARBALL} busybox:local >/dev/null`);
}

/** A login USER with the run's key and passwordless sudo, as on a typical cloud image. */
function addSudoUser(h: TestHost, user: string): void {
    sh(
        h,
        [
            `id ${user} >/dev/null 2>&1 || useradd -m -s /bin/bash ${user}`,
            `install -d -m 0700 -o ${user} -g ${user} /home/${user}/.ssh`,
            `install -m 0600 -o ${user} -g ${user} /root/.ssh/authorized_keys /home/${user}/.ssh/authorized_keys`,
            `echo '${user} ALL=(ALL) NOPASSWD:ALL' > /etc/sudoers.d/90-${user}`,
            `chmod 0440 /etc/sudoers.d/90-${user}`,
        ].join(" && "),
    );
}

/** Where a program is: the first match on PATH, else undefined. */
function onPath(name: string): string | undefined {
    for (const dir of (process.env.PATH ?? "").split(path.delimiter)) {
        const p = path.join(dir, name);
        try {
            fs.accessSync(p, fs.constants.X_OK);
            return p;
        } catch {
            // not here
        }
    }
    return undefined;
}

/**
 * The pulumi CLI: `pulumi` on PATH, else the one tools/pulumi-toolchain.sh built. Then the
 * plugins a hosts-mode `pulumi up` needs, looked for where the engine looks: the Node.js language
 * host next to `pulumi` or on PATH, the command and random providers on PATH or in the plugin cache. Throws
 * one message naming each missing piece and how a user installs it.
 */
export function findPulumi(): string {
    let pulumi = onPath("pulumi");
    if (!pulumi) {
        const r = spawnSync("bash", [path.join(repoRoot(), "tools", "pulumi-toolchain.sh"), "cli"], { encoding: "utf8" });
        const line = /^export PATH="?([^:"]+)/m.exec(r.stdout ?? "");
        if (r.status === 0 && line) pulumi = path.join(line[1], "pulumi");
    }
    const missing: string[] = [];
    if (!pulumi) missing.push("the pulumi CLI (v3.276 or later; install it from Pulumi, or build it with tools/pulumi-toolchain.sh cli)");
    const home = process.env.PULUMI_HOME ?? path.join(os.homedir(), ".pulumi");
    const besidePulumi = pulumi ? path.join(path.dirname(pulumi), "pulumi-language-nodejs") : "";
    if (!(besidePulumi && fs.existsSync(besidePulumi)) && !onPath("pulumi-language-nodejs")) {
        missing.push(
            "the Node.js language host pulumi-language-nodejs (it comes with Pulumi's CLI install; put it next to `pulumi` or on PATH)",
        );
    }
    for (const { name, version } of RESOURCE_PLUGINS) {
        const cached = path.join(home, "plugins", `resource-${name}-v${version}`, `pulumi-resource-${name}`);
        if (!onPath(`pulumi-resource-${name}`) && !fs.existsSync(cached)) {
            missing.push(`the resource plugin ${name} ${version} (pulumi-resource-${name}; install it with \`pulumi plugin install resource ${name} ${version}\`)`);
        }
    }
    if (missing.length > 0) {
        throw new Error(`forklift end-to-end runs need real Pulumi plugins, and these are missing:\n  - ${missing.join("\n  - ")}`);
    }
    return pulumi!;
}

export interface CliResult {
    code: number;
    stdout: string;
    stderr: string;
    seconds: number;
}

/** The pulumi CLI in a project directory, with a local file backend and passphrase secrets. */
export class PulumiCli {
    readonly pulumi: string;
    readonly env: NodeJS.ProcessEnv;
    /** Every command run, with its duration: for the report. */
    readonly log: { args: string[]; code: number; seconds: number }[] = [];

    constructor(
        readonly projectDir: string,
        stateDir: string,
        passphrase: string,
        /** Echo the CLI's output while it runs (the demo). */
        private readonly echo = false,
    ) {
        this.pulumi = findPulumi();
        fs.mkdirSync(stateDir, { recursive: true });
        this.env = {
            ...process.env,
            PATH: `${path.dirname(this.pulumi)}${path.delimiter}${process.env.PATH ?? ""}`,
            PULUMI_BACKEND_URL: `file://${stateDir}`,
            PULUMI_CONFIG_PASSPHRASE: passphrase,
            PULUMI_SKIP_UPDATE_CHECK: "true",
            // nothing may be downloaded: a missing plugin must fail, not hang on the network
            PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION: "true",
            NO_COLOR: "1",
        };
    }

    /** Runs `pulumi ARGS` (stdin from INPUT) and resolves with its exit code and output. */
    run(args: string[], input = "", echo = this.echo): Promise<CliResult> {
        return this.start(args, input, echo).done;
    }

    /**
     * Starts `pulumi ARGS` and returns at once: its output so far, its PID (to kill it) and its
     * end.
     */
    start(args: string[], input = "", echo = this.echo): { pid: number; output: () => string; done: Promise<CliResult> } {
        const started = Date.now();
        const child = spawn(this.pulumi, args, { cwd: this.projectDir, env: this.env, stdio: ["pipe", "pipe", "pipe"] });
        let stdout = "";
        let stderr = "";
        const done = new Promise<CliResult>((resolve, reject) => {
            child.stdout.on("data", (d: Buffer) => {
                stdout += d.toString();
                if (echo) process.stdout.write(d);
            });
            child.stderr.on("data", (d: Buffer) => {
                stderr += d.toString();
                if (echo) process.stderr.write(d);
            });
            child.on("error", reject);
            child.on("close", (code, signal) => {
                const seconds = (Date.now() - started) / 1000;
                const exit = code ?? (signal ? 128 : -1);
                this.log.push({ args, code: exit, seconds });
                resolve({ code: exit, stdout, stderr, seconds });
            });
            child.stdin.end(input);
        });
        return { pid: child.pid!, output: () => stdout + stderr, done };
    }

    /** Like run(), but throws with the output's tail when the command fails. */
    async ok(args: string[], input = "", echo = this.echo): Promise<CliResult> {
        const r = await this.run(args, input, echo);
        if (r.code !== 0) {
            // (the CLI's diagnostics come before its outputs, which can fill any tail)
            const text = r.stdout + r.stderr;
            const diagnostics = text.indexOf("\nDiagnostics:");
            const said = diagnostics < 0 ? "" : `${text.slice(diagnostics + 1).split("\n").slice(0, 60).join("\n")}\n...\n`;
            throw new Error(`pulumi ${args.join(" ")} exited ${r.code} after ${r.seconds}s:\n${said}${tail(text, 60)}`);
        }
        return r;
    }

    /** The stack outputs as JSON. */
    async outputs(): Promise<Record<string, any>> {
        return JSON.parse((await this.ok(["stack", "output", "--json"], "", false)).stdout);
    }
}

export function tail(text: string, lines: number): string {
    return text.trimEnd().split("\n").slice(-lines).join("\n");
}

/**
 * A checkout of forklift as a user has it (the program, its scripts and config schema; node_modules
 * linked), in a fresh directory: its stack files and artifact cache stay out of the repository.
 * FROM: the working tree to take it from (another release's, checked out with git worktree); over
 * an existing checkout, its files are replaced, its stack files and cache kept: an upgrade.
 */
export function projectCheckout(into: string, from = repoRoot()): string {
    const root = from;
    fs.mkdirSync(into, { recursive: true });
    // every file of the project, as a clone of it has them (tracked, or new and not ignored)
    const files = spawnSync("git", ["ls-files", "--cached", "--others", "--exclude-standard", "-z"], { cwd: root, encoding: "utf8" });
    if (files.status !== 0) throw new Error(`git ls-files failed in ${root}: ${files.stderr}`);
    for (const file of files.stdout.split("\0").filter(Boolean)) {
        // a deleted file is still listed until it is staged; a stack file is the user's own
        if (!fs.lstatSync(path.join(root, file), { throwIfNoEntry: false })?.isFile() || file.startsWith("Pulumi.") && file !== "Pulumi.yaml") continue;
        fs.mkdirSync(path.dirname(path.join(into, file)), { recursive: true });
        fs.copyFileSync(path.join(root, file), path.join(into, file));
    }
    if (!fs.existsSync(path.join(into, "node_modules"))) fs.symlinkSync(path.join(repoRoot(), "node_modules"), path.join(into, "node_modules"));
    return into;
}

/** What a stack builds: the recipe and ref of the lab's fixture forks. */
export interface BuildChoice {
    recipe: Recipe;
    ref: string;
}

/** The `pulumi config` values that point a stack at the lab's fixture fork for RECIPE@REF. */
export function forkSettings(lab: Lab, choice: BuildChoice): Record<string, string | undefined> {
    const { forks } = lab;
    switch (choice.recipe) {
        case "docker-ce":
            return { recipe: "docker-ce", forkRepo: forks.dockerCe.url, forkRef: choice.ref, cliRepo: undefined, cliRef: undefined, packagingRepo: undefined, packagingRef: undefined };
        case "moby":
            return { recipe: "moby", forkRepo: forks.moby.url, forkRef: choice.ref, cliRepo: undefined, cliRef: undefined, packagingRepo: undefined, packagingRef: undefined };
        case "docker-ce-packaging":
            return {
                recipe: "docker-ce-packaging",
                forkRepo: forks.engine.url,
                forkRef: choice.ref,
                cliRepo: forks.cli.url,
                cliRef: choice.ref,
                packagingRepo: forks.packaging.url,
                packagingRef: choice.ref,
            };
    }
}

/** Sets plain config keys the way a user does (`pulumi config set`), removing those set to undefined. */
export async function setConfig(cli: PulumiCli, values: Record<string, string | undefined>): Promise<void> {
    const set = Object.entries(values).filter(([, v]) => v !== undefined) as [string, string][];
    const unset = Object.keys(values).filter((k) => values[k] === undefined);
    if (set.length > 0) await cli.ok(["config", "set-all", ...set.flatMap(([k, v]) => ["--plaintext", `${k}=${v}`])]);
    if (unset.length > 0) await cli.ok(["config", "rm-all", ...unset]);
}

/**
 * Points a new stack at the lab's hosts in hosts mode, as the README tells a user to: host entries
 * with `pulumi config set --path`, each private key with `--secret --path ... < keyfile` (which
 * stores it without its final newline) and each host key pinned from ssh-keyscan's output form.
 */
export async function configureStack(cli: PulumiCli, stack: string, lab: Lab, choice: BuildChoice): Promise<void> {
    await cli.ok(["stack", "init", stack, "--secrets-provider", "passphrase"]);
    await setConfig(cli, forkSettings(lab, choice));
    await setHost(cli, "builderHost", { ...lab.builder, login: "root" });
    for (const [i, h] of lab.fleet.entries()) await setHost(cli, `fleetHosts[${i}]`, h);
}

/** One host entry (name, address, user, pinned host key, private key as a secret). */
export async function setHost(cli: PulumiCli, key: string, h: TestHost & { login: string }): Promise<void> {
    const name = h.name.replace(/^[a-z0-9]+-/, "");
    await cli.ok([
        "config", "set-all", "--path",
        "--plaintext", `${key}.name=${name}`,
        "--plaintext", `${key}.address=${h.address}`,
        "--plaintext", `${key}.user=${h.login}`,
        "--plaintext", `${key}.hostKey=${h.hostKey}`,
    ]);
    await cli.ok(["config", "set", "--secret", "--path", `${key}.privateKey`], fs.readFileSync(h.privateKeyPath, "utf8"));
}
