/**
 * The local commands (local/main.ts) on a real host, driven exactly as the program's command
 * resources run them: the command line and the JSON job of lib/protocol/local.ts. The check before
 * a rollout, with one message per cause (host key, login, key, unreachable, no answer, sudo,
 * disk, another stack), the precheck of several hosts in one run, the staging of the release by
 * the check, install and uninstall (sha256 checked on the host, no copy where the release is
 * there already), and the races of several runs on one host. What `pulumi up` adds on top runs in
 * test/e2e, which CI cannot run.
 */
import { after, before, describe, test } from "node:test";
import * as assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { Owner, parseHostStatus } from "../../lib/protocol/host";
import { checkedHost, checksJob, fleetHostJob, planJob } from "../../lib/protocol/local";
import { PreviewPlan } from "../../lib/protocol/results";
import { planTable } from "../../lib/rollout";
import { sha256 } from "../../lib/hash";
import { ArtifactSource, RemoteHost, Route } from "../../lib/protocol/jobs";
import { LocalRun, NO_SWARM, cachedSource, defaultSwarmCheck, remoteOf, runLocal, runLocalAsync } from "../support/local";
import { HOST_BUSYBOX_TARBALL, TestHost, copyFrom, repoRoot, ssh, startHosts, stopHosts } from "../../testbed/testbed";

let host: TestHost;
let work: string;
/** Two releases made of the host's own Debian binaries, in the layout of a static build (b: with a note more). */
const rel = { a: { tgz: "", sha: "" }, b: { tgz: "", sha: "" }, c: { tgz: "", sha: "" } };
/** The installing stack as the program describes it (see Owner in lib/protocol/host.ts). */
const OWNER: Owner = { stack: "forklift/test", stackId: "a1a1a1a1a1a1a1a1", host: "web" };
const TWIN: Owner = { ...OWNER, stackId: "b2b2b2b2b2b2b2b2" };
const THIRD: Owner = { stack: "forklift/other", stackId: "c3c3c3c3c3c3c3c3", host: "web" };
const BINARIES = ["containerd", "containerd-shim-runc-v2", "ctr", "docker", "docker-init", "docker-proxy", "dockerd", "runc"];
const WRONG_HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIE13Mx9w3k99vWlCJXURrSYBWBucTfvv3XrE8dCTUoOn";

const web = (over: Partial<Route> = {}, name = "web") => remoteOf(name, host, over);
/** Where the artifact comes from: the local CACHE (a builder that is never asked). */
const source = (sha: string, cacheDir = path.join(work, "cache")): ArtifactSource => cachedSource(sha, cacheDir);
/** The install job of RELEASE on the host for OWNER, as the program renders it. */
const fleetJob = (opts: { sha?: string; owner?: Owner; cacheDir?: string; daemonJson?: Record<string, unknown>; host?: RemoteHost } = {}) =>
    fleetHostJob({
        host: opts.host ?? web(),
        owner: opts.owner ?? OWNER,
        release: { sha256: opts.sha ?? rel.a.sha, version: "test", binaries: BINARIES },
        installDir: "/usr/bin",
        daemonJson: opts.daemonJson ?? { "live-restore": true },
        source: source(opts.sha ?? rel.a.sha, opts.cacheDir),
        swarm: NO_SWARM,
        insecure: false,
    });
/** The precheck of HOSTS (each with its owner), or with RELEASE the check that stages it. */
const checkJob = (hosts: [RemoteHost, Owner][], release?: { sha: string; needKiB?: number; cacheDir?: string }) =>
    checksJob(
        release ? "check" : "precheck",
        false,
        hosts.map(([h, o]) => checkedHost(h, o, release ? { sha256: release.sha, needKiB: release.needKiB ?? 1024 } : undefined)),
        defaultSwarmCheck(),
        release ? source(release.sha, release.cacheDir) : undefined,
    );
const errorLines = (r: LocalRun) => r.stderr.split("\n").filter((l) => l.includes("ERROR"));
const on = (cmd: string) => {
    const r = ssh(host, cmd);
    assert.equal(r.code, 0, `${cmd}: ${r.stderr}`);
    return r.stdout.trim();
};
const hostExec = (...args: string[]) => spawnSync(path.join(repoRoot(), "testbed", "host.sh"), ["exec", host.name, ...args], { encoding: "utf8" });

