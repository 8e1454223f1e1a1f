/**
 * The program's wiring under pulumi.runtime.setMocks: which resources index.ts registers, with
 * which inputs, in which order. Each scenario runs the program in a fresh child process (the
 * Pulumi runtime is process-global), see program-harness.ts.
 */
import { test } from "node:test";
import * as assert from "node:assert/strict";
import { TEST_HOST_KEY, TEST_PRIVATE_KEY, ec2Stack, hostsStack, mockKeyPair } from "./fixtures";
import { FirstBoot, firstBootUserData } from "../../lib/protocol/bootstrap";
import { Recorded, Run, runProgram } from "./run-program";
import { ChecksJob, FleetHostJob, RolloutJob } from "../../lib/protocol/jobs";

/** The job a local command reads on its stdin (lib/protocol/jobs.ts), as the program rendered it. */
const jobOf = <T = FleetHostJob>(r: Recorded): T => JSON.parse(r.inputs.stdin as string) as T;
/** The check a checks job (the precheck's) or a rollout job (the check resource's) holds. */
const checksOf = (r: Recorded): ChecksJob => {
    const job = jobOf<ChecksJob | RolloutJob>(r);
    return "check" in job ? job.check : job;
};
/** The public key of the mocked tls.PrivateKey NAME, as a connection pins it. */
const pub = (name: string) => mockKeyPair(name).publicKeyOpenssh.trim();
const byType = (run: Run, type: string) => run.resources.filter((r) => r.type === type);
const named = (run: Run, name: string) => {
    const r = run.resources.find((x) => x.name === name);
    assert.ok(r, `no resource named ${name}; have ${run.resources.map((x) => x.name).join(", ")}`);
    return r;
};

test("EC2 mode: t2.medium builder with IMDSv2, encrypted gp3 and SSH only from the CIDRs", () => {
    const run = runProgram(ec2Stack);
    assert.equal(run.error, undefined);
    assert.deepEqual(run.sdks, ["aws", "tls", "random", "command"]);
    const builder = named(run, "forklift-builder-ec2");
    assert.equal(builder.type, "aws:ec2/instance:Instance");
    assert.equal(builder.inputs.instanceType, "t2.medium");
    assert.equal(builder.inputs.metadataOptions.httpTokens, "required");
    assert.deepEqual(
        { ...builder.inputs.rootBlockDevice },
        { volumeSize: 50, volumeType: "gp3", encrypted: true, deleteOnTermination: true },
    );
    assert.equal(builder.inputs.ami, "ami-0123456789abcdef0", "AMI comes from aws.ec2.getAmi");
    const ami = run.invokes.find((i) => i.token === "aws:ec2/getAmi:getAmi");
    assert.ok(ami, "Ubuntu AMI looked up");
    assert.deepEqual(ami.args.owners, ["099720109477"]);

    const sg = named(run, "forklift-ssh");
    assert.equal(sg.inputs.ingress.length, 1);
    const rule = sg.inputs.ingress[0];
    assert.equal(rule.fromPort, 22);
    assert.equal(rule.toPort, 22);
    assert.deepEqual(rule.cidrBlocks, ["203.0.113.7/32"]);
    assert.deepEqual(rule.ipv6CidrBlocks, ["2001:db8::/64"]);
    assert.equal(byType(run, "aws:ec2/instance:Instance").length, 3, "builder + 2 fleet instances");
    for (const inst of byType(run, "aws:ec2/instance:Instance")) {
        assert.equal(inst.inputs.metadataOptions.httpTokens, "required", `${inst.name} requires IMDSv2`);
        assert.equal(inst.inputs.rootBlockDevice.encrypted, true, `${inst.name} root volume encrypted`);
        // the first boot of its own key (scripts.test.ts runs this user data on a real host)
        const boot: FirstBoot = inst.name === "forklift-builder-ec2" ? { mode: "bootstrap", swapGiB: 4 } : { mode: "host-key" };
        const key = Buffer.from(mockKeyPair(`${inst.name}-hostkey`).privateKeyOpenssh).toString("base64");
        assert.equal(inst.inputs.userData, firstBootUserData(boot, key), `${inst.name} boots with its own host key`);
    }
    assert.equal(byType(run, "tls:index/privateKey:PrivateKey").length, 4, "login key + 3 host keys");
});

