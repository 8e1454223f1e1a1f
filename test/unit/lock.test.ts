/**
 * local/lock.ts: a lock is held by one process at a time, across processes, and a holder that is
 * killed lets it go (a lock "cannot be taken twice", and a crash leaves none behind).
 */
import { test } from "node:test";
import * as assert from "node:assert/strict";
import { spawn } from "node:child_process";
import * as path from "node:path";
import { isHeld, takeLock, takeOneOf } from "../../local/lock";

const unique = (what: string) => `test-${what}-${process.pid}-${Date.now()}`;

/** A separate node process that takes NAME, says "held", and keeps it until killed. */
function holderProcess(name: string): Promise<{ kill: () => Promise<void> }> {
    const code = `require(${JSON.stringify(path.join(__dirname, "..", "..", "local", "lock.ts"))}).takeLock(${JSON.stringify(name)}).then(() => { console.log("held"); setInterval(() => {}, 1000); })`;
    const child = spawn(process.execPath, ["--require", "tsx/cjs", "-e", code], { stdio: ["ignore", "pipe", "inherit"] });
    return new Promise((resolve, reject) => {
        child.stdout.on("data", (d: Buffer) => {
            if (d.toString().includes("held")) resolve({ kill: () => new Promise((done) => (child.on("exit", () => done()), child.kill("SIGKILL"))) });
        });
        child.on("exit", (c) => reject(new Error(`the holder exited ${c} before it held ${name}`)));
    });
}

test("a lock held by another process is held; once that process is killed, it is free and can be taken", async () => {
    const name = unique("kill");
    const holder = await holderProcess(name);
    assert.equal(await isHeld(name), true);
    await holder.kill();
    // (the perl child sees its stdin close and exits a moment later)
    let free = false;
    for (let i = 0; i < 50 && !free; i++) {
        free = !(await isHeld(name));
        if (!free) await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal(free, true, "a killed holder's lock is free");
    const release = await takeLock(name);
    assert.equal(await isHeld(name), true, "held by this process now (isHeld asks as another holder would)");
    release();
});

test("a second taker waits until the first lets go: never two holders at once", async () => {
    const name = unique("wait");
    const first = await takeLock(name);
    const got: (() => void)[] = [];
    const waiting = takeLock(name).then((r) => got.push(r));
    await new Promise((r) => setTimeout(r, 500));
    assert.equal(got.length, 0, "the second is still waiting");
    first();
    await waiting;
    assert.equal(got.length, 1, "the second holds it once the first let go");
    got[0]();
});

test("takeOneOf gives distinct slots, and waits while all are held", async () => {
    const slots = [unique("slot0"), unique("slot1")];
    const a = await takeOneOf(slots, 100);
    const b = await takeOneOf(slots, 100);
    assert.notEqual(a.name, b.name);
    let c: { name: string; release: () => void } | undefined;
    const waiting = takeOneOf(slots, 100).then((x) => (c = x));
    await new Promise((r) => setTimeout(r, 400));
    assert.equal(c, undefined, "no third slot");
    b.release();
    await waiting;
    assert.equal(c!.name, b.name, "the slot let go");
    a.release();
    c!.release();
});
