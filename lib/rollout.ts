/**
 * Rollout order: hosts are split into batches of `batchSize`, in the order the stack lists them
 * (existing hosts first, then launched instances). Batch k+1 waits on every host of batch k.
 */

export function planBatches<T>(hosts: readonly T[], batchSize: number): T[][] {
    if (!Number.isInteger(batchSize) || batchSize < 1) throw new Error(`batchSize must be a whole number >= 1, got ${batchSize}`);
    const batches: T[][] = [];
    for (let i = 0; i < hosts.length; i += batchSize) batches.push(hosts.slice(i, i + batchSize));
    return batches;
}
