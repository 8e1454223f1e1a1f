import * as pulumi from "@pulumi/pulumi";
import * as aws from "@pulumi/aws";
import * as tls from "@pulumi/tls";
import { isOpenCidr } from "../lib/config";

export interface SshAccessArgs {
    /**
     * CIDR blocks allowed to reach port 22 on launched instances. Nothing else gets in; there is
     * no default, because the only safe default is "you" and forklift cannot know your address.
     * @example ["203.0.113.7/32"]
     */
    allowedCidrs: string[];
    /**
     * Subnet the instances go to; the security group is created in its VPC.
     * @default the account's default VPC
     */
    subnetId?: string;
    /**
     * SSH private key for the instances' login user (a secret). When absent, an ED25519 key is
     * generated with @pulumi/tls and kept (encrypted) in the stack state.
     * @default generated
     */
    privateKey?: string;
}

/**
 * What every launched instance shares: a login key pair and a security group that allows SSH
 * only from the configured CIDRs (and all egress: the builder clones and pulls build images).
 */
export class SshAccess extends pulumi.ComponentResource {
    readonly keyName: pulumi.Output<string>;
    readonly securityGroupId: pulumi.Output<string>;
    readonly privateKey: pulumi.Output<string>;

    constructor(name: string, args: SshAccessArgs, opts?: pulumi.ComponentResourceOptions) {
        super("forklift:index:SshAccess", name, {}, opts);
        const parent = this;

        if (args.allowedCidrs.some(isOpenCidr)) {
            pulumi.log.warn(`${name}: SSH is open to the whole internet (allowOpenSsh: true). Narrow sshAllowedCidrs when you can.`, this);
        }
        const { privateKey, publicKey } = loginKey();
        this.privateKey = pulumi.secret(privateKey);
        const keyPair = new aws.ec2.KeyPair(`${name}-key`, { publicKey }, { parent });
        this.keyName = keyPair.keyName;
        this.securityGroupId = securityGroup().id;
        this.registerOutputs({ keyName: this.keyName, securityGroupId: this.securityGroupId });

        function loginKey(): { privateKey: pulumi.Output<string>; publicKey: pulumi.Output<string> } {
            if (args.privateKey !== undefined) {
                const secretKey = pulumi.secret(args.privateKey);
                const pub = args.privateKey.includes("OPENSSH PRIVATE KEY")
                    ? tls.getPublicKeyOutput({ privateKeyOpenssh: secretKey }, { parent })
                    : tls.getPublicKeyOutput({ privateKeyPem: secretKey }, { parent });
                return { privateKey: secretKey, publicKey: pub.publicKeyOpenssh.apply((k) => k.trim()) };
            }
            const key = new tls.PrivateKey(`${name}-login`, { algorithm: "ED25519" }, { parent });
            return { privateKey: key.privateKeyOpenssh, publicKey: key.publicKeyOpenssh.apply((k) => k.trim()) };
        }

        function securityGroup(): aws.ec2.SecurityGroup {
            const vpcId = args.subnetId ? aws.ec2.getSubnetOutput({ id: args.subnetId }, { parent }).vpcId : undefined;
            const v4 = args.allowedCidrs.filter((c) => !c.includes(":"));
            const v6 = args.allowedCidrs.filter((c) => c.includes(":"));
            return new aws.ec2.SecurityGroup(
                `${name}-ssh`,
                {
                    description: "forklift: SSH from the configured CIDRs only",
                    vpcId,
                    ingress: [
                        {
                            description: "SSH",
                            protocol: "tcp",
                            fromPort: 22,
                            toPort: 22,
                            cidrBlocks: v4.length ? v4 : undefined,
                            ipv6CidrBlocks: v6.length ? v6 : undefined,
                        },
                    ],
                    egress: [{ description: "all egress", protocol: "-1", fromPort: 0, toPort: 0, cidrBlocks: ["0.0.0.0/0"], ipv6CidrBlocks: ["::/0"] }],
                },
                { parent },
            );
        }
    }
}
