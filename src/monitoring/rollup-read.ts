import type { Queryable } from './drift.service';
import { sketchQuantile } from '../inference/latency-sketch';
import { emptyRollupStats, mergeRollupStats, ROLLUP_SELECT, statsOfRow, type RollupStats, type StoredRollupRow } from '../inference/window-rollup';

/** A version's rollups merged over a range of windows. */
export interface VersionRollup extends RollupStats {
  modelVersionId: string;
  shadow: boolean;
  /** Windows merged. */
  windows: number;
  /** The start of the first window merged and the end of the last (null when none). */
  coveredFrom: Date | null;
  coveredTo: Date | null;
}

export interface RollupRange {
  from: Date;
  to: Date;
  /**
   * `start` (default): the windows that start in [from, to) — consecutive ranges partition the
   * rows. `overlap`: every window that overlaps [from, to) (a rollout step judged since it began).
   */
  match?: 'start' | 'overlap';
  versions?: string[];
  /** Only the windows in which this version has a row (the baseline over the candidate's windows). */
  windowsOf?: string;
  /** The JSON parts to read (default all); the others come back empty: a reader pays only for what it uses. */
  parts?: RollupPart[];
}

/** The JSON columns of a rollup row. */
export type RollupPart = 'latency' | 'features' | 'prediction' | 'quality' | 'label_delay' | 'agreement';
const PARTS: readonly RollupPart[] = ['latency', 'features', 'prediction', 'quality', 'label_delay', 'agreement'];

/**
 * A deployment's rollups over a range, merged per (version, shadow): one statement reading rollup
 * rows only — its cost grows with windows × bins, never with predictions.
 */
export async function readRollups(db: Queryable, deploymentId: string, range: RollupRange): Promise<VersionRollup[]> {
  return mergeRollupRows(await readRollupRows(db, deploymentId, range));
}

/** The stored rollup rows of a range, oldest first. */
export async function readRollupRows(db: Queryable, deploymentId: string, range: RollupRange): Promise<StoredRollupRow[]> {
  const params: unknown[] = [deploymentId, range.from, range.to];
  const where = [
    'r.deployment_id = $1',
    range.match === 'overlap' ? `r.window_start < $3 AND r.window_start + make_interval(secs => r.window_seconds) > $2` : 'r.window_start >= $2 AND r.window_start < $3',
  ];
  if (range.versions) {
    params.push(range.versions);
    where.push(`r.model_version_id = ANY($${params.length}::uuid[])`);
  }
  if (range.windowsOf) {
    params.push(range.windowsOf);
    where.push(
      `r.window_start IN (SELECT c.window_start FROM prediction_rollup c WHERE c.deployment_id = $1 AND c.model_version_id = $${params.length}
                          UNION SELECT c.window_start FROM prediction_rollup_delta c WHERE c.deployment_id = $1 AND c.model_version_id = $${params.length})`,
    );
  }
  const parts = new Set(range.parts ?? PARTS);
  const columns = ROLLUP_SELECT.split(', ').map((c) => (!(PARTS as readonly string[]).includes(c) || parts.has(c as RollupPart) ? `r.${c}` : `NULL AS ${c}`));
  // The windows' rows and the deltas not folded into them yet: every figure is complete at once.
  const from = (table: string) => `SELECT ${columns.join(', ')} FROM ${table} r WHERE ${where.join(' AND ')}`;
  return db.query(`${from('prediction_rollup')} UNION ALL ${from('prediction_rollup_delta')} ORDER BY window_start`, params);
}

/** Rollup rows merged per (version, shadow). */
export function mergeRollupRows(rows: StoredRollupRow[]): VersionRollup[] {
  const seen = new Set<string>();
  const out = new Map<string, VersionRollup>();
  for (const row of rows) {
    const key = `${row.model_version_id}/${row.shadow}`;
    let v = out.get(key);
    if (!v) out.set(key, (v = { ...emptyRollupStats(), modelVersionId: row.model_version_id, shadow: row.shadow, windows: 0, coveredFrom: null, coveredTo: null }));
    mergeRollupStats(v, statsOfRow(row));
    const window = `${key}/${new Date(row.window_start).getTime()}/${row.window_seconds}`;
    if (!seen.has(window)) {
      seen.add(window);
      v.windows += 1;
    }
    const start = new Date(row.window_start);
    const end = new Date(start.getTime() + row.window_seconds * 1000);
    if (!v.coveredFrom || start < v.coveredFrom) v.coveredFrom = start;
    if (!v.coveredTo || end > v.coveredTo) v.coveredTo = end;
  }
  return [...out.values()].sort((a, b) => a.modelVersionId.localeCompare(b.modelVersionId) || Number(a.shadow) - Number(b.shadow));
}

/** Latency percentiles of a merged rollup, from its sketch (within the sketch's relative accuracy). */
export function latencyPercentiles(r: Pick<RollupStats, 'latency'>): { p50Ms: number | null; p95Ms: number | null; p99Ms: number | null } {
  return { p50Ms: sketchQuantile(r.latency, 0.5), p95Ms: sketchQuantile(r.latency, 0.95), p99Ms: sketchQuantile(r.latency, 0.99) };
}
