import * as pulumi from "@pulumi/pulumi";
import * as command from "@pulumi/command";
import { installCommand, readScript, remoteArtifactPath, shipCommand, uninstallCommand } from "../lib/commands";
import { needsContainerdUnit, renderManagedFiles } from "../lib/units";
import { ReachableHost, routeKeys, routeVars } from "./connection";

/** The built artifact as the fleet needs it: where it is, and what it is. */
export interface Artifact {
    /** The build host that holds it (it is fetched from there into the local cache). */
    builder: ReachableHost;
    /** Its path on the build host. */
    remotePath: pulumi.Input<string>;
    sha256: pulumi.Input<string>;
    version: pulumi.Input<string>;
    binaries: pulumi.Input<string[]>;
}

/** What a host reports after install (the last line of forklift-host.sh's stdout). */
export interface HostStatus {
    host: string;
    sha256: string;
    version: string;
    dockerdSha256: string;
    dockerService: string;
    changed: boolean;
}

export function parseHostStatus(stdout: string): HostStatus {
    const line = stdout.trim().split("\n").pop() ?? "";
    try {
        return JSON.parse(line) as HostStatus;
    } catch {
        throw new Error(`the install printed no status line; its output ended with: ${line.slice(0, 300)}`);
    }
}

export interface FleetHostArgs {
    /** The host to install on. */
    host: ReachableHost;
    /** The built release. */
    artifact: Artifact;
    /**
     * Where the binaries are linked.
     * @default "/usr/bin"
     */
    installDir: string;
    /**
     * Managed /etc/docker/daemon.json; null leaves the host's own file alone.
     * @default { "live-restore": true }
     */
    daemonJson: Record<string, unknown> | null;
    /** Install commands of the previous batch: this host starts only after they verified. */
    after: pulumi.Resource[];
    /**
     * Local directory of the content-addressed artifact cache (relative to the project).
     * @default ".forklift/artifacts"
     */
    cacheDir: string;
    /** Skip host key checks (explicit opt-in, warned). @default false */
    insecure: boolean;
}

/**
 * One fleet host on the release: the artifact copied over from the local cache (fetched from the
 * build host once, sha256-checked on the host), units rendered for it, installed and verified by
 * forklift-host.sh, rolled back there if the new daemon does not answer. Destroy runs the uninstall that the install left on the host, except
 * on instances forklift launched (terminating them is the cleanup).
 */
export class FleetHost extends pulumi.ComponentResource {
    readonly install: command.remote.Command;
    readonly status: pulumi.Output<HostStatus>;

    constructor(name: string, args: FleetHostArgs, opts?: pulumi.ComponentResourceOptions) {
        super("forklift:index:FleetHost", name, {}, opts);
        const parent = this;
        const sudo = args.host.user !== "root";
        const deletedWith = args.host.instance;
        const owner = `${pulumi.getProject()}/${pulumi.getStack()}/${args.host.name}`;

        // The machine this resource stands for: when it changes, the old one is uninstalled (by
        // the old resource's delete, first) and the new one installed, instead of an in-place update
        // that would leave the old machine on the release. Delete-before-replace also keeps a
        // `pulumi up --replace` of the same machine from uninstalling what its create just did.
        const machine = [args.host.address, args.host.port];

        // A local command, not CopyToRemote: its inputs are plain strings, so a preview with the
        // build still to run shows the plan instead of failing on an unknown asset.
        const copy = new command.local.Command(
            `${name}-artifact`,
            {
                create: pulumi
                    .all([routeVars("BUILDER", args.artifact.builder, args.insecure), routeVars("TARGET", args.host, args.insecure), args.artifact.remotePath, args.artifact.sha256])
                    .apply(([builderVars, targetVars, remotePath, sha256]) =>
                        shipCommand({
                            ...builderVars,
                            ...targetVars,
                            FORKLIFT_HOST: args.host.name,
                            FORKLIFT_INSECURE: args.insecure ? "1" : "0",
                            FORKLIFT_REMOTE_PATH: remotePath,
                            FORKLIFT_SHA256: sha256,
                            FORKLIFT_CACHE_DIR: args.cacheDir,
                            FORKLIFT_TARGET_PATH: remoteArtifactPath(sha256),
                        }),
                    ),
                stdin: pulumi.secret(pulumi.all([routeKeys("builder", args.artifact.builder), routeKeys("target", args.host)]).apply(([b, t]) => b + t)),
                addPreviousOutputInEnv: false,
                triggers: machine,
            },
            { parent, dependsOn: args.after },
        );

        const create = pulumi
            .all([args.artifact.sha256, args.artifact.version, args.artifact.binaries])
            .apply(([sha256, version, binaries]) =>
                installCommand({
                    hostName: args.host.name,
                    owner,
                    sha256,
                    version,
                    installDir: args.installDir,
                    files: renderManagedFiles({ installDir: args.installDir, shipsContainerd: needsContainerdUnit(binaries) }, args.daemonJson),
                    sudo,
                }),
            );
        this.install = new command.remote.Command(
            `${name}-install`,
            {
                connection: args.host.connection,
                create,
                delete: uninstallCommand(args.host.name, owner, sudo),
                stdin: readScript("forklift-host.sh"),
                addPreviousOutputInEnv: false,
                triggers: machine,
            },
            { parent, dependsOn: [copy], deletedWith, deleteBeforeReplace: true },
        );
        this.status = this.install.stdout.apply(parseHostStatus);
        this.registerOutputs({ status: this.status });
    }
}
