import { test } from "node:test";
import * as assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { needsContainerdUnit, renderDockerService, renderDockerSocket, renderManagedFiles } from "../../lib/units";

test("docker.socket is root:docker 0660 on /run/docker.sock and nothing else", () => {
    const s = renderDockerSocket();
    assert.match(s, /^ListenStream=\/run\/docker\.sock$/m);
    assert.match(s, /^SocketMode=0660$/m);
    assert.match(s, /^SocketUser=root$/m);
    assert.match(s, /^SocketGroup=docker$/m);
    assert.equal((s.match(/^Listen/gm) ?? []).length, 1, "exactly one listener, no TCP");
    assert.match(s, /^WantedBy=sockets.target$/m);
});

const serviceCases: [string, { installDir: string; shipsContainerd: boolean }, RegExp[], RegExp[]][] = [
    [
        "static release with containerd",
        { installDir: "/usr/bin", shipsContainerd: true },
        [/^ExecStart=\/usr\/bin\/dockerd -H fd:\/\/ --containerd=\/run\/containerd\/containerd\.sock$/m, /^Wants=network-online\.target containerd\.service$/m],
        [],
    ],
    [
        "daemon-only release (moby)",
        { installDir: "/usr/bin", shipsContainerd: false },
        [/^ExecStart=\/usr\/bin\/dockerd -H fd:\/\/$/m, /^Wants=network-online\.target$/m],
        [/--containerd/],
    ],
    [
        "custom install dir goes first in PATH",
        { installDir: "/opt/docker/bin", shipsContainerd: true },
        [/^ExecStart=\/opt\/docker\/bin\/dockerd /m, /^Environment=PATH=\/opt\/docker\/bin:\/usr\/local\/sbin:/m],
        [],
    ],
];
for (const [what, opts, present, absent] of serviceCases) {
    test(`docker.service: ${what}`, () => {
        const s = renderDockerService(opts);
        for (const re of present) assert.match(s, re);
        for (const re of absent) assert.doesNotMatch(s, re);
        for (const line of ["Type=notify", "Requires=docker.socket", "KillMode=process", "Delegate=yes", "Restart=always", "OOMScoreAdjust=-500"]) {
            assert.ok(s.split("\n").includes(line), `missing ${line}`);
        }
    });
}

const containerdCases: [string[], boolean][] = [
    [["docker", "dockerd", "containerd", "containerd-shim-runc-v2", "ctr", "runc", "docker-init", "docker-proxy"], true],
    [["docker", "dockerd", "docker-containerd", "docker-containerd-shim", "docker-runc"], false],
    [["dockerd", "docker-proxy"], false],
];
for (const [binaries, expected] of containerdCases) {
    test(`needsContainerdUnit(${binaries.join(",")}) = ${expected}`, () => assert.equal(needsContainerdUnit(binaries), expected));
}

test("managed files: daemon.json is canonical, absent when unmanaged", () => {
    const a = renderManagedFiles({ installDir: "/usr/bin", shipsContainerd: false }, { "log-driver": "journald", "live-restore": true });
    const b = renderManagedFiles({ installDir: "/usr/bin", shipsContainerd: false }, { "live-restore": true, "log-driver": "journald" });
    assert.equal(a["daemon.json"], b["daemon.json"]);
    assert.equal(a["daemon.json"], '{\n  "live-restore": true,\n  "log-driver": "journald"\n}\n');
    assert.equal(a["containerd.service"], undefined);
    assert.equal(renderManagedFiles({ installDir: "/usr/bin", shipsContainerd: true }, null)["daemon.json"], undefined);
});

test("rendered units pass systemd-analyze verify", () => {
    const dir = mkdtempSync(path.join(tmpdir(), "forklift-units-"));
    try {
        const bin = path.join(dir, "bin");
        execFileSync("mkdir", ["-p", bin]);
        for (const b of ["dockerd", "containerd"]) copyFileSync("/bin/true", path.join(bin, b));
        const files = renderManagedFiles({ installDir: bin, shipsContainerd: true }, { "live-restore": true });
        const units = ["docker.socket", "docker.service", "containerd.service"] as const;
        for (const u of units) writeFileSync(path.join(dir, u), files[u]!);
        const r = spawnSync("systemd-analyze", ["verify", ...units.map((u) => path.join(dir, u))], { encoding: "utf8" });
        assert.equal(r.error, undefined, `systemd-analyze could not run: ${r.error}`);
        const complaints = (r.stderr + r.stdout)
            .split("\n")
            .filter((l) => l.trim() && /docker|containerd/.test(l) && !/modprobe/.test(l));
        assert.equal(r.status, 0, `systemd-analyze verify failed:\n${r.stderr}`);
        assert.deepEqual(complaints, []);
    } finally {
        rmSync(dir, { recursive: true, force: true });
    }
});