describe("local commands on a real host", { timeout: 15 * 60_000 }, () => {
    before(async () => {
        [host] = await startHosts([{ name: "lc-web", index: 71 }]);
        work = fs.mkdtempSync(path.join(os.tmpdir(), "forklift-local-"));
        // a release made of the host's own Debian binaries, in the layout of a static build; b and
        // c are the same with a note more, so other sha256s
        const pack = [
            "set -e; d=$(mktemp -d); mkdir $d/docker",
            ...BINARIES.map((b) => `cp "$(readlink -f "$(command -v ${b})")" $d/docker/${b}`),
            "tar -C $d -czf /tmp/a.tgz docker",
            "echo b > $d/docker/NOTE; tar -C $d -czf /tmp/b.tgz docker",
            "echo c > $d/docker/NOTE; tar -C $d -czf /tmp/c.tgz docker; rm -rf $d",
        ].join("; ");
        const r = ssh(host, `PATH=$PATH:/usr/sbin:/sbin; ${pack}`);
        assert.equal(r.code, 0, r.stderr);
        fs.mkdirSync(path.join(work, "cache"));
        for (const k of ["a", "b", "c"] as const) {
            rel[k].tgz = path.join(work, `${k}.tgz`);
            copyFrom(host, `/tmp/${k}.tgz`, rel[k].tgz);
            rel[k].sha = sha256(fs.readFileSync(rel[k].tgz));
            // the cache is content-addressed: an entry there needs no build host
            fs.copyFileSync(rel[k].tgz, path.join(work, "cache", `${rel[k].sha}.tgz`));
        }
        on("rm -f /tmp/a.tgz /tmp/b.tgz /tmp/c.tgz");
        on("useradd -m plainuser && install -d -m 700 -o plainuser /home/plainuser/.ssh && install -m 600 -o plainuser /root/.ssh/authorized_keys /home/plainuser/.ssh/");
    });

    after(async () => {
        await stopHosts();
        if (work) fs.rmSync(work, { recursive: true, force: true });
    });

    test("precheck: a good host passes; the check after the build stages the release there, and nothing else changes", () => {
        const pre = runLocal("check", checkJob([[web(), OWNER]]));
        assert.equal(pre.code, 0, pre.stderr);
        assert.match(pre.stderr, /\[forklift check\] web \(10\.78\.71\.2:22\): checked\n/);
        assert.deepEqual(JSON.parse(pre.stdout), { hosts: [{ name: "web", release: "absent", copied: false, swarm: null }], plan: [["web"]] });

        const check = runLocal("check", checkJob([[web(), OWNER]], { sha: rel.a.sha }));
        assert.equal(check.code, 0, check.stderr);
        assert.match(check.stderr, /web \(10\.78\.71\.2:22\): checked, release staged/);
        assert.equal(JSON.parse(check.stdout).hosts[0].release, "unpacked");
        assert.equal(on(`ls /opt/forklift/releases/${rel.a.sha}/dockerd`), `/opt/forklift/releases/${rel.a.sha}/dockerd`);
        assert.equal(ssh(host, "test -e /opt/forklift/current").code, 1, "staged, not switched to");
        assert.equal(ssh(host, "test -e /var/lib/forklift/owner").code, 1, "no owner recorded by a check");
        assert.equal(on("ls -A /var/tmp /tmp | grep -c forklift || true"), "0", "no copy or script left on the host");
        // a check again: the host reads no copy
        const again = runLocal("check", checkJob([[web(), OWNER]], { sha: rel.a.sha }));
        assert.equal(again.code, 0, again.stderr);
        assert.match(again.stderr, /web \(10\.78\.71\.2:22\): checked, release there already/);
        assert.deepEqual(JSON.parse(again.stdout).hosts[0], { name: "web", release: "unpacked", copied: false, swarm: null });
        on("rm -rf /opt/forklift");
    });

    test("plan: what each host runs and whether it changes, read without a change on the host (FORKLIFT_PLAN's command)", () => {
        const planOf = (sha?: string) => {
            const r = runLocal("plan", planJob(checkJob([[web(), OWNER]]), { label: "me/docker-ce@v2", ...(sha ? { sha256: sha } : {}) }, ["ec2-1"]));
            assert.equal(r.code, 0, r.stderr);
            assert.doesNotMatch(r.stderr, /the plan: install/, "the table is the preview's to show (once), from the document");
            return PreviewPlan.parse(JSON.parse(r.stdout));
        };
        // (this host's own Docker is installed, not running)
        assert.equal(ssh(host, "systemctl is-active --quiet docker.service").code, 3);
        const before = planOf(rel.a.sha);
        assert.deepEqual(before.hosts, [
            { host: "web", step: 1, current: "the host's own Docker, no engine answering", change: "yes", role: "", drained: "" },
            { host: "ec2-1", step: 0, current: "launched by this `pulumi up`", change: "yes", role: "", drained: "" },
        ]);
        assert.equal(ssh(host, "test -e /opt/forklift || test -e /var/lib/forklift").code, 1, "the plan changed nothing on the host");
        assert.equal(planOf().hosts[0].change, "if the build differs", "a build still to run");
        // a host that fails the precheck: every host is still shown, and the failure is named
        const broken = runLocal("plan", planJob(checkJob([[web(), OWNER], [web({ hostKey: WRONG_HOST_KEY }, "web2"), { ...OWNER, host: "web2" }]]), { label: "me/docker-ce@v2", sha256: rel.a.sha }, []));
        assert.equal(broken.code, 0, broken.stderr);
        const shown = PreviewPlan.parse(JSON.parse(broken.stdout));
        assert.deepEqual(shown.hosts.map((h) => [h.host, h.current, h.change]), [
            ["web", "the host's own Docker, no engine answering", "yes"],
            ["web2", "not checked (see below)", "unknown"],
        ]);
        assert.equal(shown.problems.length, 1);
        assert.match(shown.problems[0], /^web2 \(10\.78\.71\.2:22\): its SSH host key is not the pinned hostKey/);
        assert.match(planTable(shown), /`pulumi up` would stop at the precheck, before any change, as 1 of 2 hosts failed it:\n  web2 \(10\.78\.71\.2:22\): its SSH host key/);

        const installed = runLocal("install", fleetJob());
        assert.equal(installed.code, 0, installed.stderr);
        const engine = on("docker version --format '{{.Server.Version}}'");
        const same = planOf(rel.a.sha).hosts[0];
        assert.equal(same.current, `forklift test (${rel.a.sha.slice(0, 12)}), engine ${engine}`);
        assert.equal(same.change, "no");
        assert.equal(planOf(rel.b.sha).hosts[0].change, "yes");
        const gone = runLocal("uninstall", fleetJob());
        assert.equal(gone.code, 0, gone.stderr);
    });

    const failures: [string, () => RemoteHost, RegExp][] = [
        ["a wrong host key", () => web({ hostKey: WRONG_HOST_KEY }), /web \(10\.78\.71\.2:22\): its SSH host key is not the pinned hostKey\. Check its hostKey \(`ssh-keyscan -t ed25519 10\.78\.71\.2` on a network you trust\) and that the address is the machine you mean\.$/m],
        ["a wrong user", () => web({ user: "nobody" }), /web \(10\.78\.71\.2:22\): the login as nobody was refused; check its user and privateKey/],
        ["a wrong private key", () => web({ privateKey: otherKey() }), /the login as root was refused; check its user and privateKey/],
        ["nothing listening", () => web({ address: "127.0.0.1", port: 1 }), /web \(127\.0\.0\.1:1\): unreachable; check that it is up/],
        ["no sudo for the login user", () => web({ user: "plainuser" }), /web \(10\.78\.71\.2:22\): the login user plainuser cannot sudo without a password/],
    ];
    for (const [what, target, message] of failures) {
        test(`precheck: ${what} fails at once with one message naming the host and what to check`, () => {
            const r = runLocal("check", checkJob([[target(), OWNER]]));
            assert.equal(r.code, 1);
            assert.match(r.stderr, message);
            assert.doesNotMatch(r.stderr, /known_hosts|target|POSSIBLE/, "nothing of OpenSSH's advice about files that are not the user's");
            assert.match(errorLines(r).join("\n"), /ERROR: the precheck failed on 1 of 1 hosts: web \(see above\)$/);
            assert.equal(errorLines(r).length, 1, "one error line");
        });
    }

    test("precheck: every host in one run, each with its own route and key; the ones that failed are named, in order", () => {
        const r = runLocal(
            "check",
            checkJob([
                [web(), OWNER],
                [web({ address: "127.0.0.1", port: 1 }, "down"), OWNER],
                [web({ hostKey: WRONG_HOST_KEY }, "moved"), OWNER],
                [web({ privateKey: otherKey() }, "other-key"), OWNER],
            ]),
        );
        assert.equal(r.code, 1, r.stderr);
        assert.match(r.stderr, /web \(10\.78\.71\.2:22\): checked/);
        assert.match(r.stderr, /down \(127\.0\.0\.1:1\): unreachable; check that it is up/);
        assert.match(r.stderr, /moved \(10\.78\.71\.2:22\): its SSH host key is not the pinned hostKey/);
        assert.match(r.stderr, /other-key \(10\.78\.71\.2:22\): the login as root was refused/, "each host with its own private key");
        assert.match(r.stderr.trim().split("\n").pop() as string, /ERROR: the precheck failed on 3 of 4 hosts: down, moved, other-key \(see above\)$/);
        const good = runLocal("check", checkJob([[web(), OWNER], [web({ connectTimeout: 4 }, "web-again"), OWNER]]));
        assert.equal(good.code, 0, good.stderr);
        assert.deepEqual(JSON.parse(good.stdout).hosts.map((h: { name: string }) => h.name), ["web", "web-again"], "in the hosts' order");
    });

    test("check after the build: the room the release needs, except where it is unpacked already", () => {
        const huge = 1024 ** 4;
        on(`mkdir -p /opt/forklift/releases/${"d".repeat(64)}`);
        try {
            const there = runLocal("check", checkJob([[web(), OWNER]], { sha: "d".repeat(64), needKiB: huge }));
            assert.equal(there.code, 0, there.stderr);
            const full = runLocal("check", checkJob([[web({}, "full"), OWNER]], { sha: rel.a.sha, needKiB: huge }));
            assert.equal(full.code, 1);
            assert.match(full.stderr, /full \(10\.78\.71\.2:22\): only \d+ MiB free in \/opt, the release needs about 1073741824 MiB/);
            assert.match(full.stderr.trim().split("\n").pop() as string, /ERROR: the check failed on 1 of 1 hosts: full \(see above\)$/);
            assert.equal(ssh(host, `test -e /opt/forklift/releases/${rel.a.sha}`).code, 1, "nothing staged on a host without room");
        } finally {
            on("rm -rf /opt/forklift");
        }
    });

    test("a job that is not one the program renders is refused naming the field", () => {
        const cases: ["check" | "install", unknown, RegExp][] = [
            ["check", { v: 1, phase: "check", insecure: false, hosts: [] }, /job\.hosts: expected at least one host/],
            ["check", { v: 9, phase: "check" }, /job\.v: expected 1, got 9/],
            ["install", { ...fleetJob(), host: { name: "web", route: { address: "x", port: 22, user: "root" } } }, /job\.host\.route\.connectTimeout: expected a positive whole number/],
            ["install", "not an object", /job: expected an object/],
        ];
        for (const [job, doc, message] of cases) {
            const r = runLocal(job, doc);
            assert.equal(r.code, 1);
            assert.match(r.stderr, message);
        }
    });

    test("precheck: a host that does not answer is reported after the connect timeout, not retried", () => {
        assert.equal(hostExec("iptables", "-I", "INPUT", "-p", "tcp", "--dport", "22", "-j", "DROP").status, 0);
        try {
            const r = runLocal("check", checkJob([[web(), OWNER]]));
            assert.equal(r.code, 1);
            assert.match(r.stderr, /web \(10\.78\.71\.2:22\): unreachable; check that it is up, its address and port, and the network path \(sshConnectTimeout is 3s\)/);
            assert.ok(r.seconds < 8, `reported after ${r.seconds.toFixed(1)} s (connectTimeout 3 s)`);
        } finally {
            hostExec("iptables", "-D", "INPUT", "-p", "tcp", "--dport", "22", "-j", "DROP");
        }
    });

    test("a check that waits for another run's lock says whose, and one killed on the host is told as killed, without its command line", async () => {
        // (the holder's line, as a run writes it: its pid, then what it is)
        on(`setsid flock /run/lock/forklift.lock sh -c 'printf "%s\\ninstall of other/stack/web\\n" $$ > /run/lock/forklift.lock; sleep 20' </dev/null >/dev/null 2>&1 &`);
        const check = runLocalAsync("check", checkJob([[web(), OWNER]]));
        // the check's script on the host, once it waits for the lock
        let waiting = false;
        for (let i = 0; i < 100 && !waiting; i++) {
            waiting = ssh(host, "pgrep -f '^bash /tmp/forklift\\..*\\.sh check$' >/dev/null && pgrep -x flock | wc -l | grep -qx 2").code === 0;
            if (!waiting) await new Promise((r) => setTimeout(r, 100));
        }
        assert.ok(waiting, "the check's script waits for the lock on the host");
        on("pkill -KILL -f '^bash /tmp/forklift\\..*\\.sh check$'");
        const r = await check;
        on("pkill -x flock || true");
        assert.equal(r.code, 1);
        assert.match(r.stderr, /web \(10\.78\.71\.2:22\): its forklift-host\.sh run was ended by SIGKILL on the host \(exit 137\); it said last: \[forklift web\] waiting \(up to 300 s\) for another forklift run on this host to end: install of other\/stack\/web/);
        assert.doesNotMatch(r.stderr, /Killed|FORKLIFT_/, "bash's notice, which quotes the command line, stays out");
    });

    test("an install killed between its switch and its record is finished by the next one, and what killed runs left in /tmp and /var/tmp goes", () => {
        const first = runLocal("install", fleetJob());
        assert.equal(first.code, 0, first.stderr);
        assert.equal(runLocal("check", checkJob([[web(), OWNER]], { sha: rel.b.sha })).code, 0, "b staged");
        // as a run of b killed right after its switch leaves the host (a and b have the same dockerd)
        on(`ln -sfn /opt/forklift/releases/${rel.b.sha} /opt/forklift/current.tmp && mv -fT /opt/forklift/current.tmp /opt/forklift/current`);
        // what killed runs left (no exit trap): a dead PID's copy and staging directory, and a live one's
        on(`touch /var/tmp/forklift-docker-${rel.b.sha}.999999.AbCdEf.tgz /var/tmp/forklift-docker-${rel.b.sha}.1.AbCdEf.tgz && mkdir /tmp/forklift-stage.999999.AbCdEf /tmp/forklift-stage.OldRun`);
        const next = runLocal("install", fleetJob({ sha: rel.b.sha }));
        assert.equal(next.code, 0, next.stderr);
        assert.doesNotMatch(next.stderr, /nothing to do/, "not taken for installed: its record says a");
        assert.equal(on("sed -n 's/^sha256=//p' /var/lib/forklift/installed"), rel.b.sha, "the record is b's");
        assert.equal(on("ls /var/tmp /tmp | grep forklift- | sort | tr '\\n' ' '"), `forklift-docker-${rel.b.sha}.1.AbCdEf.tgz forklift-stage.OldRun`, "a live run's copy stays, and an older forklift's staging directory (no PID to tell); a dead run's copy and staging directory go");
        on("rm -rf /var/tmp/forklift-docker-*.1.AbCdEf.tgz /tmp/forklift-stage.OldRun");
        assert.equal(runLocal("uninstall", fleetJob({ sha: rel.b.sha })).code, 0);
    });

    test("a give-back killed half-way is repeated safely: the package's file and the operator's daemon.json are never removed", () => {
        const mine = '{"debug": false}';
        on(`mkdir -p /etc/docker && printf '%s\\n' '${mine}' > /etc/docker/daemon.json`);
        try {
            const installed = runLocal("install", fleetJob());
            assert.equal(installed.code, 0, installed.stderr);
            const diverted = on("cat /var/lib/forklift/diverted.list").split("\n")[0];
            assert.ok(diverted, "a Debian package's file was diverted");
            // (while diverted, dpkg -S also prints the diversion's lines)
            const packages = on(`dpkg -S ${diverted} | grep -v diversion | cut -d: -f1 | sort -u | tr '\\n' ' '`);
            assert.match(packages, /^[a-z0-9.+-]+ ?$/, `one package owns ${diverted}: ${packages}`);
            // what a run killed right after each give-back, before its lists said so, leaves
            const killedGiveBack = () =>
                on(`rm -f ${diverted} && dpkg-divert --quiet --local --rename --remove ${diverted} && rm -f /etc/docker/daemon.json && mv -f /var/lib/forklift/backup/etc/docker/daemon.json /etc/docker/daemon.json`);
            killedGiveBack();
            // an install takes the paths over again, keeping what is there now
            const again = runLocal("install", fleetJob());
            assert.equal(again.code, 0, again.stderr);
            assert.match(on(`readlink ${diverted}`), /^\/opt\/forklift\/current\//, "forklift's link again, over a new diversion");
            assert.match(on(`dpkg-divert --listpackage ${diverted}`), /LOCAL/);
            killedGiveBack();
            const gone = runLocal("uninstall", fleetJob());
            assert.equal(gone.code, 0, gone.stderr);
            assert.equal(on(`dpkg -V ${packages} || true`), "", `${packages}'s files all there`);
            assert.equal(on("dpkg-divert --list | grep forklift || true"), "");
            assert.equal(on("cat /etc/docker/daemon.json"), mine, "the operator's daemon.json");
        } finally {
            on("rm -f /etc/docker/daemon.json");
        }
    });

    test("install copies, checks the sha256 there and installs; a rerun copies nothing; uninstall gives the host back", () => {
        const first = runLocal("install", fleetJob());
        assert.equal(first.code, 0, first.stderr);
        assert.match(first.stderr, new RegExp(`\\[forklift web\\] unpacked release ${rel.a.sha} `));
        assert.equal(on("ls -A /var/tmp /tmp | grep -c forklift || true"), "0", "no copy or script staged on the host");
        const status = parseHostStatus(first.stdout);
        assert.equal(status.sha256, rel.a.sha);
        assert.equal(status.changed, true);

        const again = runLocal("install", fleetJob());
        assert.equal(again.code, 0, again.stderr);
        assert.match(again.stderr, /release [0-9a-f]{64} is unpacked here already: nothing to copy/);
        assert.equal(parseHostStatus(again.stdout).changed, false);
        // a fresh checkout (empty cache) whose build host lost the artifact: the host has it
        const fresh = runLocal("install", fleetJob({ cacheDir: path.join(work, "empty-cache") }));
        assert.equal(fresh.code, 0, fresh.stderr);
        assert.doesNotMatch(fresh.stderr, /ERROR/, "the failed fetch is not reported when nothing needed it");

        const gone = runLocal("uninstall", fleetJob());
        assert.equal(gone.code, 0, gone.stderr);
        assert.match(gone.stderr, /uninstalled/);
        assert.equal(ssh(host, "test -e /opt/forklift").code, 1, "the release is gone");
        const nowhere = runLocal("install", fleetJob({ cacheDir: path.join(work, "empty-cache") }));
        assert.equal(nowhere.code, 1, "neither the cache, the build host nor the host has it");
        assert.match(nowhere.stderr, /web: it needs the release and could not copy \/never\/asked\.tgz from the build host builder \(127\.0\.0\.1\)/);
        assert.match(nowhere.stderr, /pulumi up --replace/, "and says how to build it again");
        assert.equal(ssh(host, "test -e /opt/forklift").code, 1, "nothing changed");
    });

    test("an older forklift's delete command (scripts/artifact.sh uninstall) still gives the host back", () => {
        assert.equal(runLocal("install", fleetJob()).code, 0);
        const job = fleetJob();
        const env = {
            FORKLIFT_HOST: "web",
            FORKLIFT_INSECURE: "0",
            FORKLIFT_TARGET_ADDRESS: host.address,
            FORKLIFT_TARGET_PORT: "22",
            FORKLIFT_TARGET_USER: "root",
            FORKLIFT_TARGET_HOST_KEY: host.hostKey,
            FORKLIFT_CONNECT_TIMEOUT: "3",
        };
        const lines = [`target ${Buffer.from(host.privateKey).toString("base64")}`, `install ${Buffer.from(job.install).toString("base64")}`, `uninstall ${Buffer.from(job.uninstall).toString("base64")}`];
        const r = spawnSync("bash", ["scripts/artifact.sh", "uninstall"], { input: lines.join("\n") + "\n", env: { ...process.env, ...env }, cwd: repoRoot(), encoding: "utf8" });
        assert.equal(r.status, 0, r.stderr);
        assert.match(r.stderr, /uninstalled/);
        assert.equal(ssh(host, "test -e /opt/forklift").code, 1);
    });

    test("a host another stack owns: check and install refuse it naming the owner, nothing changes; that stack's uninstall leaves it", () => {
        const first = runLocal("install", fleetJob());
        assert.equal(first.code, 0, first.stderr);
        const pid = on("systemctl show -p MainPID --value docker.service");
        const owned = /is managed by another stack: forklift\/test \(stack identity a1a1a1a1a1a1a1a1\); this stack is forklift\/test \(stack identity b2b2b2b2b2b2b2b2\)/;

        const check = runLocal("check", checkJob([[web(), TWIN]]));
        assert.equal(check.code, 1);
        assert.match(check.stderr, /web \(10\.78\.71\.2:22\): this host is managed by another stack/);
        assert.match(check.stderr, owned);
        const install = runLocal("install", fleetJob({ owner: TWIN }));
        assert.equal(install.code, 1, "the install refuses too, when it runs without the check");
        assert.match(install.stderr, owned);
        assert.match(install.stderr, /Nothing was changed/);
        const uninstall = runLocal("uninstall", fleetJob({ owner: TWIN }));
        assert.equal(uninstall.code, 0, uninstall.stderr);
        assert.match(uninstall.stderr, /not uninstalling: the release here belongs to another stack: forklift\/test \(stack identity a1a1a1a1a1a1a1a1\)/);
        assert.equal(on("systemctl show -p MainPID --value docker.service"), pid, "Docker was not restarted");
        assert.equal(on("readlink /opt/forklift/current"), `/opt/forklift/releases/${rel.a.sha}`);

        // a release installed before stacks had an identity records only project/stack/host: its
        // own stack adopts it, another stack name is refused
        on("rm /var/lib/forklift/stack-id");
        const refused = runLocal("check", checkJob([[web(), { ...OWNER, stack: "forklift/prod" }]]));
        assert.equal(refused.code, 1);
        assert.match(refused.stderr, /is managed by another stack: forklift\/test \(stack identity none\)/);
        assert.equal(runLocal("check", checkJob([[web(), OWNER]])).code, 0);
        const adopt = runLocal("install", fleetJob());
        assert.equal(adopt.code, 0, adopt.stderr);
        assert.equal(on("cat /var/lib/forklift/stack-id"), OWNER.stackId, "the identity is recorded from then on");

        const gone = runLocal("uninstall", fleetJob());
        assert.equal(gone.code, 0, gone.stderr);
        assert.equal(ssh(host, "test -e /opt/forklift").code, 1, "its owner's uninstall gives the host back");
    });

    test("two stacks' installs racing on one host: the owner is checked under the lock, and only one gets the host", async () => {
        assert.equal(ssh(host, "test -e /opt/forklift").code, 1, "a host forklift is not on yet");
        // the host's lock held a moment, so that both installs are past their first owner check
        // (before their copy) and wait for it together
        on("setsid flock /run/lock/forklift.lock sleep 4 </dev/null >/dev/null 2>&1 &");
        const [mine, twin] = await Promise.all([runLocalAsync("install", fleetJob()), runLocalAsync("install", fleetJob({ owner: TWIN }))]);
        const won = [mine, twin].filter((r) => r.code === 0);
        assert.equal(won.length, 1, `exactly one install gets the host:\n${mine.stderr}\n---\n${twin.stderr}`);
        const [winner, loser] = mine.code === 0 ? [OWNER, twin] : [TWIN, mine];
        assert.match(loser.stderr, /this host is managed by another stack/);
        assert.equal(on("cat /var/lib/forklift/stack-id"), winner.stackId, "the owner recorded is the one that installed");
        assert.equal(runLocal("uninstall", fleetJob({ owner: winner })).code, 0);
    });

    test("an uninstall racing two installs: a run that waited on the lock and one that came after it never both go ahead", async () => {
        // stack A on the host, with a container that takes ~10 s to stop (PID 1 ignores SIGTERM):
        // the uninstall stops it (the host had no Docker before), holding the lock that long
        assert.equal(runLocal("install", fleetJob()).code, 0);
        on(`docker import ${HOST_BUSYBOX_TARBALL} busybox:local >/dev/null && docker run -d busybox:local /bin/busybox sleep 3600 >/dev/null`);
        const uninstall = runLocalAsync("uninstall", fleetJob());
        await new Promise((r) => setTimeout(r, 2000));
        // A again, with release b: past its owner check (the host is still A's), it waits for the lock
        const waited = runLocalAsync("install", fleetJob({ sha: rel.b.sha }));
        const u = await uninstall;
        assert.equal(u.code, 0, u.stderr);
        assert.match(u.stderr, /stopping 1 container/);
        // another stack, right after the uninstall: the host has no owner now
        const after = runLocalAsync("install", fleetJob({ sha: rel.c.sha, owner: THIRD }));
        const [w, a] = await Promise.all([waited, after]);
        assert.equal(w.code, 0, `the install that waited goes ahead:\n${w.stderr}`);
        assert.match(w.stderr, /waiting \(up to 300 s\) for another forklift run on this host to end: uninstall of \S+ \(pid \d+, since 20\d\d-/, "it says whose run it waits for");
        assert.equal(a.code, 1, `the one that came after waits for it, then finds the host taken:\n${a.stderr}`);
        assert.match(a.stderr, /this host is managed by another stack: forklift\/test/);
        assert.equal(on("readlink /opt/forklift/current"), `/opt/forklift/releases/${rel.b.sha}`);
        assert.equal(on("cat /var/lib/forklift/stack-id"), OWNER.stackId);
        assert.equal(runLocal("uninstall", fleetJob({ sha: rel.b.sha })).code, 0);
    });

    test("a failure between the switch and the restart rolls the host back to the release before", () => {
        const first = runLocal("install", fleetJob());
        assert.equal(first.code, 0, first.stderr);
        // daemon.json cannot be written: a directory where the install puts its temporary file
        on("mkdir /etc/docker/daemon.json.forklift-tmp");
        try {
            const r = runLocal("install", fleetJob({ sha: rel.b.sha, daemonJson: { "live-restore": true, debug: true } }));
            assert.equal(r.code, 1, r.stderr);
            assert.match(r.stderr, /rolling back to [0-9a-f]{64}/);
            assert.match(r.stderr, new RegExp(`new release ${rel.b.sha} failed: failed at line \\d+: (install|mv) .*Rolled back to release ${rel.a.sha}; Docker is answering`, "s"));
            assert.equal(on("readlink /opt/forklift/current"), `/opt/forklift/releases/${rel.a.sha}`, "back on the release before");
            assert.equal(on("readlink -f /usr/bin/dockerd"), `/opt/forklift/releases/${rel.a.sha}/dockerd`);
            assert.equal(on(`sha256sum /proc/$(systemctl show -p MainPID --value docker.service)/exe | cut -d' ' -f1`), on(`sha256sum /opt/forklift/releases/${rel.a.sha}/dockerd | cut -d' ' -f1`), "its dockerd runs");
            assert.notEqual(on("systemctl show -p MainPID --value docker.service"), "0");
            assert.equal(on("sed -n 's/^sha256=//p' /var/lib/forklift/installed"), rel.a.sha);
            assert.doesNotMatch(on("cat /etc/docker/daemon.json"), /debug/, "its daemon.json");
        } finally {
            on("rm -rf /etc/docker/daemon.json.forklift-tmp");
        }
    });

    test("a failing step of the restart counts: a unit that cannot be enabled rolls a first install back", () => {
        assert.equal(runLocal("uninstall", fleetJob()).code, 0);
        // systemctl that refuses `enable` (first in root's PATH), as a broken unit directory would
        on(`printf '#!/bin/sh\\ncase "$*" in *enable*docker*) echo "Failed to enable unit" >&2; exit 1 ;; esac\\nexec /bin/systemctl "$@"\\n' >/usr/local/sbin/systemctl && chmod +x /usr/local/sbin/systemctl`);
        try {
            const r = runLocal("install", fleetJob());
            assert.equal(r.code, 1, r.stderr);
            assert.match(r.stderr, /systemd could not start the new daemon: .*\n`systemctl enable --quiet docker\.\w+` failed \(exit 1\)/);
            assert.match(r.stderr, /Restored what was on the host before forklift/);
            assert.equal(ssh(host, "test -e /opt/forklift/current").code, 1, "no release left in place");
        } finally {
            on("rm -f /usr/local/sbin/systemctl");
        }
    });

    test("an upgrade right after Docker hit systemd's start limit still restarts it", () => {
        const first = runLocal("install", fleetJob());
        assert.equal(first.code, 0, first.stderr);
        // four quick restarts: the fourth is refused ("start request repeated too quickly")
        const trip = ssh(host, "for i in 1 2 3 4; do systemctl restart docker.service || echo refused; done");
        assert.match(trip.stdout, /refused/, "the start limit was hit");
        const upgrade = runLocal("install", fleetJob({ sha: rel.b.sha }));
        assert.equal(upgrade.code, 0, upgrade.stderr);
        assert.equal(parseHostStatus(upgrade.stdout).changed, true);
        assert.equal(on("systemctl is-active docker.service"), "active");
        assert.equal(runLocal("uninstall", fleetJob()).code, 0);
    });

    test("install refuses a copy that arrives corrupted, and a corrupt cache entry is dropped", () => {
        assert.equal(ssh(host, "test -e /opt/forklift").code, 1, "a host forklift is not on yet");
        const cache = path.join(work, "bad-cache");
        fs.mkdirSync(cache);
        const bad = Buffer.from(fs.readFileSync(rel.a.tgz));
        bad[bad.length >> 1] ^= 0xff;
        fs.writeFileSync(path.join(cache, `${rel.a.sha}.tgz`), bad);
        const r = runLocal("install", fleetJob({ cacheDir: cache }));
        assert.equal(r.code, 1);
        assert.match(r.stderr, /\[forklift web\] ERROR: the artifact that arrived has sha256 [0-9a-f]{64}, expected [0-9a-f]{64} \(corrupted on the way, or not the build's\?\); nothing was changed/);
        assert.match(r.stderr, /the cached artifact .* was corrupt; it is removed: run `pulumi up` again to fetch it anew/);
        assert.equal(fs.existsSync(path.join(cache, `${rel.a.sha}.tgz`)), false);
        assert.equal(ssh(host, "test -e /opt/forklift").code, 1, "nothing left on the host: not even /opt/forklift");
        // the check, staging from the same bad cache, refuses it the same way before any host changes
        fs.writeFileSync(path.join(cache, `${rel.a.sha}.tgz`), bad);
        const check = runLocal("check", checkJob([[web(), OWNER]], { sha: rel.a.sha, cacheDir: cache }));
        assert.equal(check.code, 1);
        assert.match(check.stderr, /web \(10\.78\.71\.2:22\): the artifact that arrived has sha256/);
    });

    test("a host that had no Docker before forklift and joined a Swarm since: its uninstall keeps the node's Swarm state, and does not wait for a node that cannot come back", () => {
        // (a mount point: lost+found alone)
        assert.equal(on("ls -A /var/lib/docker 2>/dev/null | grep -v '^lost+found$' || true"), "", "no Docker data before");
        // (no live-restore: dockerd refuses swarm mode with it)
        const installed = runLocal("install", fleetJob({ daemonJson: { "live-restore": false } }));
        assert.equal(installed.code, 0, installed.stderr);
        on(`docker swarm init --advertise-addr ${host.address} >/dev/null`);
        const r = runLocal("uninstall", fleetJob({ daemonJson: { "live-restore": false } }));
        assert.equal(r.code, 0, r.stderr);
        assert.match(r.stderr, /web: draining its node/);
        assert.match(r.stderr, /kept \/var\/lib\/docker\/swarm: the node is still a member of its Swarm/);
        assert.match(r.stderr, /web: given back to a host without a Docker of its own: its node stays in its cluster, Down, with its Swarm state/);
        assert.ok(r.seconds < 60, `not waited for a node that cannot come back: ${r.seconds} s`);
        assert.equal(on("ls -A /var/lib/docker | grep -v '^lost+found$'"), "swarm", "the Swarm state alone is left of the daemon's data");
        assert.equal(on("test -e /var/lib/docker/swarm/docker-state.json && echo kept"), "kept");
        assert.equal(ssh(host, "test -e /opt/forklift").code, 1, "forklift's release is gone");
        on("rm -rf /var/lib/docker/swarm");
    });
});

let other: string | undefined;
/** A private key the host does not accept. */
function otherKey(): string {
    if (!other) {
        const dir = fs.mkdtempSync(path.join(os.tmpdir(), "forklift-otherkey-"));
        spawnSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", path.join(dir, "k")]);
        other = fs.readFileSync(path.join(dir, "k"), "utf8");
        fs.rmSync(dir, { recursive: true, force: true });
    }
    return other;
}
