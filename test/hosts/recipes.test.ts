/**
 * The three build recipes on a real (nspawn) build host, through the exact commands the program
 * sends (lib/protocol/) and the real scripts/bootstrap-builder.sh and scripts/build-fork.sh: a
 * Debian builder with docker.io and the real buildx plugin (like an Ubuntu 24.04 host with
 * docker-buildx) builds the fixture forks of testbed/fixture-fork.ts, served by git daemon.
 * A second, fresh builder builds the same refs again, and the first once more with a changed build
 * script: the same bytes each time (the fixtures stamp the clock's time where a real build would).
 * An offline builder that lacks git and make shows what bootstrap says when apt cannot help.
 */
import { after, before, describe, test } from "node:test";
import * as assert from "node:assert/strict";
import { bootstrapCommand } from "../../lib/protocol/bootstrap";
import { BuildResult, buildCommand, buildKey, parseBuildResult } from "../../lib/protocol/build";
import { readScript } from "../../lib/protocol/script";
import { Recipe } from "../../lib/config";
import { FIXTURE_BINARIES, FixtureForks, forkConfigFor, serveFixtureForks } from "../../testbed/fixture-fork";
import { installBuildx } from "../../testbed/buildx";
import { TestHost, ssh, startHosts, stopHosts } from "../../testbed/testbed";

let builder: TestHost;
let builder2: TestHost;
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

/** Builds `ref` of the recipe's fixture exactly as the program's build command does (on HOST, with SCRIPT). */
function build(recipe: Recipe, ref: string, version?: string, host = builder, script = readScript("build-fork.sh")): BuildResult & { log: string } {
    const fork = forkConfigFor(forks, recipe, ref, version);
    const r = ssh(host, buildCommand(fork, buildKey(fork, script), false), { input: script });
    assert.equal(r.code, 0, `build of ${recipe}@${ref} on ${host.name} failed:\n${r.stderr}`);
    const result = parseBuildResult(r.stdout);
    assert.equal(result.artifact, `/var/lib/forklift-build/artifacts/${result.sha256}.tgz`, "the artifact's path is named by its bytes");
    assert.equal(out(host, `sha256sum ${result.artifact} | cut -d' ' -f1`), result.sha256, "sha256 is the artifact's");
    assert.equal(out(host, `stat -c %s ${result.artifact}`), String(result.size));
    assert.equal(result.recipe, recipe);
    assert.deepEqual(result.binaries, FIXTURE_BINARIES[recipe]);
    assert.equal(
        out(host, `tar -xzOf ${result.artifact} docker/dockerd | sha256sum | cut -d' ' -f1`),
        out(host, "sha256sum $(readlink -f $(command -v dockerd)) | cut -d' ' -f1"),
        "the artifact carries the builder's real dockerd",
    );
    const info = out(host, `tar -xzOf ${result.artifact} docker/FORKLIFT-BUILD-INFO`);
    assert.match(info, new RegExp(`^commit=${result.commit}$`, "m"));
    assert.match(info, new RegExp(`^version=${result.version.replace(/[.+]/g, "\\$&")}$`, "m"));
    assert.doesNotMatch(info, /buildKey|script/i, "nothing of forklift's own build in the artifact");
    // the fork commit's time: the engine's for docker-ce-packaging
    const repo = { "docker-ce": forks.dockerCe, "docker-ce-packaging": forks.engine, moby: forks.moby }[recipe];
    assert.equal(result.provenance?.sourceDateEpoch, repo.timeOf(ref));
    assert.match(info, new RegExp(`^sourceDateEpoch=${repo.timeOf(ref)}$`, "m"));
    assert.deepEqual({ ...result.provenance, toolchain: undefined, makeVars: undefined, sourceDateEpoch: undefined }, {
        ...Object.fromEntries(info.split("\n").map((l) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1)])),
        toolchain: undefined,
        makeVars: undefined,
        sourceDateEpoch: undefined,
    }, "the provenance has the artifact's record");
    assert.match(result.provenance!.toolchain.docker, /^\d+\.\d+/, "the build host's Docker");
    return { ...result, log: r.stderr };
}

/** Commands that stand in for apt-get/apt-cache/apt and only log that they were called. */
const APT_SPIES = ["apt-get", "apt-cache", "apt"]
    .map((cmd) => `printf '#!/bin/sh\\necho "${cmd} $*" >>/tmp/apt-calls\\nexit 100\\n' >/usr/local/sbin/${cmd} && chmod +x /usr/local/sbin/${cmd}`)
    .join(" && ");

