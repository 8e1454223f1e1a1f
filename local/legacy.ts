/**
 * The uninstall of a fleet host whose resource an older forklift created: its state keeps that
 * delete command (`bash scripts/artifact.sh uninstall`, the route in FORKLIFT_* variables, the
 * keys and the remote command as "<name> <base64>" lines on stdin), and `pulumi destroy` runs it
 * as it is, whatever forklift is checked out. scripts/artifact.sh hands it here.
 */
import { FleetHostJob, Hop } from "../lib/protocol/jobs";
import { InputError } from "./input";

type Env = Record<string, string | undefined>;

/** The uninstall job that the old variables ENV and stdin STDIN describe. */
export function legacyUninstallJob(env: Env, stdin: string): Pick<FleetHostJob, "insecure" | "host" | "uninstall"> {
    const lines = new Map<string, string>();
    for (const line of stdin.split("\n")) {
        const [name, b64] = line.trim().split(" ");
        if (name && b64) lines.set(name, Buffer.from(b64, "base64").toString("utf8"));
    }
    const uninstall = lines.get("uninstall");
    if (!uninstall) throw new InputError("no uninstall command on stdin");
    const hop = (prefix: string, key: string | undefined): Hop => {
        const address = env[`${prefix}_ADDRESS`];
        if (!address) throw new InputError(`${prefix}_ADDRESS is not set`);
        return {
            address,
            port: Number(env[`${prefix}_PORT`] || 22),
            user: env[`${prefix}_USER`] || "root",
            ...(env[`${prefix}_HOST_KEY`] ? { hostKey: env[`${prefix}_HOST_KEY`] } : {}),
            ...(key ? { privateKey: key } : {}),
        };
    };
    const target = hop("FORKLIFT_TARGET", lines.get("target"));
    const proxy = env.FORKLIFT_TARGET_PROXY_ADDRESS ? hop("FORKLIFT_TARGET_PROXY", lines.get("target-proxy")) : undefined;
    return {
        insecure: env.FORKLIFT_INSECURE === "1",
        host: {
            name: env.FORKLIFT_HOST || target.address,
            route: { ...target, ...(proxy ? { proxy } : {}), connectTimeout: Number(env.FORKLIFT_CONNECT_TIMEOUT || 15) },
        },
        uninstall,
    };
}
