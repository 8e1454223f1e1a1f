/**
 * Reads the job document of a local command (see lib/protocol/jobs.ts) against its schema, so
 * that a job the program did not render (a hand-made one, an older forklift's) fails with a
 * message that names the field instead of half-way through a rollout; the fields an older
 * forklift did not write read as their defaults.
 */
import { z } from "zod";
import { ChecksJob, FleetHostJob, JOB_VERSION, PlanJob, RolloutJob, StoreObjectJob } from "../lib/protocol/jobs";

export class InputError extends Error {}

/** Where an issue is, as a reader writes it: job.hosts[2].route.port */
export function fieldOf(path: readonly PropertyKey[]): string {
    return path.reduce<string>((at, key) => (typeof key === "number" ? `${at}[${key}]` : `${at}.${String(key)}`), "job");
}

function read<S extends z.ZodType>(schema: S, text: string): z.output<S> {
    let doc: unknown;
    try {
        doc = JSON.parse(text);
    } catch (e) {
        throw new InputError(`stdin is not a JSON document: ${(e as Error).message}`);
    }
    if (typeof doc !== "object" || doc === null || Array.isArray(doc)) throw new InputError("job: expected an object");
    const v = (doc as { v?: unknown }).v;
    if (v !== JOB_VERSION) throw new InputError(`job.v: expected ${JOB_VERSION}, got ${JSON.stringify(v)} (a job from another forklift version)`);
    const r = schema.safeParse(doc);
    if (!r.success) {
        const first = r.error.issues[0];
        throw new InputError(`${fieldOf(first.path)}: ${first.message}`);
    }
    return r.data;
}

/** The document of `main.ts check`. */
export const parseChecksJob = (text: string): ChecksJob => read(ChecksJob, text);

/** The document of `main.ts store-delete`. */
export const parseStoreObjectJob = (text: string): StoreObjectJob => read(StoreObjectJob, text);

/** The document of `main.ts install` and `main.ts uninstall`. */
export const parseFleetHostJob = (text: string): FleetHostJob => read(FleetHostJob, text);

/** The document of `main.ts rollout`. */
export const parseRolloutJob = (text: string): RolloutJob => read(RolloutJob, text);

/** The document of `main.ts plan`. */
export const parsePlanJob = (text: string): PlanJob => read(PlanJob, text);
