import * as pulumi from "@pulumi/pulumi";
import { Ec2Settings, SshTarget, launchedFleetNames } from "../lib/config";
import { ReachableHost, configuredHop, configuredHost } from "../lib/connection";
import { ec2Host } from "./ec2";
import type { SshAccess } from "./ssh-access";

export interface FleetArgs {
    /**
     * Hosts you already have (`fleetHosts`), in rollout order; each may sit behind its own proxy.
     * @default []
     */
    existing?: SshTarget[];
    /**
     * EC2 instances to launch after the existing hosts (`fleetCount`, `fleetInstanceType`,
     * `fleetAmi`, `fleetVolumeGiB`). They are named `forklift-fleet-N`.
     * @example { count: 2, instanceType: "t3.small", volumeGiB: 20 }
     */
    ec2: Ec2Settings & { count: number; volumeGiB: number; subnetId?: string };
    /** Key pair and security group for launched instances; required when `ec2.count` is above 0. */
    access?: SshAccess;
    /** Login user of the launched AMI (`sshUser`, "ubuntu" unless set). */
    ec2User: string;
    /**
     * One bastion hop in front of the launched instances (`fleetBastion`): they then get no public
     * IP and are reached at their private address through it.
     * @default direct, over their public IP
     */
    bastion?: Omit<SshTarget, "name" | "proxy">;
    /** Skip host key checks (explicit opt-in, warned): the bastion's key is not pinned either. */
    insecureSkipHostKeyCheck: boolean;
    /** Seconds an SSH connection to an existing host or the bastion may take (`sshConnectTimeout`). */
    connectTimeout: number;
}

/**
 * The machines the release goes to, as one list in rollout order: the existing hosts as listed,
 * then the instances launched for the stack, each with its SSH host key generated here and
 * installed at first boot, so that it is pinned from the first connection on.
 */
export class Fleet extends pulumi.ComponentResource {
    readonly hosts: ReachableHost[];

    constructor(name: string, args: FleetArgs, opts?: pulumi.ComponentResourceOptions) {
        super("forklift:index:Fleet", name, {}, opts);
        const parent = this;
        const existing = (args.existing ?? []).map((h) => configuredHost(h, args.connectTimeout));
        this.hosts = [...existing, ...launchedHosts()];
        this.registerOutputs({ hosts: this.hosts.map((h) => h.name) });

        function launchedHosts(): ReachableHost[] {
            if (args.ec2.count === 0) return [];
            if (!args.access) throw new Error(`${name}: launching fleet instances needs SSH access settings`);
            const access = args.access;
            const { Ec2Host } = ec2Host();
            const bastionKey = args.insecureSkipHostKeyCheck ? undefined : args.bastion?.hostKey;
            const bastion = args.bastion ? configuredHop({ ...args.bastion, hostKey: bastionKey }, args.connectTimeout) : undefined;
            return launchedFleetNames(args.ec2.count).map(
                (hostName) =>
                    new Ec2Host(
                        hostName,
                        {
                            instanceType: args.ec2.instanceType,
                            ami: args.ec2.ami,
                            volumeGiB: args.ec2.volumeGiB,
                            subnetId: args.ec2.subnetId,
                            securityGroupId: access.securityGroupId,
                            keyName: access.keyName,
                            user: args.ec2User,
                            privateKey: access.privateKey,
                            bastion,
                            firstBoot: { mode: "host-key" },
                        },
                        // launched before the Fleet component existed, at the top of the stack:
                        // the alias keeps existing stacks' instances (and their host keys) in place
                        { parent, aliases: [{ parent: pulumi.rootStackResource }] },
                    ).host,
            );
        }
    }
}
