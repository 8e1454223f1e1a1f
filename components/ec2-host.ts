import * as pulumi from "@pulumi/pulumi";
import * as aws from "@pulumi/aws";
import * as tls from "@pulumi/tls";
import { FirstBoot, firstBootUserData } from "../lib/protocol/bootstrap";
import { ReachableHost, SshHop } from "../lib/connection";

/** Ubuntu 24.04 LTS (Canonical's account), used when the stack names no AMI. */
export const UBUNTU_OWNER = "099720109477";
export const UBUNTU_NAME = "ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-*";

export interface Ec2HostArgs {
    /**
     * EC2 instance type.
     * @example "t2.medium"
     */
    instanceType: string;
    /**
     * AMI id; the newest Ubuntu 24.04 LTS AMI when absent.
     * @default looked up with aws.ec2.getAmi
     */
    ami?: string;
    /** Root volume size in GiB (gp3, encrypted). */
    volumeGiB: number;
    /** @default the default VPC's default subnet */
    subnetId?: string;
    securityGroupId: pulumi.Input<string>;
    keyName: pulumi.Input<string>;
    /** Login user of the AMI ("ubuntu" for Ubuntu's). */
    user: string;
    /** Login private key (secret). */
    privateKey: pulumi.Input<string>;
    /**
     * Reach the instance through this bastion, at its private address; it then gets no public
     * IP. Its SSH port must accept the bastion (put the bastion's address in sshAllowedCidrs).
     * @default direct, over the public IP
     */
    bastion?: SshHop;
    /**
     * What scripts/bootstrap-builder.sh does at first boot, as user data: `bootstrap` prepares a
     * build host, `host-key` only installs the instance's SSH host key. Either way the key is
     * installed before sshd is reached, and forklift pins the matching public key.
     * @example { mode: "host-key" }
     */
    firstBoot: FirstBoot;
}

/**
 * One launched instance with IMDSv2 required, an encrypted gp3 root volume and an SSH host key
 * generated here, so every connection to it is pinned from the first one on.
 */
export class Ec2Host extends pulumi.ComponentResource {
    readonly instance: aws.ec2.Instance;
    readonly host: ReachableHost;

    constructor(name: string, args: Ec2HostArgs, opts?: pulumi.ComponentResourceOptions) {
        super("forklift:index:Ec2Host", name, {}, opts);
        const parent = this;

        const hostKey = new tls.PrivateKey(`${name}-hostkey`, { algorithm: "ED25519" }, { parent });
        const hostKeyB64 = pulumi.secret(hostKey.privateKeyOpenssh.apply((k) => Buffer.from(k).toString("base64")));
        const ami = args.ami ?? aws.ec2.getAmiOutput({
            mostRecent: true,
            owners: [UBUNTU_OWNER],
            filters: [
                { name: "name", values: [UBUNTU_NAME] },
                { name: "architecture", values: ["x86_64"] },
            ],
        }, { parent }).id;

        this.instance = new aws.ec2.Instance(
            name,
            {
                instanceType: args.instanceType,
                ami,
                subnetId: args.subnetId,
                vpcSecurityGroupIds: [args.securityGroupId],
                associatePublicIpAddress: args.bastion ? false : undefined,
                keyName: args.keyName,
                userData: pulumi.secret(hostKeyB64.apply((k) => firstBootUserData(args.firstBoot, k))),
                metadataOptions: { httpTokens: "required", httpEndpoint: "enabled", httpPutResponseHopLimit: 1 },
                rootBlockDevice: { volumeSize: args.volumeGiB, volumeType: "gp3", encrypted: true, deleteOnTermination: true },
                tags: { Name: name, "managed-by": "forklift" },
            },
            // a newer Ubuntu AMI or an edited bootstrap script must not replace running hosts
            // (and so restart the fleet); replace one explicitly to pick them up
            { parent, ignoreChanges: ["ami", "userData"] },
        );

        const address = args.bastion
            ? this.instance.privateIp
            : pulumi.all([this.instance.publicIp, this.instance.privateIp]).apply(([pub, priv]) => pub || priv);
        const publicHostKey = hostKey.publicKeyOpenssh.apply((k) => k.trim());
        const route = { address, port: 22, user: args.user, hostKey: publicHostKey, privateKey: args.privateKey, proxy: args.bastion };
        this.host = { name, ...route, instance: this.instance };
        this.registerOutputs({ instanceId: this.instance.id, address: address });
    }
}
