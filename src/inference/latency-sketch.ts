// A DDSketch (Masson, Rim & Lee, VLDB 2019) with the logarithmic mapping and unbounded sparse
// buckets, kept as plain additive JSON so that PostgreSQL can merge two sketches by adding their
// counts key by key (see the `rollup_add` function): windows and API instances merge exactly.

/** Relative accuracy: every quantile is within this share of the true order statistic. */
export const SKETCH_RELATIVE_ACCURACY = 0.01;
const GAMMA = (1 + SKETCH_RELATIVE_ACCURACY) / (1 - SKETCH_RELATIVE_ACCURACY);
const LOG_GAMMA = Math.log(GAMMA);
/** Values at or below this are counted in the zero bucket (and reported as 0). */
const MIN_INDEXABLE = 1e-9;
const ZERO = 'z';

/**
 * Counts per bucket: key k (a decimal integer as a string) counts values in (γ^(k−1), γ^k],
 * γ = (1 + α)/(1 − α); key `z` counts values ≤ 1e-9. Negative values are not expected (durations)
 * and are counted as zero.
 */
export type LatencySketch = Record<string, number>;

/** The bucket key of a value. */
export function sketchKey(value: number): string {
  if (!(value > MIN_INDEXABLE)) return ZERO;
  return String(Math.ceil(Math.log(value) / LOG_GAMMA));
}

/** Adds `count` occurrences of `value` to `sketch` (in place). */
export function sketchAdd(sketch: LatencySketch, value: number, count = 1): void {
  const k = sketchKey(value);
  sketch[k] = (sketch[k] ?? 0) + count;
}

/** Adds `other` into `sketch` (in place): the merge, as `rollup_add` does it in the database. */
export function sketchMerge(sketch: LatencySketch, other: LatencySketch): LatencySketch {
  for (const [k, n] of Object.entries(other)) sketch[k] = (sketch[k] ?? 0) + n;
  return sketch;
}

export function sketchCount(sketch: LatencySketch): number {
  let n = 0;
  for (const v of Object.values(sketch)) n += v;
  return n;
}

// The estimate of a bucket: 2γ^k/(γ + 1), within α of every value in (γ^(k−1), γ^k].
const valueOf = (key: string) => (key === ZERO ? 0 : (2 * GAMMA ** Number(key)) / (GAMMA + 1));

/**
 * The q-quantile (0 ≤ q ≤ 1): within {@link SKETCH_RELATIVE_ACCURACY} of the order statistic of
 * rank ⌊q·(n − 1)⌋ (from 0) of the values added; null when empty.
 */
export function sketchQuantile(sketch: LatencySketch, q: number): number | null {
  const keys = Object.keys(sketch).filter((k) => sketch[k] > 0);
  const n = keys.reduce((s, k) => s + sketch[k], 0);
  if (n === 0) return null;
  keys.sort((a, b) => (a === ZERO ? -1 : b === ZERO ? 1 : Number(a) - Number(b)));
  const rank = Math.floor(Math.min(1, Math.max(0, q)) * (n - 1));
  let seen = 0;
  for (const k of keys) {
    seen += sketch[k];
    if (seen > rank) return valueOf(k);
  }
  return valueOf(keys[keys.length - 1]);
}
