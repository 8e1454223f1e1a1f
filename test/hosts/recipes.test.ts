/**
 * The three build recipes on a real (nspawn) build host, through the exact commands the program
 * sends (lib/protocol/) and the real scripts/bootstrap-builder.sh and scripts/build-fork.sh: a
 * Debian builder with docker.io and the real buildx plugin (like an Ubuntu 24.04 host with
 * docker-buildx) builds the fixture forks of test/hosts/fixture-fork.ts, served by git daemon.
 * A second, offline builder that lacks git and make shows what bootstrap says when apt cannot help.
 */
import { after, before, describe, test } from "node:test";
import * as assert from "node:assert/strict";
import { bootstrapCommand } from "../../lib/protocol/bootstrap";
import { BuildResult, buildCommand, buildKey, parseBuildResult } from "../../lib/protocol/build";
import { readScript } from "../../lib/protocol/script";
import { Recipe } from "../../lib/config";
import { FIXTURE_BINARIES, FixtureForks, forkConfigFor, serveFixtureForks } from "./fixture-fork";
import { installBuildx } from "../support/buildx";
import { TestHost, ssh, startHosts, stopHosts } from "../support/testbed";

let builder: TestHost;
let offline: TestHost;
let forks: FixtureForks;
let buildxVersion: string;

const out = (host: TestHost, cmd: string) => {
    const r = ssh(host, cmd);
    assert.equal(r.code, 0, `${cmd} failed on ${host.name}: ${r.stderr}`);
    return r.stdout.trim();
};
const bootstrap = (host: TestHost, mode: "bootstrap" | "wait" = "bootstrap") =>
    ssh(host, bootstrapCommand(mode, 0, false), { input: readScript("bootstrap-builder.sh") });

/** Builds `ref` of the recipe's fixture exactly as the program's build command does. */
function build(recipe: Recipe, ref: string, version?: string): BuildResult {
    const script = readScript("build-fork.sh");
    const fork = forkConfigFor(forks, recipe, ref, version);
    const r = ssh(builder, buildCommand(fork, buildKey(fork, script), false), { input: script });
    assert.equal(r.code, 0, `build of ${recipe}@${ref} failed:\n${r.stderr}`);
    const result = parseBuildResult(r.stdout);
    assert.equal(out(builder, `sha256sum ${result.artifact} | cut -d' ' -f1`), result.sha256, "sha256 is the artifact's");
    assert.equal(out(builder, `stat -c %s ${result.artifact}`), String(result.size));
    assert.equal(result.recipe, recipe);
    assert.deepEqual(result.binaries, FIXTURE_BINARIES[recipe]);
    assert.equal(
        out(builder, `tar -xzOf ${result.artifact} docker/dockerd | sha256sum | cut -d' ' -f1`),
        out(builder, "sha256sum $(readlink -f $(command -v dockerd)) | cut -d' ' -f1"),
        "the artifact carries the builder's real dockerd",
    );
    const info = out(builder, `tar -xzOf ${result.artifact} docker/FORKLIFT-BUILD-INFO`);
    assert.match(info, new RegExp(`^commit=${result.commit}$`, "m"));
    assert.match(info, new RegExp(`^version=${result.version.replace(/[.+]/g, "\\$&")}$`, "m"));
    return result;
}

/** Commands that stand in for apt-get/apt-cache/apt and only log that they were called. */
const APT_SPIES = ["apt-get", "apt-cache", "apt"]
    .map((cmd) => `printf '#!/bin/sh\\necho "${cmd} $*" >>/tmp/apt-calls\\nexit 100\\n' >/usr/local/sbin/${cmd} && chmod +x /usr/local/sbin/${cmd}`)
    .join(" && ");

