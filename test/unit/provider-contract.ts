/**
 * The input contract of the real `command` provider (1.2.1) where it differs from what mocks
 * accept, enforced by program-harness.ts so that CI, which cannot run the provider, fails where a
 * user's `pulumi preview` would.
 */

/** Inputs the provider knows: a misspelt one would be silently dropped by mocks. */
const KNOWN_INPUTS: Record<string, string[]> = {
    "command:remote:Command": ["connection", "create", "update", "delete", "environment", "stdin", "triggers", "logging", "addPreviousOutputInEnv"],
    "command:local:Command": ["create", "update", "delete", "environment", "stdin", "triggers", "logging", "addPreviousOutputInEnv", "dir", "interpreter", "assetPaths", "archivePaths"],
    // @pulumi/aws 7's S3 resources (their Args interfaces)
    "aws:s3/bucket:Bucket": ["bucket", "bucketPrefix", "forceDestroy", "objectLockEnabled", "region", "tags"],
    "aws:s3/bucketOwnershipControls:BucketOwnershipControls": ["bucket", "region", "rule"],
    "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock": ["blockPublicAcls", "blockPublicPolicy", "bucket", "ignorePublicAcls", "region", "restrictPublicBuckets", "skipDestroy"],
    "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration": ["bucket", "expectedBucketOwner", "region", "rules"],
    "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration": ["bucket", "expectedBucketOwner", "region", "rules", "timeouts", "transitionDefaultMinimumObjectSize"],
};

/** Throws the provider's error for inputs it would refuse at registration. */
export function checkProviderContract(type: string, name: string, inputs: Record<string, unknown>): void {
    const known = KNOWN_INPUTS[type];
    if (known) {
        for (const prop of Object.keys(inputs)) {
            if (!known.includes(prop)) throw new Error(`${type} resource '${name}': unknown input property "${prop}"`);
        }
    }
}
