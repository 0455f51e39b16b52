// Pure functions and types: the write path counts every logged value into these bins, and drift
// reports read the merged counts only. Everything here is plain JSON, and a histogram is additive:
// the histogram of two windows is the element-wise sum of theirs.

import { binOf, type CategoricalReference, type NumericReference, type ReferenceProfile, type ReferenceSamples } from '../registry/reference-profile';

/** Reference-sample quantiles per numeric column that bound the rollup bins. */
export const ROLLUP_BIN_QUANTILES = 100;

/**
 * A numeric column's rollup bins: ascending distinct `edges`; a value v falls in bin
 * `#{edges ≤ v}` (`binOf`), so there are `edges.length + 1` bins, bin 0 open below, the last open
 * above.
 *
 * `edges` are the reference sample's values at indices `floor(j·L/100)`, j = 0..99, plus its last
 * value (its maximum) and the next double above it, plus the profile's decile edges (so decile
 * counts are sums of bins), deduplicated, -0 written 0. The sample's minimum is the first edge, so
 * bin 0 lies below every sample value; the bin just below the last edge holds exactly the values
 * equal to the sample's maximum, and the last bin only values above every sample value (both
 * ECDFs are then known at the maximum itself, which the KS statistic of a reference with many
 * values at its maximum needs). When the maximum is the largest double there is no next one.
 *
 * `refSize` = L (the sample's size); `refCounts[b]` and `refSums[b]`: the sample's values in bin
 * b, and their sum. `deciles` / `refDecileCounts`: the profile's `quantileBins` (edges, counts)
 * copied (-0 written 0, as JSON stores it). `refCount` and `refStd`: the profile's row count and
 * population standard deviation.
 */
export interface NumericBins {
  kind: 'numeric';
  edges: number[];
  refSize: number;
  refCounts: number[];
  refSums: number[];
  deciles: number[];
  refDecileCounts: number[];
  refCount: number;
  refStd: number | null;
}

/** A categorical column's reference: occurrences of each value, and the reference's row count. */
export interface CategoricalBins {
  kind: 'categorical';
  refFrequencies: Record<string, number>;
  refCount: number;
}

/**
 * The bins of a model version. Column `index` of the logged input `inputName` is `name`. The
 * prediction is column 0 of output `outputName` per row.
 */
export interface RollupBins {
  binsVersion: 1;
  inputName: string;
  outputName: string;
  columns: Array<{ name: string; index: number; bins: NumericBins | CategoricalBins }>;
  prediction: NumericBins | null;
}

/** Count (`c`) and sum (`s`) of the values per bin (each of length `edges.length + 1`); `n` = Σ c. */
export interface NumericHistogram {
  n: number;
  c: number[];
  s: number[];
}

/** Occurrences (`v`) of each value; `n` = Σ v. */
export interface CategoryHistogram {
  n: number;
  v: Record<string, number>;
}

/**
 * The bins of a numeric column from its reference sample (sorted, as `referenceSample` gives it)
 * and its profile. Throws on an empty sample: with nothing to compare against there are no bins.
 */
export function numericBins(sample: readonly number[], ref: NumericReference): NumericBins {
  const sorted = sample.filter((v) => Number.isFinite(v)).sort((a, b) => a - b);
  const L = sorted.length;
  if (L === 0) throw new Error('a numeric reference without sample values has no rollup bins');
  const candidates: number[] = [];
  for (let j = 0; j < ROLLUP_BIN_QUANTILES; j++) candidates.push(sorted[Math.floor((j * L) / ROLLUP_BIN_QUANTILES)]);
  const above = nextUp(sorted[L - 1]);
  candidates.push(sorted[L - 1], ...ref.quantileBins.edges);
  if (Number.isFinite(above)) candidates.push(above);
  candidates.sort((a, b) => a - b);
  const edges: number[] = [];
  for (const e of candidates) if (edges.length === 0 || e > edges[edges.length - 1]) edges.push(e === 0 ? 0 : e);

  const refCounts = new Array<number>(edges.length + 1).fill(0);
  const refSums = new Array<number>(edges.length + 1).fill(0);
  for (const v of sorted) {
    const b = binOf(edges, v);
    refCounts[b]++;
    refSums[b] += v;
  }
  return {
    kind: 'numeric',
    edges,
    refSize: L,
    refCounts,
    refSums,
    deciles: ref.quantileBins.edges.map((e) => (e === 0 ? 0 : e)),
    refDecileCounts: [...ref.quantileBins.counts],
    refCount: ref.count,
    refStd: ref.std,
  };
}

/** The bins of a categorical column: its reference frequencies copied. */
export function categoricalBins(ref: CategoricalReference): CategoricalBins {
  const refFrequencies: Record<string, number> = {};
  for (const [k, n] of Object.entries(ref.frequencies)) setOwn(refFrequencies, k, n);
  return { kind: 'categorical', refFrequencies, refCount: ref.count };
}

/**
 * Bins for every input column of the profile that has a reference (numeric columns need a
 * sample; a numeric column without one is left out), and the prediction when the profile (with
 * rows) and the samples both have it.
 */
export function rollupBinsOf(profile: ReferenceProfile, samples: ReferenceSamples): RollupBins {
  const columns: RollupBins['columns'] = [];
  profile.inputColumns.forEach((name, index) => {
    // Own properties only: a column named like an Object.prototype member is not a reference.
    const ref = Object.hasOwn(profile.features, name) ? profile.features[name] : undefined;
    if (!ref) return;
    if (ref.type === 'categorical') {
      columns.push({ name, index, bins: categoricalBins(ref) });
      return;
    }
    const sample = Object.hasOwn(samples.features, name) ? samples.features[name] : undefined;
    if (sample && sample.length > 0) columns.push({ name, index, bins: numericBins(sample, ref) });
  });
  const predictionSample = samples.prediction;
  const prediction = profile.prediction && profile.prediction.count > 0 && predictionSample && predictionSample.length > 0 ? numericBins(predictionSample, profile.prediction) : null;
  return { binsVersion: 1, inputName: profile.inputName, outputName: profile.outputName, columns, prediction };
}

/** A histogram with every bin of `b` empty. */
export function emptyNumericHistogram(b: NumericBins): NumericHistogram {
  return { n: 0, c: new Array<number>(b.edges.length + 1).fill(0), s: new Array<number>(b.edges.length + 1).fill(0) };
}

/** Counts `v` into its bin (non-finite values are ignored). */
export function addNumeric(h: NumericHistogram, b: NumericBins, v: number): void {
  if (!Number.isFinite(v)) return;
  const bin = binOf(b.edges, v);
  h.n++;
  h.c[bin]++;
  h.s[bin] += v;
}

/** Counts one occurrence of `v` (which values count, e.g. whether an empty one does, is the caller's choice). */
export function addCategory(h: CategoryHistogram, v: string): void {
  setOwn(h.v, v, (Object.hasOwn(h.v, v) ? h.v[v] : 0) + 1);
  h.n++;
}

// A plain assignment of '__proto__' would replace the object's prototype instead of counting it.
function setOwn(target: Record<string, number>, key: string, value: number): void {
  Object.defineProperty(target, key, { value, writable: true, enumerable: true, configurable: true });
}

/** The least double greater than x (finite x). */
export function nextUp(x: number): number {
  if (x === 0) return Number.MIN_VALUE;
  const f = new Float64Array([x]);
  const bits = new BigInt64Array(f.buffer);
  bits[0] += x > 0 ? 1n : -1n;
  return f[0];
}
