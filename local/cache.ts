/**
 * The local artifact cache: `<cacheDir>/<sha256>.tgz`, content-addressed and written only once its
 * sha256 matched, so the artifact crosses the network from the build host once per machine that
 * runs `pulumi up`, however many hosts it goes to.
 */
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import { ArtifactSource } from "../lib/protocol/jobs";
import { Ssh, explainSshFailure } from "./ssh";
import { shq } from "../lib/shell";

/** The cached artifact's path (absolute), or undefined when the cache does not have it. */
export function cachedArtifact(a: ArtifactSource): string | undefined {
    const file = path.resolve(a.cacheDir, `${a.sha256}.tgz`);
    return fs.existsSync(file) ? file : undefined;
}

/** sha256 of a file, streamed. */
export async function sha256File(file: string): Promise<string> {
    const hash = createHash("sha256");
    for await (const chunk of fs.createReadStream(file)) hash.update(chunk as Buffer);
    return hash.digest("hex");
}

/** What to do when neither the cache nor the build host has the artifact. */
export function rebuildAdvice(): string {
    return `If the build host lost its builds (or was replaced), build again: pulumi up --replace "$(pulumi stack --show-urns | grep -o 'urn:pulumi:[^ ]*::forklift-fork-build$')"`;
}

/**
 * Makes sure the cache has the artifact, fetching it from the build host when it does not (into
 * a temporary file, renamed into place once its sha256 matched); returns its path. Throws, naming
 * the build host and the cause, when it cannot.
 */
export async function fetchArtifact(a: ArtifactSource, ssh: Ssh, log: (line: string) => void): Promise<string> {
    const cached = cachedArtifact(a);
    if (cached) return cached;
    fs.mkdirSync(a.cacheDir, { recursive: true });
    const dest = path.resolve(a.cacheDir, `${a.sha256}.tgz`);
    const part = `${dest}.${process.pid}.part`;
    const builder = ssh.add(a.builder);
    try {
        // (stdout is the artifact: streamed to the file, not kept in memory)
        const r = await ssh.run(builder, `cat -- ${shq(a.path)}`, { stdoutFile: part });
        if (r.code !== 0) {
            const cause = r.code === 255 ? explainSshFailure(a.builder, r.stderr) : r.stderr.trim() || `exit ${r.code}`;
            throw new Error(`could not copy ${a.path} from the build host ${a.builder.name} (${a.builder.route.address}): ${cause}. The local cache ${a.cacheDir} does not have it either. ${rebuildAdvice()}`);
        }
        const got = await sha256File(part);
        if (got !== a.sha256) throw new Error(`the artifact fetched from the build host has sha256 ${got}, expected ${a.sha256}`);
        fs.renameSync(part, dest);
        log(`fetched ${fs.statSync(dest).size} bytes from the build host into ${dest}`);
        return dest;
    } finally {
        fs.rmSync(part, { force: true });
    }
}
