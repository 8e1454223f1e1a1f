/**
 * The program's wiring under pulumi.runtime.setMocks: which resources index.ts registers, with
 * which inputs, in which order. Each scenario runs the program in a fresh child process (the
 * Pulumi runtime is process-global), see program-harness.ts.
 */
import { test } from "node:test";
import * as assert from "node:assert/strict";
import { TEST_HOST_KEY, TEST_PRIVATE_KEY, ec2Stack, hostsStack } from "./fixtures";
import { Recorded, Run, runProgram } from "./run-program";
import { artifactCommand } from "../../lib/protocol/artifact";

/** The "<name> <base64>" lines of scripts/artifact.sh's stdin, decoded. */
const stdinOf = (r: Recorded): Record<string, string> =>
    Object.fromEntries((r.inputs.stdin as string).trim().split("\n").map((l) => [l.split(" ")[0], Buffer.from(l.split(" ")[1], "base64").toString()]));
/** The host blocks of the stdin of `artifact.sh prechecks` or `checks`, decoded: each host's variables and key lines. */
const precheckHostsOf = (r: Recorded): { vars: Record<string, string>; keys: Record<string, string> }[] => {
    const hosts: { vars: Record<string, string>; keys: Record<string, string> }[] = [];
    for (const line of (r.inputs.stdin as string).trim().split("\n")) {
        const [name, data] = line.split(" ");
        const text = Buffer.from(data, "base64").toString();
        if (name === "vars") {
            assert.ok(text.endsWith("\0"), "every pair ends in a NUL byte");
            hosts.push({ vars: Object.fromEntries(text.slice(0, -1).split("\0").map((kv) => [kv.slice(0, kv.indexOf("=")), kv.slice(kv.indexOf("=") + 1)])), keys: {} });
        } else {
            assert.ok(hosts.length > 0, `the key line ${name} comes after a vars line`);
            hosts[hosts.length - 1].keys[name] = text;
        }
    }
    return hosts;
};
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
        assert.match(inst.inputs.userData, /FORKLIFT_SSH_HOST_KEY_B64=/, `${inst.name} gets its pinned host key`);
    }
    assert.equal(byType(run, "tls:index/privateKey:PrivateKey").length, 4, "login key + 3 host keys");
});

