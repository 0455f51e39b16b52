import {
  benjaminiHochberg,
  bonferroni,
  chiSquared,
  jensenShannon,
  ksPValue,
  ksStatistic,
  psi,
  wasserstein,
  type SampleBuckets,
} from './drift-stats';
import { nextUp } from '../inference/rollup-bins';
import { binOf, type CategoricalReference, type NumericReference, type ReferenceProfile, type ReferenceSample, type ReferenceSamples } from '../registry/reference-profile';

/** Anything with `query` (a pg Pool or client, a TypeORM DataSource or EntityManager). */
export interface Queryable {
  query(sql: string, params?: unknown[]): Promise<any>;
  /** When present (a TypeORM DataSource or EntityManager), the scan runs in one transaction with its own settings. */
  transaction?<T>(run: (q: Queryable) => Promise<T>): Promise<T>;
}

/**
 * Drift thresholds; every field can be overridden per deployment. The method follows Evidently:
 * a reference of at most `smallReference` rows is tested (KS for numeric, chi-squared for
 * categorical; drifted when the corrected p-value < `pValue`), a larger one is measured
 * (normed Wasserstein for numeric, Jensen–Shannon for categorical; drifted when ≥ the threshold).
 */
export interface DriftThresholds {
  pValue: number;
  wasserstein: number;
  jensenShannon: number;
  psiWarning: number;
  psiCritical: number;
  smallReference: number;
  /** Across the features of one report (the prediction is not counted in the family). */
  correction: 'benjamini-hochberg' | 'bonferroni' | 'none';
}

export const DEFAULT_DRIFT_THRESHOLDS: DriftThresholds = {
  pValue: 0.05,
  wasserstein: 0.1,
  jensenShannon: 0.1,
  psiWarning: 0.1,
  psiCritical: 0.25,
  smallReference: 1000,
  correction: 'benjamini-hochberg',
};

/** Every statistic computed for one feature; the ones that do not apply to its kind are null. */
export interface DriftStatistics {
  psi: number;
  jensenShannon: number;
  /** From rollups, a lower bound of the exact statistic; `ksUpper` bounds it above (raw reports: equal). */
  ks: number | null;
  ksUpper?: number | null;
  ksPValue: number | null;
  /** From rollups, a lower bound; `wassersteinNormedUpper` bounds it above (raw reports: equal). */
  wassersteinNormed: number | null;
  wassersteinNormedUpper?: number | null;
  chi2: number | null;
  chi2PValue: number | null;
}

/**
 * One feature's (or the prediction's) drift. `value` is the statistic of `method`; `pValue` is
 * set for tests (ks, chi2) and `adjustedPValue` after the multiple-testing correction;
 * `severity`: CRITICAL when drifted and PSI ≥ psiCritical, WARNING when drifted or PSI ≥
 * psiWarning, INFO otherwise. `currentCount` counts the logged values in the window;
 * `referenceCount` the reference's rows (the KS and Wasserstein use its sample, which no report
 * contains).
 */
export interface FeatureDrift {
  feature: string;
  kind: 'numeric' | 'categorical';
  method: 'ks' | 'chi2' | 'psi' | 'wasserstein' | 'jensen_shannon';
  value: number;
  pValue: number | null;
  adjustedPValue: number | null;
  threshold: number;
  drifted: boolean;
  severity: 'INFO' | 'WARNING' | 'CRITICAL';
  psi: number;
  currentCount: number;
  referenceCount: number;
  statistics: DriftStatistics;
}

/**
 * `rows` counts the logged prediction rows used; `features` follow `profile.inputColumns`
 * (features without values in the window are left out); `driftedShare` = drifted features /
 * features reported (0 when none).
 */
export interface DriftReport {
  /**
   * How the statistics were computed: `raw`, exactly from the logged values (scipy's KS and
   * Wasserstein), or `rollup`, from the window rollups' histograms (PSI, Jensen–Shannon and
   * chi-squared exact; KS and Wasserstein between the stated bounds).
   */
  source: 'raw' | 'rollup';
  deploymentId: string;
  modelVersionId: string;
  windowStart: Date;
  windowEnd: Date;
  rows: number;
  features: FeatureDrift[];
  prediction: FeatureDrift | null;
  driftedShare: number;
}

