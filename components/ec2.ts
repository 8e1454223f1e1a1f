/**
 * The AWS components (instances, their access, the artifact bucket), loaded on first use. @pulumi/aws and @pulumi/tls are slow to load, and
 * every `pulumi up` runs the program twice (preview, update): a stack that launches nothing (hosts
 * mode) should not pay for them (BENCHMARKS.md, change 3). Import their types with `import type`; build them with these.
 */
import type * as ArtifactBucketModule from "./artifact-bucket";
import type * as Ec2HostModule from "./ec2-host";
import type * as SshAccessModule from "./ssh-access";

export function ec2Host(): typeof Ec2HostModule {
    return require("./ec2-host");
}

export function sshAccess(): typeof SshAccessModule {
    return require("./ssh-access");
}

export function artifactBucket(): typeof ArtifactBucketModule {
    return require("./artifact-bucket");
}
