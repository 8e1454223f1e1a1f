/**
 * forklift: build a Docker fork on a build host and roll it out to a fleet with one `pulumi up`.
 * Reads and validates the whole stack config first (nothing is registered before that), then
 * wires: SSH access (when launching) → build host → fork build → fleet → rollout over the fleet.
 */
import * as pulumi from "@pulumi/pulumi";
import * as random from "@pulumi/random";
import { ConfigError, ForkliftConfig, parseConfig } from "./lib/config";
import { BuildHost } from "./components/build-host";
import { Fleet } from "./components/fleet";
import { ForkBuild } from "./components/fork-build";
import { Rollout, StoreSettings } from "./components/rollout";
import { artifactBucket, sshAccess } from "./components/ec2";

function loadConfig(): ForkliftConfig {
    try {
        return parseConfig(pulumi.runtime.allConfig());
    } catch (e) {
        // RunError: the message alone, without a stack trace, and nothing registered
        if (e instanceof ConfigError) throw new pulumi.RunError(e.message);
        throw e;
    }
}

// The program: the Pulumi runtime calls it; what it returns are the stack's outputs.
export = () => {
    const cfg = loadConfig();
    if (cfg.insecureSkipHostKeyCheck) {
        pulumi.log.warn("insecureSkipHostKeyCheck is on: SSH host keys are NOT checked; anyone on the path can impersonate your hosts.");
    }

    const launches = cfg.builderHost === undefined || cfg.fleetEc2.count > 0;
    const access = launches
        ? new (sshAccess().SshAccess)("forklift", { allowedCidrs: cfg.sshAllowedCidrs, subnetId: cfg.subnetId, privateKey: cfg.sshPrivateKey })
        : undefined;

    // Who this stack is on the hosts: two stacks of the same project and stack name (two engineers'
    // local `dev` stacks) must not take over each other's hosts.
    const identity = new random.RandomId("forklift-stack-identity", { byteLength: 8 });

    const builder = new BuildHost("forklift-builder", {
        existing: cfg.builderHost,
        ec2: { instanceType: cfg.builderEc2.instanceType, ami: cfg.builderEc2.ami, volumeGiB: cfg.builderEc2.volumeGiB, subnetId: cfg.subnetId },
        access,
        ec2User: cfg.sshUser,
        swapGiB: cfg.builderEc2.swapGiB,
        insecureSkipHostKeyCheck: cfg.insecureSkipHostKeyCheck,
        connectTimeout: cfg.sshConnectTimeout,
        stackId: identity.hex,
    });

    const build = new ForkBuild("forklift-fork", {
        host: builder.host,
        connection: builder.connection,
        after: [builder.ready],
        fork: cfg.fork,
    });

    const fleet = new Fleet("forklift-fleet", {
        existing: cfg.fleetHosts,
        ec2: { ...cfg.fleetEc2, subnetId: cfg.subnetId },
        access,
        ec2User: cfg.sshUser,
        bastion: cfg.fleetBastion,
        insecureSkipHostKeyCheck: cfg.insecureSkipHostKeyCheck,
        connectTimeout: cfg.sshConnectTimeout,
    });

    // where the fleet fetches the artifact from: a bucket forklift creates (EC2 mode), a store the
    // user runs, or (none) through this machine
    const source = cfg.artifactSource;
    const store: pulumi.Input<StoreSettings> | undefined =
        source.type === "bucket"
            ? (() => {
                  const bucket = new (artifactBucket().ArtifactBucket)("forklift-artifacts");
                  return pulumi.all([bucket.bucket, bucket.region]).apply(([name, region]) => ({ bucket: name, region, prefix: "", pathStyle: false }));
              })()
            : source.type === "s3"
              ? { endpoint: source.endpoint, bucket: source.bucket, region: source.region, prefix: source.prefix, pathStyle: source.pathStyle }
              : undefined;

    const rollout = new Rollout("forklift", {
        hosts: fleet.hosts,
        batchSize: cfg.batchSize,
        waves: cfg.waves,
        healthCheck: cfg.healthCheck,
        soakSeconds: cfg.soakSeconds,
        maxFailures: cfg.maxFailures,
        artifact: {
            builder: builder.host,
            inputsKey: build.inputsKey,
            label: `${cfg.fork.repo}@${cfg.fork.ref}`,
            remotePath: build.result.artifact,
            sha256: build.result.sha256,
            size: build.result.size,
            version: build.result.version,
            binaries: build.result.binaries,
        },
        installDir: cfg.installDir,
        daemonJson: cfg.daemonJson,
        cacheDir: cfg.artifactCacheDir,
        insecureSkipHostKeyCheck: cfg.insecureSkipHostKeyCheck,
        stackId: identity.hex,
        swarm: cfg.swarm,
        connectTimeout: cfg.sshConnectTimeout,
        store,
    });

    const artifact = build.result.apply((r) => ({
        sha256: r.sha256,
        size: r.size,
        version: r.version,
        commit: r.commit,
        cliCommit: r.cliCommit || undefined,
        recipe: r.recipe,
        buildKey: r.buildKey,
        provenance: r.provenance,
    }));
    const hosts = rollout.statuses.apply((all) =>
        all.map((s) => ({ name: s.host, address: s.address, version: s.version, sha256: s.sha256, dockerdSha256: s.dockerdSha256 })),
    );

    const artifactSource = store ? pulumi.output(store).apply((s) => `s3://${s.bucket}/${s.prefix}${s.endpoint ? ` at ${s.endpoint}` : ""}`) : "relay";
    return { stackIdentity: identity.hex, builderAddress: builder.host.address, builderSshCommand: builder.sshCommand, artifact, artifactSource, hosts, rollout: rollout.report };
};