export interface DriftReportArgs {
  deploymentId: string;
  modelVersionId: string;
  /** Inclusive. */
  windowStart: Date;
  /** Exclusive. */
  windowEnd: Date;
  profile: ReferenceProfile;
  /** The reference samples of the profile's numeric input columns and prediction (server side only). */
  samples: ReferenceSamples;
  thresholds?: Partial<DriftThresholds>;
}

interface NumericSlot {
  name: string;
  ref: NumericReference;
  /** The reference sample's size. */
  sampleSize: number;
  /** Distinct sample values and #{sample ≤ value}. */
  values: number[];
  cumulative: number[];
  /** SQL expression of the value. */
  expr: string;
}

/**
 * The settings of the transaction the drift scan runs in: JIT compiling its large expression tree
 * costs more than it saves; the extracted values and the sort of the crossing buckets fit in
 * memory at a few million values.
 */
export const DRIFT_SCAN_SETTINGS: readonly string[] = [`SET LOCAL jit = off`, `SET LOCAL work_mem = '256MB'`];

/**
 * Computes the drift of one deployment's model version over [windowStart, windowEnd) against
 * the version's reference profile, in the database, in one statement: the logged values are
 * extracted once (materialized CTE); every numeric value is bucketed against its reference sample
 * (`width_bucket`) and counted and summed per bucket; the buckets where the current and reference
 * ECDFs cross are found in SQL from the running counts and the one order statistic the exact
 * Wasserstein distance needs there is read from the same extraction; categorical columns are
 * grouped by value. When `q` can open a transaction the statement runs in one with `jit = off`
 * and `work_mem = 256MB`. Raw rows never leave the database. The KS p-value is scipy's
 * `ks_2samp` p-value (see `ks2SampPValue`).
 *
 * Logged rows are used when `shadow` is false, `inputs` were kept (not only their hash) and
 * `outputs` exist (a failed request without an answer is left out). Values that are missing or
 * null in a row are left out of that column. The prediction is judged when the profile and the
 * samples both have its reference. Throws when a numeric input column has no sample. The
 * samples only shape the statistics: no report holds a reference value.
 */
