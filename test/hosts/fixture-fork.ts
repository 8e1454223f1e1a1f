/**
 * A fixture fork laid out like the docker-ce monorepo: `make static DOCKER_BUILD_PKGS=static-linux`
 * packs the build host's real Docker binaries into
 * components/packaging/static/build/linux/docker-<version>.tgz, with a FORK-COMMIT file. Refs:
 *   v1, v2      good releases (differ in their FORK-COMMIT and VERSION)
 *   broken      make fails
 *   bad-daemon  a dockerd that exits at once (the health check must fail)
 * Served to the build host by `git daemon` on the host side of its veth.
 */
import { ChildProcess, execFileSync, spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";

const MAKEFILE = (version: string, mode: "good" | "broken" | "bad-daemon") => `# fixture docker-ce: packs the build host's Docker binaries like the static build would
VERSION ?= ${version}
OUT := components/packaging/static/build/linux
BINS := /usr/sbin/dockerd /usr/bin/docker /usr/bin/containerd /usr/bin/containerd-shim-runc-v2 /usr/bin/ctr /usr/sbin/runc /usr/bin/docker-init /usr/sbin/docker-proxy

static:
\ttest "$(DOCKER_BUILD_PKGS)" = static-linux
\tdocker info >/dev/null
${mode === "broken" ? "\t@echo 'compile error: swarmkit/manager.go:42: undefined: timeoutFromFork' >&2; exit 2\n" : ""}\tsleep 3
\trm -rf $(OUT) && mkdir -p $(OUT)/docker
\tfor b in $(BINS); do cp "$$(readlink -f $$b)" "$(OUT)/docker/$$(basename $$b)"; done
${mode === "bad-daemon" ? "\tprintf '#!/bin/sh\\necho dockerd: fork patch broke startup >&2\\nexit 1\\n' > $(OUT)/docker/dockerd && chmod +x $(OUT)/docker/dockerd\n" : ""}\tgit rev-parse HEAD > $(OUT)/docker/FORK-COMMIT
\ttar -C $(OUT) -czf $(OUT)/docker-$(VERSION).tgz docker
`;

export class FixtureFork {
    readonly dir: string;
    readonly repo: string;
    private daemon?: ChildProcess;

    constructor(private readonly listen: string) {
        this.dir = mkdtempSync(path.join(tmpdir(), "forklift-fork-"));
        this.repo = path.join(this.dir, "docker-ce.git");
        const work = path.join(this.dir, "work");
        mkdirSync(work);
        const git = (...args: string[]) => execFileSync("git", ["-C", work, ...args], { stdio: "pipe" });
        git("init", "-q", "-b", "main");
        git("config", "user.email", "fixture@forklift.test");
        git("config", "user.name", "fixture");
        const commit = (file: string, ref: string, tag = true) => {
            writeFileSync(path.join(work, "Makefile"), file);
            writeFileSync(path.join(work, "README"), `fixture docker-ce fork at ${ref}\n`);
            git("add", "-A");
            git("commit", "-q", "-m", ref);
            if (tag) git("tag", ref);
        };
        commit(MAKEFILE("18.03.1-ce", "good"), "v1");
        commit(MAKEFILE("18.03.2-ce", "good"), "v2");
        commit(MAKEFILE("18.03.3-ce", "broken"), "broken");
        commit(MAKEFILE("18.03.4-ce", "bad-daemon"), "bad-daemon");
        execFileSync("git", ["clone", "-q", "--bare", work, this.repo]);
    }

    /** git URL as the build host sees it. */
    get url(): string {
        return `git://${this.listen}/docker-ce.git`;
    }

    commitOf(ref: string): string {
        return execFileSync("git", ["-C", this.repo, "rev-parse", `${ref}^{commit}`], { encoding: "utf8" }).trim();
    }

    async serve(): Promise<void> {
        this.daemon = spawn(
            "git",
            ["daemon", "--reuseaddr", "--export-all", `--base-path=${this.dir}`, `--listen=${this.listen}`, "--port=9418", this.dir],
            { stdio: "ignore" },
        );
        for (let i = 0; i < 50; i++) {
            try {
                execFileSync("git", ["ls-remote", this.url], { stdio: "pipe", timeout: 2000 });
                return;
            } catch {
                await new Promise((r) => setTimeout(r, 200));
            }
        }
        throw new Error(`git daemon did not start on ${this.listen}`);
    }

    stop(): void {
        if (this.daemon?.pid && this.daemon.exitCode === null) this.daemon.kill("SIGTERM");
        rmSync(this.dir, { recursive: true, force: true });
    }
}
