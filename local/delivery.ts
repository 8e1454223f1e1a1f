/**
 * How the artifact reaches a fleet host in one run: what its session's stdin carries after
 * forklift-host.sh, the header line the script reads (see receive_artifact there) and what follows.
 *
 *   relay   "tgz" and the tgz's bytes, from the local cache (fetched from the build host once)
 *   store   "url URL": a presigned GET of the store's object, made here for this host; before the
 *           first host, the build host uploads the artifact there unless the store has it. An
 *           install sends "ask" instead: the check staged the release on every host, and signing
 *           loads the AWS SDK into the install's process (see BENCHMARKS.md); a host that lost the
 *           release exits EXIT_SEND_ARTIFACT, changing nothing, and is run again with a URL
 *
 * A host that has the release unpacked reads none of it.
 */
import * as fs from "node:fs";
import { fetchArtifact, rebuildAdvice, sha256File } from "./cache";
import { ArtifactSource, S3Store } from "../lib/protocol/jobs";
import { InputPart, Ssh, explainSshFailure } from "./ssh";
import { describe, presign } from "./store";
import { shq } from "../lib/shell";
import { HostErrorLine } from "../lib/protocol/results";

/** Exit status of a host that was sent "ask" and lacks the release (forklift-host.sh). */
export const EXIT_SEND_ARTIFACT = 76;

export interface Delivery {
    /** The stdin of a host's session after the script; ASK: "ask" where the artifact costs to send (the store's URL). */
    input(ask?: boolean): Promise<InputPart[]>;
    /** A host's failure told better, where this delivery knows more (none: the host's own words). */
    explain(host: string, error: HostErrorLine | undefined): string | undefined;
    /** After the hosts: a corrupt local copy found by them is dropped, so the next run fetches it anew. */
    finish(errors: (HostErrorLine | undefined)[], log: (line: string) => void): Promise<string | undefined>;
}

/** The delivery of ARTIFACT for this run (UPLOAD: put it in the store first, as the check does). */
export async function delivery(artifact: ArtifactSource, ssh: Ssh, log: (line: string) => void, upload: boolean): Promise<Delivery> {
    if (artifact.store) {
        const store = artifact.store;
        // (a build host without the artifact matters only to a host that needs a copy: one that
        // has the release unpacked reads no URL)
        const missing = upload ? await uploadToStore(artifact, store, ssh, log) : undefined;
        return {
            input: async (ask = false) => (ask ? ["ask\n"] : [`url ${await presign(store, "GET")}\n`]),
            explain(host, error) {
                if (missing && error?.error === "store-no-object") return `${host}: it needs the release and ${missing}`;
                // (the build host uploads only where the store lacks the object: a wrong one stays)
                if (error?.error === "artifact-mismatch") return `${host}: the store's ${describe(store)} is not the build's (sha256 ${error.got}, expected ${artifact.sha256}); nothing was changed: remove that object, and \`pulumi up\` has the build host upload it anew`;
                return undefined;
            },
            finish: async (failures) => (missing && failures.length > 0 ? rebuildAdvice() : undefined),
        };
    }
    let tgz: string | undefined;
    let fetchError = "";
    try {
        tgz = await fetchArtifact(artifact, ssh, log);
    } catch (e) {
        // a host that has the release unpacked already needs no copy
        fetchError = (e as Error).message;
    }
    return {
        input: async () => (tgz ? ["tgz\n", { file: tgz }] : ["none\n"]),
        explain: (host, error) => (fetchError && error?.error === "artifact-missing" ? `${host}: it needs the release and ${fetchError}` : undefined),
        async finish(errors, say) {
            if (tgz && errors.some((e) => e?.error === "artifact-mismatch") && (await sha256File(tgz)) !== artifact.sha256) {
                fs.rmSync(tgz, { force: true });
                say(`the cached artifact ${tgz} was corrupt; it is removed: run \`pulumi up\` again to fetch it anew`);
            }
            return fetchError ? rebuildAdvice() : undefined;
        },
    };
}

/**
 * The build host's command that puts ARTIFACT into the store unless it is there already: it reads
 * a presigned HEAD and a presigned PUT on stdin (one line each: no process list shows them) and
 * prints "present" or "uploaded". Through sudo for a login user other than root (the builds are
 * root's).
 */
export function uploadCommand(path: string, sudo: boolean): string {
    const run = sudo ? "sudo -n " : "";
    return [
        "read -r head && read -r put",
        `code=$(printf 'url = "%s"\\n' "$head" | curl -s -o /dev/null -w '%{http_code}' -I -K -)`,
        `if [ "$code" = 200 ]; then echo present; exit 0; fi`,
        `${run}test -f ${shq(path)} || { echo "the build host no longer has ${path} (HTTP $code from the store)" >&2; exit 3; }`,
        `printf 'url = "%s"\\n' "$put" | ${run}curl -sS --fail --retry 3 -o /dev/null -T ${shq(path)} -K - && echo uploaded`,
    ].join("; ");
}

/**
 * The build host uploads the artifact to STORE unless it is there. Where it cannot (gone, or
 * without its builds), that is said and the fleet fetches what the store has: returns why the
 * store may lack the artifact, for the hosts that find nothing there.
 */
async function uploadToStore(artifact: ArtifactSource, store: S3Store, ssh: Ssh, log: (line: string) => void): Promise<string | undefined> {
    const builder = ssh.add(artifact.builder);
    const input = `${await presign(store, "HEAD")}\n${await presign(store, "PUT")}\n`;
    const r = await ssh.run(builder, uploadCommand(artifact.path, artifact.builder.route.user !== "root"), { input });
    if (r.code === 0) {
        log(r.stdout.trim() === "present" ? `${describe(store)}: the store has the artifact` : `${describe(store)}: uploaded by the build host ${artifact.builder.name}`);
        return undefined;
    }
    const why =
        r.code === 255
            ? `the build host cannot be reached to upload it (${explainSshFailure(artifact.builder, r.stderr)})`
            : `the build host ${artifact.builder.name} could not put it into the store: ${r.stderr.trim() || r.stdout.trim() || `exit ${r.code}`}`;
    log(`WARN: ${why}; the fleet fetches it from ${describe(store)} as it is`);
    return why;
}
