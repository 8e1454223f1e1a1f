import * as pulumi from "@pulumi/pulumi";
import { HostStatus } from "../lib/protocol/host";
import { planBatches } from "../lib/rollout";
import { ReachableHost } from "./connection";
import { Artifact, FleetHost } from "./fleet-host";

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

/** The release rolled out over the fleet, batch by batch. */
export class Rollout extends pulumi.ComponentResource {
    readonly hosts: FleetHost[] = [];
    readonly statuses: pulumi.Output<(HostStatus & { address: string })[]>;

    constructor(name: string, args: RolloutArgs, opts?: pulumi.ComponentResourceOptions) {
        super("forklift:index:Rollout", name, {}, opts);
        // the first batch waits for every host's check: a host that is down or has a wrong key
        // stops the rollout before any host changes
        let checked!: (checks: pulumi.Resource[]) => void;
        const allChecks = new Promise<pulumi.Resource[]>((resolve) => (checked = resolve));
        let previous: FleetHost[] = [];
        for (const batch of planBatches(args.hosts, args.batchSize)) {
            const current = batch.map(
                (host) =>
                    new FleetHost(
                        fleetHostName(name, host),
                        {
                            host,
                            formerName: host.instance ? `${name}-${host.name}` : undefined,
                            artifact: args.artifact,
                            installDir: args.installDir,
                            daemonJson: args.daemonJson,
                            after: previous.length > 0 ? previous.map((p) => p.install) : allChecks,
                            cacheDir: args.cacheDir,
                            insecureSkipHostKeyCheck: args.insecureSkipHostKeyCheck,
                            stackId: args.stackId,
                        },
                        { parent: this },
                    ),
            );
            this.hosts.push(...current);
            previous = current;
        }
        checked(this.hosts.map((h) => h.check));
        this.statuses = pulumi.all(
            this.hosts.map((h, i) => pulumi.all([h.status, args.hosts[i].address]).apply(([s, address]) => ({ ...s, address }))),
        );
        this.registerOutputs({ statuses: this.statuses });
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