export async function computeDriftReport(q: Queryable, args: DriftReportArgs): Promise<DriftReport> {
  const t: DriftThresholds = { ...DEFAULT_DRIFT_THRESHOLDS, ...args.thresholds };
  const { profile } = args;
  const numeric: NumericSlot[] = [];
  const categorical: Array<{ name: string; ref: CategoricalReference; expr: string }> = [];
  profile.inputColumns.forEach((name, col) => {
    // Own properties only: a column named like an Object.prototype member is not a reference.
    const ref = Object.hasOwn(profile.features, name) ? profile.features[name] : undefined;
    if (!ref) return;
    if (ref.type === 'numeric') numeric.push(numericSlot(name, ref, Object.hasOwn(args.samples.features, name) ? args.samples.features[name] : undefined, `(r.v ->> ${col})::float8`));
    else categorical.push({ name, ref, expr: `(r.v ->> ${col})` });
  });
  const predictionSample = args.samples.prediction;
  const prediction =
    profile.prediction && profile.prediction.count > 0 && predictionSample?.length
      ? numericSlot('prediction', profile.prediction, predictionSample, `((p.outputs -> $6::text) -> (r.i::int - 1) ->> 0)::float8`)
      : null;
  const slots = prediction ? [...numeric, prediction] : numeric;

  const base: unknown[] = [args.deploymentId, args.modelVersionId, args.windowStart, args.windowEnd, profile.inputName];
  // $6 (the output name) is bound only when the prediction is profiled: an unused parameter has no type.
  const keyedBase = prediction ? [...base, profile.outputName] : base;
  const from = `FROM prediction_log p, jsonb_array_elements(p.inputs -> $5::text) WITH ORDINALITY AS r(v, i)
    WHERE p.deployment_id = $1 AND p.model_version_id = $2 AND p.occurred_at >= $3 AND p.occurred_at < $4
      AND NOT p.shadow AND p.inputs IS NOT NULL AND p.outputs IS NOT NULL`;
  // One statement: the logged values are extracted once (JSON parsed once per row) into a
  // materialized CTE that every aggregate reads: bucket counts and sums per column, the order
  // statistics of the buckets where the ECDFs cross (found in SQL from the running counts), the
  // categories and the row count.
  const params: unknown[] = [...keyedBase];
  const param = (value: unknown, cast: string) => {
    params.push(value);
    return `$${params.length}::${cast}`;
  };
  const columns = [...slots.map((s, i) => `${s.expr} AS x${i}`), ...categorical.map((c, j) => `${c.expr} AS c${j}`)];
  const parts: string[] = [`SELECT 'r' AS kind, NULL::int AS s, NULL::int8 AS b, count(*)::int8 AS n, NULL::float8 AS x, NULL::float8 AS below, NULL::text AS c FROM v`];
  const ctes = [`v AS MATERIALIZED (SELECT ${columns.length ? columns.join(', ') : '1 AS one'} ${from})`];
  if (slots.length) {
    // Bucket b of slot s sits at offset(s) + b + 1 of the dense crossing map (2K + 1 buckets per slot).
    const offsets: number[] = [];
    slots.reduce((o, s) => (offsets.push(o), o + 2 * s.values.length + 1), 0);
    ctes.push(
      `e AS NOT MATERIALIZED (SELECT u.s, u.b, u.x, u.o FROM v, LATERAL (VALUES ${slots
        .map((s, i) => `(${i}, width_bucket(v.x${i}, ${param(thresholdsOf(s.values), 'float8[]')}), v.x${i}, ${offsets[i]})`)
        .join(', ')}) AS u(s, b, x, o) WHERE u.x IS NOT NULL)`,
      `ref(s, cum, l, k) AS (VALUES ${slots.map((s, i) => `(${i}, ${param(s.cumulative, 'int8[]')}, ${s.sampleSize}::int8, ${s.values.length})`).join(', ')})`,
      // Every bucket is present (empty ones with n = 0), so the crossing map below is dense.
      `agg AS MATERIALIZED (SELECT s, b, sum(n)::int8 AS n, sum(sx) AS sx FROM (
         SELECT s, b, count(*) AS n, sum(x) AS sx FROM e GROUP BY s, b
         UNION ALL SELECT f.s, g.b, 0, NULL FROM ref f, generate_series(0, 2 * f.k) AS g(b)) a GROUP BY s, b)`,
      `run AS (SELECT s, b, n, (sum(n) OVER (PARTITION BY s ORDER BY b))::int8 - n AS p, (sum(n) OVER (PARTITION BY s))::int8 AS m FROM agg)`,
      // Inside bucket b = 2k lies between u_k and u_k+1 (k < K): the ECDFs cross there when
      // #{current ≤ u_k}·L < cum_k·m < (that + inside)·L; the j-th smallest value there is needed (j = 0: none).
      `crossing AS MATERIALIZED (SELECT array_agg(CASE WHEN r.b > 0 AND r.b % 2 = 0 AND r.b / 2 < f.k AND f.cum[r.b / 2] * r.m > r.p * f.l AND f.cum[r.b / 2] * r.m < (r.p + r.n) * f.l
           THEN (f.cum[r.b / 2] * r.m - r.p * f.l + f.l - 1) / f.l ELSE 0 END ORDER BY r.s, r.b) AS j FROM run r JOIN ref f USING (s))`,
      `ord AS (SELECT s, b, max(x) FILTER (WHERE rn = j) AS at, sum(x) FILTER (WHERE rn < j) AS below FROM (
         SELECT s, b, j, x, row_number() OVER (PARTITION BY s, b ORDER BY x) AS rn FROM (
           SELECT e.s, e.b, e.x, (SELECT j FROM crossing)[e.o + e.b + 1] AS j FROM e) w WHERE j > 0) t
         WHERE rn <= j GROUP BY s, b)`,
    );
    parts.push(`SELECT 'n', s, b::int8, n, sx, NULL, NULL FROM agg WHERE n > 0`, `SELECT 'o', s, b::int8, NULL, at, below, NULL FROM ord`);
  }
  if (categorical.length)
    parts.push(
      `SELECT 'c', f, NULL, count(*)::int8, NULL, NULL, c FROM (SELECT unnest(ARRAY[${categorical.map((_, j) => j).join(', ')}]) AS f, unnest(ARRAY[${categorical.map((_, j) => `c${j}`).join(', ')}]) AS c FROM v) t
       WHERE c IS NOT NULL GROUP BY f, c`,
    );
  const sql = `WITH ${ctes.join(',\n')}\n${parts.join('\nUNION ALL ')}`;
  type Row = { kind: 'r' | 'n' | 'o' | 'c'; s: number | null; b: string | null; n: string | null; x: number | null; below: number | null; c: string | null };
  const result: Row[] = q.transaction
    ? await q.transaction(async (tx) => {
        for (const setting of DRIFT_SCAN_SETTINGS) await tx.query(setting);
        return tx.query(sql, params);
      })
    : await q.query(sql, params);

  let rows = 0;
  const buckets = slots.map((s) => emptyBuckets(s));
  const order = slots.map(() => new Map<number, { at: number; sumBelow: number }>());
  const categoryRows: Array<{ f: number; c: string; n: number }> = [];
  for (const row of result) {
    if (row.kind === 'r') rows = Number(row.n);
    else if (row.kind === 'c') categoryRows.push({ f: Number(row.s), c: row.c!, n: Number(row.n) });
    else if (row.kind === 'o') order[row.s!].set(Number(row.b) / 2 - 1, { at: Number(row.x), sumBelow: Number(row.below ?? 0) });
    else {
      const b = buckets[row.s!];
      const bucket = Number(row.b);
      const n = Number(row.n);
      const s = Number(row.x);
      // width_bucket against [u1, next(u1), u2, next(u2), …]: 0 below u1, 2k−1 for x = u_k, 2k inside (u_k, u_{k+1}).
      if (bucket === 0) {
        b.below = n;
        b.belowSum = s;
      } else if (bucket % 2 === 1) b.equal[(bucket - 1) / 2] = n;
      else {
        b.inside[bucket / 2 - 1] = n;
        b.insideSum[bucket / 2 - 1] = s;
      }
    }
  }
  const report = (slot: NumericSlot, i: number): FeatureDrift | null => {
    const b = buckets[i];
    const m = count(b);
    if (m === 0) return null;
    const ref = slot.ref;
    const current = currentQuantileCounts(slot, b);
    const d = ksStatistic(b);
    const std = ref.std ?? 0;
    const w = wasserstein(b, order[i]);
    const statistics: DriftStatistics = {
      psi: psi(ref.quantileBins.counts, current),
      jensenShannon: jensenShannon(ref.quantileBins.counts, current),
      ks: d,
      ksPValue: ksPValue(d, slot.sampleSize, m),
      // A constant reference has no spread to norm by: any movement is infinite drift, none is zero.
      wassersteinNormed: std > 0 ? w / std : w > 0 ? Infinity : 0,
      chi2: null,
      chi2PValue: null,
    };
    return ref.count <= t.smallReference
      ? feature(slot.name, 'numeric', 'ks', d, statistics.ksPValue, t.pValue, statistics, m, ref.count)
      : feature(slot.name, 'numeric', 'wasserstein', statistics.wassersteinNormed!, null, t.wasserstein, statistics, m, ref.count);
  };

  const features: FeatureDrift[] = [];
  const byName = new Map<string, FeatureDrift>();
  numeric.forEach((slot, i) => {
    const f = report(slot, i);
    if (f) byName.set(slot.name, f);
  });
  categorical.forEach((c, i) => {
    const counts = new Map<string, number>();
    for (const row of categoryRows) if (Number(row.f) === i) counts.set(row.c, Number(row.n));
    const m = [...counts.values()].reduce((s, n) => s + n, 0);
    if (m === 0) return;
    const keys = [...new Set([...Object.keys(c.ref.frequencies), ...counts.keys()])].sort();
    const r = keys.map((k) => c.ref.frequencies[k] ?? 0);
    const cur = keys.map((k) => counts.get(k) ?? 0);
    const chi = chiSquared(r, cur);
    const statistics: DriftStatistics = { psi: psi(r, cur), jensenShannon: jensenShannon(r, cur), ks: null, ksPValue: null, wassersteinNormed: null, chi2: chi.statistic, chi2PValue: chi.pValue };
    byName.set(
      c.name,
      c.ref.count <= t.smallReference
        ? feature(c.name, 'categorical', 'chi2', chi.statistic, chi.pValue, t.pValue, statistics, m, c.ref.count)
        : feature(c.name, 'categorical', 'jensen_shannon', statistics.jensenShannon, null, t.jensenShannon, statistics, m, c.ref.count),
    );
  });
  for (const name of profile.inputColumns) {
    const f = byName.get(name);
    if (f) features.push(f);
  }

  decideAll(features, t);
  const predictionDrift = prediction ? report(prediction, slots.length - 1) : null;
  if (predictionDrift) decide(predictionDrift, predictionDrift.pValue, t);

  return {
    source: 'raw',
    deploymentId: args.deploymentId,
    modelVersionId: args.modelVersionId,
    windowStart: args.windowStart,
    windowEnd: args.windowEnd,
    rows,
    features,
    prediction: predictionDrift,
    driftedShare: features.length ? features.filter((f) => f.drifted).length / features.length : 0,
  };
}

