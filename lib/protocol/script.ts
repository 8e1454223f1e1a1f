/**
 * The scripts of scripts/, as forklift sends them: each travels on the stdin of the command that
 * runs it (see the protocol module of each script: build.ts, bootstrap.ts, host.ts).
 */
import { readFileSync } from "node:fs";
import * as path from "node:path";

export const SCRIPTS_DIR = path.join(__dirname, "..", "..", "scripts");

export type ScriptName = "build-fork.sh" | "forklift-host.sh" | "bootstrap-builder.sh";

/** A line of a script that sources one of its parts (scripts/host/NAME.sh for forklift-host.sh). */
const PART_LINE = /^\. "\$FORKLIFT_PARTS\/([a-z-]+\.sh)"$/;

/**
 * The script NAME as one text: a script in parts (forklift-host.sh, whose jobs live in
 * scripts/host/) travels with each part's text in place of the line that sources it, so the host
 * receives, runs and keeps one file. The lines that only serve a run from a checkout (where the
 * parts are, shellcheck's pointers to them) are left out.
 */
export function readScript(name: ScriptName): string {
    const text = readFileSync(path.join(SCRIPTS_DIR, name), "utf8");
    const partsDir = path.join(SCRIPTS_DIR, "host");
    const out: string[] = [];
    for (const line of text.split("\n")) {
        if (line.startsWith("FORKLIFT_PARTS=") || line.startsWith("# shellcheck source=host/")) continue;
        const part = PART_LINE.exec(line);
        if (!part) {
            out.push(line);
            continue;
        }
        // (its first line, `# shellcheck shell=bash`, is for shellcheck reading the part alone)
        const body = readFileSync(path.join(partsDir, part[1]), "utf8").replace(/^# shellcheck shell=bash\n/, "").replace(/\n$/, "");
        out.push(body);
    }
    return out.join("\n");
}
