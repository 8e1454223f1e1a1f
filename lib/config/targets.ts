/**
 * Host targets: how one machine is reached, read from its entry in the stack (`builderHost`,
 * `fleetBastion`, each of `fleetHosts` and their `proxy`). An entry becomes an `SshTarget` with its
 * defaults filled in (port 22, user root, a name derived from the address) and its key
 * normalized, or gives a problem line for each bad or unknown field. Rules across entries
 * (duplicate addresses and names, missing host keys) are cross-check.ts's.
 */

import { Reader, optional } from "./reader";
import { SshTarget } from "./types";
import { normalizePrivateKey, valid, Validator } from "./validators";

/** The machines a stack names, as targets; a bad entry is left out (its problems are recorded). */
export interface Hosts {
    builderHost?: SshTarget;
    fleetBastion?: SshTarget;
    fleetHosts: SshTarget[];
    /** fleetHosts[i] of the stack file for each parsed entry: an invalid entry shifts no index. */
    fleetIndex: Map<SshTarget, number>;
}

export function readHosts(r: Reader): Hosts {
    const optionalTarget = (key: "builderHost" | "fleetBastion"): SshTarget | undefined => {
        const v = r.value(key);
        const unset = v === undefined || (typeof v === "object" && v !== null && Object.keys(v).length === 0);
        return unset ? undefined : readTarget(r, key, v, false);
    };
    const builderHost = optionalTarget("builderHost");
    const fleetBastion = optionalTarget("fleetBastion");

    const hostsRaw = r.value("fleetHosts");
    const fleetHosts: SshTarget[] = [];
    const fleetIndex = new Map<SshTarget, number>();
    if (!Array.isArray(hostsRaw)) r.fail("fleetHosts", hostsRaw, "a list of host objects");
    else hostsRaw.forEach((h, i) => {
        const t = readTarget(r, `fleetHosts[${i}]`, h, true);
        if (t) {
            fleetHosts.push(t);
            fleetIndex.set(t, i);
        }
    });
    return { builderHost, fleetBastion, fleetHosts, fleetIndex };
}

/** A host entry (fleetHosts[i], builderHost, swarmManagers[i]) or a proxy entry. */
export function readTarget(r: Reader, key: string, v: unknown, withProxy: boolean): SshTarget | undefined {
    if (typeof v !== "object" || v === null || Array.isArray(v)) {
        r.fail(key, v, "an object with address, user, privateKey (or useAgent: true) and hostKey");
        return undefined;
    }
    const o = v as Record<string, unknown>;
    const allowed = ["name", "address", "port", "user", "privateKey", "useAgent", "hostKey", ...(withProxy ? ["proxy"] : [])];
    for (const k of Object.keys(o)) {
        if (!allowed.includes(k)) r.fail(`${key}.${k}`, o[k], `no such field (known: ${allowed.join(", ")})`);
    }
    let ok = true;
    const str = (field: string, validator: Validator, required: boolean): string | undefined => {
        if (o[field] === undefined && !required) return undefined;
        const good = r.checked(`${key}.${field}`, o[field], validator);
        if (good === undefined) ok = false;
        return good;
    };
    const address = str("address", valid.hostAddress, true);
    const name = str("name", valid.hostName, false);
    const user = str("user", valid.hostUser, false) ?? "root";
    const privateKey = optional(str("privateKey", valid.privateKey, false), normalizePrivateKey);
    const hostKey = str("hostKey", valid.hostKey, false);
    let port = 22;
    if (o.port !== undefined) {
        const p = typeof o.port === "string" && /^\d+$/.test(o.port) ? Number(o.port) : o.port;
        if (typeof p !== "number" || !Number.isInteger(p) || p < 1 || p > 65535) {
            r.fail(`${key}.port`, o.port, "a port number from 1 to 65535");
            ok = false;
        } else port = p;
    }
    let useAgent = false;
    if (o.useAgent !== undefined) {
        if (o.useAgent === true || o.useAgent === "true") useAgent = true;
        else if (!(o.useAgent === false || o.useAgent === "false")) {
            r.fail(`${key}.useAgent`, o.useAgent, "true or false");
            ok = false;
        }
    }
    if (o.privateKey === undefined && !useAgent) {
        r.fail(`${key}.privateKey`, undefined, "a private key (a secret: pulumi config set --secret --path ...), or useAgent: true");
        ok = false;
    }
    let proxy: SshTarget["proxy"];
    if (withProxy && o.proxy !== undefined) {
        const p = readTarget(r, `${key}.proxy`, o.proxy, false);
        if (!p) ok = false;
        else proxy = { address: p.address, port: p.port, user: p.user, privateKey: p.privateKey, useAgent: p.useAgent, hostKey: p.hostKey };
    }
    if (!ok || !address) return undefined;
    return { name: name ?? address.replace(/[^A-Za-z0-9-]/g, "-").toLowerCase(), address, port, user, privateKey, useAgent, hostKey, proxy };
}