describe("build recipes on a real build host", { timeout: 30 * 60_000 }, () => {
    before(async () => {
        [builder, offline] = await startHosts([
            { name: "rb-builder", index: 61 },
            { name: "rb-fleet", index: 62 },
        ]);
        forks = await serveFixtureForks("10.78.61.1");
        buildxVersion = (await installBuildx(builder)).split(/\s+/)[1];
    });
    after(async () => {
        forks?.stop();
        await stopHosts();
    });

    test("bootstrap of a builder that has everything runs no apt at all", () => {
        out(builder, APT_SPIES);
        try {
            const r = bootstrap(builder);
            assert.equal(r.code, 0, r.stderr);
            assert.match(r.stderr, /a Docker engine are present: no packages to install/);
            const summary = JSON.parse(r.stdout.trim().split("\n").pop()!);
            assert.match(summary.docker, /^\d+\.\d+/, "the Docker engine answers");
            assert.equal(summary.buildx, buildxVersion);
            assert.equal(ssh(builder, "cat /tmp/apt-calls").stdout, "", "no apt command ran");
            assert.equal(ssh(builder, "test -e /var/lib/forklift-bootstrap/installed-packages").code, 1, "nothing recorded as installed");
        } finally {
            out(builder, "rm -f /usr/local/sbin/apt-get /usr/local/sbin/apt-cache /usr/local/sbin/apt /tmp/apt-calls");
        }
        assert.equal(out(builder, "systemctl is-active docker.service"), "active");
        assert.equal(bootstrap(builder, "wait").code, 0);
    });

    test("docker-ce: make static in the monorepo", () => {
        const r = build("docker-ce", "v1");
        assert.equal(r.commit, forks.dockerCe.commitOf("v1"));
        assert.equal(r.cliCommit, "");
        assert.equal(r.version, "18.03.1-ce", "from the tgz the make wrote");
    });

    test("docker-ce-packaging: engine and cli forks cloned by make static, VERSION honoured", () => {
        const r = build("docker-ce-packaging", "v1", "28.5.1-fork.1");
        assert.equal(r.commit, forks.engine.commitOf("v1"));
        assert.equal(r.cliCommit, forks.cli.commitOf("v1"));
        assert.equal(r.version, "28.5.1-fork.1");
        assert.match(r.artifact, /\/docker-28\.5\.1-fork\.1\.tgz$/);
        const marker = out(builder, `tar -xzOf ${r.artifact} docker/FIXTURE-BUILD`);
        assert.equal(marker, `engine=${r.commit}\ncli=${r.cliCommit}\nversion=28.5.1-fork.1`);
    });

    test("moby: make binary, dockerd and docker-proxy only, VERSION honoured", () => {
        const r = build("moby", "v1", "29.0.1-fork.1");
        assert.equal(r.commit, forks.moby.commitOf("v1"));
        assert.equal(r.cliCommit, "");
        assert.equal(r.version, "29.0.1-fork.1");
        const marker = out(builder, `cat /var/lib/forklift-build/${r.buildKey}/src/bundles/binary-daemon/FIXTURE-BUILD`);
        assert.equal(marker, `commit=${r.commit}\nversion=29.0.1-fork.1`, "make binary got the VERSION");
    });

    test("an offline builder without git and make fails naming them and how to install them", () => {
        out(offline, "dpkg --remove --force-depends git make >/dev/null 2>&1");
        const r = bootstrap(offline);
        assert.notEqual(r.code, 0);
        const message = /build host lacks: git, make \(install them: apt-get install git make\) — forklift could not install them: apt-get (update|install) .+/;
        assert.match(r.stderr, message);
        assert.equal(r.stderr.match(/ERROR/g)?.length, 1, `one error message:\n${r.stderr}`);
        assert.match(out(offline, "cat /var/lib/forklift-bootstrap/failed"), message);
        assert.equal(ssh(offline, "systemctl is-active docker.service").stdout.trim(), "inactive", "stopped before touching Docker");
        const wait = bootstrap(offline, "wait");
        assert.notEqual(wait.code, 0);
        assert.match(wait.stderr, /bootstrap failed: build host lacks: git, make/);
    });
});
