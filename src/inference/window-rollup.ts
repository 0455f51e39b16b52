import { sketchAdd, sketchMerge, type LatencySketch } from './latency-sketch';
import type { AgreementCounts } from './shadow-agreement';
import { qualityDelta, type QualityStats } from './quality-stats';
import { addCategory, addNumeric, emptyNumericHistogram, type CategoryHistogram, type NumericHistogram, type RollupBins } from './rollup-bins';

/**
 * What one rollup row holds (`prediction_rollup`): one per deployment, model version, shadow flag
 * and window. Every field is additive — counts, sums, sketches and histograms — so that rows
 * merge by adding (across windows, and across API instances writing the same window at once).
 *
 * - `requests`, `errors`, `fallbacks`, `latency`: requests routed to the version (answered by it,
 *   or failed by it and answered by the fallback), those it failed, those the fallback answered,
 *   and a latency sketch of the whole request (ms) — the prediction log's `latency_ms`.
 * - `rows`, `unbinned`, `features`, `prediction`: answered prediction rows the version produced,
 *   those not binned (inputs kept only as a hash, no bins for the version, or inputs not in the
 *   shape its bins read), and the histograms of each input
 *   column and of the prediction on the version's rollup bins.
 * - `labelled`, `quality`, `labelDelay`: rows with an outcome, the quality statistics of those rows
 *   and a sketch of the label delay (seconds from the prediction to the outcome's arrival).
 */
export interface RollupStats {
  requests: number;
  errors: number;
  fallbacks: number;
  rows: number;
  unbinned: number;
  labelled: number;
  latency: LatencySketch;
  features: Record<string, NumericHistogram | CategoryHistogram>;
  prediction: NumericHistogram | null;
  quality: QualityStats;
  labelDelay: LatencySketch;
  /** Shadow rows only: agreement of the shadow's outputs with the served answers to the same requests. */
  agreement: Partial<AgreementCounts>;
}

/**
 * The one category all values a column's reference never saw are counted under (so a rollup row's
 * size is bounded by the reference): chi-squared and PSI from rollups then see the unseen values as
 * one category, where the raw scan sees each apart.
 */
export const UNSEEN_CATEGORY = '(unseen)';

/** What a rollup reads of a prediction log record (see `PredictionEntry`). */
export interface RolledPrediction {
  deploymentId: string;
  teamId: string;
  modelVersionId: string;
  failedVersionId: string | null;
  shadow: boolean;
  occurredAt: Date;
  latencyMs: number;
  fallback: boolean;
  rows: number;
  inputs: Record<string, unknown> | null;
  outputs: Record<string, unknown> | null;
  /** A shadow record's agreement with the served answer it mirrors, when they paired. */
  agreement?: AgreementCounts | null;
}

/** The key of a rollup row. */
export interface RollupKey {
  deploymentId: string;
  modelVersionId: string;
  shadow: boolean;
  /** Epoch milliseconds, a multiple of `windowSeconds` seconds. */
  windowStart: number;
  windowSeconds: number;
}

export interface RollupDelta extends RollupKey {
  teamId: string;
  stats: RollupStats;
}

export const emptyRollupStats = (): RollupStats => ({
  requests: 0,
  errors: 0,
  fallbacks: 0,
  rows: 0,
  unbinned: 0,
  labelled: 0,
  latency: {},
  features: {},
  prediction: null,
  quality: {},
  labelDelay: {},
  agreement: {},
});

/** Deep add, as the database's `rollup_add` does it: numbers add, arrays element by element, objects key by key. */
export function addJson<T>(a: T, b: T): T {
  if (a === null || a === undefined) return b;
  if (b === null || b === undefined) return a;
  if (typeof a === 'number' && typeof b === 'number') return (a + b) as T;
  if (Array.isArray(a) && Array.isArray(b)) {
    const out = [];
    for (let i = 0; i < Math.max(a.length, b.length); i++) out.push(addJson(a[i], b[i]));
    return out as T;
  }
  if (typeof a === 'object' && typeof b === 'object' && !Array.isArray(a) && !Array.isArray(b)) {
    const out: Record<string, unknown> = { ...(a as Record<string, unknown>) };
    for (const [k, v] of Object.entries(b as Record<string, unknown>)) out[k] = Object.hasOwn(out, k) ? addJson(out[k], v) : v;
    return out as T;
  }
  return b;
}

