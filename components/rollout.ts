import * as pulumi from "@pulumi/pulumi";
import * as command from "@pulumi/command";
import { hashInputs } from "../lib/hash";
import { HostStatus } from "../lib/protocol/host";
import { CheckedHost, checkedHost, checksJob, hostScriptHash, localCommand } from "../lib/protocol/local";
import { planBatches } from "../lib/rollout";
import { ArtifactSource } from "../local/jobs";
import { ReachableHost, remoteHost } from "./connection";
import { Artifact, FleetHost, hostOwner } from "./fleet-host";

export interface RolloutArgs {
    /** Fleet hosts in rollout order: existing hosts as listed, then launched instances. */
    hosts: ReachableHost[];
    /**
     * Hosts upgraded at once (`batchSize`, 1 unless set). A batch starts only after every host
     * of the previous one verified; a failed host stops the batches after it.
     */
    batchSize: number;
    artifact: Artifact;
    /** Where the binaries are linked on each host (see FleetHostArgs). */
    installDir: string;
    /** Managed daemon.json, or null for the hosts' own (see FleetHostArgs). */
    daemonJson: Record<string, unknown> | null;
    /** Local artifact cache directory (see FleetHostArgs). */
    cacheDir: string;
    /** Skip host key checks (explicit opt-in, warned). */
    insecureSkipHostKeyCheck: boolean;
    /** The stack's random identity, recorded on every host as its owner (see FleetHostArgs). */
    stackId: pulumi.Input<string>;
}

/**
 * The release rolled out over the fleet, batch by batch. While the fork builds, the existing
 * hosts are prechecked, all in one local command (`NAME-precheck`); when it is built, every host
 * is checked for the room it needs, in another (`NAME-check`), before the first batch starts.
 */
export class Rollout extends pulumi.ComponentResource {
    /** Absent when every host is a launched instance (see createPrecheck). */
    readonly precheck?: command.local.Command;
    readonly statuses: pulumi.Output<(HostStatus & { address: string })[]>;

    constructor(name: string, args: RolloutArgs, opts?: pulumi.ComponentResourceOptions) {
        super("forklift:index:Rollout", name, {}, opts);
        const parent = this;
        // where the artifact is fetched from into the local cache, once, and staged on the hosts
        const source = pulumi
            .all([remoteHost(args.artifact.builder, args.insecureSkipHostKeyCheck), args.artifact.remotePath, args.artifact.sha256])
            .apply(([builder, path, sha256]): ArtifactSource => ({ sha256, path, builder, cacheDir: args.cacheDir }));
        const precheck = (this.precheck = createPrecheck());
        // The first batch waits for the check of every host (and the precheck): a host that is
        // down, has a wrong key or too little room stops the rollout before any host changes. The
        // check is made from every host's install, so it comes after them; the first batch is
        // given a promise of it, settled before this constructor returns (a component's
        // dependents collect its children when it is constructed: none may come later).
        let settleChecks!: (checks: pulumi.Resource[]) => void;
        const checks = new Promise<pulumi.Resource[]>((resolve) => (settleChecks = resolve));
        const hosts: FleetHost[] = [];
        let previous: FleetHost[] = [];
        for (const batch of planBatches(args.hosts, args.batchSize)) {
            const current = batch.map((host) => createFleetHost(host, previous.length > 0 ? previous.map((p) => p.install) : checks));
            hosts.push(...current);
            previous = current;
        }
        settleChecks([createCheck(hosts), ...(precheck ? [precheck] : [])]);
        this.statuses = pulumi.all(hosts.map((h, i) => pulumi.all([h.status, args.hosts[i].address]).apply(([s, address]) => ({ ...s, address }))));
        this.registerOutputs({ statuses: this.statuses });

        function createFleetHost(host: ReachableHost, after: pulumi.Resource[] | Promise<pulumi.Resource[]>): FleetHost {
            return new FleetHost(
                fleetHostName(name, host),
                {
                    host,
                    formerName: host.instance ? `${name}-${host.name}` : undefined,
                    artifact: args.artifact,
                    source,
                    installDir: args.installDir,
                    daemonJson: args.daemonJson,
                    after,
                    insecureSkipHostKeyCheck: args.insecureSkipHostKeyCheck,
                    stackId: args.stackId,
                },
                { parent },
            );
        }

        // While the fork builds, the existing hosts are checked for all but the room the release
        // needs (its size is not known yet): a wrong host key or login, or a host that is down,
        // stops the `pulumi up` at its start instead of after a build of minutes. One local
        // command checks them all at once, so that it takes one of the engine's parallel slots
        // (4 per CPU unless --parallel), not one per host while the build step waits for one. It
        // runs whenever the build's inputs, the install settings or the list of existing hosts
        // change. Launched instances get none: they may still be booting then.
        function createPrecheck(): command.local.Command | undefined {
            const existing = args.hosts.filter((h) => !h.instance);
            if (existing.length === 0) return undefined;
            const hosts = existing.map((h) => pulumi.all([remoteHost(h, args.insecureSkipHostKeyCheck), hostOwner(h, args.stackId)]).apply(([remote, owner]) => checkedHost(remote, owner)));
            const key = pulumi.all(hosts).apply((all) =>
                hashInputs({
                    build: args.artifact.buildKey,
                    installDir: args.installDir,
                    daemonJson: args.daemonJson,
                    script: hostScriptHash(),
                    hosts: all,
                }),
            );
            return checkAll("precheck", hosts, key);
        }

        // When the fork is built, every host is checked once more, for the room the release needs
        // (its size is known now) and all the precheck checked (a launched instance gets no
        // precheck), and the release is staged on it: all in one local command, one of the
        // engine's slots. It runs whenever any host's install is about to run (its key is made of
        // theirs), so that no host changes before every host took the release.
        function createCheck(hosts: FleetHost[]): command.local.Command {
            const key = pulumi.all(hosts.map((h) => h.installKey)).apply(hashInputs);
            return checkAll("check", hosts.map((h) => h.checkHost), key, source);
        }

        // One local command (`main.ts check`, NAME-PHASE) that checks HOSTS at once (and stages
        // ARTIFACT on them); a new KEY runs it again.
        function checkAll(phase: "precheck" | "check", hosts: pulumi.Output<CheckedHost>[], key: pulumi.Output<string>, artifact?: pulumi.Output<ArtifactSource>) {
            const job = pulumi.all([pulumi.all(hosts), artifact]).apply(([all, source]) => checksJob(phase, args.insecureSkipHostKeyCheck, all, source));
            return new command.local.Command(
                `${name}-${phase}`,
                {
                    // (the key hashes the secret job too, but a hash of it gives nothing away)
                    create: pulumi.unsecret(key).apply((k) => localCommand("check", phase, k.slice(0, 16))),
                    stdin: pulumi.secret(job.apply((j) => JSON.stringify(j))),
                    addPreviousOutputInEnv: false,
                },
                { parent },
            );
        }
    }
}

/**
 * The FleetHost's name: forklift-NAME for an existing host, and a launched instance's own name
 * (forklift-fleet-N, already prefixed). Launched instances' FleetHosts were forklift-forklift-fleet-N
 * before: they keep that URN through their `formerName` aliases. The config refuses an existing
 * host named fleet-N while N instances are launched, which would take the same name.
 */
function fleetHostName(name: string, host: ReachableHost): string {
    return host.instance ? host.name : `${name}-${host.name}`;
}
