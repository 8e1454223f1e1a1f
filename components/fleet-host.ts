import * as pulumi from "@pulumi/pulumi";
import * as command from "@pulumi/command";
import { Owner, parseHostStatus } from "../lib/protocol/host";
import { HostStatus } from "../lib/protocol/results";
import { CheckedHost, checkedHost, fleetHostJob, localCommand, roomNeededKiB } from "../lib/protocol/local";
import { sha256 as sha256Of } from "../lib/hash";
import { shq } from "../lib/shell";
import { ArtifactSource, FleetHostJob, SwarmNodeJob } from "../lib/protocol/jobs";
import { ReachableHost, remoteHost } from "../lib/connection";

/** The built artifact as the fleet needs it: where it is, and what it is. */
export interface Artifact {
    /** The build host that holds it (it is fetched from there into the local cache). */
    builder: ReachableHost;
    /** The hash of the fork's inputs, known before the build runs (see ForkBuild). */
    inputsKey: string;
    /** What is built, for people: the fork's repository and ref. */
    label: string;
    /** Its path on the build host (the same for the same bytes: see BuildResult). */
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
    /** Where the artifact is fetched from, for the local commands (see Rollout). */
    source: pulumi.Output<ArtifactSource>;
    /** Where the binaries are linked (`installDir`, "/usr/bin" unless set). */
    installDir: string;
    /**
     * Managed /etc/docker/daemon.json (`daemonJson`, `{ "live-restore": true }` unless set); null
     * leaves the host's own file alone.
     */
    daemonJson: Record<string, unknown> | null;
    /**
     * What the install waits for: the installs of the step before its own (it starts only after
     * they verified), or, for the first step, the Rollout's check of every host and its precheck.
     */
    after: pulumi.Input<pulumi.Resource[]>;
    /**
     * Its status as the Rollout's rollout installed it (the install's status line), once the
     * rollout ran: an update of this resource then only records it. Undefined where the rollout's
     * report has none: the update installs, as the create always does (a new host, a replaced one).
     */
    rolledOut: pulumi.Output<string | undefined>;
    /** How the install and uninstall treat a Swarm node (see Rollout). */
    swarm: pulumi.Input<SwarmNodeJob>;
    /** `healthCheck` and its timeout (see RolloutArgs). */
    healthCheck?: { command: string; timeoutSeconds: number };
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
 * One fleet host on the release: the artifact, staged there by the Rollout's check (or copied
 * over from the local cache by the install itself, sha256-checked on the host), units rendered
 * for it, installed and verified by forklift-host.sh, rolled back there if the new daemon does not
 * answer. Destroy runs the uninstall that the install left on the host, except on instances
 * forklift launched (terminating them is the cleanup). Before the first batch, the Rollout checks
 * every host (reachable, host key, login, sudo, systemd, disk space, and that no other stack owns
 * it) in one command, from each host's `checkHost`.
 */
export class FleetHost extends pulumi.ComponentResource {
    readonly install: command.local.Command;
    /** The host's install job (a secret: it carries keys), for the Rollout's rollout. */
    readonly job: pulumi.Output<FleetHostJob>;
    /** This host in the Rollout's check after the build, which stages the release on it. */
    readonly checkHost: pulumi.Output<CheckedHost>;
    /** A hash of the install's job: it changes whenever the install runs again. */
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
        const deletedWith = args.host.instance;
        const owner = hostOwner(args.host, args.stackId);
        const remote = remoteHost(args.host, args.insecureSkipHostKeyCheck);
        const job = (this.job = pulumi
            .all([remote, owner, args.artifact.sha256, args.artifact.version, args.artifact.binaries, args.source, args.swarm])
            .apply(([host, owner, sha256, version, binaries, source, swarm]) =>
                fleetHostJob({ host, owner, release: { sha256, version, binaries }, installDir: args.installDir, daemonJson: args.daemonJson, source, swarm, insecure: args.insecureSkipHostKeyCheck, healthCheck: args.healthCheck }),
            ));
        // (a hash of the secret job, keys included: a new key runs the install, and so the check, again)
        this.installKey = job.apply((j) => sha256Of(JSON.stringify(j)).slice(0, 32));
        this.checkHost = pulumi
            .all([remote, owner, args.artifact.size, args.artifact.sha256])
            .apply(([host, owner, size, sha256]) => checkedHost(host, owner, { sha256, needKiB: roomNeededKiB(size) }));

        // A local command on the machine of `pulumi up` that installs (copying the artifact where
        // the host lacks it), and whose delete uninstalls. Its inputs are plain strings, so a
        // preview with the build still to run shows the plan. The Rollout's rollout installs the
        // hosts, step by step: an update (its job changed, so the rollout ran) records the status
        // the rollout reported; a create (a new host, a replaced one) installs, which finds a
        // host the rollout did up to date.
        const create = pulumi.output(args.artifact.sha256).apply((sha256) => localCommand("install", args.host.name, sha256.slice(0, 12)));
        this.install = new command.local.Command(
            `${name}-install`,
            {
                // (what the plan shows: the host and the release; the job is the secret stdin)
                create,
                update: pulumi.all([create, args.rolledOut]).apply(([install, status]) => (status ? `printf '%s\\n' ${shq(status)}` : install)),
                delete: localCommand("uninstall", args.host.name),
                stdin: pulumi.secret(job.apply((j) => JSON.stringify(j))),
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
