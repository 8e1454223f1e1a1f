/**
 * The artifact store, for real: a build host and two fleet hosts on the test bed's cloud, and an
 * S3-compatible server (versitygw, testbed/s3.sh) beside them, outside this machine's link to the
 * cloud. The check's local command, as the program runs it, has the build host upload the artifact
 * with a presigned PUT and every host fetch it with a presigned GET of its own, both signed on this
 * machine; the bytes that crossed this machine's link are counted. Then the faults: an object
 * that is not the build's, the store out of one host's reach, an expired URL and one for another
 * object, the build host gone after the upload.
 */
import { after, before, describe, test } from "node:test";
import * as assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { Owner, checkCommand, parseHostStatus } from "../../lib/protocol/host";
import { checkedHost, checksJob, fleetHostJob, storeObjectJob } from "../../lib/protocol/local";
import { sha256 } from "../../lib/hash";
import { ArtifactSource, S3Store } from "../../lib/protocol/jobs";
import { hostScript } from "../../local/remote";
import { presign } from "../../local/store";
import { NO_SWARM, defaultSwarmCheck, remoteOf, runLocal } from "../support/local";
import { Store, startStore } from "../../testbed/s3";
import { TestHost, cloudBytes, copyFrom, repoRoot, ssh, startHosts, stopHosts } from "../../testbed/testbed";

const OWNER: Owner = { stack: "forklift/store", stackId: "5707e5707e5707e5", host: "" };
const BINARIES = ["containerd", "containerd-shim-runc-v2", "ctr", "docker", "docker-init", "docker-proxy", "dockerd", "runc"];
const BUILT = "/var/lib/forklift-build/k/out/docker-test.tgz";
let builder: TestHost;
let fleet: TestHost[];
let store: Store;
let work: string;
let sha = "";
let size = 0;

const owner = (h: TestHost): Owner => ({ ...OWNER, host: h.name });
const s3 = (): S3Store => ({ type: "s3", endpoint: store.endpoint, bucket: store.bucket, region: "us-east-1", key: `fleet/${sha}.tgz`, pathStyle: true });
const source = (viaStore = true): ArtifactSource => ({ sha256: sha, path: BUILT, builder: remoteOf("builder", builder), cacheDir: path.join(work, "cache"), ...(viaStore ? { store: s3() } : {}) });
const check = (viaStore = true, hosts = fleet) =>
    checksJob(
        "check",
        false,
        hosts.map((h) => checkedHost(remoteOf(h.name, h), owner(h), { sha256: sha, needKiB: 1024 })),
        defaultSwarmCheck(),
        source(viaStore),
    );
const installJob = (h: TestHost) =>
    fleetHostJob({ host: remoteOf(h.name, h), owner: owner(h), release: { sha256: sha, version: "test", binaries: BINARIES }, installDir: "/usr/bin", daemonJson: {}, source: source(), swarm: NO_SWARM, insecure: false });
const on = (h: TestHost, cmd: string) => {
    const r = ssh(h, cmd);
    assert.equal(r.code, 0, `${h.name}: ${cmd}: ${r.stderr}`);
    return r.stdout.trim();
};
const unstage = () => fleet.forEach((h) => on(h, "rm -rf /opt/forklift"));
const staged = (h: TestHost) => ssh(h, `test -d /opt/forklift/releases/${sha}`).code === 0;
/** Bytes that crossed this machine's link to the cloud while ACTION ran. */
function bytesOver<T>(action: () => T): { result: T; bytes: number } {
    const before = cloudBytes();
    const result = action();
    const after = cloudBytes();
    return { result, bytes: after.sent - before.sent + (after.received - before.received) };
}
/** No AWS credentials anywhere, and no instance metadata asked for them. */
const NO_AWS = { AWS_ACCESS_KEY_ID: "", AWS_SECRET_ACCESS_KEY: "", AWS_EC2_METADATA_DISABLED: "true", AWS_CONFIG_FILE: "/nonexistent", AWS_SHARED_CREDENTIALS_FILE: "/nonexistent" };
const hostExec = (h: TestHost, ...args: string[]) => spawnSync(path.join(repoRoot(), "testbed", "host.sh"), ["exec", h.name, ...args], { encoding: "utf8" });