describe("build recipes on a real build host", { timeout: 30 * 60_000 }, () => {
    before(async () => {
        [builder, offline, builder2] = await startHosts([
            { name: "rb-builder", index: 61 },
            { name: "rb-fleet", index: 62 },
            { name: "rb-builder2", index: 63 },
        ]);
        forks = await serveFixtureForks("10.78.61.1");
        buildxVersion = (await installBuildx(builder)).split(/\s+/)[1];
        await installBuildx(builder2);
        // the second builder reaches the fixtures' git daemon (this machine's 10.78.61.1) through
        // its own gateway: the same repository URLs, the same inputs
        out(builder2, "ip route add 10.78.61.1/32 via 10.78.63.1");
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
        assert.match(out(builder, `ls /var/lib/forklift-build/${r.buildKey}/out`), /^docker-28\.5\.1-fork\.1\.tgz$/, "named after the version");
        const marker = out(builder, `tar -xzOf ${r.artifact} docker/FIXTURE-BUILD`);
        // the engine's and the cli's build stages were given SOURCE_DATE_EPOCH: the engine commit's time
        const time = new Date(forks.engine.timeOf("v1") * 1000).toISOString().replace(/\.000Z$/, ".000000000Z");
        assert.equal(marker, `engine=${r.commit}\ncli=${r.cliCommit}\nversion=28.5.1-fork.1\nengineBuildTime=${time}\ncliBuildTime=${time}`);
        const log = out(builder, `cat /var/lib/forklift-build/${r.buildKey}/build.log`);
        assert.match(log, /declared SOURCE_DATE_EPOCH in the build stage of .*src\/github\.com\/docker\/docker\/Dockerfile/);
        assert.match(log, /declared SOURCE_DATE_EPOCH in the build stage of .*src\/github\.com\/docker\/cli\/Dockerfile/);
        assert.equal(r.provenance?.packagingCommit, forks.packaging.commitOf("v1"));
    });

    test("moby: make binary, dockerd and docker-proxy only, VERSION honoured", () => {
        const r = build("moby", "v1", "29.0.1-fork.1");
        assert.equal(r.commit, forks.moby.commitOf("v1"));
        assert.equal(r.cliCommit, "");
        assert.equal(r.version, "29.0.1-fork.1");
        const marker = out(builder, `cat /var/lib/forklift-build/${r.buildKey}/src/bundles/binary-daemon/FIXTURE-BUILD`);
        assert.equal(marker, `commit=${r.commit}\nversion=29.0.1-fork.1`, "make binary got the VERSION");
    });

    test("same inputs, same bytes: a second fresh build host, and a newer build script, build each recipe's artifact to one sha256", () => {
        // the first builder as fresh as the second: no mirror, no build
        out(builder, "rm -rf /var/lib/forklift-build");
        assert.equal(bootstrap(builder2).code, 0, "the second builder bootstrapped");
        const newer = readScript("build-fork.sh") + "\n# a newer forklift: one more line\n";
        for (const recipe of ["docker-ce-packaging", "moby", "docker-ce"] as Recipe[]) {
            const first = build(recipe, "v2");
            const second = build(recipe, "v2", undefined, builder2);
            const rebuilt = build(recipe, "v2", undefined, builder, newer);
            assert.notEqual(rebuilt.buildKey, first.buildKey, `${recipe}: a new build key`);
            assert.match(rebuilt.log, /started build/, `${recipe}: built again, not reused`);
            assert.equal(second.sha256, first.sha256, `${recipe}: another build host, the same bytes`);
            assert.equal(rebuilt.sha256, first.sha256, `${recipe}: a newer build script, the same bytes`);
        }
        // what a real build stamps, the fixture stamped from SOURCE_DATE_EPOCH (the moby fixture appends it to docker-proxy)
        const moby = build("moby", "v2");
        const stamp = out(builder, `tar -xzOf ${moby.artifact} docker/docker-proxy | tail -c 200 | sed -n 's/^forklift-fixture-build-time=//p'`);
        assert.equal(stamp, new Date(forks.moby.timeOf("v2") * 1000).toISOString().replace(/\.000Z$/, ".000000000Z"));
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
