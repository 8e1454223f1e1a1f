/**
 * Runs forklift's index.ts through the real pulumi CLI (Automation API, inline program, local
 * file backend) for a list of stacks read from stdin as JSON [{name, values, probe?}], and prints
 * one JSON line: for each stack, the error text of `pulumi preview` and of `pulumi up` (null when
 * they succeeded), the resources left in its state and the outputs of `up`. A separate process, because a program
 * that stops on bad config leaves an unhandled rejection behind in the process that ran it.
 */
import { execFileSync } from "node:child_process";
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import * as yaml from "js-yaml";
import { LocalWorkspace, PulumiCommand } from "@pulumi/pulumi/automation";

const ROOT = path.join(__dirname, "..", "..");
process.on("unhandledRejection", () => undefined);

async function program(): Promise<Record<string, unknown>> {
    for (const id of Object.keys(require.cache)) {
        if (id.startsWith(ROOT) && !id.includes("node_modules") && !id.includes(`${path.sep}test${path.sep}`)) delete require.cache[id];
    }
    // the program is an async function, as the Pulumi runtime runs it
    const main = require(path.join(ROOT, "index.ts"));
    if (typeof main !== "function") throw new Error("index.ts exports the program as a function");
    return await main();
}

/**
 * A stack with `probe: true` runs this instead of index.ts: it registers nothing and returns the
 * config the CLI hands to a program (Pulumi.yaml's defaults included) as its one output.
 */
async function probe(): Promise<Record<string, unknown>> {
    const pulumi = require("@pulumi/pulumi") as typeof import("@pulumi/pulumi");
    return { config: pulumi.runtime.allConfig() };
}

async function errorOf(run: () => Promise<unknown>): Promise<string | null> {
    try {
        await run();
        return null;
    } catch (e: any) {
        return String(e?.message ?? e);
    }
}

async function main(): Promise<void> {
    let input = "";
    for await (const chunk of process.stdin) input += chunk;
    const stacks = JSON.parse(input) as { name: string; values: Record<string, unknown>; probe?: boolean }[];

    const line = execFileSync("bash", [path.join(ROOT, "tools", "pulumi-toolchain.sh"), "cli"], { encoding: "utf8" });
    const bin = /export PATH="([^:"]+)/.exec(line)?.[1];
    if (!bin) throw new Error(`tools/pulumi-toolchain.sh cli printed no PATH line: ${line}`);
    const pulumi = await PulumiCommand.get({ root: path.dirname(bin), skipVersionCheck: true });

    const work = mkdtempSync(path.join(tmpdir(), "forklift-engine-"));
    const results = [];
    try {
        copyFileSync(path.join(ROOT, "Pulumi.yaml"), path.join(work, "Pulumi.yaml"));
        mkdirSync(path.join(work, "state"));
        for (const { name, values, probe: probing } of stacks) {
            const config: Record<string, unknown> = {};
            for (const [k, v] of Object.entries(values)) config[`forklift:${k}`] = v;
            writeFileSync(path.join(work, `Pulumi.${name}.yaml`), yaml.dump({ config }));
            const stack = await LocalWorkspace.createOrSelectStack(
                { stackName: name, projectName: "forklift", program: probing ? probe : program },
                {
                    workDir: work,
                    pulumiCommand: pulumi,
                    envVars: {
                        PULUMI_BACKEND_URL: `file://${path.join(work, "state")}`,
                        PULUMI_CONFIG_PASSPHRASE: "forklift-test",
                        PULUMI_HOME: path.join(work, "home"),
                        PULUMI_SKIP_UPDATE_CHECK: "true",
                        PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION: "true",
                        PULUMI_AUTOMATION_API_SKIP_VERSION_CHECK: "true",
                    },
                },
            );
            const preview = await errorOf(() => stack.preview());
            let outputs: Record<string, unknown> = {};
            const up = await errorOf(async () => {
                const result = await stack.up();
                outputs = Object.fromEntries(Object.entries(result.outputs).map(([k, v]) => [k, v.value]));
            });
            const state = await stack.exportStack();
            const resources = (state.deployment?.resources ?? []).map((r: { type: string; urn: string }) => ({ type: r.type, urn: r.urn }));
            results.push({ name, preview, up, resources, outputs });
        }
    } finally {
        rmSync(work, { recursive: true, force: true });
    }
    // exit only once the line is flushed: past the pipe's buffer a plain exit cuts it short
    process.stdout.write(JSON.stringify(results) + "\n", () => process.exit(0));
}

main().catch((e) => {
    process.stderr.write(`${e?.stack ?? e}\n`);
    process.exit(1);
});