test("EC2 mode: every connection pins the host key, and launched hosts skip uninstall on destroy", () => {
    const run = runProgram(ec2Stack);
    const commands = run.resources.filter((r) => r.type.startsWith("command:remote:"));
    assert.equal(commands.length, 2, "the builder's bootstrap and build");
    for (const c of commands) {
        assert.equal(c.inputs.connection.hostKey, pub("forklift-builder-ec2-hostkey"), `${c.name} pins the builder's own host key`);
        assert.ok(c.deletedWith, `${c.name} is deleted with its instance`);
    }
    const installs = run.resources.filter((r) => r.name.endsWith("-install"));
    assert.equal(installs.length, 2, "one install per fleet instance");
    for (const c of installs) {
        const job = jobOf(c);
        assert.equal(job.artifact.builder.route.hostKey?.trim(), pub("forklift-builder-ec2-hostkey"), `${c.name} pins the builder's key`);
        assert.equal(job.host.route.hostKey?.trim(), pub(`${job.host.name}-hostkey`), `${c.name} pins its own instance's key (its install and uninstall)`);
        assert.equal(job.insecure, false);
        assert.ok(c.deletedWith, `${c.name} is deleted with its instance`);
    }
    const install = named(run, "forklift-fleet-1-install");
    assert.equal(install.deletedWith, "forklift-fleet-1");
    assert.match(jobOf(install).install, /sudo -n env /, "non-root login user goes through sudo");
});

test("EC2 mode: the artifact bucket is private, encrypted, owned by the account, its objects expire, and it goes with the stack", () => {
    const run = runProgram(ec2Stack);
    assert.equal(run.error, undefined);
    const bucket = named(run, "forklift-artifacts");
    assert.equal(bucket.type, "aws:s3/bucket:Bucket");
    assert.equal(bucket.inputs.bucketPrefix, "forklift-artifacts-");
    assert.equal(bucket.inputs.forceDestroy, true, "destroy removes it with its objects");
    assert.deepEqual({ ...named(run, "forklift-artifacts-private").inputs, bucket: undefined }, { bucket: undefined, blockPublicAcls: true, blockPublicPolicy: true, ignorePublicAcls: true, restrictPublicBuckets: true });
    assert.equal(named(run, "forklift-artifacts-encryption").inputs.rules[0].applyServerSideEncryptionByDefault.sseAlgorithm, "AES256");
    assert.equal(named(run, "forklift-artifacts-ownership").inputs.rule.objectOwnership, "BucketOwnerEnforced", "no ACLs");
    const expiry = named(run, "forklift-artifacts-expiry").inputs.rules[0];
    assert.equal(expiry.status, "Enabled");
    assert.equal(expiry.expiration.days, 30);
    // the installs and the check fetch from it: the stack's object named by the artifact's sha256, in the bucket's region
    const store = { type: "s3", bucket: "forklift-artifacts-0123", region: "eu-west-1", key: `5eed5eed5eed5eed/${"b".repeat(64)}.tgz`, pathStyle: false };
    assert.deepEqual(jobOf(named(run, "forklift-fleet-1-install")).artifact.store, store);
    assert.deepEqual(checksOf(named(run, "forklift-check")).artifact?.store, store);
    assertStoreObject(run, store);
    assert.equal(run.outputs.artifactSource, "s3://forklift-artifacts-0123/");
    for (const r of byType(run, "aws:iam/role:Role")) assert.fail(`${r.name}: no instance gets a role for the bucket`);
});

test("hosts mode: an S3-compatible store the user runs, or the relay by default (and no AWS SDK loaded)", () => {
    const s3 = runProgram({ ...hostsStack(), artifactSource: { type: "s3", endpoint: "http://10.0.0.9:9000", bucket: "artifacts", prefix: "fleet/" } });
    assert.equal(s3.error, undefined);
    const store = { type: "s3", endpoint: "http://10.0.0.9:9000", bucket: "artifacts", region: "us-east-1", key: `fleet/5eed5eed5eed5eed/${"b".repeat(64)}.tgz`, pathStyle: true };
    assert.deepEqual(jobOf(named(s3, "forklift-h1-install")).artifact.store, store);
    assertStoreObject(s3, store);
    assert.equal(byType(s3, "aws:s3/bucket:Bucket").length, 0, "the user's store: forklift creates no bucket");
    assert.deepEqual(s3.sdks, ["random", "command"]);
    const relay = runProgram(hostsStack());
    assert.equal(jobOf(named(relay, "forklift-h1-install")).artifact.store, undefined);
    assert.equal(relay.outputs.artifactSource, "relay");
    assert.equal(relay.resources.find((r) => r.name === "forklift-artifact-object"), undefined, "the relay: no object to remove");
    const forced = runProgram({ ...ec2Stack, artifactSource: { type: "relay" } });
    assert.equal(byType(forced, "aws:s3/bucket:Bucket").length, 0, "EC2 mode can keep the relay");
});

