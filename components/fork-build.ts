import * as pulumi from "@pulumi/pulumi";
import * as command from "@pulumi/command";
import { ForkConfig } from "../lib/config";
import { BuildResult, buildCommand, buildKey, forkInputsKey, parseBuildResult } from "../lib/protocol/build";
import { readScript } from "../lib/protocol/script";
import { Connection, ReachableHost } from "../lib/connection";

export interface ForkBuildArgs {
    /** The build host, bootstrapped. */
    host: ReachableHost;
    /** The provider's connection to it. */
    connection: pulumi.Input<Connection>;
    /** What must finish before the build starts (the host's bootstrap). */
    after: pulumi.Resource[] | Promise<pulumi.Resource[]>;
    /** Recipe, repositories, refs, version and make variables of the fork. */
    fork: ForkConfig;
}

/**
 * Builds the fork on the build host — only when an input or the build script changed; the same
 * inputs give the same bytes (build-fork.sh), so a rebuild for a new script restarts no host. A failed
 * build fails here, with the tail of the build log, before any fleet host is touched. The fleet
 * hosts' copies fetch the artifact from the build host into the local cache, once.
 */
export class ForkBuild extends pulumi.ComponentResource {
    readonly key: string;
    /** The fork's inputs alone (see forkInputsKey): a new build script changes key, not this. */
    readonly inputsKey: string;
    readonly result: pulumi.Output<BuildResult>;

    constructor(name: string, args: ForkBuildArgs, opts?: pulumi.ComponentResourceOptions) {
        super("forklift:index:ForkBuild", name, {}, opts);
        const parent = this;
        const script = readScript("build-fork.sh");
        this.key = buildKey(args.fork, script);
        this.inputsKey = forkInputsKey(args.fork);

        const build = new command.remote.Command(
            `${name}-build`,
            {
                connection: args.connection,
                create: buildCommand(args.fork, this.key, args.host.user !== "root"),
                stdin: script,
                addPreviousOutputInEnv: false,
            },
            { parent, dependsOn: args.after, deletedWith: args.host.instance },
        );
        this.result = build.stdout.apply(parseBuildResult);

        this.registerOutputs({ key: this.key, sha256: this.result.sha256 });
    }
}
