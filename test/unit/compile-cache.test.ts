/**
 * lib/compile-cache.js, which Pulumi.yaml's nodeargs load before the Pulumi runtime: each case
 * runs a fresh Node.js with it, as the language host does.
 */
import { test } from "node:test";
import * as assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import * as yaml from "js-yaml";

const ROOT = path.join(__dirname, "..", "..");
const HELPER = path.join(ROOT, "lib", "compile-cache.js");

/** Runs `node --require HELPER -e CODE` with ENV; its stdout, or throws with its stderr. */
function node(code: string, env: Record<string, string | undefined>): string {
    const r = spawnSync(process.execPath, ["--require", HELPER, "-e", code], { cwd: ROOT, env: { ...process.env, ...env }, encoding: "utf8" });
    assert.equal(r.status, 0, `node exited ${r.status}: ${r.stderr}`);
    return r.stdout.trim();
}

const state = `console.log(require(${JSON.stringify(HELPER)}).state)`;
const files = (dir: string): string[] => (existsSync(dir) ? readdirSync(dir, { recursive: true }).map(String) : []);

function withCache(run: (xdg: string) => void): void {
    const xdg = mkdtempSync(path.join(tmpdir(), "forklift-compile-cache-"));
    try {
        run(xdg);
    } finally {
        rmSync(xdg, { recursive: true, force: true });
    }
}

test("Pulumi.yaml has the language host load the compile cache before the program", () => {
    const project = yaml.load(readFileSync(path.join(ROOT, "Pulumi.yaml"), "utf8")) as { runtime: { options: { nodeargs?: string } } };
    assert.equal(project.runtime.options.nodeargs, "--require ./lib/compile-cache.js");
    assert.ok(existsSync(path.join(ROOT, "lib", "compile-cache.js")));
});

test("the compiled code of what a run loads is kept in the user's cache directory, created private", () => {
    withCache((xdg) => {
        const said = node(`require("typescript"); ${state}`, { XDG_CACHE_HOME: xdg, FORKLIFT_COMPILE_CACHE: undefined });
        const dir = path.join(xdg, "forklift", "compile-cache", `${process.platform}-${process.arch}-v8-${process.versions.v8}`);
        assert.match(said, new RegExp(`^(v8-compile-cache|node):${dir.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}$`));
        assert.equal(statSync(dir).mode & 0o777, 0o700);
        const kept = files(dir);
        assert.ok(kept.length > 0, "nothing was written to the cache");
        // the cache holds typescript's compiled code: several MB, not an empty index
        const bytes = kept.map((f) => statSync(path.join(dir, f))).filter((s) => s.isFile()).reduce((n, s) => n + s.size, 0);
        assert.ok(bytes > 1_000_000, `only ${bytes} bytes cached`);
    });
});

test("a module edited after it was cached runs as edited, also when its length stays the same", () => {
    withCache((xdg) => {
        const mod = path.join(xdg, "mod.js");
        writeFileSync(mod, 'module.exports = "first";\n');
        const load = `console.log(require(${JSON.stringify(mod)}))`;
        assert.equal(node(load, { XDG_CACHE_HOME: xdg }), "first");
        assert.equal(node(load, { XDG_CACHE_HOME: xdg }), "first");
        // (V8 itself tells a cached script from its source by length only)
        writeFileSync(mod, 'module.exports = "other";\n');
        assert.equal(node(load, { XDG_CACHE_HOME: xdg }), "other");
    });
});

test("FORKLIFT_COMPILE_CACHE=off leaves it off, and writes nothing", () => {
    withCache((xdg) => {
        assert.equal(node(`require("typescript"); ${state}`, { XDG_CACHE_HOME: xdg, FORKLIFT_COMPILE_CACHE: "off" }), "off");
        assert.deepEqual(files(path.join(xdg, "forklift")), []);
    });
});

test("a cache directory that cannot be made leaves the cache off and the program running", () => {
    withCache((xdg) => {
        // XDG_CACHE_HOME is a file: no directory can be made under it
        const notADir = path.join(xdg, "file");
        writeFileSync(notADir, "");
        const out = node(`${state}; console.log(require("typescript").version)`, { XDG_CACHE_HOME: notADir });
        const [said, version] = out.split("\n");
        assert.match(said, /^failed: /);
        assert.match(version, /^\d+\.\d+\.\d+$/);
    });
});

test("a cache directory others may write to is not used", () => {
    withCache((xdg) => {
        const dir = path.join(xdg, "forklift", "compile-cache", `${process.platform}-${process.arch}-v8-${process.versions.v8}`);
        mkdirSync(dir, { recursive: true });
        chmodSync(dir, 0o777);
        const out = node(`require("typescript"); ${state}`, { XDG_CACHE_HOME: xdg });
        assert.match(out, /^failed: .* is not private to this user$/);
        assert.deepEqual(files(dir), [], "nothing was cached there");
    });
});

test("the program's commands do not inherit the cache's settings", () => {
    withCache((xdg) => {
        assert.equal(node("console.log(process.env.V8_COMPILE_CACHE_CACHE_DIR ?? 'unset')", { XDG_CACHE_HOME: xdg, V8_COMPILE_CACHE_CACHE_DIR: undefined }), "unset");
    });
});