/** Deep add of `b` into the object `a`, in place (the accumulator's hot path: no copies). */
export function addInto(a: Record<string, unknown>, b: Record<string, unknown>): void {
  for (const [k, v] of Object.entries(b)) {
    const cur = a[k];
    if (typeof v === 'number' && typeof cur === 'number') a[k] = cur + v;
    else if (Array.isArray(v) && Array.isArray(cur) && v.every((x) => typeof x === 'number')) {
      for (let i = 0; i < v.length; i++) cur[i] = (typeof cur[i] === 'number' ? (cur[i] as number) : 0) + v[i];
    } else if (v && typeof v === 'object' && cur && typeof cur === 'object' && !Array.isArray(v) && !Array.isArray(cur)) addInto(cur as Record<string, unknown>, v as Record<string, unknown>);
    else if (cur === undefined || cur === null) a[k] = structuredClone(v);
    else a[k] = addJson(cur, v);
  }
}

/** Adds `b` into `a` and returns `a` (in place where it can be). */
export function mergeRollupStats(a: RollupStats, b: RollupStats): RollupStats {
  a.requests += b.requests;
  a.errors += b.errors;
  a.fallbacks += b.fallbacks;
  a.rows += b.rows;
  a.unbinned += b.unbinned;
  a.labelled += b.labelled;
  sketchMerge(a.latency, b.latency);
  sketchMerge(a.labelDelay, b.labelDelay);
  // In place: merging many windows must not copy the histograms at every step.
  addInto(a.features as Record<string, unknown>, b.features as Record<string, unknown>);
  if (b.prediction) {
    if (a.prediction) addInto(a.prediction as unknown as Record<string, unknown>, b.prediction as unknown as Record<string, unknown>);
    else a.prediction = structuredClone(b.prediction);
  }
  addInto(a.quality as Record<string, unknown>, b.quality as Record<string, unknown>);
  addInto(a.agreement as Record<string, unknown>, b.agreement as Record<string, unknown>);
  return a;
}

/** The window a time falls in. */
export const windowOf = (at: Date | number, windowSeconds: number) => {
  const span = windowSeconds * 1000;
  return Math.floor(new Date(at).getTime() / span) * span;
};

/** The row of output `name` (or of the first output) a logged prediction answered for row `i`. */
export function outputRowOf(outputs: Record<string, unknown> | null, name: string | null, i: number): unknown {
  if (!outputs) return undefined;
  const key = name !== null && Object.hasOwn(outputs, name) ? name : Object.keys(outputs)[0];
  const rows = key === undefined ? undefined : outputs[key];
  return Array.isArray(rows) ? rows[i] : undefined;
}

const finite = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);

/**
 * The value drift judges of a prediction row: element 0 of the row (a scalar row is itself), as
 * the raw drift scan reads it.
 */
export function predictionValue(row: unknown): number | null {
  const v = Array.isArray(row) ? row[0] : row;
  return finite(v) ? v : null;
}

/**
 * The score quality judges of a prediction row: its last element (the positive class's probability
 * for a classifier emitting [P(0), P(1)]; the value itself for one output), as shadow agreement reads it.
 */
export function scoreValue(row: unknown): number | null {
  const v = Array.isArray(row) ? row[row.length - 1] : row;
  return finite(v) ? v : null;
}


/**
 * Accumulates rollup deltas in memory: from prediction log records (the write path, and the
 * rebuild from the raw log) and from outcomes. `binsOf` gives a version's rollup bins (null: the
 * version has no reference, its rows are counted but not binned).
 */
export class RollupAccumulator {
  private readonly rowsByKey = new Map<string, RollupDelta>();

  constructor(
    private readonly windowSeconds: number,
    private readonly binsOf: (modelVersionId: string) => RollupBins | null,
  ) {}

  private at(deploymentId: string, teamId: string, modelVersionId: string, shadow: boolean, occurredAt: Date | number): RollupStats {
    const windowStart = windowOf(occurredAt, this.windowSeconds);
    const key = `${deploymentId}/${modelVersionId}/${shadow}/${windowStart}`;
    let row = this.rowsByKey.get(key);
    if (!row) {
      row = { deploymentId, teamId, modelVersionId, shadow, windowStart, windowSeconds: this.windowSeconds, stats: emptyRollupStats() };
      this.rowsByKey.set(key, row);
    }
    return row.stats;
  }

