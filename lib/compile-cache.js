"use strict";
/**
 * A persistent V8 compile cache for the program's modules, loaded before the Pulumi runtime by
 * Pulumi.yaml's `nodeargs` (so it is plain JavaScript, not TypeScript).
 *
 * Every program run (a `pulumi up` runs the program twice: preview, then update) has Node.js
 * compile `typescript`, `@pulumi/pulumi`, gRPC and the rest anew: ~0.6 s of a run's CPU on the
 * bench's 2 cores. With the compiled code kept, a run reaches the program ~0.2 s sooner (see
 * BENCHMARKS.md). Node.js 22.1 and later have the cache built in (`module.enableCompileCache`);
 * older ones get the `v8-compile-cache` package. Both check each module's source against what
 * was cached, so an edited file is compiled anew.
 *
 * The cache is the user's: ${XDG_CACHE_HOME:-~/.cache}/forklift/compile-cache/<platform, V8
 * version>, created private (0700), outside the project. FORKLIFT_COMPILE_CACHE=off turns it
 * off; anything that goes wrong here (no home, a read-only disk) leaves it off, silently: the
 * program runs as it would without this file.
 */
const fs = require("node:fs");
const os = require("node:os");
const path = require("node:path");
const nodeModule = require("node:module");

/** The cache directory for this Node.js (V8's code cache is only valid for one V8 version). */
function cacheDir(env) {
    const base = env.XDG_CACHE_HOME || path.join(os.homedir(), ".cache");
    return path.join(base, "forklift", "compile-cache", `${process.platform}-${process.arch}-v8-${process.versions.v8}`);
}

function enable(env) {
    if (env.FORKLIFT_COMPILE_CACHE === "off") return "off";
    const dir = cacheDir(env);
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    // compiled code from this directory is run as the program: only from one that is ours and
    // that no one else may write to (an XDG_CACHE_HOME on a shared disk, say)
    const st = fs.statSync(dir);
    if (st.uid !== process.getuid() || (st.mode & 0o022) !== 0) throw new Error(`${dir} is not private to this user`);
    if (typeof nodeModule.enableCompileCache === "function") {
        nodeModule.enableCompileCache(dir);
        return `node:${dir}`;
    }
    // v8-compile-cache reads its directory from the environment when it is loaded; the program's
    // commands need not see it
    env.V8_COMPILE_CACHE_CACHE_DIR = dir;
    try {
        require("v8-compile-cache");
    } finally {
        delete env.V8_COMPILE_CACHE_CACHE_DIR;
    }
    return `v8-compile-cache:${dir}`;
}

let state;
try {
    state = enable(process.env);
} catch (e) {
    state = `failed: ${e && e.message}`;
}
// what happened, for the tests: off, node:DIR, v8-compile-cache:DIR or failed: WHY
module.exports = { state };
