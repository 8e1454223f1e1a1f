/**
 * Runs index.ts under mocks in a fresh child process (the Pulumi runtime is process-global) and
 * returns what program-harness.ts recorded.
 */
import * as assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as path from "node:path";
import type { UrnRecord } from "./program-harness";

export interface Recorded {
    type: string;
    name: string;
    inputs: Record<string, any>;
    dependsOn: string[];
    deletedWith?: string;
    deleteBeforeReplace?: boolean;
    /** inputs with secrets replaced by "[secret]" */
    redacted: Record<string, any>;
}
export interface Run {
    resources: Recorded[];
    invokes: { token: string; args: Record<string, any> }[];
    outputs: Record<string, any>;
    error?: string;
    /** every resource, components included, with its parent chain and aliases */
    urns: UrnRecord[];
    /** the @pulumi provider SDKs the program loaded ("aws", "tls", "random", "command") */
    sdks: string[];
    /** per registered resource name, the URNs the SDK told the engine to wait for */
    dependencies: Record<string, string[]>;
}

/** DEPENDENTS: components ("TYPE::NAME") after which the harness registers a resource that depends on each. */
export function runProgram(stack: Record<string, unknown>, mode: "up" | "preview" = "up", dependents: string[] = [], checkStdout = ""): Run {
    const r = spawnSync(process.execPath, ["--import", "tsx", path.join(__dirname, "program-harness.ts")], {
        input: JSON.stringify(stack),
        env: { ...process.env, FORKLIFT_MOCK_PREVIEW: mode === "preview" ? "1" : "0", FORKLIFT_MOCK_DEPENDENTS: dependents.join(","), FORKLIFT_MOCK_CHECK_STDOUT: checkStdout },
        encoding: "utf8",
        cwd: path.join(__dirname, "..", ".."),
        timeout: 120_000,
    });
    const line = r.stdout.trim().split("\n").pop() ?? "";
    assert.ok(line.startsWith("{"), `harness printed no result (exit ${r.status}):\n${r.stdout}\n${r.stderr}`);
    return JSON.parse(line);
}