  /** One prediction log record (the fields of `PredictionEntry` a rollup reads). */
  addPrediction(e: RolledPrediction): void {
    const routed = this.at(e.deploymentId, e.teamId, e.failedVersionId ?? e.modelVersionId, e.shadow, e.occurredAt);
    routed.requests += 1;
    if (e.failedVersionId) routed.errors += 1;
    if (e.fallback) routed.fallbacks += 1;
    sketchAdd(routed.latency, e.latencyMs);
    if (!e.outputs) return;
    const produced = this.at(e.deploymentId, e.teamId, e.modelVersionId, e.shadow, e.occurredAt);
    produced.rows += e.rows;
    if (e.shadow && e.agreement) addInto(produced.agreement as Record<string, unknown>, e.agreement as unknown as Record<string, unknown>);
    const bins = this.binsOf(e.modelVersionId);
    const input = bins && e.inputs && Object.hasOwn(e.inputs, bins.inputName) ? e.inputs[bins.inputName] : undefined;
    if (!bins || !Array.isArray(input)) {
      produced.unbinned += e.rows;
      return;
    }
    {
      for (const row of input) {
        if (!Array.isArray(row)) continue;
        for (const c of bins.columns) {
          const v = row[c.index];
          if (v === null || v === undefined) continue;
          if (c.bins.kind === 'numeric') {
            if (!finite(v)) continue;
            const h = (produced.features[c.name] ??= emptyNumericHistogram(c.bins)) as NumericHistogram;
            addNumeric(h, c.bins, v);
          } else {
            const h = (produced.features[c.name] ??= { n: 0, v: {} }) as CategoryHistogram;
            const category = typeof v === 'string' ? v : JSON.stringify(v);
            // Categories the reference never saw share one count: a caller cannot grow a rollup row without bound.
            addCategory(h, Object.hasOwn(c.bins.refFrequencies, category) ? category : UNSEEN_CATEGORY);
          }
        }
      }
    }
    if (bins.prediction) {
      for (let i = 0; i < e.rows; i++) {
        const v = predictionValue(outputRowOf(e.outputs, bins.outputName, i));
        if (v === null) continue;
        produced.prediction ??= emptyNumericHistogram(bins.prediction);
        addNumeric(produced.prediction, bins.prediction, v);
      }
    }
  }

  /**
   * One outcome's effect on the window of its prediction: a new label (`before` undefined) adds the
   * row to the labelled rows, its quality statistics and the label delay; a correction takes the
   * old label's statistics out and puts the new one's in.
   */
  addOutcome(o: {
    deploymentId: string;
    teamId: string;
    modelVersionId: string;
    occurredAt: Date;
    score: number | null;
    threshold: number;
    label: unknown;
    before?: unknown;
    recordedAt: Date;
  }): void {
    const stats = this.at(o.deploymentId, o.teamId, o.modelVersionId, false, o.occurredAt);
    if (o.before === undefined) {
      stats.labelled += 1;
      sketchAdd(stats.labelDelay, Math.max(0, (o.recordedAt.getTime() - o.occurredAt.getTime()) / 1000));
    } else addInto(stats.quality as Record<string, unknown>, qualityDelta(o.score, o.before, o.threshold, -1) as Record<string, unknown>);
    addInto(stats.quality as Record<string, unknown>, qualityDelta(o.score, o.label, o.threshold, 1) as Record<string, unknown>);
  }

  /** The deltas, in key order (so that concurrent writers lock rows in the same order). */
  deltas(): RollupDelta[] {
    return [...this.rowsByKey.values()].sort(
      (a, b) =>
        a.deploymentId.localeCompare(b.deploymentId) ||
        a.modelVersionId.localeCompare(b.modelVersionId) ||
        Number(a.shadow) - Number(b.shadow) ||
        a.windowStart - b.windowStart,
    );
  }
}

const ROLLUP_COLUMNS = `deployment_id, model_version_id, shadow, window_start, window_seconds, team_id, requests, errors, fallbacks, rows, unbinned, labelled, latency, features, prediction, quality, label_delay, agreement`;

/**
 * The upsert of rollup deltas, from parameters `$first`… (see {@link rollupParams}): each row is
 * added to the stored one (`rollup_add` for the JSON parts) under the row's lock, so writers
 * never lose each other's counts.
 */
