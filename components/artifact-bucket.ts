import * as pulumi from "@pulumi/pulumi";
import * as aws from "@pulumi/aws";

export interface ArtifactBucketArgs {
    /**
     * Days an artifact is kept in the bucket: a rollout stages a release within minutes of its
     * upload, and the check uploads it again when a later rollout needs it.
     * @default 30
     */
    expireDays?: number;
}

/**
 * Where launched instances fetch the artifact from (artifactSource's default in EC2 mode): a
 * private S3 bucket in the stack's region, public access blocked, objects encrypted at rest and
 * owned by the account (no ACLs), each expiring after `expireDays`. It holds nothing but built
 * artifacts, and goes with `pulumi destroy`, objects and all. Nothing but URLs signed on the
 * machine of `pulumi up` reaches it: no instance holds AWS credentials or a role for it.
 */
export class ArtifactBucket extends pulumi.ComponentResource {
    readonly bucket: pulumi.Output<string>;
    readonly region: pulumi.Output<string>;

    constructor(name: string, args: ArtifactBucketArgs = {}, opts?: pulumi.ComponentResourceOptions) {
        super("forklift:index:ArtifactBucket", name, {}, opts);
        const parent = this;
        const bucket = new aws.s3.Bucket(name, { bucketPrefix: "forklift-artifacts-", forceDestroy: true }, { parent });
        const ownership = new aws.s3.BucketOwnershipControls(`${name}-ownership`, { bucket: bucket.id, rule: { objectOwnership: "BucketOwnerEnforced" } }, { parent });
        new aws.s3.BucketPublicAccessBlock(
            `${name}-private`,
            { bucket: bucket.id, blockPublicAcls: true, blockPublicPolicy: true, ignorePublicAcls: true, restrictPublicBuckets: true },
            { parent, dependsOn: [ownership] },
        );
        new aws.s3.BucketServerSideEncryptionConfiguration(
            `${name}-encryption`,
            { bucket: bucket.id, rules: [{ applyServerSideEncryptionByDefault: { sseAlgorithm: "AES256" }, bucketKeyEnabled: true }] },
            { parent },
        );
        new aws.s3.BucketLifecycleConfiguration(
            `${name}-expiry`,
            {
                bucket: bucket.id,
                rules: [{ id: "expire-artifacts", status: "Enabled", filter: {}, expiration: { days: args.expireDays ?? 30 }, abortIncompleteMultipartUpload: { daysAfterInitiation: 1 } }],
            },
            { parent },
        );
        this.bucket = bucket.bucket;
        this.region = bucket.region;
        this.registerOutputs({ bucket: this.bucket, region: this.region });
    }
}
