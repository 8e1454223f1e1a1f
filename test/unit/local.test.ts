/** The local commands' pure parts: SSH configs, failure messages, the job's checks, the old delete's job, the store's URLs. */
import { test } from "node:test";
import * as assert from "node:assert/strict";
import { InputError, parseChecksJob, parseFleetHostJob, parseRolloutJob } from "../../local/input";
import { legacyUninstallJob } from "../../local/legacy";
import { mapLimit } from "../../local/pool";
import { hostFailure } from "../../local/remote";
import { explainSshFailure, renderRoute } from "../../local/ssh";
import { RemoteHost, S3Store } from "../../lib/protocol/jobs";
import { URL_SECONDS, presign } from "../../local/store";
import { uploadCommand } from "../../local/delivery";
import { spawnSync } from "node:child_process";
import { NO_SWARM } from "../support/local";

const KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIE13Mx9w3k99vWlCJXURrSYBWBucTfvv3XrE8dCTUoOn";
const web: RemoteHost = { name: "web", route: { address: "10.0.0.4", port: 2222, user: "deploy", hostKey: `${KEY}\n`, privateKey: "PRIVATE", connectTimeout: 7 } };

test("renderRoute: one entry per hop, the host key pinned under the alias, the key in a file with one final newline", () => {
    const r = renderRoute("h0", web, "/run/x", false);
    assert.equal(r.knownHosts, `h0 ${KEY}\n`);
    assert.deepEqual(r.keys, { "h0.key": "PRIVATE\n" });
    for (const line of ["Host h0", "  HostName 10.0.0.4", "  Port 2222", "  User deploy", "  ConnectTimeout 7", "  HostKeyAlias h0", "  ServerAliveInterval 7", "  ServerAliveCountMax 3", "  IdentityFile /run/x/h0.key", "  IdentitiesOnly yes", "  StrictHostKeyChecking yes", "  UserKnownHostsFile /run/x/known_hosts", "  GlobalKnownHostsFile /dev/null", "  BatchMode yes"]) {
        assert.ok(r.config.split("\n").includes(line), `${line} in:\n${r.config}`);
    }
    assert.doesNotMatch(r.config, /ProxyJump/);
});

test("renderRoute: a bastion is its own entry, pinned too, and the host jumps through it", () => {
    const proxied: RemoteHost = { name: "web", route: { ...web.route, proxy: { address: "203.0.113.10", port: 22, user: "jump", hostKey: KEY } } };
    const r = renderRoute("h3", proxied, "/run/x", false);
    assert.equal(r.knownHosts, `h3-proxy ${KEY}\nh3 ${KEY}\n`);
    assert.match(r.config, /^Host h3-proxy\n  HostName 203\.0\.113\.10\n/);
    assert.match(r.config, /Host h3\n(  .*\n)*  ProxyJump h3-proxy\n/);
    assert.deepEqual(Object.keys(r.keys), ["h3.key"], "the bastion's key from the agent");
});

