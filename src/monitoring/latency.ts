import { latencyPercentiles, mergeRollupRows, readRollupRows, readRollups, type VersionRollup } from './rollup-read';
import type { StoredRollupRow } from '../inference/window-rollup';
import type { Queryable } from './drift.service';

/** Serving statistics of one version of a deployment over a window, from its window rollups. */
export interface VersionLatency {
  modelVersionId: string;
  /** Mirrored traffic (SHADOW): counted apart, never judged against the SLOs. */
  shadow: boolean;
  /** Requests routed to the version (answered by it, or by the fallback after it failed). */
  requests: number;
  /** Requests it failed (errors and time-outs). */
  errors: number;
  errorRate: number;
  /** Percentiles of the request latency from the merged sketches: within 1 % of the true order statistic. */
  p50Ms: number | null;
  p95Ms: number | null;
  p99Ms: number | null;
}

const figures = (r: VersionRollup): VersionLatency => ({
  modelVersionId: r.modelVersionId,
  shadow: r.shadow,
  requests: r.requests,
  errors: r.errors,
  errorRate: r.requests ? r.errors / r.requests : 0,
  ...latencyPercentiles(r),
});

/**
 * p50/p95/p99 latency and error rate per routed version over the rollup windows starting in
 * [start, end): merged counts and latency sketches, never the raw log.
 */
export async function latencyStats(db: Queryable, deploymentId: string, start: Date, end: Date): Promise<VersionLatency[]> {
  return (await readRollups(db, deploymentId, { from: start, to: end, parts: ['latency'] })).filter((r) => r.requests > 0).map(figures);
}

/** A latency series for charts: per bucket (of whole rollup windows, by their start) and served version, requests, errors and percentiles. */
export async function latencySeries(db: Queryable, deploymentId: string, start: Date, end: Date, bucketSeconds: number) {
  const span = bucketSeconds * 1000;
  const buckets = new Map<number, StoredRollupRow[]>();
  for (const row of await readRollupRows(db, deploymentId, { from: start, to: end, parts: ['latency'] })) {
    if (row.shadow) continue;
    const at = Math.floor(new Date(row.window_start).getTime() / span) * span;
    if (!buckets.has(at)) buckets.set(at, []);
    buckets.get(at)!.push(row);
  }
  const out = [];
  for (const [at, rows] of [...buckets.entries()].sort(([a], [b]) => a - b)) {
    for (const r of mergeRollupRows(rows)) {
      if (r.requests === 0) continue;
      const { modelVersionId, ...f } = figures(r);
      out.push({ bucketStart: new Date(at), modelVersionId, requests: f.requests, errors: f.errors, errorRate: f.errorRate, p50Ms: f.p50Ms, p95Ms: f.p95Ms, p99Ms: f.p99Ms });
    }
  }
  return out;
}