export function rollupUpsert(first: number): string {
  const types = ['uuid', 'uuid', 'bool', 'timestamptz', 'int', 'uuid', 'int8', 'int8', 'int8', 'int8', 'int8', 'int8', 'jsonb', 'jsonb', 'jsonb', 'jsonb', 'jsonb', 'jsonb'];
  const add = (c: string) => `${c} = r.${c} + EXCLUDED.${c}`;
  const merge = (c: string) => `${c} = rollup_add(r.${c}, EXCLUDED.${c})`;
  return `INSERT INTO prediction_rollup AS r (${ROLLUP_COLUMNS})
    SELECT * FROM unnest(${types.map((t, i) => `$${first + i}::${t}[]`).join(', ')})
    ON CONFLICT (deployment_id, model_version_id, shadow, window_start, window_seconds) DO UPDATE SET
      ${['requests', 'errors', 'fallbacks', 'rows', 'unbinned', 'labelled'].map(add).join(', ')},
      ${['latency', 'features', 'prediction', 'quality', 'label_delay', 'agreement'].map(merge).join(', ')},
      updated_at = now()`;
}

/**
 * The append of rollup deltas, from parameters `$first`… (see {@link rollupParams}): what writers
 * do in the statement or transaction of what they count. Appending takes no lock on the window's
 * row and reads nothing; `RollupCompactor` folds the deltas into the rows.
 */
export function rollupDeltaInsert(first: number): string {
  const types = ['uuid', 'uuid', 'bool', 'timestamptz', 'int', 'uuid', 'int8', 'int8', 'int8', 'int8', 'int8', 'int8', 'jsonb', 'jsonb', 'jsonb', 'jsonb', 'jsonb', 'jsonb'];
  return `INSERT INTO prediction_rollup_delta (${ROLLUP_COLUMNS}) SELECT * FROM unnest(${types.map((t, i) => `$${first + i}::${t}[]`).join(', ')})`;
}


/** The parameters of {@link rollupUpsert}: one array per column. */
export function rollupParams(deltas: RollupDelta[]): unknown[][] {
  const json = (v: unknown) => (v === null ? null : JSON.stringify(v));
  return [
    deltas.map((d) => d.deploymentId),
    deltas.map((d) => d.modelVersionId),
    deltas.map((d) => d.shadow),
    deltas.map((d) => new Date(d.windowStart).toISOString()),
    deltas.map((d) => d.windowSeconds),
    deltas.map((d) => d.teamId),
    deltas.map((d) => d.stats.requests),
    deltas.map((d) => d.stats.errors),
    deltas.map((d) => d.stats.fallbacks),
    deltas.map((d) => d.stats.rows),
    deltas.map((d) => d.stats.unbinned),
    deltas.map((d) => d.stats.labelled),
    deltas.map((d) => json(d.stats.latency)),
    deltas.map((d) => json(d.stats.features)),
    deltas.map((d) => json(d.stats.prediction)),
    deltas.map((d) => json(d.stats.quality)),
    deltas.map((d) => json(d.stats.labelDelay)),
    deltas.map((d) => json(d.stats.agreement)),
  ];
}

/** A stored rollup row as `SELECT ${ROLLUP_SELECT}` returns it (from `prediction_rollup` or from `prediction_rollup_delta`). */
export const ROLLUP_SELECT = `model_version_id, shadow, window_start, window_seconds, team_id, requests, errors, fallbacks, rows, unbinned, labelled, latency, features, prediction, quality, label_delay, agreement`;

export interface StoredRollupRow {
  model_version_id: string;
  shadow: boolean;
  window_start: Date;
  window_seconds: number;
  team_id: string;
  requests: string | number;
  errors: string | number;
  fallbacks: string | number;
  rows: string | number;
  unbinned: string | number;
  labelled: string | number;
  latency: LatencySketch;
  features: RollupStats['features'];
  prediction: NumericHistogram | null;
  quality: QualityStats;
  label_delay: LatencySketch;
  agreement: Partial<AgreementCounts>;
}

export function statsOfRow(r: StoredRollupRow): RollupStats {
  return {
    requests: Number(r.requests),
    errors: Number(r.errors),
    fallbacks: Number(r.fallbacks),
    rows: Number(r.rows),
    unbinned: Number(r.unbinned),
    labelled: Number(r.labelled),
    latency: r.latency ?? {},
    features: r.features ?? {},
    prediction: r.prediction ?? null,
    quality: r.quality ?? {},
    labelDelay: r.label_delay ?? {},
    agreement: r.agreement ?? {},
  };
}