export function feature(
  name: string,
  kind: FeatureDrift['kind'],
  method: FeatureDrift['method'],
  value: number,
  pValue: number | null,
  threshold: number,
  statistics: DriftStatistics,
  currentCount: number,
  referenceCount: number,
): FeatureDrift {
  return { feature: name, kind, method, value, pValue, adjustedPValue: null, threshold, drifted: false, severity: 'INFO', psi: statistics.psi, currentCount, referenceCount, statistics };
}

/** Decides every feature of a report, with its p-value corrected across them by `t.correction`. */
export function decideAll(features: FeatureDrift[], t: DriftThresholds): void {
  const adjust = t.correction === 'bonferroni' ? bonferroni : t.correction === 'benjamini-hochberg' ? benjaminiHochberg : (p: ReadonlyArray<number | null>) => [...p];
  const adjusted = adjust(features.map((f) => f.pValue));
  features.forEach((f, i) => decide(f, adjusted[i], t));
}

export function decide(f: FeatureDrift, adjusted: number | null, t: DriftThresholds): void {
  f.adjustedPValue = adjusted;
  f.drifted = f.pValue !== null ? (adjusted ?? f.pValue) < f.threshold : f.value >= f.threshold;
  f.severity = f.drifted && f.psi >= t.psiCritical ? 'CRITICAL' : f.drifted || f.psi >= t.psiWarning ? 'WARNING' : 'INFO';
}

