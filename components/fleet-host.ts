import * as pulumi from "@pulumi/pulumi";
import * as command from "@pulumi/command";
import { artifactCommand, artifactStdin } from "../lib/protocol/artifact";
import { HostStatus, Owner, installCommand, ownerVars, parseHostStatus, uninstallCommand } from "../lib/protocol/host";
import { readScript } from "../lib/protocol/script";
import { hashInputs, sha256 as sha256Of } from "../lib/hash";
import { needsContainerdUnit, renderManagedFiles } from "../lib/units";
import { ReachableHost, routeKeys, routeVars } from "./connection";

/** The built artifact as the fleet needs it: where it is, and what it is. */
export interface Artifact {
    /** The build host that holds it (it is fetched from there into the local cache). */
    builder: ReachableHost;
    /** The build's key: the hash of its inputs, known before it runs (see ForkBuild). */
    buildKey: string;
    /** Its path on the build host. */
    remotePath: pulumi.Input<string>;
    sha256: pulumi.Input<string>;
    /** Bytes of the tgz (the check asks for room to stage and unpack it). */
    size: pulumi.Input<number>;
    version: pulumi.Input<string>;
    binaries: pulumi.Input<string[]>;
}

export interface FleetHostArgs {
    /** The host to install on. */
    host: ReachableHost;
    /** The built release. */
    artifact: Artifact;
    /** Where the binaries are linked (`installDir`, "/usr/bin" unless set). */
    installDir: string;
    /**
     * Managed /etc/docker/daemon.json (`daemonJson`, `{ "live-restore": true }` unless set); null
     * leaves the host's own file alone.
     */
    daemonJson: Record<string, unknown> | null;
    /**
     * What the install waits for: the installs of the previous batch (it starts only after they
     * verified), or, for the first batch, the Rollout's check of every host and its precheck.
     */
    after: pulumi.Resource[] | Promise<pulumi.Resource[]>;
    /**
     * Local directory of the content-addressed artifact cache, relative to the project
     * (`artifactCacheDir`, ".forklift/artifacts" unless set).
     */
    cacheDir: string;
    /** Skip host key checks (explicit opt-in, warned). */
    insecureSkipHostKeyCheck: boolean;
    /**
     * The name this FleetHost was registered under before, under the same parent (launched
     * instances' were forklift-forklift-fleet-N). It and its commands alias their old URNs, so
     * that existing stacks keep them: no uninstall, no reinstall.
     * @default none: the name never changed
     */
    formerName?: string;
    /**
     * The stack's random identity (hex, kept in its state). Recorded on the host as its owner:
     * another stack's install is refused there, and its uninstall leaves the host alone.
     */
    stackId: pulumi.Input<string>;
}

const FLEET_HOST_TYPE = "forklift:index:FleetHost";

/**
 * One fleet host on the release: the artifact copied over from the local cache (fetched from the
 * build host once, sha256-checked on the host), units rendered for it, installed and verified by
 * forklift-host.sh, rolled back there if the new daemon does not answer. Destroy runs the
 * uninstall that the install left on the host, except on instances forklift launched (terminating
 * them is the cleanup). Before the first batch, the Rollout checks every host (reachable, host key,
 * login, sudo, systemd, disk space, and that no other stack owns it) in one command, from each
 * host's `checkHost`.
 */
export class FleetHost extends pulumi.ComponentResource {
    readonly install: command.local.Command;
    /**
     * This host in the Rollout's check after the build: its variables for `artifact.sh check`,
     * with the room the release needs, and its key.
     */
    readonly checkHost: HostToCheck;
    /** A hash of the install's command: it changes whenever the install runs again. */
    readonly installKey: pulumi.Output<string>;
    readonly status: pulumi.Output<HostStatus>;

