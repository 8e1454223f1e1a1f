/** Shared inputs for the unit tests. The key is a throwaway generated for these tests only. */
export const TEST_PRIVATE_KEY = `-----BEGIN OPENSSH PRIVATE KEY-----
b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW
QyNTUxOQAAACBNdzMfcN5Pfb1pQiV1Ea0mAVgbnE377916xPHQk1KDpwAAAJCidYooonWK
KAAAAAtzc2gtZWQyNTUxOQAAACBNdzMfcN5Pfb1pQiV1Ea0mAVgbnE377916xPHQk1KDpw
AAAEC53XE7iRmSE1CnsSNWaozKroeKVk6molLP1VRSPj7wyk13Mx9w3k99vWlCJXURrSYB
WBucTfvv3XrE8dCTUoOnAAAAB2ZpeHR1cmUBAgMEBQY=
-----END OPENSSH PRIVATE KEY-----
`;
export const TEST_HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIE13Mx9w3k99vWlCJXURrSYBWBucTfvv3XrE8dCTUoOn";

/** A valid hosts-mode stack (existing builder + two existing fleet hosts), as stack values. */
export function hostsStack(): Record<string, unknown> {
    return {
        recipe: "docker-ce",
        forkRepo: "git://10.78.1.1/docker-ce.git",
        forkRef: "v18.03.1-ce",
        builderHost: { name: "builder", address: "10.0.0.2", user: "root", privateKey: TEST_PRIVATE_KEY, hostKey: TEST_HOST_KEY },
        fleetHosts: [
            { name: "h1", address: "10.0.0.4", user: "root", privateKey: TEST_PRIVATE_KEY, hostKey: TEST_HOST_KEY },
            { address: "10.0.0.3", port: 22, privateKey: TEST_PRIVATE_KEY, hostKey: TEST_HOST_KEY },
        ],
    };
}

/** A valid EC2-mode stack: a launched builder and two launched fleet instances. */
export const ec2Stack = {
    forkRepo: "https://github.com/example/moby.git",
    forkRef: "v28.0.1",
    fleetCount: 2,
    sshAllowedCidrs: ["203.0.113.7/32", "2001:db8::/64"],
};

const host = (over: Record<string, unknown> = {}) => ({ address: "10.0.0.5", user: "root", privateKey: TEST_PRIVATE_KEY, hostKey: TEST_HOST_KEY, ...over });

/** The valid hosts stack with the overrides applied (undefined removes a key). */
export function badStack(overrides: Record<string, unknown>): Record<string, unknown> {
    const values: Record<string, unknown> = { ...hostsStack(), ...overrides };
    for (const k of Object.keys(values)) if (values[k] === undefined) delete values[k];
    return values;
}

