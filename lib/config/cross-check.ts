/**
 * Cross-checks: the rules no single value can break alone. Keys that the program does not read,
 * with the nearest known key by edit distance (`batchsize`: did you mean `batchSize`?); a fleet
 * that is empty or smaller than a batch; fleet entries that share an address or a name, or take a
 * launched instance's name or fleet-N (whose rollout resources would be a launched instance's); a
 * bastion with nothing to reach; SSH CIDRs when anything is launched; and a pinned host key for
 * every existing machine unless host key checks are off.
 */

import { Reader } from "./reader";
import { CONFIG_KEYS, ForkliftConfig, PROJECT, RawConfig, SshTarget } from "./types";
import { isOpenCidr } from "./validators";

/** A problem line for each `forklift:` key the program does not read, naming the known key it is closest to. */
export function unknownKeys(raw: RawConfig): string[] {
    const problems: string[] = [];
    for (const fullKey of Object.keys(raw)) {
        if (!fullKey.startsWith(`${PROJECT}:`)) continue;
        const key = fullKey.slice(PROJECT.length + 1);
        if (!(CONFIG_KEYS as string[]).includes(key)) {
            const near = nearestKey(key);
            problems.push(`${fullKey}: unknown key${near ? ` (did you mean ${PROJECT}:${near}?)` : ""}; expected one of ${CONFIG_KEYS.join(", ")}`);
        }
    }
    return problems;
}

/** Rules that involve more than one key. */
export function crossCheck(r: Reader, cfg: ForkliftConfig, indexOf: (h: SshTarget) => number): void {
    const fleetSize = cfg.fleetHosts.length + cfg.fleetEc2.count;
    if (fleetSize === 0 && !r.problems.some((p) => p.startsWith(`${PROJECT}:fleet`))) {
        r.fail("fleetHosts", r.value("fleetHosts"), "at least one fleet host (fleetHosts entries or fleetCount > 0)");
    }
    if (fleetSize > 0 && cfg.batchSize > fleetSize) {
        r.fail("batchSize", cfg.batchSize, `a number no larger than the fleet (${fleetSize} hosts)`);
    }

    const seen = new Map<string, string>();
    const names = new Map<string, number>();
    cfg.fleetHosts.forEach((h) => {
        const i = indexOf(h);
        const id = `${h.address.toLowerCase()}:${h.port}`;
        if (seen.has(id)) r.fail(`fleetHosts[${i}].address`, h.address, `an address not already used by ${seen.get(id)}`);
        else seen.set(id, `fleetHosts[${i}]`);
        if (names.has(h.name)) r.fail(`fleetHosts[${i}].name`, h.name, `a name not already used by fleetHosts[${names.get(h.name)}]`);
        else if (launchedFleetNames(cfg.fleetEc2.count).includes(h.name)) {
            r.fail(`fleetHosts[${i}].name`, h.name, `a name other than those of the ${cfg.fleetEc2.count} launched fleet instances (forklift-fleet-N)`);
        } else if (launchedFleetNames(cfg.fleetEc2.count).includes(`${PROJECT}-${h.name}`)) {
            // the rollout names an entry's resources forklift-NAME, and a launched instance's by
            // its own name: fleet-N would take the resources of launched instance forklift-fleet-N
            r.fail(`fleetHosts[${i}].name`, h.name, `a name other than fleet-N while ${cfg.fleetEc2.count} fleet instances are launched (their rollout resources are forklift-fleet-N)`);
        } else names.set(h.name, i);
    });

    const fleetNames = [...cfg.fleetHosts.map((h) => h.name), ...launchedFleetNames(cfg.fleetEc2.count)];
    cfg.swarm.managers.forEach((m, i) => {
        if ("fleetHost" in m && !fleetNames.includes(m.fleetHost)) {
            r.fail(`swarmManagers[${i}].name`, m.fleetHost, `the name of a fleet host (${fleetNames.join(", ") || "none"}), or a manager entry with its address, user, privateKey (or useAgent) and hostKey`);
        }
        if ("external" in m && fleetNames.includes(m.external.name)) {
            r.fail(`swarmManagers[${i}].name`, m.external.name, "a name that is no fleet host's (give a fleet host by its name alone)");
        }
    });

    if (cfg.fleetBastion && cfg.fleetEc2.count === 0) {
        r.fail("fleetBastion", "(set)", "to be unset when fleetCount is 0: it is the bastion of launched fleet instances (existing hosts take a proxy of their own)");
    }
    const launches = cfg.fleetEc2.count > 0 || cfg.builderHost === undefined;
    if (launches) {
        if (cfg.sshAllowedCidrs.length === 0 && r.problems.every((p) => !p.startsWith(`${PROJECT}:sshAllowedCidrs`))) {
            r.fail("sshAllowedCidrs", r.value("sshAllowedCidrs"), "at least one CIDR allowed to reach SSH on launched instances (e.g. your office /32)");
        }
        cfg.sshAllowedCidrs.forEach((c, i) => {
            if (isOpenCidr(c) && !cfg.allowOpenSsh) {
                r.fail(`sshAllowedCidrs[${i}]`, c, "a narrower CIDR; opening SSH to the internet needs allowOpenSsh: true");
            }
        });
    }

    if (!cfg.insecureSkipHostKeyCheck) {
        const targets: [string, SshTarget | SshTarget["proxy"]][] = [];
        cfg.fleetHosts.forEach((h, i) => {
            targets.push([`fleetHosts[${i}]`, h]);
            if (h.proxy) targets.push([`fleetHosts[${i}].proxy`, h.proxy]);
        });
        if (cfg.fleetBastion) targets.push(["fleetBastion", cfg.fleetBastion]);
        cfg.swarm.managers.forEach((m, i) => {
            if (!("external" in m)) return;
            targets.push([`swarmManagers[${i}]`, m.external]);
            if (m.external.proxy) targets.push([`swarmManagers[${i}].proxy`, m.external.proxy]);
        });
        if (cfg.builderHost) targets.push(["builderHost", cfg.builderHost]);
        for (const [key, t] of targets) {
            if (t && !t.hostKey) {
                r.fail(`${key}.hostKey`, undefined, "the host's public SSH key (ssh-keyscan -t ed25519 HOST), or insecureSkipHostKeyCheck: true");
            }
        }
    }
}

/** Names of the fleet instances forklift launches (fleetCount); fleetHosts may not take them. */
export function launchedFleetNames(count: number): string[] {
    return Array.from({ length: count }, (_, i) => `forklift-fleet-${i + 1}`);
}

function nearestKey(key: string): string | undefined {
    let best: [number, string] | undefined;
    for (const k of CONFIG_KEYS) {
        const d = editDistance(key.toLowerCase(), k.toLowerCase());
        if (d <= 3 && (!best || d < best[0])) best = [d, k];
    }
    return best?.[1];
}

function editDistance(a: string, b: string): number {
    const dp = Array.from({ length: b.length + 1 }, (_, j) => j);
    for (let i = 1; i <= a.length; i++) {
        let prev = dp[0];
        dp[0] = i;
        for (let j = 1; j <= b.length; j++) {
            const cur = dp[j];
            dp[j] = Math.min(dp[j] + 1, dp[j - 1] + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
            prev = cur;
        }
    }
    return dp[b.length];
}
