/**
 * The test bed's S3-compatible store: versitygw (testbed/s3.sh builds it) run in the cloud's
 * netns, on the cloud bridge's address, outside this machine's link to the cloud, with a data
 * directory of its own (each bucket a directory, each object a file). It checks presigned URLs'
 * signatures and expiry as S3 does. The store's credentials go into this process's environment,
 * where the local commands it starts sign their URLs with them (as a user's AWS credentials).
 *
 *   const store = await startStore();   // after a --cloud host is up (the cloud exists then)
 *   ... store.endpoint, store.bucket, store.objectPath(key) ...
 *   store.stop();
 */
import { ChildProcess, spawn, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { CLOUD_ADDRESS, CLOUD_NETNS, repoRoot } from "./testbed";

export interface Store {
    endpoint: string;
    bucket: string;
    dataDir: string;
    /** The file that holds the object KEY. */
    objectPath(key: string): string;
    stop(): void;
}

const ACCESS_KEY = "forkliftteststore";
const SECRET_KEY = "forklift-test-store-secret-key";

export async function startStore(port = 9000, bucket = "forklift-test"): Promise<Store> {
    const built = spawnSync("bash", [path.join(repoRoot(), "testbed", "s3.sh")], { encoding: "utf8" });
    if (built.status !== 0) throw new Error(`testbed/s3.sh failed:\n${built.stderr}`);
    const bin = built.stdout.trim().split("\n").pop()!;
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "forklift-store-"));
    fs.mkdirSync(path.join(dataDir, bucket));
    const child: ChildProcess = spawn("ip", ["netns", "exec", CLOUD_NETNS, bin, "--port", `${CLOUD_ADDRESS}:${port}`, "-q", "posix", dataDir], {
        env: { ...process.env, ROOT_ACCESS_KEY: ACCESS_KEY, ROOT_SECRET_KEY: SECRET_KEY },
        stdio: ["ignore", "ignore", "pipe"],
    });
    let stderr = "";
    child.stderr!.on("data", (d) => (stderr += d));
    const endpoint = `http://${CLOUD_ADDRESS}:${port}`;
    // until it answers (an unsigned request: 403 is an answer)
    for (let i = 0; ; i++) {
        const r = spawnSync("ip", ["netns", "exec", CLOUD_NETNS, "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", `${endpoint}/`], { encoding: "utf8" });
        if (r.stdout && r.stdout !== "000") break;
        if (i > 100 || child.exitCode !== null) throw new Error(`the test store did not start: ${stderr}`);
        await new Promise((res) => setTimeout(res, 100));
    }
    Object.assign(process.env, { AWS_ACCESS_KEY_ID: ACCESS_KEY, AWS_SECRET_ACCESS_KEY: SECRET_KEY, AWS_REGION: "us-east-1" });
    return {
        endpoint,
        bucket,
        dataDir,
        objectPath: (key) => path.join(dataDir, bucket, key),
        stop() {
            child.kill("SIGKILL");
            fs.rmSync(dataDir, { recursive: true, force: true });
        },
    };
}