    constructor(name: string, args: FleetHostArgs, opts?: pulumi.ComponentResourceOptions) {
        const formerName = args.formerName;
        const aliases = formerName ? [...(opts?.aliases ?? []), { name: formerName }] : opts?.aliases;
        super(FLEET_HOST_TYPE, name, {}, { ...opts, aliases });
        const parent = this;
        // the commands' old URNs: their old names under the old FleetHost, whose URN is built
        // from its type chain (the Rollout's, then FleetHost) as the engine builds it. (The engine
        // also derives these from the FleetHost's alias, as the names share its prefix; the
        // explicit ones do not depend on that.)
        const formerChild = (suffix: string): pulumi.Alias[] =>
            formerName ? [{ name: `${formerName}-${suffix}`, parent: pulumi.createUrn(formerName, FLEET_HOST_TYPE, opts?.parent) }] : [];
        const sudo = args.host.user !== "root";
        const deletedWith = args.host.instance;
        const owner = hostOwner(args.host, args.stackId);
        const hostScript = hostScriptHash();
        const remoteInstall = pulumi
            .all([args.artifact.sha256, args.artifact.version, args.artifact.binaries, owner])
            .apply(([sha256, version, binaries, owner]) =>
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
        const target = routeVars("TARGET", args.host, args.insecureSkipHostKeyCheck);
        const create = pulumi
            .all([routeVars("BUILDER", args.artifact.builder, args.insecureSkipHostKeyCheck), target, args.artifact.remotePath, args.artifact.sha256, remoteInstall])
            .apply(([builderVars, targetVars, remotePath, sha256, install]) =>
                artifactCommand("install", {
                    ...builderVars,
                    ...targetVars,
                    FORKLIFT_HOST: args.host.name,
                    FORKLIFT_INSECURE: args.insecureSkipHostKeyCheck ? "1" : "0",
                    FORKLIFT_REMOTE_PATH: remotePath,
                    FORKLIFT_SHA256: sha256,
                    FORKLIFT_CACHE_DIR: args.cacheDir,
                    // the remote command travels on stdin: its hash here makes a change of the
                    // units, daemon.json or the host script run the install again
                    FORKLIFT_INSTALL_KEY: hashInputs({ install, script: hostScript }).slice(0, 32),
                }),
            );
        const stdin = pulumi
            .all([routeKeys("builder", args.artifact.builder), routeKeys("target", args.host), remoteInstall, owner])
            .apply(([builderKeys, targetKeys, install, owner]) =>
                artifactStdin({ ...builderKeys, ...targetKeys, install, uninstall: uninstallCommand(args.host.name, owner, sudo) }),
            );

        this.installKey = create.apply((c) => sha256Of(c).slice(0, 32));
        this.checkHost = hostToCheck(
            args.host,
            owner,
            args.insecureSkipHostKeyCheck,
            pulumi.all([args.artifact.size, args.artifact.sha256]).apply(([size, sha256]) => ({
                // staged tgz, unpacked release, and the previous release kept for rollback; none
                // where the release is unpacked already (the install copies nothing)
                FORKLIFT_NEED_KIB: String(Math.ceil((size * 4) / 1024)),
                FORKLIFT_SHA256: sha256,
            })),
        );

        // A local command on the machine of `pulumi up` that copies the artifact and installs,
        // and whose delete uninstalls. Its inputs are plain strings, so a preview with the build
        // still to run shows the plan (CopyToRemote refuses an asset unknown at preview). Copy and
        // install are one resource so that whatever replaces the install copies again.
        this.install = new command.local.Command(
            `${name}-install`,
            {
                create,
                delete: target.apply((vars) => artifactCommand("uninstall", { ...vars, FORKLIFT_HOST: args.host.name, FORKLIFT_INSECURE: args.insecureSkipHostKeyCheck ? "1" : "0" })),
                stdin: pulumi.secret(stdin),
                addPreviousOutputInEnv: false,
                // The machine this resource stands for: when it changes, the old one is
                // uninstalled (the old resource's delete, first) and the new one installed,
                // instead of an update that would leave the old machine on the release.
                // Delete-before-replace also keeps a `pulumi up --replace` of the same machine
                // from uninstalling what its create just installed.
                triggers: [args.host.address, args.host.port],
            },
            { parent, dependsOn: args.after, deletedWith, deleteBeforeReplace: true, aliases: formerChild("install") },
        );
        this.status = this.install.stdout.apply(parseHostStatus);
        this.registerOutputs({ status: this.status });
    }
}

/** Who rolls out to HOST: recorded there by the install; the check refuses a host another stack owns. */
export function hostOwner(host: ReachableHost, stackId: pulumi.Input<string>): pulumi.Output<Owner> {
    return pulumi.output(stackId).apply((id) => ({ stack: `${pulumi.getProject()}/${pulumi.getStack()}`, stackId: id, host: host.name }));
}

/** A host as `artifact.sh check` sees it (one block of the precheck's or the check's stdin). */
export interface HostToCheck {
    /** Its variables for `artifact.sh check`. */
    vars: pulumi.Output<Record<string, string>>;
    /** Its route's private keys (secrets; artifactStdin's entries). */
    keys: pulumi.Output<Record<string, string | undefined>>;
}

/** HOST as `artifact.sh check` sees it, with EXTRA variables (the room the release needs). */
export function hostToCheck(
    host: ReachableHost,
    owner: pulumi.Input<Owner>,
    insecure: boolean,
    extra: pulumi.Input<Record<string, string>> = {},
): HostToCheck {
    const vars = pulumi.all([routeVars("TARGET", host, insecure), owner, extra]).apply(([targetVars, who, more]): Record<string, string> => ({
        ...targetVars,
        ...ownerVars(who),
        FORKLIFT_HOST: host.name,
        FORKLIFT_INSECURE: insecure ? "1" : "0",
        ...more,
    }));
    return { vars, keys: routeKeys("target", host) };
}

/** forklift-host.sh's hash: a new host script runs the precheck, the check and the installs again. */
export function hostScriptHash(): string {
    return sha256Of(readScript("forklift-host.sh"));
}
