/**
 * scripts/build-fork.sh, both ways: the command that starts a build on the build host, and the
 * JSON result line it prints last.
 */
import { z } from "zod";
import { lastDocument } from "./results";
import { ForkConfig } from "../config";
import { hashInputs, sha256 } from "../hash";
import { b64, runScriptFromStdin } from "../shell";

/**
 * The fork's inputs: what the artifact's bytes depend on (with the commits the refs resolve to).
 * The precheck of the hosts runs again when it changes; a change of the build script alone
 * rebuilds the same bytes and touches no host.
 */
export function forkInputsKey(fork: ForkConfig): string {
    return hashInputs({ ...sources(fork), makeVars: fork.makeVars });
}

/** The fork's sources and version: the cli's and packaging's only for docker-ce-packaging. */
function sources(fork: ForkConfig): Record<string, string | undefined> {
    const packaging = fork.recipe === "docker-ce-packaging";
    return {
        recipe: fork.recipe,
        repo: fork.repo,
        ref: fork.ref,
        cliRepo: packaging ? fork.cliRepo : undefined,
        cliRef: packaging ? fork.cliRef : undefined,
        packagingRepo: packaging ? fork.packagingRepo : undefined,
        packagingRef: packaging ? fork.packagingRef : undefined,
        version: fork.version,
    };
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
    // (cliRepo → FORKLIFT_CLI_REPO: the variables build-fork.sh reads)
    const vars = Object.fromEntries(Object.entries(sources(fork)).map(([k, v]) => [`FORKLIFT_${k.replace(/[A-Z]/g, (c) => `_${c}`).toUpperCase()}`, v]));
    return runScriptFromStdin(
        { ...vars, FORKLIFT_BUILD_KEY: key, FORKLIFT_MAKE_VARS_B64: makeVars ? b64(makeVars) : undefined },
        ["build"],
        { sudo },
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
    return lastDocument(BuildResult, stdout, "the build");
}