function numericSlot(name: string, ref: NumericReference, sample: ReferenceSample | undefined, expr: string): NumericSlot {
  if (!Array.isArray(sample) || sample.length === 0 || !ref.quantileBins) throw new Error(`reference of '${name}' has no sample`);
  const values: number[] = [];
  const cumulative: number[] = [];
  sample.forEach((v, i) => {
    if (values.length && values[values.length - 1] === v) cumulative[cumulative.length - 1] = i + 1;
    else {
      values.push(v);
      cumulative.push(i + 1);
    }
  });
  return { name, ref, sampleSize: sample.length, values, cumulative, expr };
}

// [u1, next(u1), u2, next(u2), …]: the bucket [u_k, next(u_k)) holds exactly the values equal to u_k.
function thresholdsOf(values: number[]): number[] {
  const out: number[] = [];
  for (const v of values) out.push(v, nextUp(v));
  return out;
}


function emptyBuckets(s: NumericSlot): SampleBuckets {
  const K = s.values.length;
  return {
    values: s.values,
    cumulative: s.cumulative,
    sampleSize: s.sampleSize,
    below: 0,
    belowSum: 0,
    equal: new Array<number>(K).fill(0),
    inside: new Array<number>(K).fill(0),
    insideSum: new Array<number>(K).fill(0),
  };
}

function count(b: SampleBuckets): number {
  let n = b.below;
  for (let k = 0; k < b.values.length; k++) n += b.equal[k] + b.inside[k];
  return n;
}

// Every quantile edge is a sample value, so each sample bucket lies in one quantile bin.
function currentQuantileCounts(slot: NumericSlot, b: SampleBuckets): number[] {
  const edges = slot.ref.quantileBins.edges;
  const out = new Array<number>(edges.length + 1).fill(0);
  out[0] += b.below;
  for (let k = 0; k < b.values.length; k++) out[binOf(edges, b.values[k])] += b.equal[k] + b.inside[k];
  return out;
}
