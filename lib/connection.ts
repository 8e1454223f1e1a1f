/**
 * How forklift reaches a host over SSH, described once and rendered for both users of it: the
 * command provider's `connection`, and the local commands' jobs (lib/protocol/jobs.ts). Private keys are
 * always wrapped as Pulumi secrets, so they never reach the state file or the console in clear
 * text.
 */
import * as pulumi from "@pulumi/pulumi";
import * as command from "@pulumi/command";
import { SshTarget } from "./config";
import { Hop, RemoteHost } from "./protocol/jobs";

export type Connection = command.types.input.remote.ConnectionArgs;

/** How long to keep dialing a launched instance that is still booting. */
export const BOOTING_DIAL = { dialErrorLimit: 30, perDialTimeout: 10 };

/** One SSH hop: a host, or the bastion in front of it. */
export interface SshHop {
    address: pulumi.Input<string>;
    port: number;
    user: string;
    /** Public host key line, pinned on every connection (absent only with insecure). */
    hostKey?: pulumi.Input<string>;
    /** Private key (secret); absent means the SSH agent. */
    privateKey?: pulumi.Input<string>;
    /**
     * Seconds one connection attempt may take (sshConnectTimeout): an existing host that does
     * not answer is reported at once instead of being dialed again and again.
     * @default a launched instance's boot: 30 attempts of 10 s
     */
    connectTimeout?: number;
}

/** A host forklift talks to: how to reach it, and what to say about it in outputs. */
export interface ReachableHost extends SshHop {
    name: string;
    /** One bastion hop in front of the host. */
    proxy?: SshHop;
    /** Launched by forklift: its teardown is the instance's termination. */
    instance?: pulumi.Resource;
}

function hopConnection(h: SshHop, insecure: boolean): Connection {
    return {
        host: h.address,
        port: h.port,
        user: h.user,
        // no agentSocketPath: the provider falls back to SSH_AUTH_SOCK, and a stored per-login
        // socket path would make every command look changed (and break deletes later)
        privateKey: h.privateKey ? pulumi.secret(h.privateKey) : undefined,
        hostKey: insecure ? undefined : h.hostKey,
        ...(h.connectTimeout ? { dialErrorLimit: 2, perDialTimeout: h.connectTimeout } : BOOTING_DIAL),
    };
}

/** The command provider's connection for a host (and its bastion). */
export function providerConnection(h: SshHop & { proxy?: SshHop }, insecure: boolean): Connection {
    return h.proxy ? { ...hopConnection(h, insecure), proxy: hopConnection(h.proxy, insecure) } : hopConnection(h, insecure);
}

/** A host (or bastion) hop from validated config; the private key becomes a secret. */
export function configuredHop(t: Omit<SshTarget, "name" | "proxy">, connectTimeout: number): SshHop {
    return {
        address: t.address,
        port: t.port,
        user: t.user,
        hostKey: t.hostKey,
        privateKey: t.privateKey ? pulumi.secret(t.privateKey) : undefined,
        connectTimeout,
    };
}

/** A host listed in the stack config (builderHost, fleetHosts). */
export function configuredHost(t: SshTarget, connectTimeout: number): ReachableHost {
    const proxy = t.proxy ? configuredHop(t.proxy, connectTimeout) : undefined;
    return { name: t.name, ...configuredHop(t, connectTimeout), proxy };
}

/**
 * HOST as the local commands reach it (lib/protocol/jobs.ts): its route, private keys included (the job
 * that carries it is a secret), host keys left out when INSECURE.
 */
export function remoteHost(h: ReachableHost, insecure: boolean): pulumi.Output<RemoteHost> {
    const hop = (x: SshHop): pulumi.Output<Hop> =>
        pulumi.all([x.address, x.hostKey, x.privateKey]).apply(([address, hostKey, privateKey]) => ({
            address,
            port: x.port,
            user: x.user,
            ...(insecure || !hostKey ? {} : { hostKey: hostKey.trim() }),
            ...(privateKey ? { privateKey } : {}),
        }));
    const connectTimeout = h.connectTimeout ?? BOOTING_DIAL.perDialTimeout;
    return pulumi.all([hop(h), h.proxy ? hop(h.proxy) : undefined]).apply(([own, proxy]) => ({
        name: h.name,
        route: { ...own, ...(proxy ? { proxy } : {}), connectTimeout },
    }));
}

/** `ssh -p PORT user@host` for the outputs. */
export function sshCommand(h: { address: pulumi.Input<string>; port: number; user: string }): pulumi.Output<string> {
    return pulumi.interpolate`ssh ${h.port === 22 ? "" : `-p ${h.port} `}${h.user}@${h.address}`;
}
