import * as pulumi from "@pulumi/pulumi";
import * as command from "@pulumi/command";
import { installCommand, readScript, remoteArtifactPath, uninstallCommand } from "../lib/commands";
import { needsContainerdUnit, renderManagedFiles } from "../lib/units";
import { ReachableHost } from "./connection";

/** The artifact as the fleet needs it. */
export interface Artifact {
    localPath: pulumi.Input<string>;
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
}

/**
 * One fleet host on the release: the artifact copied over (sha256-checked on the host), units
 * rendered for it, installed and verified by forklift-host.sh, rolled back there if the new
 * daemon does not answer. Destroy runs the uninstall that the install left on the host, except
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

        const copy = new command.remote.CopyToRemote(
            `${name}-artifact`,
            {
                connection: args.host.connection,
                source: pulumi.output(args.artifact.localPath).apply((p) => new pulumi.asset.FileAsset(p)),
                remotePath: pulumi.output(args.artifact.sha256).apply(remoteArtifactPath),
            },
            { parent, dependsOn: args.after, deletedWith },
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
            },
            { parent, dependsOn: [copy], deletedWith },
        );
        this.status = this.install.stdout.apply(parseHostStatus);
        this.registerOutputs({ status: this.status });
    }
}
