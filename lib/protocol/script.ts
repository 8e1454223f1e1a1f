/**
 * The scripts of scripts/, as forklift sends them: each travels on the stdin of the command that
 * runs it (see the protocol module of each script: build.ts, bootstrap.ts, host.ts).
 */
import { readFileSync } from "node:fs";
import * as path from "node:path";

export const SCRIPTS_DIR = path.join(__dirname, "..", "..", "scripts");

export type ScriptName = "build-fork.sh" | "forklift-host.sh" | "bootstrap-builder.sh";

export function readScript(name: ScriptName): string {
    return readFileSync(path.join(SCRIPTS_DIR, name), "utf8");
}