/** [what, stack overrides, key named in the message, fragment of the expected form] */
export const badConfigs: [string, Record<string, unknown>, string, string][] = [
    ["missing fork repo", { forkRepo: undefined }, "forklift:forkRepo", "git URL"],
    ["missing fork ref", { forkRef: undefined }, "forklift:forkRef", "branch, tag or commit"],
    ["repo is not a URL", { forkRepo: "not a url" }, "forklift:forkRepo", "git URL"],
    ["repo with a bad scheme", { forkRepo: "ftp://example.com/x.git" }, "forklift:forkRepo", "git URL"],
    ["repo URL with a token in it", { forkRepo: "https://me:ghp_secret@github.com/me/moby.git" }, "forklift:forkRepo", "without credentials"],
    ["ref with a space", { forkRef: "my branch" }, "forklift:forkRef", "no spaces"],
    ["ref with ..", { forkRef: "a..b" }, "forklift:forkRef", "'..'"],
    ["ref ending in .lock", { forkRef: "feature.lock" }, "forklift:forkRef", "branch"],
    ["unknown recipe", { recipe: "bazel" }, "forklift:recipe", "docker-ce, docker-ce-packaging, moby"],
    ["cliRepo with recipe moby", { recipe: "moby", cliRepo: "https://github.com/me/cli.git" }, "forklift:cliRepo", "only recipe docker-ce-packaging"],
    ["bad make variable name", { makeVars: { "lower-case": "1" } }, "forklift:makeVars.lower-case", "make variable name"],
    ["multi-line make value", { makeVars: { X: "a\nb" } }, "forklift:makeVars.X", "single-line"],
    ["bad version", { version: "v 1" }, "forklift:version", "version such as"],
    ["bad builder instance type", { builderInstanceType: "huge" }, "forklift:builderInstanceType", "instance type"],
    ["bad fleet instance type", { fleetInstanceType: "t3" }, "forklift:fleetInstanceType", "instance type"],
    ["bad AMI", { builderAmi: "ubuntu" }, "forklift:builderAmi", "AMI id"],
    ["bad subnet", { subnetId: "vpc-123" }, "forklift:subnetId", "subnet id"],
    ["fleet count 0 and no hosts", { fleetHosts: [], fleetCount: 0 }, "forklift:fleetHosts", "at least one fleet host"],
    ["negative fleet count", { fleetCount: -1 }, "forklift:fleetCount", "whole number from 0"],
    ["non-integer fleet count", { fleetCount: 1.5 }, "forklift:fleetCount", "whole number"],
    ["fleet count is text", { fleetCount: "three" }, "forklift:fleetCount", "whole number"],
    ["batch size 0", { batchSize: 0 }, "forklift:batchSize", "from 1"],
    ["batch size larger than the fleet", { batchSize: 5 }, "forklift:batchSize", "no larger than the fleet (2 hosts)"],
    ["duplicate host addresses", { fleetHosts: [host({ name: "a" }), host({ name: "b" })] }, "forklift:fleetHosts[1].address", "not already used"],
    ["empty fork repo", { forkRepo: "" }, "forklift:forkRepo", "git URL"],
    ["blank fork ref", { forkRef: " " }, "forklift:forkRef", "branch, tag or commit"],
    ["empty fork ref", { forkRef: "" }, "forklift:forkRef", "branch, tag or commit"],
    ["https URL with user and password", { forkRepo: "https://me:pw@github.com/me/moby.git" }, "forklift:forkRepo", "without credentials"],
    ["ssh URL with a password", { forkRepo: "ssh://git:hunter2@github.com/me/moby.git" }, "forklift:forkRepo", "without credentials"],
    ["scp-like URL with a password", { forkRepo: "git:hunter2@github.com:me/moby.git" }, "forklift:forkRepo", "without credentials"],
    ["CLI repo with a token", { recipe: "docker-ce-packaging", cliRepo: "https://ghp_x@github.com/me/cli.git" }, "forklift:cliRepo", "without credentials"],
    ["packaging repo with a password", { recipe: "docker-ce-packaging", packagingRepo: "ssh://me:pw@example.com/pkg.git" }, "forklift:packagingRepo", "without credentials"],
    ["daemonJson with hosts", { daemonJson: { "live-restore": true, hosts: ["tcp://0.0.0.0:2375"] } }, "forklift:daemonJson.hosts", "-H fd://"],
    ["duplicate address after an invalid entry", { fleetHosts: [host({ address: "bad address" }), host({ name: "a" }), host({ name: "b" })] }, "forklift:fleetHosts[2].address", "not already used by fleetHosts[1]"],
    ["duplicate name after an invalid entry", { fleetHosts: [host({ port: 0 }), host({ name: "a" }), host({ name: "a", address: "10.0.0.6" })] }, "forklift:fleetHosts[2].name", "not already used by fleetHosts[1]"],
    ["fleet host named like a launched instance", { fleetCount: 1, sshAllowedCidrs: ["203.0.113.7/32"], fleetHosts: [host({ name: "forklift-fleet-1" })] }, "forklift:fleetHosts[0].name", "launched fleet instances"],
    ["fleet host named like a launched instance's rollout", { fleetCount: 2, sshAllowedCidrs: ["203.0.113.7/32"], fleetHosts: [host({ name: "web" }), host({ name: "fleet-2", address: "10.0.0.6" })] }, "forklift:fleetHosts[1].name", "other than fleet-N"],
    ["two hosts whose derived names collide", { fleetHosts: [host({ address: "Web.Example" }), host({ address: "web-example" })] }, "forklift:fleetHosts[1].name", "not already used"],
    ["duplicate host names", { fleetHosts: [host({ name: "a" }), host({ name: "a", address: "10.0.0.6" })] }, "forklift:fleetHosts[1].name", "not already used"],
    ["host without a key", { fleetHosts: [host({ privateKey: undefined })] }, "forklift:fleetHosts[0].privateKey", "useAgent"],
    ["key that is not a private key", { fleetHosts: [host({ privateKey: "ssh-ed25519 AAAA me@x" })] }, "forklift:fleetHosts[0].privateKey", "PEM or OpenSSH private key"],
    ["host without an address", { fleetHosts: [host({ address: undefined })] }, "forklift:fleetHosts[0].address", "host name or IP"],
    ["host with a bad address", { fleetHosts: [host({ address: "a b" })] }, "forklift:fleetHosts[0].address", "host name or IP"],
    ["host with a bad port", { fleetHosts: [host({ port: 70000 })] }, "forklift:fleetHosts[0].port", "1 to 65535"],
    ["host without a host key", { fleetHosts: [host({ hostKey: undefined })] }, "forklift:fleetHosts[0].hostKey", "insecureSkipHostKeyCheck"],
    ["host with a malformed host key", { fleetHosts: [host({ hostKey: "AAAA" })] }, "forklift:fleetHosts[0].hostKey", "public host key line"],
    ["typo in a host field", { fleetHosts: [host({ adress: "x" })] }, "forklift:fleetHosts[0].adress", "no such field"],
    ["proxy without a host key", { fleetHosts: [host({ proxy: { address: "10.0.0.1", privateKey: TEST_PRIVATE_KEY } })] }, "forklift:fleetHosts[0].proxy.hostKey", "public SSH key"],
    ["fleet hosts not a list", { fleetHosts: { address: "x" } }, "forklift:fleetHosts", "list of host objects"],
    ["launching with no CIDRs", { fleetCount: 1 }, "forklift:sshAllowedCidrs", "at least one CIDR"],
    ["bastion without launched instances", { fleetBastion: host() }, "forklift:fleetBastion", "unset when fleetCount is 0"],
    ["bastion without a host key", { fleetCount: 1, sshAllowedCidrs: ["10.0.0.0/16"], fleetBastion: host({ hostKey: undefined }) }, "forklift:fleetBastion.hostKey", "public SSH key"],
    ["malformed CIDR", { fleetCount: 1, sshAllowedCidrs: ["10.0.0.0/33"] }, "forklift:sshAllowedCidrs[0]", "CIDR block"],
    ["CIDR without a mask", { fleetCount: 1, sshAllowedCidrs: ["10.0.0.1"] }, "forklift:sshAllowedCidrs[0]", "CIDR block"],
    ["open SSH without opt-in", { fleetCount: 1, sshAllowedCidrs: ["0.0.0.0/0"] }, "forklift:sshAllowedCidrs[0]", "allowOpenSsh: true"],
    ["open IPv6 SSH without opt-in", { fleetCount: 1, sshAllowedCidrs: ["::/0"] }, "forklift:sshAllowedCidrs[0]", "allowOpenSsh: true"],
    ["CIDRs not a list", { fleetCount: 1, sshAllowedCidrs: "10.0.0.0/8" }, "forklift:sshAllowedCidrs", "list of strings"],
    ["boolean that is not one", { allowOpenSsh: "yes" }, "forklift:allowOpenSsh", "true or false"],
    ["relative install dir", { installDir: "usr/bin" }, "forklift:installDir", "absolute path"],
    ["daemonJson not a map", { daemonJson: ["live-restore"] }, "forklift:daemonJson", "map of daemon.json settings"],
    ["volume too small for a build", { builderVolumeGiB: 8 }, "forklift:builderVolumeGiB", "from 30"],
    ["login key that is not a key", { sshPrivateKey: "hunter2" }, "forklift:sshPrivateKey", "private key"],
    ["unknown top-level key (typo)", { batchsize: 2 }, "forklift:batchsize", "did you mean forklift:batchSize"],
    ["a Swarm manager that is no fleet host", { swarmManagers: [{ name: "nope" }] }, "forklift:swarmManagers[0].name", "the name of a fleet host (h1, 10-0-0-3)"],
    ["a Swarm manager outside the fleet without its host key", { swarmManagers: [{ name: "ops", address: "10.0.0.9", privateKey: TEST_PRIVATE_KEY }] }, "forklift:swarmManagers[0].hostKey", "public SSH key"],
    ["a Swarm manager outside the fleet named like a fleet host", { swarmManagers: [host({ name: "h1", address: "10.0.0.9" })] }, "forklift:swarmManagers[0].name", "no fleet host's"],
    ["swarmManagers not a list", { swarmManagers: { name: "h1" } }, "forklift:swarmManagers", "a list of {name: FLEET_HOST} entries"],
    ["a drain timeout too short to move a task", { swarmDrainTimeout: 2 }, "forklift:swarmDrainTimeout", "a whole number from 10 to 86400"],
    ["a node timeout of no number", { swarmNodeTimeout: "soon" }, "forklift:swarmNodeTimeout", "a whole number from 10 to 3600"],
    ["an artifact source of no known type", { artifactSource: { type: "ftp" } }, "forklift:artifactSource.type", "relay, bucket or s3"],
    ["an S3 store without its bucket", { artifactSource: { type: "s3", endpoint: "http://10.0.0.9:9000" } }, "forklift:artifactSource.bucket", "an S3 bucket name"],
    ["an S3 endpoint with credentials in it", { artifactSource: { type: "s3", bucket: "forklift", endpoint: "https://key:secret@minio.internal" } }, "forklift:artifactSource.endpoint", "no credentials in it"],
    ["a field of another source type", { artifactSource: { type: "relay", bucket: "forklift" } }, "forklift:artifactSource.bucket", "no such field for type relay"],
    ["an S3 pathStyle that is no boolean", { artifactSource: { type: "s3", bucket: "forklift", endpoint: "http://10.0.0.9:9000", pathStyle: "yes" } }, "forklift:artifactSource.pathStyle", "true or false"],
    ["swarmAllowTwoManagers not a boolean", { swarmAllowTwoManagers: "maybe" }, "forklift:swarmAllowTwoManagers", "true or false"],
    ["swarmMaxDrained 0", { swarmMaxDrained: 0 }, "forklift:swarmMaxDrained", "a whole number from 1 to 100"],
    ["swarmSurge of no number", { swarmSurge: "lots" }, "forklift:swarmSurge", "a whole number from 0 to 100"],
    ["a swarmUnlockKey that is no unlock key", { swarmUnlockKey: "hunter2" }, "forklift:swarmUnlockKey", "SWMKEY-1-"],
    ["swarmAcceptDowntime not a list", { swarmAcceptDowntime: "web" }, "forklift:swarmAcceptDowntime", "a list of strings"],
    ["a wave of no hosts", { waves: "0,50%" }, "forklift:waves", "counts (1 or more) or percentages"],
    ["a wave that is neither count nor percentage", { waves: "1,some" }, "forklift:waves", "\"some\", the 2. one, is neither"],
    ["a percentage above 100", { waves: "150%" }, "forklift:waves", "from 1% to 100%"],
    ["waves and batchSize both", { waves: "1,100%", batchSize: 2 }, "forklift:waves", "to be unset while batchSize is set (2)"],
    ["maxFailures below 0", { maxFailures: "-1" }, "forklift:maxFailures", "a number of hosts (0 or more) or a percentage"],
    ["soakSeconds below 0", { soakSeconds: -5 }, "forklift:soakSeconds", "a whole number from 0 to 86400"],
    ["a health check timeout of 0", { healthCheck: "true", healthCheckTimeout: 0 }, "forklift:healthCheckTimeout", "a whole number from 1 to 3600"],
    ["unknown top-level key", { colour: "blue" }, "forklift:colour", "unknown key"],
];

/** The mocked tls.PrivateKey named NAME (program-harness.ts): its OpenSSH halves, one pair per name. */
export function mockKeyPair(name: string): { publicKeyOpenssh: string; privateKeyOpenssh: string } {
    const id = name.replace(/[^A-Za-z0-9]/g, "");
    return { publicKeyOpenssh: `ssh-ed25519 AAAA${id}\n`, privateKeyOpenssh: `-----BEGIN OPENSSH PRIVATE KEY-----\nmock${id}\n-----END OPENSSH PRIVATE KEY-----\n` };
}
