/**
 * npm run demo — forklift's whole job on this machine, with no cloud account: boots four
 * throw-away systemd-nspawn hosts (a build host and three fleet hosts: root, a sudo user, and one
 * running Debian's Docker with a container), serves a fixture Docker fork to the build host,
 * creates a hosts-mode stack `demo`, runs the real `pulumi up` and shows what runs where.
 *
 *   npm run demo                          boot (or reuse) the hosts, pulumi up, show the fleet
 *   npm run demo -- --ref v2              roll out the fork's v2 (batch by batch)
 *   npm run demo -- --recipe moby         build another recipe's fixture (docker-ce, docker-ce-packaging, moby)
 *   npm run demo -- --down                pulumi destroy, then stop and remove the hosts
 *
 * Linux, root, the test bed's Debian packages (testbed/deps.sh), the pulumi CLI with the Node.js
 * language host and the command and random plugins. State: .forklift/demo/ (local backend, passphrase
 * "demo", the hosts' SSH key) and Pulumi.demo.yaml, both gitignored and removed by --down.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { RECIPES, Recipe } from "../lib/config";
import { Lab, LabLayout, PulumiCli, bootLab, configureStack, findPulumi, forkSettings, note, setConfig, sh } from "../testbed/lab";
import { adoptHosts, checkPrerequisites, keepHostsIn, repoRoot, stopHosts } from "../testbed/testbed";
import { serveFixtureForks } from "../testbed/fixture-fork";

const STACK = "demo";
const LAYOUT: LabLayout = {
    builder: { name: "demo-builder", index: 121 },
    fleet: [
        { name: "demo-web1", index: 122 },
        { name: "demo-web2", index: 123, user: "deploy" },
        { name: "demo-web3", index: 124, debianDocker: true },
    ],
};

function parseArgs(argv: string[]): { down: boolean; ref?: string; recipe?: Recipe } {
    const out: { down: boolean; ref?: string; recipe?: Recipe } = { down: false };
    for (let i = 0; i < argv.length; i++) {
        const a = argv[i];
        if (a === "--down") out.down = true;
        else if (a === "--ref" && /^v[12]$/.test(argv[i + 1] ?? "")) out.ref = argv[++i];
        else if (a === "--recipe" && RECIPES.includes(argv[i + 1] as Recipe)) out.recipe = argv[++i] as Recipe;
        else throw new Error(`npm run demo: unknown argument ${a}${a.startsWith("--re") ? " (--ref takes v1 or v2, --recipe one of " + RECIPES.join(", ") + ")" : ""}`);
    }
    return out;
}

async function main(): Promise<void> {
    const args = parseArgs(process.argv.slice(2));
    const root = repoRoot();
    const stateDir = path.join(root, ".forklift", "demo");
    checkPrerequisites();
    findPulumi();
    keepHostsIn(path.join(stateDir, "key"));
    const cli = new PulumiCli(root, path.join(stateDir, "state"), "demo", true);
    const specs = [LAYOUT.builder, ...LAYOUT.fleet];
    const stackExists = (await cli.run(["stack", "select", STACK], "", false)).code === 0;

    if (args.down) {
        await down(cli, stackExists, specs.map((s) => s.name));
        fs.rmSync(stateDir, { recursive: true, force: true });
        note("the demo is gone");
        return;
    }

    let lab: Lab;
    const running = adoptHosts(specs);
    if (running && stackExists) {
        note("the demo hosts are up: reusing them and the demo stack");
        const gateway = running[0].address.replace(/\.2$/, ".1");
        const forks = await serveFixtureForks(gateway);
        lab = { builder: running[0], fleet: running.slice(1).map((h, i) => ({ ...h, login: LAYOUT.fleet[i].user ?? "root" })), forks, stopForks: () => forks.stop() };
    } else {
        if (running || stackExists) {
            note("a half-made demo is here: taking it down first");
            await down(cli, stackExists, specs.map((s) => s.name));
        }
        lab = await bootLab(LAYOUT);
        note(`creating the hosts-mode stack "${STACK}" (Pulumi.${STACK}.yaml)`);
        await configureStack(cli, STACK, lab, { recipe: args.recipe ?? "docker-ce", ref: args.ref ?? "v1" });
    }
    try {
        if (args.recipe || args.ref) {
            const current = (await cli.ok(["config", "get", "recipe"], "", false)).stdout.trim() as Recipe;
            await setConfig(cli, forkSettings(lab, { recipe: args.recipe ?? current, ref: args.ref ?? "v1" }));
        }
        note("pulumi up (the build runs on demo-builder, then the rollout one host at a time)");
        await cli.ok(["up", "--yes"]);
        await show(cli, lab);
    } finally {
        lab.stopForks();
    }
    note(
        [
            "done. Try it yourself, from this directory:",
            `  export PULUMI_BACKEND_URL=file://${path.join(stateDir, "state")} PULUMI_CONFIG_PASSPHRASE=demo`,
            `  pulumi stack select ${STACK} && pulumi stack output hosts`,
            "  npm run demo -- --ref v2        # a new fork ref, rolled out batch by batch",
            "  npm run demo -- --down          # destroy: every host back as it was, then the hosts are removed",
        ].join("\n"),
    );
}

/** What runs where: the stack's view and each host's own answer. */
async function show(cli: PulumiCli, lab: Lab): Promise<void> {
    const out = await cli.outputs();
    const rows = [["host", "address", "login", "release", "dockerd sha256", "docker answers", "containers"]];
    for (const [i, h] of (out.hosts as any[]).entries()) {
        const host = lab.fleet[i];
        rows.push([
            h.name,
            h.address,
            host.login,
            h.version,
            h.dockerdSha256.slice(0, 12),
            sh(host, "docker version --format '{{.Server.Version}}' 2>&1 | head -n 1"),
            sh(host, "docker ps -q | wc -l"),
        ]);
    }
    const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
    console.log(`\nartifact ${out.artifact.sha256.slice(0, 12)} (${out.artifact.recipe} @ ${out.artifact.commit.slice(0, 12)}), built on ${out.builderAddress}\n`);
    for (const r of rows) console.log("  " + r.map((v, c) => v.padEnd(widths[c])).join("  "));
    console.log("");
}

/** Destroys the stack (every host given back), removes it, and stops the hosts. */
async function down(cli: PulumiCli, stackExists: boolean, names: string[]): Promise<void> {
    if (stackExists) {
        note("pulumi destroy: every host is given back as forklift found it");
        const r = await cli.run(["destroy", "--yes"]);
        if (r.code !== 0) note("pulumi destroy failed (are the hosts gone already?); removing the stack anyway");
        await cli.run(["stack", "rm", "--yes", "--force", STACK], "", false);
        fs.rmSync(path.join(repoRoot(), `Pulumi.${STACK}.yaml`), { force: true });
    }
    note(`stopping ${names.join(", ")}`);
    await stopHosts(names);
}

main().catch((e) => {
    process.stderr.write(`\nnpm run demo: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exit(1);
});
