/**
 * forklift end to end, as a user runs it: the real `pulumi` CLI (plain `pulumi preview`, `up`,
 * `destroy`; no --skip-preview) with the Node.js language host and the `command` provider, in
 * hosts mode, on the nspawn test bed: one build host and three fleet hosts — `a` (root), `b` (a
 * user with passwordless sudo) and `c` (Debian's docker.io running a container) — plus a spare
 * machine `d`. Every recipe's fixture fork is built and rolled out; the hosts are checked over SSH.
 *
 * Needs root, the test bed (testbed/deps.sh) and the Pulumi plugins, which no registry serves
 * here: it fails at once naming a missing one (see testbed/lab.ts, findPulumi). Not part of
 * `npm test` / CI for that reason: `npm run test:e2e`.
 */
import { after, before, describe, test } from "node:test";
import * as assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { FIXTURE_BINARIES } from "../../testbed/fixture-fork";
import { Lab, LabHost, PulumiCli, bootLab, configureStack, findPulumi, forkSettings, note, projectCheckout, setConfig, setHost, sh } from "../../testbed/lab";
import { traceSnapshot } from "../support/trace";
import * as checks from "./checks";
import { TestHost, ssh, stopHosts } from "../../testbed/testbed";

const STACK = "e2e";
let lab: Lab;
let cli: PulumiCli;
let work: string;
let a: LabHost, b: LabHost, c: LabHost, d: TestHost;
/** Each fleet machine as it was before forklift touched it. */
const before0 = new Map<string, string>();
/** Every byte of pulumi output, checked for key material at the end. */
let allOutput = "";

const up = async (extra: string[] = []) => {
    const r = await cli.ok(["up", "--yes", ...extra]);
    allOutput += r.stdout + r.stderr;
    note(`pulumi up ${extra.join(" ")}: ${r.seconds.toFixed(1)} s`);
    return r;
};
const preview = async () => {
    const r = await cli.ok(["preview"]);
    allOutput += r.stdout + r.stderr;
    note(`pulumi preview: ${r.seconds.toFixed(1)} s`);
    return r;
};

const started = (h: TestHost) => Number(sh(h, "systemctl show -p ExecMainStartTimestampMonotonic --value docker.service"));
const projectDir = () => path.join(work, "project");
const assertOnRelease = (h: TestHost, sha256: string) => checks.assertOnRelease(projectDir(), h, sha256);
const artifactDockerd = (sha256: string) => checks.artifactDockerd(projectDir(), sha256);
const runningDockerd = checks.runningDockerd;

