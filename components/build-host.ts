import * as pulumi from "@pulumi/pulumi";
import * as command from "@pulumi/command";
import { SshTarget } from "../lib/config";
import { bootstrapCommand, builderCleanupCommand } from "../lib/protocol/bootstrap";
import { readScript } from "../lib/protocol/script";
import { Connection, ReachableHost, configuredHost, providerConnection, sshCommand } from "../lib/connection";
import { ec2Host } from "./ec2";
import type { SshAccess } from "./ssh-access";

export interface BuildHostArgs {
    /**
     * A build host you already have (Debian or Ubuntu, root or passwordless sudo). When set,
     * nothing is launched; the bootstrap script runs on it over SSH instead of as user data.
     * @default launch one on EC2
     */
    existing?: SshTarget;
    /** EC2 settings for a launched build host. */
    ec2: { instanceType: string; ami?: string; volumeGiB: number; subnetId?: string };
    /** Key pair and security group for launched instances; required when `existing` is absent. */
    access?: SshAccess;
    /** Login user of the launched AMI (`sshUser`, "ubuntu" unless set). */
    ec2User: string;
    /** Swap file size in GiB added by the bootstrap (`builderSwapGiB`, 4 unless set: Go builds on 4 GiB RAM need it). */
    swapGiB: number;
    /**
     * Skip host key checks of an existing build host (explicit opt-in, warned); a launched one's
     * key is generated here and always pinned.
     */
    insecureSkipHostKeyCheck: boolean;
    /** Seconds an SSH connection to an existing build host may take (`sshConnectTimeout`, 10 unless set). */
    connectTimeout: number;
    /**
     * The stack's random identity: an existing build host records the stacks that use it, and
     * the destroy of one cleans the host up only when no other stack uses it.
     */
    stackId: pulumi.Input<string>;
}

/**
 * The machine the fork is built on, ready to build: git, make and a running Docker engine
 * (plus buildx where the distro has it) and a swap file. `ready` resolves once it is.
 */
export class BuildHost extends pulumi.ComponentResource {
    readonly host: ReachableHost;
    /** The provider's connection to it (host keys pinned; a launched host's always). */
    readonly connection: Connection;
    readonly ready: command.remote.Command;
    readonly sshCommand: pulumi.Output<string>;

    constructor(name: string, args: BuildHostArgs, opts?: pulumi.ComponentResourceOptions) {
        super("forklift:index:BuildHost", name, {}, opts);
        const parent = this;
        const script = readScript("bootstrap-builder.sh");

        this.host = args.existing ? configuredHost(args.existing, args.connectTimeout) : launchedHost();
        this.connection = providerConnection(this.host, args.existing ? args.insecureSkipHostKeyCheck : false);
        const sudo = this.host.user !== "root";
        this.ready = new command.remote.Command(
            `${name}-bootstrap`,
            {
                connection: this.connection,
                // an existing build host records the stacks that use it: the destroy of one
                // leaves it to the others
                create: args.existing
                    ? pulumi.output(args.stackId).apply((id) => bootstrapCommand("bootstrap", args.swapGiB, sudo, id))
                    : bootstrapCommand("wait", args.swapGiB, sudo),
                delete: args.existing ? pulumi.output(args.stackId).apply((id) => builderCleanupCommand(sudo, id)) : builderCleanupCommand(sudo),
                stdin: script,
                addPreviousOutputInEnv: false,
                // another machine is another build host: clean the old one up, then bootstrap the new
                triggers: [this.host.address, this.host.port],
            },
            { parent, deletedWith: this.host.instance, deleteBeforeReplace: true },
        );
        this.sshCommand = sshCommand(this.host);
        this.registerOutputs({ address: this.host.address, sshCommand: this.sshCommand });

        function launchedHost(): ReachableHost {
            if (!args.access) throw new Error(`${name}: launching a build host needs SSH access settings`);
            const ec2 = new (ec2Host().Ec2Host)(
                `${name}-ec2`,
                {
                    instanceType: args.ec2.instanceType,
                    ami: args.ec2.ami,
                    volumeGiB: args.ec2.volumeGiB,
                    subnetId: args.ec2.subnetId,
                    securityGroupId: args.access.securityGroupId,
                    keyName: args.access.keyName,
                    user: args.ec2User,
                    privateKey: args.access.privateKey,
                    firstBoot: { mode: "bootstrap", swapGiB: args.swapGiB },
                },
                { parent },
            );
            return ec2.host;
        }
    }
}
