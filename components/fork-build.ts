import * as path from "node:path";
import * as pulumi from "@pulumi/pulumi";
import * as command from "@pulumi/command";
import { ForkConfig } from "../lib/config";
import { buildCommand, buildKey, readScript } from "../lib/commands";
import { envPrefix } from "../lib/shell";
import { ReachableHost } from "./connection";

/** What a finished build reports (the last line of build-fork.sh's stdout). */
export interface BuildResult {
    artifact: string;
    sha256: string;
    size: number;
    version: string;
    commit: string;
    cliCommit: string;
    binaries: string[];
    recipe: string;
    buildKey: string;
}

export function parseBuildResult(stdout: string): BuildResult {
    const line = stdout.trim().split("\n").pop() ?? "";
    let r: BuildResult;
    try {
        r = JSON.parse(line);
    } catch {
        throw new Error(`the build printed no result line; its output ended with: ${line.slice(0, 300)}`);
    }
    if (!/^[0-9a-f]{64}$/.test(r.sha256 ?? "") || !r.artifact || !Array.isArray(r.binaries)) {
        throw new Error(`the build result is incomplete: ${line.slice(0, 300)}`);
    }
    return r;
}

export interface ForkBuildArgs {
    /** The build host, bootstrapped. */
    host: ReachableHost;
    /** Resource that must finish before the build starts (the host's bootstrap). */
    after: pulumi.Resource;
    /** Recipe, repositories, refs, version and make variables of the fork. */
    fork: ForkConfig;
    /**
     * Local directory of the content-addressed artifact cache (relative to the project).
     * @default ".forklift/artifacts"
     */
    cacheDir: string;
    /** Skip host key checks when fetching (explicit opt-in). @default false */
    insecure: boolean;
}

/**
 * Builds the fork on the build host — only when an input or the build script changed — and
 * brings the artifact back once into the local cache. A failed build fails here, with the tail
 * of the build log, before any fleet host is touched.
 */
export class ForkBuild extends pulumi.ComponentResource {
    readonly key: string;
    readonly result: pulumi.Output<BuildResult>;
    /** Path of the artifact in the local cache (known once it has been fetched). */
    readonly localPath: pulumi.Output<string>;

    constructor(name: string, args: ForkBuildArgs, opts?: pulumi.ComponentResourceOptions) {
        super("forklift:index:ForkBuild", name, {}, opts);
        const parent = this;
        const script = readScript("build-fork.sh");
        this.key = buildKey(args.fork, script);

        const build = new command.remote.Command(
            `${name}-build`,
            {
                connection: args.host.connection,
                create: buildCommand(args.fork, this.key, args.host.user !== "root"),
                stdin: script,
                addPreviousOutputInEnv: false,
            },
            { parent, dependsOn: [args.after], deletedWith: args.host.instance },
        );
        this.result = build.stdout.apply(parseBuildResult);

        // An invoke, not a resource: it runs on every `pulumi up`, so a fresh checkout (empty
        // cache) gets the artifact back; with the cache warm it only checks the sha256.
        const fetched = command.local.runOutput(
            {
                command: pulumi.all([this.result, args.host.address, args.host.hostKey]).apply(([r, address, hostKey]) =>
                    `${envPrefix({
                        FORKLIFT_BUILDER_ADDRESS: address,
                        FORKLIFT_BUILDER_PORT: args.host.port,
                        FORKLIFT_BUILDER_USER: args.host.user,
                        FORKLIFT_BUILDER_HOST_KEY: args.insecure ? "" : (hostKey ?? ""),
                        FORKLIFT_INSECURE: args.insecure ? "1" : "0",
                        FORKLIFT_REMOTE_PATH: r.artifact,
                        FORKLIFT_SHA256: r.sha256,
                        FORKLIFT_CACHE_DIR: args.cacheDir,
                    })} bash scripts/fetch-artifact.sh`,
                ),
                stdin: args.host.privateKey ?? "",
                // the project root, whatever directory the provider runs in (an invoke keeps no
                // state, so an absolute path here causes no diff between machines)
                dir: path.join(__dirname, ".."),
                addPreviousOutputInEnv: false,
            },
            { parent },
        );
        this.localPath = pulumi.unsecret(fetched.stdout.apply((s) => s.trim().split("\n").pop() ?? ""));
        this.registerOutputs({ key: this.key, sha256: this.result.sha256, localPath: this.localPath });
    }
}