test("EC2 mode: every connection pins the host key, and launched hosts skip uninstall on destroy", () => {
    const run = runProgram(ec2Stack);
    const commands = run.resources.filter((r) => r.type.startsWith("command:remote:"));
    assert.equal(commands.length, 2, "the builder's bootstrap and build");
    for (const c of commands) {
        assert.match(c.inputs.connection.hostKey, /^ssh-ed25519 /, `${c.name} pins the host key`);
        assert.ok(c.deletedWith, `${c.name} is deleted with its instance`);
    }
    const installs = run.resources.filter((r) => r.name.endsWith("-install"));
    assert.equal(installs.length, 2, "one install per fleet instance");
    for (const c of installs) {
        assert.match(c.inputs.create, /FORKLIFT_BUILDER_HOST_KEY='ssh-ed25519 /, `${c.name} pins the builder's key`);
        assert.match(c.inputs.create, /FORKLIFT_TARGET_HOST_KEY='ssh-ed25519 /, `${c.name} pins the host's key`);
        assert.match(c.inputs.delete, /FORKLIFT_TARGET_HOST_KEY='ssh-ed25519 /, `${c.name}'s uninstall pins the host's key`);
        assert.ok(c.deletedWith, `${c.name} is deleted with its instance`);
    }
    const install = named(run, "forklift-fleet-1-install");
    assert.equal(install.deletedWith, "forklift-fleet-1");
    assert.match(stdinOf(install).install, /sudo -n env /, "non-root login user goes through sudo");
});

test("a fleet bastion: launched fleet instances get no public IP and are reached through it", () => {
    const bastion = { address: "203.0.113.10", user: "jump", privateKey: TEST_PRIVATE_KEY, hostKey: TEST_HOST_KEY };
    const run = runProgram({ ...ec2Stack, sshAllowedCidrs: ["10.0.0.0/16"], fleetBastion: bastion });
    assert.equal(run.error, undefined);
    for (const name of ["forklift-fleet-1", "forklift-fleet-2"]) {
        assert.equal(named(run, name).inputs.associatePublicIpAddress, false, `${name} has no public IP`);
    }
    assert.equal(named(run, "forklift-builder-ec2").inputs.associatePublicIpAddress, undefined, "the builder keeps its egress");
    const install = named(run, "forklift-fleet-1-install");
    assert.match(install.inputs.create, /FORKLIFT_TARGET_ADDRESS=10\.0\.0\.9 /, "reached at its private address");
    assert.match(install.inputs.create, /FORKLIFT_TARGET_PROXY_ADDRESS=203\.0\.113\.10 FORKLIFT_TARGET_PROXY_HOST_KEY='ssh-ed25519 \S+' FORKLIFT_TARGET_PROXY_PORT=22 FORKLIFT_TARGET_PROXY_USER=jump /, "through the bastion, its host key pinned too");
    assert.match(install.inputs.delete, /FORKLIFT_TARGET_PROXY_ADDRESS=203\.0\.113\.10 /, "the uninstall goes the same way");
    assert.deepEqual(Object.keys(stdinOf(install)), ["builder", "target", "target-proxy", "install", "uninstall"]);
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
    assert.deepEqual(check.dependsOn, [], "the check waits for the build's result only (artifact.sh lets it ride on the precheck's connections)");
    assert.match(check.inputs.create, /^FORKLIFT_CHECK_KEY=\w{32} FORKLIFT_HOSTS=h1,10-0-0-3 bash scripts\/artifact\.sh checks$/, "the hosts in rollout order");
    assert.equal(check.inputs.delete, undefined, "nothing to undo");
    assert.equal(check.deletedWith, undefined);
    const checked = precheckHostsOf(check);
    assert.deepEqual(checked.map((h) => h.vars.FORKLIFT_HOST), ["h1", "10-0-0-3"]);
    const check1 = checked[0];
    assert.match(artifactCommand("check", check1.vars), /FORKLIFT_TARGET_ADDRESS=10\.0\.0\.4 .*FORKLIFT_TARGET_HOST_KEY='ssh-ed25519 .* bash scripts\/artifact\.sh check$/);
    assert.equal(check1.vars.FORKLIFT_NEED_KIB, "5", "room for the 1234-byte artifact four times over");
    assert.equal(check1.vars.FORKLIFT_SHA256, "b".repeat(64), "none where the release is unpacked already");
    assert.equal(check1.vars.FORKLIFT_CONNECT_TIMEOUT, "10", "sshConnectTimeout's default");
    assert.deepEqual(Object.keys(check1.keys), ["target"], "only the host's key");
    // one precheck for all existing hosts: one of the engine's parallel slots, not one per host
    const precheck = named(run, "forklift-precheck");
    assert.equal(precheck.type, "command:local:Command");
    assert.deepEqual(precheck.dependsOn, [], "the precheck waits for nothing: it runs while the fork builds");
    assert.match(precheck.inputs.create, /^FORKLIFT_CHECK_KEY=\w{32} FORKLIFT_HOSTS=h1,10-0-0-3 bash scripts\/artifact\.sh prechecks$/, "the hosts in rollout order");
    assert.doesNotMatch(precheck.inputs.create, /FORKLIFT_NEED_KIB/, "the release's size is not known yet");
    const prechecked = precheckHostsOf(precheck);
    assert.deepEqual(prechecked.map((h) => h.vars.FORKLIFT_HOST), ["h1", "10-0-0-3"]);
    for (const [i, h] of prechecked.entries()) {
        const { FORKLIFT_NEED_KIB, FORKLIFT_SHA256, ...rest } = checked[i].vars;
        assert.ok(FORKLIFT_NEED_KIB && FORKLIFT_SHA256);
        assert.deepEqual(h.vars, rest, "each host's precheck is its check, but for the disk space");
        assert.deepEqual(h.keys, checked[i].keys, "with the same key");
    }
    assert.equal(precheck.deletedWith, undefined);
    assert.equal(precheck.inputs.delete, undefined, "nothing to undo");
    assert.equal(install1.type, "command:local:Command", "the copy and install run from the machine of `pulumi up`");
    assert.match(install1.inputs.create, / bash scripts\/artifact\.sh install$/);
    assert.match(install1.inputs.create, /FORKLIFT_SHA256=b{64} /, "what the host checks the copy against");
    assert.match(install1.inputs.create, /FORKLIFT_REMOTE_PATH=\/var\/lib\/forklift-build\/k\/out\/docker-18\.03\.1-ce\.tgz/, "fetched from the build's path");
    assert.match(install1.inputs.create, /FORKLIFT_BUILDER_HOST_KEY='ssh-ed25519 /, "the fetch pins the builder's host key");
    assert.match(install1.inputs.create, /FORKLIFT_TARGET_ADDRESS=10\.0\.0\.4 .*FORKLIFT_TARGET_HOST_KEY='ssh-ed25519 /, "the copy pins the host's key");
    assert.match(install1.inputs.create, /FORKLIFT_CACHE_DIR=\.forklift\/artifacts /, "a project-relative cache: the same command on every checkout");
    assert.equal(install1.inputs.dir, undefined, "no machine-specific directory in the state");
    const stdin = stdinOf(install1);
    assert.deepEqual(Object.keys(stdin), ["builder", "target", "install", "uninstall"], "keys and remote commands on stdin");
    assert.match(stdin.install, /FORKLIFT_SHA256=b{64} .*bash "\$f" install;/, "installs the built sha256");
    assert.match(stdin.uninstall, /forklift-host\.sh uninstall/);
    // the stack's random identity, kept in its state, is the owner recorded on every host
    const identity = named(run, "forklift-stack-identity");
    assert.equal(identity.type, "random:index/randomId:RandomId");
    assert.equal(identity.inputs.byteLength, 8);
    for (const cmd of [stdin.install, stdin.uninstall, artifactCommand("check", check1.vars)]) {
        assert.match(cmd, /FORKLIFT_OWNER=forklift\/test\/h1 /);
        assert.match(cmd, /FORKLIFT_STACK_ID=5eed5eed5eed5eed /);
    }
    assert.equal(run.outputs.stackIdentity, "5eed5eed5eed5eed");
    assert.match(install1.inputs.delete, /FORKLIFT_TARGET_ADDRESS=10\.0\.0\.4 .* bash scripts\/artifact\.sh uninstall$/, "destroy uninstalls");
    assert.equal(install1.deletedWith, undefined, "existing hosts are cleaned up on destroy");
    assert.equal(run.invokes.filter((i) => i.token.startsWith("command:")).length, 0, "no command runs at preview time");

    assert.equal(run.outputs.artifact.sha256, "b".repeat(64));
    assert.equal(run.outputs.artifact.commit, "c".repeat(40));
    assert.equal(run.outputs.hosts.length, 2);
    assert.equal(run.outputs.hosts[0].name, "h1");
    assert.equal(run.outputs.hosts[0].address, "10.0.0.4");
    assert.equal(run.outputs.builderSshCommand, "ssh root@10.0.0.2");
});

test("hosts mode: batchSize 2 puts both hosts in one batch", () => {
    const run = runProgram({ ...hostsStack(), batchSize: 2 });
    assert.deepEqual(named(run, "forklift-10-0-0-3-install").dependsOn, ["forklift-check", "forklift-precheck"]);
    assert.deepEqual(named(run, "forklift-h1-install").dependsOn, ["forklift-check", "forklift-precheck"]);
});

/** The FORKLIFT_CHECK_KEY of the resource NAME for STACK: a new key runs the check again. */
const checkKeyOf = (name: string) => (stack: Record<string, unknown>) => /FORKLIFT_CHECK_KEY=(\w+)/.exec(named(runProgram(stack), name).inputs.create)?.[1];

/** Asserts that KEY changes with each install setting, and not with a rollout setting; returns the base key. */
function assertKeyFollowsInstall(key: (stack: Record<string, unknown>) => string | undefined): string {
    const base = key(hostsStack());
    assert.ok(base);
    assert.equal(key({ ...hostsStack(), batchSize: 2 }), base, "a rollout setting changes no install");
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
    assert.match(named(run, "forklift-precheck").inputs.create, /FORKLIFT_HOSTS=h1,10-0-0-3 /, "only the existing hosts beside it");
    assert.match(named(run, "forklift-check").inputs.create, /FORKLIFT_HOSTS=h1,10-0-0-3,forklift-fleet-1 bash/, "the check after the build checks it too");
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
    assert.match(named(run, "forklift-h1-install").inputs.create, /FORKLIFT_CONNECT_TIMEOUT=4 /);
    assert.equal(precheckHostsOf(named(run, "forklift-check"))[0].vars.FORKLIFT_CONNECT_TIMEOUT, "4");
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
    const withKey = run.resources.filter((r) => JSON.stringify(r.inputs).includes(keyBody));
    assert.equal(withKey.length, 2, "the key does reach the builder's SSH connections (as a secret)");
    const withKeyB64 = run.resources.filter((r) => JSON.stringify(r.inputs).includes(keyB64));
    assert.equal(withKeyB64.length, 4, "and the stdin of the two installs, the check and the precheck (as a secret)");
    for (const r of run.resources) {
        assert.ok(JSON.stringify(r.inputs).length > 2, `${r.name} has inputs`);
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
    const stdin = stdinOf(named(run, "forklift-h1-install"));
    assert.equal(stdin.builder, TEST_PRIVATE_KEY, "the builder's key ends in one newline");
    assert.equal(stdin.target, TEST_PRIVATE_KEY, "the host's key ends in one newline");
});