/** The store's object is a resource of its own: nothing on create, removed on delete, replaced with the key. */
function assertStoreObject(run: Run, store: object): void {
    const object = named(run, "forklift-artifact-object");
    assert.equal(object.inputs.create, undefined, "the check uploads it: no create");
    assert.match(object.inputs.delete, /local\/main\.ts' 'store-delete'|local\/main\.ts store-delete/);
    assert.deepEqual(JSON.parse(object.inputs.stdin), { v: 1, store });
    assert.ok(String(object.inputs.triggers).includes((store as { key: string }).key), "a new artifact replaces it (the old object goes)");
    // the command provider refuses a secret inside triggers ("malformed secret: missing value")
    assert.ok(!JSON.stringify(object.redacted.triggers).includes("[secret]"), `no secret in triggers: ${JSON.stringify(object.redacted.triggers)}`);
    assert.notEqual(object.redacted.delete, "[secret]", "the delete command shows in the state and the output");
}

test("a fleet bastion: launched fleet instances get no public IP and are reached through it", () => {
    const bastion = { address: "203.0.113.10", user: "jump", privateKey: TEST_PRIVATE_KEY, hostKey: TEST_HOST_KEY };
    const run = runProgram({ ...ec2Stack, sshAllowedCidrs: ["10.0.0.0/16"], fleetBastion: bastion });
    assert.equal(run.error, undefined);
    for (const name of ["forklift-fleet-1", "forklift-fleet-2"]) {
        assert.equal(named(run, name).inputs.associatePublicIpAddress, false, `${name} has no public IP`);
    }
    assert.equal(named(run, "forklift-builder-ec2").inputs.associatePublicIpAddress, undefined, "the builder keeps its egress");
    const route = jobOf(named(run, "forklift-fleet-1-install")).host.route;
    assert.equal(route.address, "10.0.0.9", "reached at its private address");
    assert.deepEqual(route.proxy, { address: "203.0.113.10", port: 22, user: "jump", hostKey: TEST_HOST_KEY, privateKey: TEST_PRIVATE_KEY }, "through the bastion, its host key pinned too (the install and the uninstall)");
    assert.equal(checksOf(named(run, "forklift-check")).hosts[0].route.proxy?.address, "203.0.113.10", "and the check");
});

test("hosts mode: build, then batches in order, with uninstall on delete", () => {
    const run = runProgram({ ...hostsStack(), batchSize: 1 });
    assert.equal(run.error, undefined);
    assert.equal(byType(run, "aws:ec2/instance:Instance").length, 0, "nothing launched");
    assert.equal(byType(run, "aws:ec2/securityGroup:SecurityGroup").length, 0);
    // each program run (a `pulumi up` has two) would take ~0.3 s more to load them
    assert.deepEqual(run.sdks, ["random", "command"], "the EC2 SDKs (@pulumi/aws, @pulumi/tls) are not loaded");

    const bootstrap = named(run, "forklift-builder-bootstrap");
    assert.match(bootstrap.inputs.create, /bash "\$f" bootstrap;/);
    assert.match(bootstrap.inputs.delete, /bootstrap-builder\.sh cleanup/, "destroy cleans the existing build host");
    assert.match(bootstrap.inputs.create, /FORKLIFT_STACK_ID=5eed5eed5eed5eed /, "the bootstrap records the stack as a user of the build host");
    assert.match(bootstrap.inputs.delete, /FORKLIFT_STACK_ID=5eed5eed5eed5eed /, "the cleanup leaves a host other stacks use");
    assert.equal(bootstrap.deletedWith, undefined);
    assert.match(bootstrap.inputs.stdin, /bootstrap-builder\.sh/);

    const build = named(run, "forklift-fork-build");
    assert.deepEqual(build.dependsOn, ["forklift-builder-bootstrap"]);
    assert.match(build.inputs.create, /FORKLIFT_RECIPE=docker-ce /);
    assert.match(build.inputs.stdin, /build-fork\.sh/);

    const install1 = named(run, "forklift-h1-install");
    const install2 = named(run, "forklift-10-0-0-3-install");
    assert.deepEqual(install1.dependsOn, ["forklift-check", "forklift-precheck"], "the first batch waits for the check of every host, and the precheck");
    assert.deepEqual(install2.dependsOn, ["forklift-h1-install"], "second batch waits for the first");
    // one check after the build for all hosts: one of the engine's parallel slots, not one per host
    const check = named(run, "forklift-check");
    assert.equal(check.type, "command:local:Command");
    assert.deepEqual(check.dependsOn, [], "the check waits for the build's result only");
    assert.match(check.inputs.create, /^node --require tsx\/cjs local\/main\.ts rollout \w{16}$/, "the check, then the rollout, in one command");
    const rollout = jobOf<RolloutJob>(check);
    assert.deepEqual(rollout.installs.map((j) => j.host.name), ["h1", "10-0-0-3"], "with every host's install job, in the fleet's order");
    assert.deepEqual(rollout.installs[0], jobOf(install1), "the very job of its install resource");
    assert.deepEqual([rollout.maxFailures, rollout.soakSeconds], [0, 0], "maxFailures and soakSeconds' defaults");
    assert.equal(check.inputs.delete, undefined, "nothing to undo");
    assert.equal(check.deletedWith, undefined);
    const checkJob = checksOf(check);
    assert.equal(checkJob.phase, "check");
    assert.deepEqual(checkJob.hosts.map((h) => h.name), ["h1", "10-0-0-3"], "the hosts in rollout order");
    const check1 = checkJob.hosts[0];
    assert.deepEqual(check1.route, { address: "10.0.0.4", port: 22, user: "root", hostKey: TEST_HOST_KEY, privateKey: TEST_PRIVATE_KEY, connectTimeout: 10 }, "sshConnectTimeout's default, the host's own key");
    assert.match(check1.command, /FORKLIFT_NEED_KIB=5 /, "room for the 1234-byte artifact four times over");
    assert.match(check1.command, new RegExp(`FORKLIFT_SHA256=${"b".repeat(64)} .*bash "\\$f" stage\\b`), "the release staged, none needed where it is unpacked already");
    assert.deepEqual(checkJob.artifact, {
        sha256: "b".repeat(64),
        path: "/var/lib/forklift-build/k/out/docker-18.03.1-ce.tgz",
        builder: { name: "builder", route: { address: "10.0.0.2", port: 22, user: "root", hostKey: TEST_HOST_KEY, privateKey: TEST_PRIVATE_KEY, connectTimeout: 10 } },
        cacheDir: ".forklift/artifacts",
    }, "fetched from the build's path, the builder's key pinned, into a project-relative cache: the same job on every checkout");
    // one precheck for all existing hosts: one of the engine's parallel slots, not one per host
    const precheck = named(run, "forklift-precheck");
    assert.equal(precheck.type, "command:local:Command");
    assert.deepEqual(precheck.dependsOn, [], "the precheck waits for nothing: it runs while the fork builds");
    assert.match(precheck.inputs.create, /^node --require tsx\/cjs local\/main\.ts check precheck \w{16}$/);
    const precheckJob = checksOf(precheck);
    assert.equal(precheckJob.artifact, undefined, "nothing to stage yet");
    for (const [i, h] of precheckJob.hosts.entries()) {
        assert.deepEqual(h.route, checkJob.hosts[i].route, "each host's precheck goes the check's way");
        assert.match(h.command, /bash "\$f" check\b/);
        assert.doesNotMatch(h.command, /FORKLIFT_NEED_KIB/, "the release's size is not known yet");
    }
    assert.equal(precheck.deletedWith, undefined);
    assert.equal(precheck.inputs.delete, undefined, "nothing to undo");
    assert.equal(install1.type, "command:local:Command", "the install runs from the machine of `pulumi up`");
    assert.equal(install1.inputs.create, `node --require tsx/cjs local/main.ts install h1 ${"b".repeat(12)}`, "the plan shows the host and the release");
    assert.equal(install1.inputs.delete, "node --require tsx/cjs local/main.ts uninstall h1", "destroy uninstalls");
    assert.equal(install1.inputs.dir, undefined, "no machine-specific directory in the state");
    const job = jobOf(install1);
    assert.deepEqual(job.artifact, checkJob.artifact, "the artifact from where the check stages it");
    assert.deepEqual(job.host, { name: "h1", route: check1.route });
    assert.match(job.install, /FORKLIFT_SHA256=b{64} .*bash "\$f" install\b/, "installs the built sha256");
    assert.match(job.uninstall, /forklift-host\.sh uninstall/);
    // the stack's random identity, kept in its state, is the owner recorded on every host
    const identity = named(run, "forklift-stack-identity");
    assert.equal(identity.type, "random:index/randomId:RandomId");
    assert.equal(identity.inputs.byteLength, 8);
    for (const cmd of [job.install, job.uninstall, check1.command, precheckJob.hosts[0].command]) {
        assert.match(cmd, /FORKLIFT_OWNER=forklift\/test\/h1 /);
        assert.match(cmd, /FORKLIFT_STACK_ID=5eed5eed5eed5eed /);
    }
    assert.equal(run.outputs.stackIdentity, "5eed5eed5eed5eed");
    assert.equal(install1.deletedWith, undefined, "existing hosts are cleaned up on destroy");
    assert.equal(run.invokes.filter((i) => i.token.startsWith("command:")).length, 0, "no command runs at preview time");

    assert.equal(run.outputs.artifact.sha256, "b".repeat(64));
    assert.equal(run.outputs.artifact.commit, "c".repeat(40));
    assert.equal(run.outputs.hosts.length, 2);
    assert.equal(run.outputs.hosts[0].name, "h1");
    assert.equal(run.outputs.hosts[0].address, "10.0.0.4");
    assert.equal(run.outputs.builderSshCommand, "ssh root@10.0.0.2");
});

test("the installs follow the steps the check planned (a Swarm's managers one at a time, whatever the batch size)", () => {
    const plan = { hosts: [], plan: [["10-0-0-3"], ["h1"]] };
    const run = runProgram({ ...hostsStack(), batchSize: 2 }, "up", [], `checking\n${JSON.stringify(plan)}\n`);
    assert.equal(run.error, undefined);
    assert.deepEqual(named(run, "forklift-10-0-0-3-install").dependsOn, ["forklift-check", "forklift-precheck"], "the first step waits for the check and the precheck");
    assert.deepEqual(named(run, "forklift-h1-install").dependsOn, ["forklift-10-0-0-3-install"], "the second for the first, though the batch size would put them together");
    // what the engine is told to wait for (the SDK's dependencies)
    assert.ok(run.dependencies["forklift-h1-install"].some((u) => u.endsWith("::forklift-10-0-0-3-install")));
});

test("an install the rollout did records what the rollout reported; one it has no report of installs itself", () => {
    const status = { host: "h1", sha256: "b".repeat(64), version: "18.03.1-ce", dockerdSha256: "d".repeat(64), dockerService: "active", changed: true };
    const report = { plan: [["h1", "10-0-0-3"]], report: [{ host: "h1", step: 1, before: "its own Docker", after: "18.03.1-ce bbbbbbbbbbbb", seconds: 3.21, outcome: "updated", status }] };
    const run = runProgram(hostsStack(), "up", [], `rolling out\n${JSON.stringify(report)}\n`);
    assert.equal(run.error, undefined);
    const h1 = named(run, "forklift-h1-install");
    assert.match(h1.inputs.create, /local\/main\.ts install h1 /, "a create (a new host, a replaced one) installs");
    assert.equal(h1.inputs.update, `printf '%s\\n' '${JSON.stringify(status)}'`, "an update prints the rollout's status of it");
    const other = named(run, "forklift-10-0-0-3-install");
    assert.equal(other.inputs.update, other.inputs.create, "no report of it: the update installs");
    assert.deepEqual(run.outputs.rollout, { steps: [["h1", "10-0-0-3"]], hosts: [{ name: "h1", step: 1, before: "its own Docker", after: "18.03.1-ce bbbbbbbbbbbb", seconds: 3.2, outcome: "updated" }] }, "the report as a stack output");
});

test("the stack output rollout: each Swarm node's role and whether it was drained; a node whose report says nothing of a drain reads as not drained", () => {
    const row = { step: 1, before: "its own Docker", after: "18.03.1-ce bbbbbbbbbbbb", seconds: 3, outcome: "updated" };
    const report = { plan: [["h1", "10-0-0-3"]], report: [{ host: "h1", ...row, role: "manager", drained: true }, { host: "10-0-0-3", ...row, role: "worker" }] };
    const run = runProgram(hostsStack(), "up", [], JSON.stringify(report));
    assert.equal(run.error, undefined);
    assert.deepEqual(
        run.outputs.rollout.hosts.map((h: { name: string; role?: string; drained?: boolean }) => [h.name, h.role, h.drained]),
        [
            ["h1", "manager", true],
            ["10-0-0-3", "worker", false],
        ],
    );
});

test("waves, the health check, soakSeconds and maxFailures reach the rollout", () => {
    const run = runProgram({ ...hostsStack(), waves: "1,100%", healthCheck: "curl -fsS localhost:8080/health", healthCheckTimeout: 20, soakSeconds: 30, maxFailures: "50%" });
    assert.equal(run.error, undefined);
    const rollout = jobOf<RolloutJob>(named(run, "forklift-check"));
    assert.deepEqual(rollout.check.swarm.waves, [1, "100%"]);
    assert.deepEqual([rollout.maxFailures, rollout.soakSeconds], ["50%", 30]);
    for (const job of rollout.installs) {
        assert.match(job.install, /FORKLIFT_HEALTH_CHECK_B64=Y3VybCAtZnNTIGxvY2FsaG9zdDo4MDgwL2hlYWx0aA== FORKLIFT_HEALTH_TIMEOUT=20 /, `${job.host.name}: its install runs the health check`);
        assert.match(job.health ?? "", /bash "\$f" health\b/, `${job.host.name}: and can run it again after a soak`);
        assert.match(job.rollback ?? "", /bash "\$f" rollback\b/, `${job.host.name}: and roll back after it`);
    }
});

test("preview with the check still to run: every install waits for it", () => {
    const run = runProgram(hostsStack(), "preview");
    assert.equal(run.error, undefined);
    for (const h of ["forklift-h1-install", "forklift-10-0-0-3-install"]) {
        assert.ok(run.dependencies[h].some((u) => u.endsWith("::forklift-check")), `${h} waits for the check`);
    }
});

test("hosts mode: batchSize 2 puts both hosts in one batch", () => {
    const run = runProgram({ ...hostsStack(), batchSize: 2 });
    assert.deepEqual(named(run, "forklift-10-0-0-3-install").dependsOn, ["forklift-check", "forklift-precheck"]);
    assert.deepEqual(named(run, "forklift-h1-install").dependsOn, ["forklift-check", "forklift-precheck"]);
});

/** The key in the command line of the check NAME for STACK: a new key runs the check again. */
const checkKeyOf = (name: string) => (stack: Record<string, unknown>) => /(?:check precheck|rollout) (\w+)$/.exec(named(runProgram(stack), name).inputs.create)?.[1];

/** Asserts that KEY changes with each install setting, and not with a rollout setting; returns the base key. */
function assertKeyFollowsInstall(key: (stack: Record<string, unknown>) => string | undefined): string {
    const base = key(hostsStack());
    assert.ok(base);
    // (the checks read the Swarm clusters and plan the steps: a batch size is a new plan)
    assert.notEqual(key({ ...hostsStack(), batchSize: 2 }), base, "the batch size changes the plan");
    assert.notEqual(key({ ...hostsStack(), swarmAllowTwoManagers: true }), base, "so does a Swarm setting");
    assert.notEqual(key({ ...hostsStack(), daemonJson: { "live-restore": true, debug: true } }), base, "daemon.json changes the install");
    assert.notEqual(key({ ...hostsStack(), installDir: "/usr/local/bin" }), base, "so does the install dir");
    return base;
}

test("the check runs again when any host's install would", () => {
    const key = checkKeyOf("forklift-check");
    const base = assertKeyFollowsInstall(key);
    const [h1, h2] = hostsStack().fleetHosts as any[];
    assert.notEqual(key({ ...hostsStack(), fleetHosts: [h1, { ...h2, user: "ops" }] }), base, "a host's route changed");
    assert.notEqual(key({ ...hostsStack(), fleetHosts: [h1] }), base, "a host removed: the installs are others");
});

test("the precheck runs again when an install would, or the list of existing hosts changes", () => {
    const key = checkKeyOf("forklift-precheck");
    const base = assertKeyFollowsInstall(key);
    // the check learns of a new ref from the build's result, the precheck from the build's key
    assert.notEqual(key({ ...hostsStack(), forkRef: "v18.03.2-ce" }), base, "so does a new build");
    const [h1, h2] = hostsStack().fleetHosts as any[];
    assert.notEqual(key({ ...hostsStack(), fleetHosts: [h1] }), base, "a host removed");
    assert.notEqual(key({ ...hostsStack(), fleetHosts: [h1, { ...h2, user: "ops" }] }), base, "a host's route changed");
});

test("launched instances get no precheck (they may still be booting while the fork builds)", () => {
    const run = runProgram({ ...hostsStack(), fleetCount: 1, sshAllowedCidrs: ["203.0.113.7/32"] });
    assert.equal(run.error, undefined);
    assert.deepEqual(checksOf(named(run, "forklift-precheck")).hosts.map((h) => h.name), ["h1", "10-0-0-3"], "only the existing hosts beside it");
    assert.deepEqual(checksOf(named(run, "forklift-check")).hosts.map((h) => h.name), ["h1", "10-0-0-3", "forklift-fleet-1"], "the check after the build checks it too");
    const oneBatch = runProgram({ ...hostsStack(), fleetCount: 1, sshAllowedCidrs: ["203.0.113.7/32"], batchSize: 3 });
    assert.ok(named(oneBatch, "forklift-fleet-1-install").dependsOn.includes("forklift-precheck"), "the first batch, launched instances too, waits for it");
});

test("a fleet of launched instances only has no precheck", () => {
    const run = runProgram(ec2Stack);
    assert.equal(run.error, undefined);
    assert.equal(run.resources.filter((r) => r.name.endsWith("precheck")).length, 0);
});

test("sshConnectTimeout reaches the provider's dial and OpenSSH", () => {
    const run = runProgram({ ...hostsStack(), sshConnectTimeout: 4 });
    const build = named(run, "forklift-fork-build");
    assert.equal(build.inputs.connection.perDialTimeout, 4);
    assert.equal(build.inputs.connection.dialErrorLimit, 2, "an existing host is not dialed for minutes");
    assert.equal(jobOf(named(run, "forklift-h1-install")).host.route.connectTimeout, 4);
    assert.equal(checksOf(named(run, "forklift-check")).hosts[0].route.connectTimeout, 4);
    const ec2 = runProgram(ec2Stack);
    assert.equal(named(ec2, "forklift-fork-build").inputs.connection.dialErrorLimit, 30, "a launched instance gets its boot time");
});

test("the build command changes exactly when a build input changes", () => {
    const create = (stack: Record<string, unknown>) => named(runProgram(stack), "forklift-fork-build").inputs.create;
    const base = create(hostsStack());
    assert.equal(create({ ...hostsStack(), batchSize: 2 }), base, "a rollout setting does not rebuild");
    assert.equal(create({ ...hostsStack(), daemonJson: { "live-restore": false } }), base, "daemon.json does not rebuild");
    assert.notEqual(create({ ...hostsStack(), forkRef: "v18.03.2-ce" }), base, "a new ref rebuilds");
    assert.notEqual(create({ ...hostsStack(), makeVars: { GO_VERSION: "1.22" } }), base, "make variables rebuild");
});

test("secrets: private keys never appear in clear in registered inputs", () => {
    const run = runProgram(hostsStack());
    const keyBody = TEST_PRIVATE_KEY.split("\n")[1];
    const keyB64 = Buffer.from(TEST_PRIVATE_KEY).toString("base64").slice(0, 60);
    const withKey = run.resources.filter((r) => JSON.stringify(r.inputs).includes(keyBody)).map((r) => r.name);
    assert.deepEqual(
        withKey.sort(),
        ["forklift-10-0-0-3-install", "forklift-builder-bootstrap", "forklift-check", "forklift-fork-build", "forklift-h1-install", "forklift-precheck"],
        "the key does reach the builder's SSH connections, and the jobs of the two installs, the check and the precheck (as secrets)",
    );
    for (const r of run.resources) {
        // (where the key is, the state shows a secret in its place)
        if (withKey.includes(r.name)) assert.match(JSON.stringify(r.redacted), /"\[secret\]"/, `${r.name}'s key is kept as a secret`);
        assert.ok(!JSON.stringify(r.redacted).includes(keyBody), `${r.name} carries the private key in clear`);
        assert.ok(!JSON.stringify(r.redacted).includes(keyB64), `${r.name} carries the private key's base64 in clear`);
    }
});

test("bad config fails before any resource is registered", () => {
    const run = runProgram({ ...hostsStack(), batchSize: 9, fleetCount: -2 });
    assert.match(run.error ?? "", /forklift:batchSize: got 9; expected a number no larger than the fleet/);
    assert.match(run.error ?? "", /forklift:fleetCount: got "-2"/);
    assert.deepEqual(run.resources, []);
});

test("a private key config for EC2 is used for the key pair, not regenerated", () => {
    const run = runProgram({ ...ec2Stack, sshPrivateKey: TEST_PRIVATE_KEY });
    assert.equal(byType(run, "tls:index/privateKey:PrivateKey").length, 3, "only the 3 host keys are generated");
    assert.ok(run.invokes.some((i) => i.token === "tls:index/getPublicKey:getPublicKey"));
    assert.equal(named(run, "forklift-key").inputs.publicKey, "ssh-ed25519 AAAAmockpublic");
});

test("preview of a new stack: with the build still to run, every host's install is planned", () => {
    for (const stack of [hostsStack(), ec2Stack, { ...ec2Stack, fleetBastion: { address: "203.0.113.10", user: "jump", privateKey: TEST_PRIVATE_KEY, hostKey: TEST_HOST_KEY } }]) {
        const run = runProgram(stack, "preview");
        assert.equal(run.error, undefined, "the preview registers without an error");
        const installs = run.resources.filter((r) => r.name.endsWith("-install"));
        assert.equal(installs.length, 2);
        assert.equal(run.invokes.filter((i) => i.token.startsWith("command:")).length, 0, "a preview runs no command");
    }
});

test("identity: a host's install is replaced when its machine changes, uninstalling the old one first", () => {
    const run = runProgram(hostsStack());
    for (const h of ["h1", "10-0-0-3"]) {
        const install = named(run, `forklift-${h}-install`);
        const address = h === "h1" ? "10.0.0.4" : "10.0.0.3";
        assert.deepEqual(install.inputs.triggers, [address, 22], "the machine's address and port replace the install");
        assert.equal(install.deleteBeforeReplace, true, "the old machine is uninstalled before the new one is installed");
    }
    const bootstrap = named(run, "forklift-builder-bootstrap");
    assert.deepEqual(bootstrap.inputs.triggers, ["10.0.0.2", 22]);
    assert.equal(bootstrap.deleteBeforeReplace, true);
    const moved = runProgram({ ...hostsStack(), fleetHosts: [{ ...(hostsStack().fleetHosts as any[])[0], address: "10.0.0.44" }, (hostsStack().fleetHosts as any[])[1]] });
    assert.deepEqual(named(moved, "forklift-h1-install").inputs.triggers, ["10.0.0.44", 22], "a new address is a new trigger");
});

test("a private key stored without its final newline reaches SSH with it", () => {
    const stack = hostsStack();
    (stack.fleetHosts as any[])[0].privateKey = TEST_PRIVATE_KEY.trimEnd();
    (stack.builderHost as any).privateKey = TEST_PRIVATE_KEY.replace(/\n/g, "\r\n").trimEnd();
    const run = runProgram(stack);
    assert.equal(run.error, undefined);
    assert.equal(named(run, "forklift-fork-build").inputs.connection.privateKey, TEST_PRIVATE_KEY);
    const job = jobOf(named(run, "forklift-h1-install"));
    assert.equal(job.artifact.builder.route.privateKey, TEST_PRIVATE_KEY, "the builder's key ends in one newline");
    assert.equal(job.host.route.privateKey, TEST_PRIVATE_KEY, "the host's key ends in one newline");
});
