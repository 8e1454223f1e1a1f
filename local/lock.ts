/**
 * Locks shared by the local commands of one machine (the installs of one `pulumi up` run as
 * processes of their own): a real flock(2), held by a small perl child for as long as this
 * process holds the lock, so that it cannot be taken twice and is let go when this process ends,
 * however it ends (the child's stdin, a pipe from here, closes). perl is on every Debian, Ubuntu
 * and macOS machine; Node has no flock of its own.
 *
 *   const release = await takeLock("drain-CLUSTER-0");      // waits until it is free
 *   const slot = await takeOneOf(["a", "b"]);               // the first free of several
 *   if (await isHeld("present-CLUSTER-NODE")) ...            // someone holds it now
 */
import { ChildProcess, spawn } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";

/** Exit status of the perl child that found the lock taken (a try that does not wait). */
const BUSY = 3;

// open (creating) the file, flock it (LOCK_NB: or exit BUSY), say so, then hold it until stdin ends
const HOLDER = `use Fcntl qw(:flock); open(my $f, ">>", $ARGV[0]) or die "cannot open $ARGV[0]: $!\\n"; flock($f, $ARGV[1] eq "wait" ? LOCK_EX : LOCK_EX | LOCK_NB) or exit ${BUSY}; $| = 1; print "locked\\n"; 1 while <STDIN>;`;

/** Where the lock files live: one private directory per user. */
export function lockDir(): string {
    const dir = path.join(os.tmpdir(), `forklift-locks-${process.getuid?.() ?? "user"}`);
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    return dir;
}

function lockFile(name: string): string {
    if (!/^[A-Za-z0-9._-]+$/.test(name)) throw new Error(`not a lock name: ${name}`);
    return path.join(lockDir(), `${name}.lock`);
}

/** Takes NAME (WAIT: until it is free); resolves to its release, or to undefined when it is busy and WAIT is false. */
function attempt(name: string, wait: boolean): Promise<(() => void) | undefined> {
    return new Promise((resolve, reject) => {
        const child: ChildProcess = spawn("perl", ["-e", HOLDER, lockFile(name), wait ? "wait" : "try"], { stdio: ["pipe", "pipe", "pipe"] });
        let said = "";
        let err = "";
        child.stdout!.on("data", (d: Buffer) => {
            said += d.toString();
            if (said.startsWith("locked\n")) {
                resolve(() => {
                    child.stdin!.end();
                    child.unref();
                });
            }
        });
        child.stderr!.on("data", (d: Buffer) => (err += d.toString()));
        child.stdin!.on("error", () => undefined);
        child.on("error", (e) => reject(new Error(`cannot run perl for the lock ${name}: ${e.message}`)));
        child.on("exit", (code) => {
            if (said.startsWith("locked\n")) return;
            if (code === BUSY) resolve(undefined);
            else reject(new Error(`the lock ${name} could not be taken: ${err.trim() || `perl exited ${code}`}`));
        });
    });
}

/** Takes the lock NAME, waiting as long as another process holds it; resolves to its release. */
export async function takeLock(name: string): Promise<() => void> {
    return (await attempt(name, true))!;
}

/** Takes the first free lock of NAMES, looking again every POLL_MS while all are held. */
export async function takeOneOf(names: string[], pollMs = 500): Promise<{ name: string; release: () => void }> {
    for (;;) {
        for (const name of names) {
            const release = await attempt(name, false);
            if (release) return { name, release };
        }
        await new Promise((r) => setTimeout(r, pollMs));
    }
}

/** True when another process holds NAME now. */
export async function isHeld(name: string): Promise<boolean> {
    const release = await attempt(name, false);
    release?.();
    return !release;
}