describe("the artifact store on the test bed's cloud", { timeout: 15 * 60_000 }, () => {
    before(async () => {
        const hosts = await startHosts([
            { name: "st-builder", index: 171, cloud: true },
            { name: "st-f1", index: 172, cloud: true },
            { name: "st-f2", index: 173, cloud: true },
        ]);
        [builder, ...fleet] = hosts;
        work = fs.mkdtempSync(path.join(os.tmpdir(), "forklift-store-test-"));
        // a release of the host's own Debian binaries where a build leaves its artifact
        const pack = [
            "set -e; d=$(mktemp -d); mkdir $d/docker",
            ...BINARIES.map((b) => `cp "$(readlink -f "$(command -v ${b})")" $d/docker/${b}`),
            `mkdir -p ${path.dirname(BUILT)}; tar -C $d -czf ${BUILT} docker; rm -rf $d`,
        ].join("; ");
        on(builder, `PATH=$PATH:/usr/sbin:/sbin; ${pack}`);
        copyFrom(builder, BUILT, path.join(work, "release.tgz"));
        sha = sha256(fs.readFileSync(path.join(work, "release.tgz")));
        size = fs.statSync(path.join(work, "release.tgz")).size;
        store = await startStore();
    });

    after(async () => {
        store?.stop();
        await stopHosts();
        if (work) fs.rmSync(work, { recursive: true, force: true });
    });

    test("the check has the build host upload the artifact once, and every host fetch it itself: no copy crosses this machine's link", () => {
        const { result: r, bytes } = bytesOver(() => runLocal("check", check()));
        assert.equal(r.code, 0, r.stderr);
        assert.match(r.stderr, new RegExp(`s3://${store.bucket}/fleet/${sha}\\.tgz at ${store.endpoint.replace(/\./g, "\\.")}: uploaded by the build host builder`));
        assert.equal(fs.statSync(store.objectPath(`fleet/${sha}.tgz`)).size, size, "the object is the artifact");
        for (const h of fleet) assert.ok(staged(h), `${h.name} has the release staged`);
        assert.ok(bytes < 2 * 2 ** 20, `${bytes} bytes crossed this machine's link (the artifact is ${size})`);
        process.stderr.write(`[store test] the check through the store: ${bytes} bytes over this machine's link, for a ${size}-byte artifact on 2 hosts\n`);
        unstage();
        const again = runLocal("check", check());
        assert.equal(again.code, 0, again.stderr);
        assert.match(again.stderr, /: the store has the artifact/, "uploaded once");
        for (const h of fleet) assert.ok(staged(h));
    });

    test("the relay, for comparison: a copy per host crosses this machine's link", () => {
        unstage();
        const { result: r, bytes } = bytesOver(() => runLocal("check", check(false)));
        assert.equal(r.code, 0, r.stderr);
        assert.ok(bytes > 2 * size, `${bytes} bytes: the copies of a ${size}-byte artifact for 2 hosts`);
        process.stderr.write(`[store test] the same check through the relay: ${bytes} bytes over this machine's link\n`);
    });

    test("an install whose host lost the staged release asks for it, and fetches it from the store too", () => {
        const [f1] = fleet;
        on(f1, "rm -rf /opt/forklift");
        const r = runLocal("install", installJob(f1));
        assert.equal(r.code, 0, r.stderr);
        assert.match(r.stderr, /\[forklift st-f1\] release [0-9a-f]{64} is not unpacked here \(the check staged it: removed since\?\): asking for it; nothing was changed\n(.*\n)*\[forklift st-f1\] received \d+ bytes \(url\), sha256 verified/);
        assert.equal(parseHostStatus(r.stdout).sha256, sha);
        assert.equal(runLocal("uninstall", installJob(f1)).code, 0);
    });

    test("an install whose host has the release staged signs no URL: it needs no AWS credentials", () => {
        const [f1] = fleet;
        assert.equal(runLocal("check", check()).code, 0);
        const r = runLocal("install", installJob(f1), 300_000, NO_AWS);
        assert.equal(r.code, 0, r.stderr);
        assert.match(r.stderr, /\[forklift st-f1\] release [0-9a-f]{64} is unpacked here already: nothing to copy/);
        assert.equal(parseHostStatus(r.stdout).sha256, sha);
        assert.equal(runLocal("uninstall", installJob(f1)).code, 0);
    });

    test("the check without AWS credentials fails naming the cause, once, and stages nothing", () => {
        unstage();
        const r = runLocal("check", check(), 120_000, NO_AWS);
        assert.equal(r.code, 1, r.stderr);
        assert.match(r.stderr, /\[forklift check\] ERROR: .*credentials/i);
        assert.doesNotMatch(r.stderr, /the check failed on/, "the signing's error, not each host's");
        for (const h of fleet) assert.ok(!staged(h), `${h.name}: nothing staged`);
    });

    test("an object in the store that is not the build's is refused by every host, before any host changes", () => {
        unstage();
        const object = store.objectPath(`fleet/${sha}.tgz`);
        const good = fs.readFileSync(object);
        fs.writeFileSync(object, Buffer.concat([good.subarray(0, 1000), Buffer.from("not the build's"), good.subarray(1015)]));
        try {
            const r = runLocal("check", check());
            assert.equal(r.code, 1);
            for (const h of fleet) {
                assert.match(r.stderr, new RegExp(`${h.name}: the store's s3://${store.bucket}/fleet/${sha}\\.tgz at \\S+ is not the build's \\(sha256 [0-9a-f]{64}, expected ${sha}\\); nothing was changed: remove that object, and \`pulumi up\` has the build host upload it anew`));
                assert.ok(!staged(h), `${h.name}: nothing staged`);
            }
            assert.match(r.stderr, /the check failed on 2 of 2 hosts: st-f1, st-f2/);
        } finally {
            fs.writeFileSync(object, good);
        }
    });

    test("the store out of one host's reach: the check names the host, the store and the cause", () => {
        unstage();
        const [, f2] = fleet;
        assert.equal(hostExec(f2, "iptables", "-I", "OUTPUT", "-p", "tcp", "-d", "10.77.0.254", "--dport", "9000", "-j", "REJECT").status, 0);
        try {
            const r = runLocal("check", check());
            assert.equal(r.code, 1);
            assert.match(r.stderr, new RegExp(`st-f2 \\(10\\.77\\.0\\.173:22\\): could not fetch the artifact from ${store.endpoint.replace(/\./g, "\\.")}/${store.bucket}/fleet/${sha}\\.tgz: no answer from the store \\(.*\\); nothing was changed`));
            assert.doesNotMatch(r.stderr, /X-Amz-Signature/, "the URL's signature is not shown");
            assert.match(r.stderr, /the check failed on 1 of 2 hosts: st-f2/);
        } finally {
            hostExec(f2, "iptables", "-D", "OUTPUT", "-p", "tcp", "-d", "10.77.0.254", "--dport", "9000", "-j", "REJECT");
        }
    });

    test("an expired URL, and a URL for another object, get the store's 403, named as such", async () => {
        unstage();
        const [f1] = fleet;
        const stage = checkCommand({ hostName: f1.name, owner: owner(f1), sudo: false, release: { sha256: sha, needKiB: 1024 } });
        const expired = await presign(s3(), "GET", 1);
        await new Promise((r) => setTimeout(r, 2500));
        const late = ssh(f1, stage, { input: Buffer.concat([hostScript(), Buffer.from(`url ${expired}\n`)]) });
        assert.equal(late.code, 1);
        assert.match(late.stderr, /could not fetch the artifact from \S+: HTTP 403: the signed URL expired, or does not grant this object \(the store said: .*expired/);
        // the same signature on another object's path
        const url = new URL(await presign(s3(), "GET"));
        url.pathname = url.pathname.replace(`${sha}.tgz`, "other.tgz");
        const other = ssh(f1, stage, { input: Buffer.concat([hostScript(), Buffer.from(`url ${url.toString()}\n`)]) });
        assert.equal(other.code, 1);
        assert.match(other.stderr, /HTTP 403: the signed URL expired, or does not grant this object/);
        assert.ok(!staged(f1), "nothing staged");
    });

    test("the build host gone after the upload: the fleet still fetches what the store has", () => {
        unstage();
        assert.equal(hostExec(builder, "iptables", "-I", "INPUT", "-p", "tcp", "--dport", "22", "-j", "DROP").status, 0);
        try {
            const r = runLocal("check", check());
            assert.equal(r.code, 0, r.stderr);
            assert.match(r.stderr, /WARN: the build host cannot be reached to upload it \(builder \(10\.77\.0\.171:22\): unreachable.*\); the fleet fetches it from s3:\/\/\S+ at \S+ as it is/);
            for (const h of fleet) assert.ok(staged(h), `${h.name} staged from the store`);
        } finally {
            hostExec(builder, "iptables", "-D", "INPUT", "-p", "tcp", "--dport", "22", "-j", "DROP");
        }
    });

    test("the build host without its builds and the store without the object: a host with the release unpacked needs neither, one without it is told to rebuild", () => {
        const [f1, f2] = fleet;
        assert.equal(runLocal("check", check()).code, 0, "both staged");
        on(f2, "rm -rf /opt/forklift");
        fs.rmSync(store.objectPath(`fleet/${sha}.tgz`));
        on(builder, `mv ${BUILT} ${BUILT}.away`);
        try {
            const r = runLocal("check", check());
            assert.equal(r.code, 1);
            assert.match(r.stderr, /WARN: the build host builder could not put it into the store: the build host no longer has \S+ \(HTTP 404 from the store\)/);
            assert.match(r.stderr, new RegExp(`${f1.name} \\(${f1.address.replace(/\./g, "\\.")}:22\\): checked, release there already`));
            assert.match(r.stderr, /st-f2: it needs the release and the build host builder could not put it into the store/);
            assert.match(r.stderr, /the check failed on 1 of 2 hosts: st-f2 \(see above\)\. If the build host lost its builds \(or was replaced\), build again: pulumi up --replace/);
            assert.ok(!staged(f2));
        } finally {
            on(builder, `mv ${BUILT}.away ${BUILT}`);
        }
    });

    test("store-delete removes the stack's object, again without error, and names the store it cannot reach", () => {
        const object = store.objectPath(`fleet/${sha}.tgz`);
        assert.equal(runLocal("check", check()).code, 0);
        assert.ok(fs.existsSync(object));
        const job = storeObjectJob(s3());
        const r = runLocal("store-delete", job);
        assert.equal(r.code, 0, r.stderr);
        assert.match(r.stderr, new RegExp(`\\[forklift store-delete\\] s3://${store.bucket}/fleet/${sha}\\.tgz at \\S+ removed`));
        assert.ok(!fs.existsSync(object), "the object is gone");
        assert.equal(runLocal("store-delete", job).code, 0, "a second delete finds nothing and succeeds");
        const away = runLocal("store-delete", storeObjectJob({ ...s3(), endpoint: "http://127.0.0.1:9" }));
        assert.equal(away.code, 1);
        assert.match(away.stderr, /ERROR: could not remove s3:\/\/\S+ at http:\/\/127\.0\.0\.1:9: .*ECONNREFUSED.* \(forklift removes it with your AWS credentials; a store that is gone for good: `pulumi state delete` the stack's forklift-artifact-object resource\)/);
    });
});
