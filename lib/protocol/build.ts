/**
 * scripts/build-fork.sh, both ways: the command that starts a build on the build host, and the
 * JSON result line it prints last.
 */
import { z } from "zod";
import { ForkConfig } from "../config";
import { hashInputs, sha256 } from "../hash";
import { b64, runScriptFromStdin } from "../shell";

/**
 * The fork's inputs: what the artifact's bytes depend on (with the commits the refs resolve to).
 * The precheck of the hosts runs again when it changes; a change of the build script alone
 * rebuilds the same bytes and touches no host.
 */
export function forkInputsKey(fork: ForkConfig): string {
    const packaging = fork.recipe === "docker-ce-packaging";
    return hashInputs({
        recipe: fork.recipe,
        repo: fork.repo,
        ref: fork.ref,
        cliRepo: packaging ? fork.cliRepo : undefined,
        cliRef: packaging ? fork.cliRef : undefined,
        packagingRepo: packaging ? fork.packagingRepo : undefined,
        packagingRef: packaging ? fork.packagingRef : undefined,
        version: fork.version,
        makeVars: fork.makeVars,
    });
}

/**
 * Identifies a build: the fork's inputs, plus the build script itself. The build command embeds
 * it, so the build reruns exactly when it changes (what it builds does not change with the script:
 * see build-fork.sh).
 */
export function buildKey(fork: ForkConfig, buildScript: string): string {
    return hashInputs({ inputs: forkInputsKey(fork), script: sha256(buildScript) });
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

/**
 * What a build was made of (build-fork.sh's provenance): the fork's inputs as recorded in the
 * artifact's docker/FORKLIFT-BUILD-INFO, and the build host's toolchain, which stays out of it.
 */
export const Provenance = z.object({
    recipe: z.string(),
    repo: z.string(),
    ref: z.string(),
    commit: z.string(),
    cliCommit: z.string(),
    cliRepo: z.string().optional(),
    cliRef: z.string().optional(),
    packagingRepo: z.string().optional(),
    packagingRef: z.string().optional(),
    packagingCommit: z.string().optional(),
    version: z.string(),
    /** The fork commit's time (seconds since the epoch): the build's SOURCE_DATE_EPOCH. */
    sourceDateEpoch: z.number(),
    makeVars: z.record(z.string(), z.string()),
    /** Go as the recipe's files name it ("" where they do not), the build host's Docker and buildx. */
    toolchain: z.object({ go: z.string(), docker: z.string(), buildx: z.string() }),
});
export type Provenance = z.output<typeof Provenance>;

/** What a finished build reports (the last line of build-fork.sh's stdout). */
export const BuildResult = z.object({
    /** On the build host: artifacts/<sha256>.tgz under its build root (the same path for the same bytes). */
    artifact: z.string().min(1),
    sha256: z.string().regex(/^[0-9a-f]{64}$/),
    size: z.number(),
    version: z.string(),
    commit: z.string(),
    cliCommit: z.string(),
    binaries: z.array(z.string()),
    recipe: z.string(),
    buildKey: z.string(),
    /** Absent in a result an older forklift's build printed (kept in the state). */
    provenance: Provenance.optional(),
});
export type BuildResult = z.output<typeof BuildResult>;

export function parseBuildResult(stdout: string): BuildResult {
    const line = stdout.trim().split("\n").pop() ?? "";
    let doc: unknown;
    try {
        doc = JSON.parse(line);
    } catch {
        throw new Error(`the build printed no result line; its output ended with: ${line.slice(0, 300)}`);
    }
    const r = BuildResult.safeParse(doc);
    if (!r.success) throw new Error(`the build result is incomplete (${r.error.issues.map((i) => i.path.join(".")).join(", ")}): ${line.slice(0, 300)}`);
    return r.data;
}