const unpinned: [string, RemoteHost, RegExp][] = [
    ["the host", { ...web, route: { ...web.route, hostKey: undefined } }, /no host key for web \(10\.0\.0\.4\): set its hostKey, or opt in to insecureSkipHostKeyCheck$/],
    ["its bastion", { ...web, route: { ...web.route, proxy: { address: "203.0.113.10", port: 22, user: "jump" } } }, /no host key for web's bastion \(203\.0\.113\.10\)/],
];
for (const [what, host, message] of unpinned) {
    test(`renderRoute: no host key for ${what} is refused unless insecure`, () => {
        assert.throws(() => renderRoute("h0", host, "/d", false), message);
        const r = renderRoute("h0", host, "/d", true);
        assert.match(r.config, /StrictHostKeyChecking no\n  UserKnownHostsFile \/dev\/null/);
        assert.equal(r.knownHosts, "");
    });
}

const sshFailures: [string, string, RegExp][] = [
    [
        "a changed host key: what to check, none of OpenSSH's advice about files that are not the user's",
        "@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@\n@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @\nAdd correct host key in /tmp/forklift-ssh-x/known_hosts to get rid of this message.\nHost key for h0 has changed and you have requested strict checking.\nHost key verification failed.\n",
        /^web \(10\.0\.0\.4:2222\): its SSH host key is not the pinned hostKey\. Check its hostKey \(`ssh-keyscan -t ed25519 10\.0\.0\.4` on a network you trust\) and that the address is the machine you mean\.$/,
    ],
    ["a refused login", "deploy@10.0.0.4: Permission denied (publickey).\n", /^web \(10\.0\.0\.4:2222\): the login as deploy was refused; check its user and privateKey \(or the SSH agent's keys\)\. ssh said: deploy@10\.0\.0\.4: Permission denied \(publickey\)\.$/],
    ["a timeout", "ssh: connect to host 10.0.0.4 port 2222: Connection timed out\n", /unreachable; check that it is up, its address and port, and the network path \(sshConnectTimeout is 7s\)\. ssh said: .*timed out$/],
    ["a refused connection", "ssh: connect to host 10.0.0.4 port 2222: Connection refused\n", /: unreachable; /],
    ["anything else", "kex_exchange_identification: read: Connection reset by peer\n", /^web \(10\.0\.0\.4:2222\): SSH failed: kex_exchange_identification: read: Connection reset by peer$/],
    ["no message at all (a session lost to its keepalives)", "", /^web \(10\.0\.0\.4:2222\): unreachable \(the SSH session was lost: the host or the network went away\); check that it is up/],
    ["the host's own lines, then nothing from ssh", "[forklift web] switched to release x\n", /: unreachable \(the SSH session was lost/],
];
for (const [what, stderr, message] of sshFailures) {
    test(`explainSshFailure: ${what}`, () => {
        const said = explainSshFailure(web, stderr);
        assert.match(said, message);
        assert.doesNotMatch(said, /known_hosts|h0|forklift-ssh/, "nothing of this run's files or aliases");
    });
}

const hostFailures: [string, { code: number; stdout: string; stderr: string }, RegExp][] = [
    [
        "the host script's fatal line, its status line before it",
        { code: 1, stdout: '{"host":"web","sha256":"","version":"","dockerdSha256":"","dockerService":"active","changed":false}\n{"fatal":"new release failed: x. Daemon log:\\n    line 1\\n    line 2"}\n', stderr: "[forklift web] ERROR: something else\n" },
        /^web \(10\.0\.0\.4:2222\): new release failed: x\. Daemon log:\n    line 1\n    line 2$/,
    ],
    ["no fatal line (killed, or set -e): the last lines of stderr", { code: 2, stdout: "", stderr: "a\nb\nc\nd\n" }, /^web \(10\.0\.0\.4:2222\): b c d$/],
    ["nothing said: the exit status", { code: 7, stdout: "", stderr: "" }, /^web \(10\.0\.0\.4:2222\): exit 7$/],
    ["killed by a signal: named, with its last words", { code: 137, stdout: "", stderr: "[forklift web] stopping docker\n" }, /^web \(10\.0\.0\.4:2222\): its forklift-host\.sh run was ended by SIGKILL on the host \(exit 137\); it said last: \[forklift web\] stopping docker$/],
    ["a status above 128 that is no signal: the status", { code: 250, stdout: "", stderr: "" }, /^web \(10\.0\.0\.4:2222\): exit 250$/],
    ["ssh's own failure (255)", { code: 255, stdout: "", stderr: "Permission denied (publickey).\n" }, /the login as deploy was refused/],
];
for (const [what, r, message] of hostFailures) {
    test(`hostFailure: ${what}`, () => assert.match(hostFailure(web, r), message));
}

const badJobs: [string, string, RegExp][] = [
    ["not JSON", "{", /^stdin is not a JSON document/],
    ["another version", JSON.stringify({ v: 2 }), /^job\.v: expected 1, got 2 \(a job from another forklift version\)$/],
    ["no hosts", JSON.stringify({ v: 1, phase: "check", insecure: false, hosts: [] }), /^job\.hosts: expected at least one host$/],
    ["an unknown phase", JSON.stringify({ v: 1, phase: "later", insecure: false, hosts: [{}] }), /^job\.phase: expected "precheck" or "check"$/],
    ["a host without a command", JSON.stringify({ v: 1, phase: "check", insecure: false, hosts: [web] }), /^job\.hosts\[0\]\.command: expected a non-empty string$/],
    ["a port that is no number", JSON.stringify({ v: 1, phase: "check", insecure: false, hosts: [{ ...web, route: { ...web.route, port: "22" }, command: "x" }] }), /^job\.hosts\[0\]\.route\.port: expected a positive whole number$/],
];
for (const [what, text, message] of badJobs) {
    test(`a checks job that is ${what} is refused naming the field`, () => {
        assert.throws(() => parseChecksJob(text), (e: Error) => e instanceof InputError && message.test(e.message));
    });
}

const rolloutCheck = { v: 1, phase: "check", insecure: false, hosts: [{ ...web, command: "c" }], swarm: { batchSize: 1, allowTwoManagers: false, liveRestore: false, managers: [], probes: [] } };
const badRollouts: [string, object, RegExp][] = [
    ["a precheck as its check", { v: 1, check: { ...rolloutCheck, phase: "precheck" }, installs: [] }, /^job\.check\.phase: expected "check"$/],
    ["a budget that is no size", { v: 1, check: rolloutCheck, installs: [], maxFailures: "many" }, /^job\.maxFailures: expected a number of hosts or a percentage like "25%"$/],
    ["a negative soak", { v: 1, check: rolloutCheck, installs: [], soakSeconds: -1 }, /^job\.soakSeconds: expected a whole number$/],
    ["a wave that is no size", { v: 1, check: { ...rolloutCheck, swarm: { ...rolloutCheck.swarm, waves: [1, "1/2"] } }, installs: [] }, /^job\.check\.swarm\.waves\[1\]: expected a number of hosts or a percentage/],
    ["an install that is no object", { v: 1, check: rolloutCheck, installs: ["x"] }, /^job\.installs\[0\]: expected an object$/],
];
for (const [what, job, message] of badRollouts) {
    test(`a rollout job with ${what} is refused naming the field`, () => {
        assert.throws(() => parseRolloutJob(JSON.stringify(job)), (e: Error) => e instanceof InputError && message.test(e.message));
    });
}

test("a rollout job an older forklift kept (no budget, no soak) reads with their defaults", () => {
    const job = parseRolloutJob(JSON.stringify({ v: 1, check: rolloutCheck, installs: [] }));
    assert.equal(job.maxFailures, 0);
    assert.equal(job.soakSeconds, 0);
    assert.deepEqual(parseRolloutJob(JSON.stringify({ v: 1, check: rolloutCheck, installs: [], maxFailures: "10%", soakSeconds: 30 })).maxFailures, "10%");
});

test("an install job's artifact must name a sha256", () => {
    const job = { v: 1, insecure: false, host: web, install: "i", installDrained: "i", uninstall: "u", uninstallDrained: "u", swarm: NO_SWARM, hostScriptSha256: "s", artifact: { sha256: "abc", path: "/p", builder: web, cacheDir: "c" } };
    assert.throws(() => parseFleetHostJob(JSON.stringify(job)), /job\.artifact\.sha256: expected a sha256 \(64 hex digits\)/);
});

test("a job kept in the state by a forklift before the Swarm settings grew reads with their defaults", () => {
    const artifact = { sha256: "a".repeat(64), path: "/p", builder: web, cacheDir: "c" };
    const swarm = { managers: [], drainTimeout: 300, nodeTimeout: 120, allowTwoManagers: false };
    const job = { v: 1, insecure: false, host: web, install: "i", installDrained: "i", uninstall: "u", uninstallDrained: "u", swarm, hostScriptSha256: "s", artifact };
    assert.deepEqual(parseFleetHostJob(JSON.stringify(job)).swarm, { ...swarm, stackId: "", maxDrained: 1, acceptDowntime: [], moveLocalData: [], surge: 0 });
    const check = { v: 1, phase: "check", insecure: false, hosts: [{ ...web, command: "c" }], swarm: { batchSize: 1, allowTwoManagers: false, liveRestore: false, managers: [], probes: [] } };
    assert.deepEqual(parseChecksJob(JSON.stringify(check)).swarm, { ...check.swarm, stackId: "", moveLocalData: [] });
    // and today's, with every field, reads back as written
    const today = { ...swarm, stackId: "0a0b", maxDrained: 2, acceptDowntime: ["web"], moveLocalData: ["*"], surge: 1, unlockKey: "SWMKEY-1-x" };
    assert.deepEqual(parseFleetHostJob(JSON.stringify({ ...job, swarm: today })).swarm, today);
});

test("an older forklift's delete: its variables and stdin lines make the same route and uninstall", () => {
    const b64 = (t: string) => Buffer.from(t).toString("base64");
    const env = {
        FORKLIFT_HOST: "web",
        FORKLIFT_INSECURE: "0",
        FORKLIFT_TARGET_ADDRESS: "10.0.0.9",
        FORKLIFT_TARGET_PORT: "2222",
        FORKLIFT_TARGET_USER: "deploy",
        FORKLIFT_TARGET_HOST_KEY: KEY,
        FORKLIFT_TARGET_PROXY_ADDRESS: "203.0.113.10",
        FORKLIFT_TARGET_PROXY_USER: "jump",
        FORKLIFT_TARGET_PROXY_HOST_KEY: KEY,
        FORKLIFT_CONNECT_TIMEOUT: "9",
    };
    const stdin = [`builder ${b64("B")}`, `target ${b64("T")}`, `target-proxy ${b64("P")}`, `install ${b64("install cmd")}`, `uninstall ${b64("uninstall cmd")}`, ""].join("\n");
    assert.deepEqual(legacyUninstallJob(env, stdin), {
        insecure: false,
        host: {
            name: "web",
            route: { address: "10.0.0.9", port: 2222, user: "deploy", hostKey: KEY, privateKey: "T", proxy: { address: "203.0.113.10", port: 22, user: "jump", hostKey: KEY, privateKey: "P" }, connectTimeout: 9 },
        },
        uninstall: "uninstall cmd",
    });
    assert.throws(() => legacyUninstallJob(env, `target ${b64("T")}\n`), /no uninstall command on stdin/);
    assert.throws(() => legacyUninstallJob({}, `uninstall ${b64("u")}\n`), /FORKLIFT_TARGET_ADDRESS is not set/);
});

test("mapLimit: every item once, at most LIMIT at once, results in the items' order", async () => {
    let running = 0;
    let most = 0;
    const results = await mapLimit([5, 1, 4, 2, 3, 0], 2, async (ms, i) => {
        running++;
        most = Math.max(most, running);
        await new Promise((r) => setTimeout(r, ms * 5));
        running--;
        return i * 10;
    });
    assert.deepEqual(results, [0, 10, 20, 30, 40, 50]);
    assert.equal(most, 2);
    assert.deepEqual(await mapLimit([], 3, async () => 1), []);
});

const SHA = "a".repeat(64);
const storeJob = (store: unknown) => JSON.stringify({ v: 1, insecure: false, host: web, install: "i", installDrained: "i", uninstall: "u", uninstallDrained: "u", swarm: NO_SWARM, hostScriptSha256: "s", artifact: { sha256: SHA, path: "/p", builder: web, cacheDir: "c", store } });
const badStores: [string, unknown, RegExp][] = [
    ["of an unknown type", { type: "gcs" }, /^job\.artifact\.store\.type: expected "s3"$/],
    ["without a bucket", { type: "s3", region: "us-east-1", key: "k", pathStyle: false }, /^job\.artifact\.store\.bucket: expected a non-empty string$/],
    ["without pathStyle", { type: "s3", bucket: "b", region: "us-east-1", key: "k" }, /^job\.artifact\.store\.pathStyle: expected true or false$/],
];
for (const [what, store, message] of badStores) {
    test(`an install job's store ${what} is refused naming the field`, () => {
        assert.throws(() => parseFleetHostJob(storeJob(store)), (e: Error) => e instanceof InputError && message.test(e.message));
    });
}

test("an install job's store: parsed as sent, the endpoint optional", () => {
    const s3: S3Store = { type: "s3", bucket: "b", region: "eu-west-1", key: `forklift/${SHA}.tgz`, pathStyle: false };
    assert.deepEqual(parseFleetHostJob(storeJob(s3)).artifact.store, s3);
    assert.deepEqual(parseFleetHostJob(storeJob({ ...s3, endpoint: "http://10.0.0.9:9000", pathStyle: true })).artifact.store, { ...s3, endpoint: "http://10.0.0.9:9000", pathStyle: true });
});

const signedStores: [string, S3Store, RegExp][] = [
    ["AWS S3, virtual-hosted", { type: "s3", bucket: "fl-art", region: "eu-west-1", key: `forklift/${SHA}.tgz`, pathStyle: false }, new RegExp(`^https://fl-art\\.s3\\.eu-west-1\\.amazonaws\\.com/forklift/${SHA}\\.tgz\\?`)],
    ["a store of the user's, path-style", { type: "s3", endpoint: "http://10.0.0.9:9000", bucket: "fl-art", region: "us-east-1", key: `x/${SHA}.tgz`, pathStyle: true }, new RegExp(`^http://10\\.0\\.0\\.9:9000/fl-art/x/${SHA}\\.tgz\\?`)],
];
for (const [what, s3, at] of signedStores) {
    test(`presign: ${what}: one object, SigV4, ${URL_SECONDS} s, no checksum of an unseen body`, async () => {
        const saved = { ...process.env };
        Object.assign(process.env, { AWS_ACCESS_KEY_ID: "AKIDEXAMPLE", AWS_SECRET_ACCESS_KEY: "secret", AWS_SESSION_TOKEN: "" });
        try {
            for (const method of ["GET", "PUT", "HEAD"] as const) {
                const url = await presign(s3, method);
                assert.match(url, at, method);
                const q = new URL(url).searchParams;
                assert.equal(q.get("X-Amz-Algorithm"), "AWS4-HMAC-SHA256");
                assert.equal(q.get("X-Amz-Expires"), String(URL_SECONDS));
                assert.match(q.get("X-Amz-Credential") ?? "", new RegExp(`^AKIDEXAMPLE/\\d{8}/${s3.region}/s3/aws4_request$`));
                assert.match(q.get("X-Amz-Signature") ?? "", /^[0-9a-f]{64}$/);
                assert.deepEqual([...q.keys()].filter((k) => /checksum/i.test(k)), [], `${method}: no checksum parameter`);
            }
            assert.equal(new URL(await presign(s3, "GET", 5)).searchParams.get("X-Amz-Expires"), "5");
        } finally {
            process.env = saved;
        }
    });
}

test("presign without credentials: the error says whose credentials sign", async () => {
    const saved = { ...process.env };
    for (const k of Object.keys(process.env)) if (k.startsWith("AWS_")) delete process.env[k];
    Object.assign(process.env, { AWS_SHARED_CREDENTIALS_FILE: "/nonexistent", AWS_CONFIG_FILE: "/nonexistent", AWS_EC2_METADATA_DISABLED: "true" });
    try {
        await assert.rejects(presign(signedStores[1][1], "GET"), /^Error: cannot sign a URL for s3:\/\/fl-art\/x\/a+\.tgz at http:\/\/10\.0\.0\.9:9000 on this machine: .* \(forklift signs with your AWS credentials: the environment, a profile, SSO\)$/);
    } finally {
        process.env = saved;
    }
});

const uploads: [string, boolean, RegExp[]][] = [
    ["as root", false, [/^read -r head && read -r put; /, /-T \/var\/lib\/b\/x\.tgz -K -/, /^(?!.*sudo)/]],
    ["as another user, through sudo", true, [/sudo -n test -f \/var\/lib\/b\/x\.tgz /, /sudo -n curl /]],
];
for (const [what, sudo, patterns] of uploads) {
    test(`uploadCommand ${what}: the URLs come on stdin, never in the command line`, () => {
        const cmd = uploadCommand("/var/lib/b/x.tgz", sudo);
        for (const p of patterns) assert.match(cmd, p);
        assert.doesNotMatch(cmd, /X-Amz|https?:/);
        assert.equal(spawnSync("bash", ["-n", "-c", cmd]).status, 0, "bash parses it");
    });
}