describe("pulumi up, as a user types it, on real hosts", { timeout: 60 * 60_000 }, () => {
    before(async () => {
        findPulumi(); // fail at once, naming the missing plugin, before anything boots
        work = fs.mkdtempSync(path.join(os.tmpdir(), "forklift-e2e-"));
        lab = await bootLab({
            builder: { name: "e2e-builder", index: 101 },
            fleet: [
                { name: "e2e-a", index: 102 },
                { name: "e2e-b", index: 103, user: "deploy" },
                { name: "e2e-c", index: 104, debianDocker: true },
            ],
            spare: { name: "e2e-d", index: 105 },
        });
        [a, b, c] = lab.fleet;
        d = lab.spare!;
        for (const h of [a, b, c, d]) before0.set(h.name, traceSnapshot(h, { daemonData: h === c }));
        cli = new PulumiCli(projectCheckout(path.join(work, "project")), path.join(work, "state"), "e2e-passphrase");
        await configureStack(cli, STACK, lab, { recipe: "docker-ce", ref: "v1" });
    });

    after(async () => {
        for (const { args, code, seconds } of cli?.log ?? []) note(`timing: pulumi ${args.slice(0, 3).join(" ")} -> ${code} in ${seconds.toFixed(1)} s`);
        lab?.stopForks();
        await stopHosts();
        if (work) fs.rmSync(work, { recursive: true, force: true });
    });

    test("preview of the new stack shows the whole plan and changes nothing", async () => {
        const r = await preview();
        for (const name of ["forklift-builder-bootstrap", "forklift-fork-build", "forklift-a-install", "forklift-b-install", "forklift-c-install"]) {
            assert.match(r.stdout, new RegExp(`\\+ .*${name}`), `the plan creates ${name}`);
        }
        for (const h of [a, b, c]) assert.equal(ssh(h, "test -e /opt/forklift").code, 1, `${h.name} untouched by the preview`);
    });

    test("up: builds docker-ce v1 and installs it everywhere; Debian's container survives the takeover", async () => {
        const keeperPid = sh(c, "docker inspect -f '{{.State.Pid}}' keeper");
        await up();
        const out = await cli.outputs();
        assert.equal(out.artifact.recipe, "docker-ce");
        assert.equal(out.artifact.commit, lab.forks.dockerCe.commitOf("v1"));
        assert.deepEqual(out.hosts.map((h: any) => h.name), ["a", "b", "c"]);
        for (const h of [a, b, c]) await assertOnRelease(h, out.artifact.sha256);
        for (const [i, h] of out.hosts.entries()) assert.equal(h.dockerdSha256, artifactDockerd(out.artifact.sha256), `hosts[${i}].dockerdSha256`);
        assert.equal(sh(c, "docker inspect -f '{{.State.Running}} {{.State.Pid}}' keeper"), `true ${keeperPid}`, "c's container kept running");
        assert.equal(sh(b, "stat -c %U /opt/forklift/current/dockerd"), "root", "b was installed through sudo");
    });

    test("a second up changes nothing and restarts nothing", async () => {
        const pids = [a, b, c].map((h) => runningDockerd(h).pid);
        const r = await up(["--expect-no-changes"]);
        assert.doesNotMatch(r.stdout, /forklift-\w+-install\s+(created|updated|replaced)/);
        assert.deepEqual([a, b, c].map((h) => runningDockerd(h).pid), pids, "every dockerd is the same process");
    });

    test("FORKLIFT_PLAN=1 pulumi preview: the plan before anything changes, read from the hosts without a change", async () => {
        const pids = [a, b, c].map((h) => runningDockerd(h).pid);
        const sha = (await cli.outputs()).artifact.sha256 as string;
        const planned = async () => {
            cli.env.FORKLIFT_PLAN = "1";
            try {
                return await preview();
            } finally {
                delete cli.env.FORKLIFT_PLAN;
            }
        };
        const same = await planned();
        assert.match(same.stdout, new RegExp(`the plan: install \\S+@v1 \\(sha256 ${sha.slice(0, 12)}\\)`), same.stdout);
        assert.match(same.stdout, /\[forklift plan\] a \(\S+\): checked/, "the plan command's progress, as it ran");
        for (const [i, h] of ["a", "b", "c"].entries()) {
            assert.match(same.stdout, new RegExp(`\\n\\s*${i + 1} +${h} +forklift \\S+ \\(${sha.slice(0, 12)}\\), engine \\S+ +no +- +-`), `${h}: step ${i + 1}, on the release, no change`);
        }
        await setConfig(cli, { forkRef: "v2" });
        const next = await planned();
        assert.match(next.stdout, /the plan: install \S+@v2 \(a build still to run\)/);
        assert.equal(next.stdout.match(/ if the build differs /g)?.length, 3, next.stdout);
        await setConfig(cli, { forkRef: "v1" });
        const plain = await preview();
        assert.doesNotMatch(plain.stdout, /the plan: install/, "without FORKLIFT_PLAN, no plan and no host contacted");
        assert.deepEqual([a, b, c].map((h) => runningDockerd(h).pid), pids, "no engine restarted");
    });

    test("a ref change: preview plans it, up rolls out batch by batch, a live-restore container keeps its PID", async () => {
        sh(a, "docker run -d --name live busybox:local sleep 1000000 >/dev/null");
        const livePid = sh(a, "docker inspect -f '{{.State.Pid}}' live");
        await setConfig(cli, { forkRef: "v2" });
        const p = await preview();
        assert.match(p.stdout, /~ .*forklift-fork-build/, "the build is planned to run again");
        await up();
        const out = await cli.outputs();
        assert.equal(out.artifact.commit, lab.forks.dockerCe.commitOf("v2"));
        for (const h of [a, b, c]) await assertOnRelease(h, out.artifact.sha256);
        const [ta, tb, tc] = [a, b, c].map(started);
        assert.ok(ta < tb && tb < tc, `one host at a time, in order (dockerd started at ${ta}, ${tb}, ${tc})`);
        assert.equal(sh(a, "docker inspect -f '{{.State.Running}} {{.State.Pid}}' live"), `true ${livePid}`, "the container lived through the upgrade");
    });

    test("a wrong host key and a host that does not answer stop the rollout before any host changes; fixed, up converges", async () => {
        const v2 = (await cli.outputs()).artifact.sha256;
        await setConfig(cli, { forkRef: "v1" });
        await setHost(cli, "fleetHosts[1]", { ...b, hostKey: d.hostKey });
        const hostSh = path.join(__dirname, "..", "..", "testbed", "host.sh");
        const drop = (op: "-I" | "-D") => execFileSync(hostSh, ["exec", c.name, "iptables", op, "INPUT", "-p", "tcp", "--dport", "22", "-j", "DROP"]);
        drop("-I");
        try {
            // the plan first: every host listed, the two that fail named with their causes, and the preview fails
            cli.env.FORKLIFT_PLAN = "1";
            const p = await cli.run(["preview"]).finally(() => delete cli.env.FORKLIFT_PLAN);
            const planText = p.stdout + p.stderr;
            assert.notEqual(p.code, 0, planText);
            assert.match(planText, /\n\s*-\s+a\s+forklift \S+ \(\w{12}\), engine \S+ +if the build differs /, "a, checked (no steps without every host; v1 is still to build)");
            assert.match(planText, /\n\s*-\s+b\s+not checked \(see below\)\s+unknown/);
            assert.match(planText, /`pulumi up` would stop at the precheck, before any change, as 2 of 3 hosts failed it:\n\s*b \(10\.78\.103\.2:22\): its SSH host key is not the pinned hostKey[^\n]*\n\s*c \(10\.78\.104\.2:22\): unreachable/);
            assert.match(planText, /error: the precheck failed on 2 of 3 hosts \(see the plan above\): `pulumi up` would stop there, before any change/);
            assert.doesNotMatch(planText, /serializing|unhandled exception|    at /, "the message alone");
            const r = await cli.run(["up", "--yes"]);
            allOutput += r.stdout + r.stderr;
            note(`pulumi up with b's key wrong and c silent: exit ${r.code} after ${r.seconds.toFixed(1)} s`);
            assert.notEqual(r.code, 0);
            const text = r.stdout + r.stderr;
            assert.match(text, /b \(10\.78\.103\.2:22\): its SSH host key is not the pinned hostKey\. Check its hostKey/);
            assert.doesNotMatch(text, /known_hosts|Offending|POSSIBLE/, "none of OpenSSH's advice about files that are not the user's");
            assert.match(text, /c \(10\.78\.104\.2:22\): unreachable; check that it is up, its address and port, and the network path \(sshConnectTimeout is 10s\)/);
            assert.match(text, /the precheck failed on 2 of 3 hosts: b, c \(see above\)/, "while the fork built, one precheck for all hosts");
            for (const h of [a, b]) assert.equal(sh(h, "readlink /opt/forklift/current"), `/opt/forklift/releases/${v2}`, `${h.name} was not changed`);
        } finally {
            drop("-D");
            // (here, so that a failure above leaves the next tests a stack that works)
            await setHost(cli, "fleetHosts[1]", b);
        }
        assert.equal(sh(c, "readlink /opt/forklift/current"), `/opt/forklift/releases/${v2}`, "c was not changed");
        await up();
        const out = await cli.outputs();
        assert.equal(out.artifact.commit, lab.forks.dockerCe.commitOf("v1"));
        for (const h of [a, b, c]) await assertOnRelease(h, out.artifact.sha256);
    });

    test("recipe docker-ce-packaging: engine and cli forks built and rolled out", async () => {
        await setConfig(cli, forkSettings(lab, { recipe: "docker-ce-packaging", ref: "v1" }));
        await preview();
        await up();
        const out = await cli.outputs();
        assert.equal(out.artifact.recipe, "docker-ce-packaging");
        assert.equal(out.artifact.commit, lab.forks.engine.commitOf("v1"));
        assert.equal(out.artifact.cliCommit, lab.forks.cli.commitOf("v1"));
        assert.equal(out.artifact.provenance.sourceDateEpoch, lab.forks.engine.timeOf("v1"), "built at the engine commit's time");
        for (const h of [a, b, c]) await assertOnRelease(h, out.artifact.sha256);
    });

    test("a newer build-fork.sh: up rebuilds the same bytes and touches no fleet host", async () => {
        const before = await cli.outputs();
        const pids = [a, b, c].map((h) => runningDockerd(h).pid);
        // (each count is itself a login, the one the count after this up adds)
        const logins = (h: TestHost) => Number(sh(h, "journalctl -u ssh.service -o cat | grep -c 'Accepted publickey' || true"));
        const loginsBefore = [a, b, c].map(logins);
        fs.appendFileSync(path.join(projectDir(), "scripts", "build-fork.sh"), "\n# a newer forklift: one more line\n");
        const r = await up();
        const out = await cli.outputs();
        assert.notEqual(out.artifact.buildKey, before.artifact.buildKey, "a new build key");
        assert.match(r.stdout, /forklift-fork-build\s+updated/, "rebuilt");
        assert.equal(out.artifact.sha256, before.artifact.sha256, "the same bytes");
        assert.doesNotMatch(r.stdout, /forklift-(precheck|check|\w+-install)\s+(created|updated|replaced)/, "no host checked or installed");
        assert.deepEqual([a, b, c].map(logins), loginsBefore.map((n) => n + 1), "no login on any fleet host but this test's");
        assert.deepEqual([a, b, c].map((h) => runningDockerd(h).pid), pids, "every dockerd is the same process");
    });

    test("recipe moby: refused while forklift's containerd runs containers nothing would manage; then the daemon alone", async () => {
        const before = (await cli.outputs()).artifact.sha256;
        await setConfig(cli, forkSettings(lab, { recipe: "moby", ref: "v1" }));
        const refused = await cli.run(["up", "--yes"]);
        allOutput += refused.stdout + refused.stderr;
        assert.notEqual(refused.code, 0, "the switch is refused on a");
        assert.match(refused.stdout + refused.stderr, /\[forklift a\] ERROR: the new release ships no containerd and this host has none of its own: the 1 running container/);
        assert.equal(sh(a, "readlink /opt/forklift/current"), `/opt/forklift/releases/${before}`, "a is untouched");
        assert.equal(sh(b, "readlink /opt/forklift/current"), `/opt/forklift/releases/${before}`, "the batches after a did not start");
        assert.equal(sh(a, "docker inspect -f '{{.State.Running}}' live"), "true");
        sh(a, "docker rm -f live >/dev/null");
        await up();
        const out = await cli.outputs();
        assert.equal(out.artifact.recipe, "moby");
        assert.equal(out.artifact.commit, lab.forks.moby.commitOf("v1"));
        for (const h of [a, b, c]) {
            await assertOnRelease(h, out.artifact.sha256);
            assert.equal(sh(h, "ls /opt/forklift/current | tr '\\n' ' '").trim(), [...FIXTURE_BINARIES.moby, "FORKLIFT-BUILD-INFO"].sort().join(" "));
            assert.equal(sh(h, "readlink -f /usr/bin/docker"), "/usr/bin/docker", `${h.name}: the host's own docker CLI is back`);
        }
    });

    test("identity: --replace of one install leaves that host installed", async () => {
        const urn = (await cli.ok(["stack", "--show-urns"])).stdout.match(/urn:pulumi:\S+forklift-b-install/)?.[0];
        assert.ok(urn, "the install of b has a URN");
        await up(["--replace", urn]);
        const out = await cli.outputs();
        await assertOnRelease(b, out.artifact.sha256);
    });

    test("identity: a new address under the same name installs the new machine and gives the old one back", async () => {
        await setHost(cli, "fleetHosts[0]", { ...d, name: "e2e-a", login: "root" });
        await up();
        const out = await cli.outputs();
        assert.equal(out.hosts[0].address, d.address);
        await assertOnRelease(d, out.artifact.sha256);
        assertSameTrace(a, traceSnapshot(a));
    });

    test("identity: removing a host gives it back", async () => {
        await cli.ok(["config", "rm", "--path", "fleetHosts[1]"]);
        await up();
        assert.deepEqual((await cli.outputs()).hosts.map((h: any) => h.name), ["a", "c"]);
        assertSameTrace(b, traceSnapshot(b));
    });

    test("no byte of any private key in the state", async () => {
        const exported = (await cli.ok(["stack", "export"])).stdout;
        assert.match(exported, /"ciphertext"/, "the keys are there, encrypted");
        assertNoKeyBytes(exported, "the state");
    });

    test("destroy gives every host back as forklift found it; Debian's Docker is back", async () => {
        const r = await cli.ok(["destroy", "--yes"]);
        allOutput += r.stdout + r.stderr;
        assertSameTrace(d, traceSnapshot(d));
        assertSameTrace(c, traceSnapshot(c, { daemonData: true }));
        assert.equal(sh(c, "dpkg -V docker.io containerd runc 2>&1 | wc -l"), "0", "Debian's files are intact");
        assert.equal(sh(c, "systemctl is-active docker.service"), "active");
        assert.equal(sh(c, "readlink -f $(command -v dockerd)"), "/usr/sbin/dockerd");
        assert.equal(ssh(lab.builder, "test -e /var/lib/forklift-build || test -e /var/lib/forklift-bootstrap").code, 1, "the build host is cleaned up");
    });


    test("no byte of any private key in pulumi's output", () => {
        assert.ok(allOutput.length > 10_000, "the output of every preview, up and destroy was collected");
        assertNoKeyBytes(allOutput, "pulumi's output");
    });
});

/** Fails listing the lines that differ when HOST's traces are not what they were before forklift. */
function assertSameTrace(host: TestHost, now: string) {
    const was = before0.get(host.name)!.split("\n");
    const is = now.split("\n");
    const gone = was.filter((l) => !is.includes(l));
    const added = is.filter((l) => !was.includes(l));
    assert.ok(gone.length + added.length === 0, `${host.name} is not as forklift found it:\n${[...gone.map((l) => `- ${l}`), ...added.map((l) => `+ ${l}`)].join("\n")}`);
}

/** Fails when any 16 bytes of the test key (its PEM body or the base64 of the file) occur in TEXT. */
function assertNoKeyBytes(text: string, where: string) {
    const key = fs.readFileSync(a.privateKeyPath, "utf8");
    const body = key.split("\n").filter((l) => l && !l.startsWith("-----")).join("");
    for (const enc of [body, Buffer.from(key).toString("base64"), Buffer.from(key.trimEnd()).toString("base64")]) {
        for (let i = 0; i + 16 <= enc.length; i += 8) {
            assert.ok(!text.includes(enc.slice(i, i + 16)), `key material (offset ${i}) in ${where}`);
        }
    }
}
