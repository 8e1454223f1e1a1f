/**
 * scripts/build-fork.sh, both ways: the command that starts a build on the build host, and the
 * JSON result line it prints last.
 */
import { ForkConfig } from "../config";
import { hashInputs, sha256 } from "../hash";
import { b64, runScriptFromStdin } from "../shell";

/**
 * Identifies a build: every input that changes the artifact, plus the build script itself.
 * The build command embeds it, so the build reruns exactly when it changes.
 */
export function buildKey(fork: ForkConfig, buildScript: string): string {
    return hashInputs({
        recipe: fork.recipe,
        repo: fork.repo,
        ref: fork.ref,
        cliRepo: fork.recipe === "docker-ce-packaging" ? fork.cliRepo : undefined,
        cliRef: fork.recipe === "docker-ce-packaging" ? fork.cliRef : undefined,
        packagingRepo: fork.recipe === "docker-ce-packaging" ? fork.packagingRepo : undefined,
        packagingRef: fork.recipe === "docker-ce-packaging" ? fork.packagingRef : undefined,
        version: fork.version,
        makeVars: fork.makeVars,
        script: sha256(buildScript),
    });
}

export function buildCommand(fork: ForkConfig, key: string, sudo: boolean): string {
    const makeVars = Object.keys(fork.makeVars)
        .sort()
        .map((k) => `${k}=${fork.makeVars[k]}\n`)
        .join("");
    const packaging = fork.recipe === "docker-ce-packaging";
    return runScriptFromStdin(
        {
            FORKLIFT_BUILD_KEY: key,
            FORKLIFT_RECIPE: fork.recipe,
            FORKLIFT_REPO: fork.repo,
            FORKLIFT_REF: fork.ref,
            FORKLIFT_CLI_REPO: packaging ? fork.cliRepo : undefined,
            FORKLIFT_CLI_REF: packaging ? fork.cliRef : undefined,
            FORKLIFT_PACKAGING_REPO: packaging ? fork.packagingRepo : undefined,
            FORKLIFT_PACKAGING_REF: packaging ? fork.packagingRef : undefined,
            FORKLIFT_VERSION: fork.version,
            FORKLIFT_MAKE_VARS_B64: makeVars ? b64(makeVars) : undefined,
        },
        ["build"],
        sudo,
    );
}

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
