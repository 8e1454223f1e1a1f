/**
 * Fixture forks for the three build recipes, laid out like the real repositories and served to a
 * build host by `git daemon` on the host side of its veth. Their builds run no compiler: they
 * pack the build host's real Docker binaries (Debian's docker.io) where the real builds would put
 * theirs, so what they produce installs and runs.
 *
 *   docker-ce.git            the docker-ce monorepo: `make static DOCKER_BUILD_PKGS=static-linux` writes
 *                            components/packaging/static/build/linux/docker-<version>.tgz (+ docker/FORK-COMMIT)
 *   docker-ce-packaging.git  `make checkout` and `make static` check out DOCKER_ENGINE_REPO@DOCKER_ENGINE_REF
 *                            and DOCKER_CLI_REPO@DOCKER_CLI_REF into src/github.com/docker/{docker,cli} (a
 *                            second checkout keeps local changes, as the real scripts/checkout.sh does), check
 *                            `docker buildx version`, write static/build/linux/docker-<VERSION>.tgz
 *                            (+ docker/FIXTURE-BUILD recording the engine and cli commits and build times)
 *   docker.git, cli.git      the engine and cli forks the packaging fixture clones
 *   moby.git                 `make binary` checks `docker buildx version`, leaves dockerd and docker-proxy in
 *                            bundles/binary-daemon (+ a FIXTURE-BUILD note of commit and VERSION); its
 *                            build time is appended to docker-proxy, as a real build embeds it in a binary
 *
 * Build times: the real engine and cli builds run in a Dockerfile's `build` stage, which sees
 * SOURCE_DATE_EPOCH (passed by buildx as a build argument) only where it declares it; the
 * fixtures' makes stamp SOURCE_DATE_EPOCH's time where the repository's Dockerfile declares it
 * in its build stage, and the clock's otherwise (BUILD_TIME below).
 *
 * Refs of every repository: v1, v2 (differ in default VERSION and marker). docker-ce also has
 *   broken      make fails
 *   bad-daemon  a dockerd that exits at once (the health check must fail)
 *
 *   const forks = await serveFixtureForks("10.78.61.1");
 *   forkConfigFor(forks, "moby", "v1")   // a ForkConfig building moby.git@v1
 *   forks.engine.commitOf("v1");  forks.stop();
 */
