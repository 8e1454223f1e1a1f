/**
 * SSH connections for the command provider, built from validated config. Private keys are always
 * wrapped as Pulumi secrets, so they never reach the state file or the console in clear text.
 */
import * as pulumi from "@pulumi/pulumi";
import * as command from "@pulumi/command";
import { SshTarget } from "../lib/config";

export type Connection = command.types.input.remote.ConnectionArgs;

/** How long to keep dialing a host that is still booting (EC2) or briefly unreachable. */
export const DIAL = { dialErrorLimit: 30, perDialTimeout: 10 };

/** One SSH hop (a host or its bastion). */
function hop(t: Omit<SshTarget, "name" | "proxy">, insecure: boolean): Connection {
    return {
        host: t.address,
        port: t.port,
        user: t.user,
        // no agentSocketPath: the provider falls back to SSH_AUTH_SOCK, and a stored per-login
        // socket path would make every command look changed (and break deletes later)
        privateKey: t.privateKey ? pulumi.secret(t.privateKey) : undefined,
        hostKey: insecure ? undefined : t.hostKey,
        ...DIAL,
    };
}

export function connectionFor(t: SshTarget, insecure: boolean): Connection {
    return t.proxy ? { ...hop(t, insecure), proxy: hop(t.proxy, insecure) } : hop(t, insecure);
}

/** A host forklift talks to: its connection, and what to say about it in outputs. */
export interface ReachableHost {
    name: string;
    address: pulumi.Input<string>;
    port: number;
    user: string;
    connection: pulumi.Input<Connection>;
    /** Public host key line, when known (pinned). */
    hostKey?: pulumi.Input<string>;
    /** Private key for tools outside the provider (scp of the artifact). */
    privateKey?: pulumi.Input<string>;
    /** Launched by forklift: its teardown is the instance's termination. */
    instance?: pulumi.Resource;
}

/** A host listed in the stack config (builderHost, fleetHosts). */
export function configuredHost(t: SshTarget, insecure: boolean): ReachableHost {
    return {
        name: t.name,
        address: t.address,
        port: t.port,
        user: t.user,
        hostKey: t.hostKey,
        privateKey: t.privateKey ? pulumi.secret(t.privateKey) : undefined,
        connection: connectionFor(t, insecure),
    };
}

/** `ssh -p PORT user@host` for the outputs. */
export function sshCommand(h: { address: pulumi.Input<string>; port: number; user: string }): pulumi.Output<string> {
    return pulumi.interpolate`ssh ${h.port === 22 ? "" : `-p ${h.port} `}${h.user}@${h.address}`;
}
