/**
 * The artifact store, seen from the machine of `pulumi up`: URLs signed here, for one object and
 * a short while, that the build host uploads with and each fleet host downloads with. The AWS
 * credentials (the usual chain: environment, profile, SSO...) never leave this machine; a fleet
 * host can read only the object its URL names, until it expires. The AWS SDK is loaded only when a
 * store is used.
 */
import { S3Store } from "../lib/protocol/jobs";

/** Seconds a signed URL works: long enough for one host's fetch, or the build host's upload. */
export const URL_SECONDS = 900;

/** The SDK (loaded now) and a client of STORE, with this machine's AWS credentials. */
async function sdk(store: S3Store) {
    // the SDK's notice about its own future releases (Node.js 22) would show in every `pulumi up`;
    // forklift pins the SDK's version, so the notice is not the user's to act on
    process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= "true";
    const s3 = await import("@aws-sdk/client-s3");
    // WHEN_REQUIRED: a presigned PUT must not carry a checksum of a body the signer never saw (nor
    // a GET ask for one: the host checks the sha256 itself)
    const client = new s3.S3Client({ region: store.region, ...(store.endpoint ? { endpoint: store.endpoint } : {}), forcePathStyle: store.pathStyle, requestChecksumCalculation: "WHEN_REQUIRED", responseChecksumValidation: "WHEN_REQUIRED" });
    return { s3, client };
}

/** A URL that lets its holder METHOD the store's object for SECONDS. */
export async function presign(store: S3Store, method: "GET" | "PUT" | "HEAD", seconds = URL_SECONDS): Promise<string> {
    const { s3, client } = await sdk(store);
    const { GetObjectCommand, PutObjectCommand, HeadObjectCommand } = s3;
    const { getSignedUrl } = await import("@aws-sdk/s3-request-presigner");
    const input = { Bucket: store.bucket, Key: store.key };
    const command = method === "GET" ? new GetObjectCommand(input) : method === "PUT" ? new PutObjectCommand(input) : new HeadObjectCommand(input);
    try {
        return await getSignedUrl(client, command, { expiresIn: seconds });
    } catch (e) {
        throw new Error(`cannot sign a URL for ${describe(store)} on this machine: ${(e as Error).message} (forklift signs with your AWS credentials: the environment, a profile, SSO)`);
    }
}

/** Removes the store's object (there or not: S3 answers both alike). */
export async function deleteObject(store: S3Store): Promise<void> {
    const { s3, client } = await sdk(store);
    try {
        await client.send(new s3.DeleteObjectCommand({ Bucket: store.bucket, Key: store.key }));
    } catch (e) {
        const err = e as Error & { $metadata?: { httpStatusCode?: number } };
        const status = err.$metadata?.httpStatusCode ? `HTTP ${err.$metadata.httpStatusCode}: ` : "";
        throw new Error(`could not remove ${describe(store)}: ${status}${err.message || err.name} (forklift removes it with your AWS credentials; a store that is gone for good: \`pulumi state delete\` the stack's forklift-artifact-object resource)`);
    } finally {
        client.destroy();
    }
}

/** s3://bucket/key, with the endpoint where it is not AWS's. */
export function describe(store: S3Store): string {
    return `s3://${store.bucket}/${store.key}${store.endpoint ? ` at ${store.endpoint}` : ""}`;
}