import { ChildProcess, execFileSync, spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { ForkConfig, Recipe } from "../lib/config";

/** A fixture repository as the build host sees it. */
export interface FixtureRepo {
    /** git:// URL on the daemon's listen address. */
    readonly url: string;
    /** Commit a ref (tag or branch) resolves to. */
    commitOf(ref: string): string;
    /** That commit's committer time, in seconds since the epoch. */
    timeOf(ref: string): number;
}

export interface FixtureForks {
    dockerCe: FixtureRepo;
    packaging: FixtureRepo;
    engine: FixtureRepo;
    cli: FixtureRepo;
    moby: FixtureRepo;
    /** Stops the git daemon and removes the repositories. */
    stop(): void;
}

/** The docker/ entries each recipe's artifact has (sorted), as build-fork.sh lists them. */
export const FIXTURE_BINARIES: Record<Recipe, readonly string[]> = {
    "docker-ce": ["containerd", "containerd-shim-runc-v2", "ctr", "docker", "docker-init", "docker-proxy", "dockerd", "runc"],
    "docker-ce-packaging": ["containerd", "containerd-shim-runc-v2", "ctr", "docker", "docker-init", "docker-proxy", "dockerd", "runc"],
    moby: ["docker-proxy", "dockerd"],
};

/** Version each fixture builds at v1/v2 when no VERSION is given (moby: its dockerd's own version). */
export const FIXTURE_DEFAULT_VERSIONS = {
    "docker-ce": { v1: "18.03.1-ce", v2: "18.03.2-ce" },
    "docker-ce-packaging": { v1: "0.0.0-fixture.1", v2: "0.0.0-fixture.2" },
} as const;

/** A ForkConfig that builds `ref` of the recipe's fixture (packaging: engine, cli and packaging all at `ref`). */
export function forkConfigFor(forks: FixtureForks, recipe: Recipe, ref: string, version?: string): ForkConfig {
    const base = { recipe, ref, version, packagingRepo: "", packagingRef: "", makeVars: {} };
    switch (recipe) {
        case "docker-ce":
            return { ...base, repo: forks.dockerCe.url };
        case "moby":
            return { ...base, repo: forks.moby.url };
        case "docker-ce-packaging":
            return { ...base, repo: forks.engine.url, cliRepo: forks.cli.url, cliRef: ref, packagingRepo: forks.packaging.url, packagingRef: ref };
    }
}

/**
 * A make recipe line that prints the build time of the repository in DIR as a real build stamps it:
 * SOURCE_DATE_EPOCH's where DIR/Dockerfile declares it in its build stage, else the clock's
 * (with nanoseconds, as moby's hack/make.sh does).
 */
const BUILD_TIME = (dir: string) =>
    `$$(if awk 'tolower($$0) ~ /^from .* as build$$/ {s = 1; next} /^FROM/ {s = 0} s && /^ARG SOURCE_DATE_EPOCH$$/ {f = 1} END {exit !f}' ${dir}/Dockerfile; then e=$$SOURCE_DATE_EPOCH; else e=; fi; date -u -d "@$$\{e:-$$(date +%s.%N)}" +%FT%T.%NZ)`;

/** A Dockerfile with the build stage of the engine's and the cli's (which declares no SOURCE_DATE_EPOCH). */
const DOCKERFILE = `FROM scratch AS base\n\nFROM base AS build\nARG VERSION\nRUN ./hack/make.sh binary\n`;

/** Copies the build host's binary NAME (found on PATH, symlinks resolved) to DIR/NAME, or fails the make. */
const COPY_BINARIES = (names: string, dir: string) =>
    `\tfor b in ${names}; do p=$$(command -v $$b) || { echo "fixture: the build host has no $$b" >&2; exit 1; }; cp "$$(readlink -f "$$p")" "${dir}/$$b"; done\n`;

const DOCKER_CE_MAKEFILE = (version: string, mode: "good" | "broken" | "bad-daemon") => `# fixture docker-ce: packs the build host's Docker binaries like the static build would
VERSION ?= ${version}
export PATH := $(PATH):/usr/sbin:/sbin
OUT := components/packaging/static/build/linux

static:
\ttest "$(DOCKER_BUILD_PKGS)" = static-linux
\tdocker info >/dev/null
${mode === "broken" ? "\t@echo 'compile error: swarmkit/manager.go:42: undefined: timeoutFromFork' >&2; exit 2\n" : ""}\tsleep 3
\trm -rf $(OUT) && mkdir -p $(OUT)/docker
${COPY_BINARIES(FIXTURE_BINARIES["docker-ce"].join(" "), "$(OUT)/docker")}${
    mode === "bad-daemon" ? "\tprintf '#!/bin/sh\\necho dockerd: fork patch broke startup >&2\\nexit 1\\n' > $(OUT)/docker/dockerd && chmod +x $(OUT)/docker/dockerd\n" : ""
}\tgit rev-parse HEAD > $(OUT)/docker/FORK-COMMIT
\ttar -C $(OUT) -czf $(OUT)/docker-$(VERSION).tgz docker
`;

const PACKAGING_MAKEFILE = (version: string) => `# fixture docker-ce-packaging: checks out the engine and the cli like the real one, then packs the
# build host's Docker binaries as static/build/linux/docker-$(VERSION).tgz
VERSION ?= ${version}
REF ?= HEAD
DOCKER_ENGINE_REPO ?= https://github.com/docker/docker.git
DOCKER_ENGINE_REF ?= $(REF)
DOCKER_CLI_REPO ?= https://github.com/docker/cli.git
DOCKER_CLI_REF ?= $(REF)
DOCKER_BUILD_PKGS ?= static-linux
export PATH := $(PATH):/usr/sbin:/sbin
OUT := static/build/linux
ENGINE := src/github.com/docker/docker
CLI := src/github.com/docker/cli

.PHONY: checkout static
checkout:
\t./scripts/checkout.sh $(ENGINE) "$(DOCKER_ENGINE_REPO)" "$(DOCKER_ENGINE_REF)"
\t./scripts/checkout.sh $(CLI) "$(DOCKER_CLI_REPO)" "$(DOCKER_CLI_REF)"

static: checkout
\ttest "$(DOCKER_BUILD_PKGS)" = static-linux
\tdocker info >/dev/null
\tdocker buildx version
\trm -rf $(OUT) && mkdir -p $(OUT)/docker
${COPY_BINARIES(FIXTURE_BINARIES["docker-ce-packaging"].join(" "), "$(OUT)/docker")}\tprintf 'engine=%s\\ncli=%s\\nversion=%s\\nengineBuildTime=%s\\ncliBuildTime=%s\\n' "$$(git -C $(ENGINE) rev-parse HEAD)" "$$(git -C $(CLI) rev-parse HEAD)" "$(VERSION)" "${BUILD_TIME("$(ENGINE)")}" "${BUILD_TIME("$(CLI)")}" > $(OUT)/docker/FIXTURE-BUILD
\ttar -C $(OUT) -czf $(OUT)/docker-$(VERSION).tgz docker
`;

const CHECKOUT_SH = `#!/bin/sh
# checkout.sh DIR REPO REF: REPO at REF in DIR; a checkout there already fetches and checks out
# again, keeping local changes (like the real scripts/checkout.sh)
set -e
[ -d "$1/.git" ] || { git init -q "$1" && git -C "$1" remote add origin "$2"; }
git -C "$1" fetch -q --tags origin
git -C "$1" -c advice.detachedHead=false checkout -q "$3"
`;

const MOBY_MAKEFILE = (version: string) => `# fixture moby: \`make binary\` leaves the build host's dockerd and docker-proxy in bundles/binary-daemon
VERSION ?= ${version}
export PATH := $(PATH):/usr/sbin:/sbin
BUNDLE := bundles/binary-daemon

.PHONY: binary
binary:
\tdocker info >/dev/null
\tdocker buildx version
\trm -rf bundles && mkdir -p $(BUNDLE)
${COPY_BINARIES(FIXTURE_BINARIES.moby.join(" "), "$(BUNDLE)")}\tprintf '\\nforklift-fixture-build-time=%s\\n' "${BUILD_TIME(".")}" >> $(BUNDLE)/docker-proxy
\tcd $(BUNDLE) && for b in ${FIXTURE_BINARIES.moby.join(" ")}; do sha256sum $$b > $$b.sha256; done
\tprintf 'commit=%s\\nversion=%s\\n' "$$(git rev-parse HEAD)" "$(VERSION)" > $(BUNDLE)/FIXTURE-BUILD
`;

interface FixtureCommit {
    ref: string;
    /** path -> content; a leading "#!" makes the file executable. */
    files: Record<string, string>;
}

/** Creates BASE/NAME.git with one commit per entry, each tagged with its ref. */
function createRepo(base: string, name: string, commits: FixtureCommit[]): string {
    const work = mkdtempSync(path.join(base, `${name}-work-`));
    const git = (...args: string[]) => execFileSync("git", ["-C", work, ...args], { stdio: "pipe" });
    git("init", "-q", "-b", "main");
    git("config", "user.email", "fixture@forklift.test");
    git("config", "user.name", "fixture");
    for (const c of commits) {
        for (const [file, content] of Object.entries(c.files)) {
            mkdirSync(path.dirname(path.join(work, file)), { recursive: true });
            writeFileSync(path.join(work, file), content, { mode: content.startsWith("#!") ? 0o755 : 0o644 });
        }
        git("add", "-A");
        git("commit", "-q", "-m", c.ref);
        git("tag", c.ref);
    }
    const bare = path.join(base, `${name}.git`);
    execFileSync("git", ["clone", "-q", "--bare", work, bare]);
    rmSync(work, { recursive: true, force: true });
    return bare;
}

function dockerCeCommits(): FixtureCommit[] {
    const at = (ref: string, version: string, mode: "good" | "broken" | "bad-daemon"): FixtureCommit => ({
        ref,
        files: { Makefile: DOCKER_CE_MAKEFILE(version, mode), README: `fixture docker-ce fork at ${ref}\n` },
    });
    return [at("v1", "18.03.1-ce", "good"), at("v2", "18.03.2-ce", "good"), at("broken", "18.03.3-ce", "broken"), at("bad-daemon", "18.03.4-ce", "bad-daemon")];
}

/** v1 and v2 of a small repository whose files differ between them. */
function twoReleases(what: string, files: (n: 1 | 2) => Record<string, string>): FixtureCommit[] {
    return ([1, 2] as const).map((n) => ({ ref: `v${n}`, files: { README: `fixture ${what} at v${n}\n`, ...files(n) } }));
}

/** A `git daemon` exporting every repository under BASE on LISTEN:9418. */
class GitDaemon {
    private daemon?: ChildProcess;

    constructor(
        private readonly base: string,
        private readonly listen: string,
    ) {}

    url(name: string): string {
        return `git://${this.listen}/${name}.git`;
    }

    repo(name: string): FixtureRepo {
        const bare = path.join(this.base, `${name}.git`);
        return {
            url: this.url(name),
            commitOf: (ref: string) => execFileSync("git", ["-C", bare, "rev-parse", `${ref}^{commit}`], { encoding: "utf8" }).trim(),
            timeOf: (ref: string) => Number(execFileSync("git", ["-C", bare, "log", "-1", "--format=%ct", `${ref}^{commit}`], { encoding: "utf8" }).trim()),
        };
    }

    /** Starts the daemon and waits until `probe` (a repository name) answers. */
    async start(probe: string): Promise<void> {
        this.daemon = spawn(
            "git",
            ["daemon", "--reuseaddr", "--export-all", `--base-path=${this.base}`, `--listen=${this.listen}`, "--port=9418", this.base],
            { stdio: "ignore" },
        );
        for (let i = 0; i < 50; i++) {
            try {
                execFileSync("git", ["ls-remote", this.url(probe)], { stdio: "pipe", timeout: 2000 });
                return;
            } catch {
                await new Promise((r) => setTimeout(r, 200));
            }
        }
        this.stop();
        throw new Error(`git daemon did not start on ${this.listen}`);
    }

    stop(): void {
        if (this.daemon?.pid && this.daemon.exitCode === null) this.daemon.kill("SIGTERM");
    }
}

/**
 * Creates the fixture repositories of all three recipes and serves them on LISTEN:9418 (the
 * build host's gateway address, e.g. 10.78.INDEX.1).
 */
export async function serveFixtureForks(listen: string): Promise<FixtureForks> {
    const base = mkdtempSync(path.join(tmpdir(), "forklift-forks-"));
    const daemon = new GitDaemon(base, listen);
    const stop = () => {
        daemon.stop();
        rmSync(base, { recursive: true, force: true });
    };
    try {
        createRepo(base, "docker-ce", dockerCeCommits());
        createRepo(base, "docker", twoReleases("engine (moby) fork", (n) => ({ VERSION: `29.0.${n}-fixture\n`, Dockerfile: DOCKERFILE })));
        createRepo(base, "cli", twoReleases("docker/cli fork", (n) => ({ VERSION: `29.0.${n}-fixture\n`, Dockerfile: DOCKERFILE })));
        createRepo(
            base,
            "docker-ce-packaging",
            twoReleases("docker-ce-packaging", (n) => ({ Makefile: PACKAGING_MAKEFILE(FIXTURE_DEFAULT_VERSIONS["docker-ce-packaging"][`v${n}`]), "scripts/checkout.sh": CHECKOUT_SH })),
        );
        createRepo(base, "moby", twoReleases("moby fork", (n) => ({ Makefile: MOBY_MAKEFILE(`29.0.${n}-fixture`), Dockerfile: DOCKERFILE })));
        await daemon.start("docker-ce");
    } catch (e) {
        stop();
        throw e;
    }
    return {
        dockerCe: daemon.repo("docker-ce"),
        packaging: daemon.repo("docker-ce-packaging"),
        engine: daemon.repo("docker"),
        cli: daemon.repo("cli"),
        moby: daemon.repo("moby"),
        stop,
    };
}

/** The docker-ce fixture alone (see the top of this file), as test/hosts/scripts.test.ts uses it. */
export class FixtureFork implements FixtureRepo {
    readonly dir: string;
    readonly repo: string;
    private readonly daemon: GitDaemon;

    constructor(listen: string) {
        this.dir = mkdtempSync(path.join(tmpdir(), "forklift-fork-"));
        this.repo = createRepo(this.dir, "docker-ce", dockerCeCommits());
        this.daemon = new GitDaemon(this.dir, listen);
    }

    /** git URL as the build host sees it. */
    get url(): string {
        return this.daemon.url("docker-ce");
    }

    commitOf(ref: string): string {
        return this.daemon.repo("docker-ce").commitOf(ref);
    }

    timeOf(ref: string): number {
        return this.daemon.repo("docker-ce").timeOf(ref);
    }

    serve(): Promise<void> {
        return this.daemon.start("docker-ce");
    }

    stop(): void {
        this.daemon.stop();
        rmSync(this.dir, { recursive: true, force: true });
    }
}
