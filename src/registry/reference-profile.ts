// Pure functions and types: the tabular trainer imports this file in its child process, so it
// must not pull in the ORM or the server.

/** Values kept at most in a numeric reference's sorted sample (for KS and Wasserstein). */
export const REFERENCE_SAMPLE_SIZE = 2000;
/** Quantile bins (PSI, Jensen–Shannon) per numeric reference. */
export const QUANTILE_BINS = 10;
/** The version of the stored profile format: aggregates only (no rows, no samples). */
export const REFERENCE_PROFILE_VERSION = 3;

/**
 * What the stored drift reference keeps of one numeric column (or model output): aggregates,
 * never the values themselves.
 *
 * - `count`, `mean`, `std` (population): moments of every non-empty value.
 * - `quantileBins`: `edges` are the distinct decile order statistics `sorted[floor(k·n/10)]`,
 *   k = 1..9, ascending; a value v falls in bin `#{edges ≤ v}` (so bin 0 is below the first
 *   edge and the last bin is open above); `counts[b]` counts the reference values in bin b.
 */
export interface NumericReference {
  type: 'numeric';
  count: number;
  mean: number | null;
  std: number | null;
  quantileBins: { edges: number[]; counts: number[] };
}

/**
 * The sorted reference sample the exact statistics (KS, Wasserstein) compare against: every
 * value when n ≤ 2000, else `sorted[floor(i·n/2000)]` for i < 2000 — deterministic, evenly spaced
 * order statistics. Every quantile edge is a sample value, which lets one bucketing against the
 * sample serve all statistics. Built at report time from the stored training data (and, for the
 * model output, from the server-side column the trainer's sample is kept in); never stored in a
 * profile and never returned to a client.
 */
export type ReferenceSample = readonly number[];

/** What drift needs of one categorical column: occurrences of each non-empty value, keys sorted. */
export interface CategoricalReference {
  type: 'categorical';
  count: number;
  frequencies: Record<string, number>;
}

/**
 * The drift reference of a model version (`ModelVersion.referenceProfile`, `profileVersion: 3`):
 * counts, moments, decile edges and category frequencies; no rows and no samples. The decile edges
 * and the category labels are values of the data: the profile is withheld like the data itself.
 *
 * `inputColumns` names the columns of the model input `inputName` in tensor order: logged
 * inputs are `{ [inputName]: [[v0, v1, …], …] }` and column i is `inputColumns[i]`.
 * `features` holds a reference for each of them (and may hold others, never logged).
 * `prediction` is the reference of column 0 of output `outputName`.
 */
export interface ReferenceProfile {
  profileVersion: typeof REFERENCE_PROFILE_VERSION;
  inputName: string;
  outputName: string;
  inputColumns: string[];
  features: Record<string, NumericReference | CategoricalReference>;
  prediction: NumericReference | null;
}

/** The reference samples of a profile's numeric columns (by name) and of its prediction. */
export interface ReferenceSamples {
  features: Record<string, ReferenceSample>;
  prediction: ReferenceSample | null;
}

/** Profiles numeric values (non-finite values are the caller's to leave out). */
export function numericReference(values: ArrayLike<number>): NumericReference {
  const n = values.length;
  if (n === 0) return { type: 'numeric', count: 0, mean: null, std: null, quantileBins: { edges: [], counts: [0] } };
  const sorted = Float64Array.from(values).sort();
  let sum = 0;
  for (let i = 0; i < n; i++) sum += sorted[i];
  const mean = sum / n;
  let squares = 0;
  for (let i = 0; i < n; i++) squares += (sorted[i] - mean) ** 2;

  const edges: number[] = [];
  for (let k = 1; k < QUANTILE_BINS; k++) {
    const v = sorted[Math.floor((k * n) / QUANTILE_BINS)];
    if (edges.length === 0 || v > edges[edges.length - 1]) edges.push(v);
  }
  const counts = new Array<number>(edges.length + 1).fill(0);
  for (let i = 0; i < n; i++) counts[binOf(edges, sorted[i])]++;
  return { type: 'numeric', count: n, mean, std: Math.sqrt(squares / n), quantileBins: { edges, counts } };
}

/** The sorted reference sample of numeric values (see {@link ReferenceSample}). */
export function referenceSample(values: ArrayLike<number>): number[] {
  const n = values.length;
  const sorted = Float64Array.from(values).sort();
  const sample: number[] = [];
  if (n <= REFERENCE_SAMPLE_SIZE) for (let i = 0; i < n; i++) sample.push(sorted[i]);
  else for (let i = 0; i < REFERENCE_SAMPLE_SIZE; i++) sample.push(sorted[Math.floor((i * n) / REFERENCE_SAMPLE_SIZE)]);
  return sample;
}

/** Profiles categorical values (empty values are the caller's to leave out). */
export function categoricalReference(values: Iterable<string>): CategoricalReference {
  const counts = new Map<string, number>();
  let count = 0;
  for (const v of values) {
    counts.set(v, (counts.get(v) ?? 0) + 1);
    count++;
  }
  const frequencies: Record<string, number> = {};
  for (const key of [...counts.keys()].sort()) frequencies[key] = counts.get(key)!;
  return { type: 'categorical', count, frequencies };
}

/** `#{edges ≤ v}` for ascending edges: the quantile bin of v. */
export function binOf(edges: readonly number[], v: number): number {
  let lo = 0;
  let hi = edges.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (edges[mid] <= v) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** True when `value` is a stored profile of the current version. */
export function isReferenceProfile(value: unknown): value is ReferenceProfile {
  const p = value as Partial<ReferenceProfile> | null;
  return !!p && typeof p === 'object' && p.profileVersion === REFERENCE_PROFILE_VERSION && Array.isArray(p.inputColumns) && typeof p.inputName === 'string' && typeof p.features === 'object';
}

const finite = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);
const finiteList = (v: unknown): v is number[] => Array.isArray(v) && v.every(finite);

// Only what drift reads, field by field: anything else a trainer wrote (minimum, maximum,
// interpolated quantiles, equal-width bin edges, samples) is or can be a raw training value.
function storedNumeric(value: Record<string, unknown>): NumericReference | null {
  const bins = value.quantileBins as { edges?: unknown; counts?: unknown } | undefined;
  if (!finite(value.count) || !bins || !finiteList(bins.edges) || !finiteList(bins.counts)) return null;
  return {
    type: 'numeric',
    count: value.count,
    mean: finite(value.mean) ? value.mean : null,
    std: finite(value.std) ? value.std : null,
    quantileBins: { edges: [...bins.edges], counts: [...bins.counts] },
  };
}

function storedCategorical(value: Record<string, unknown>): CategoricalReference | null {
  const f = value.frequencies;
  if (!finite(value.count) || !f || typeof f !== 'object' || Array.isArray(f) || !Object.values(f).every(finite)) return null;
  return { type: 'categorical', count: value.count, frequencies: { ...(f as Record<string, number>) } };
}

/**
 * What the server stores of a trainer's `profile.json` (a version 2 profile: the fields of
 * {@link ReferenceProfile} plus raw values): the profile with aggregates only, and the sorted
 * sample of the model's outputs on the training rows, kept apart, server side, for the exact
 * statistics of prediction drift. `profile` is null when the file is not a profile drift can use.
 */
export function storableReference(trainerProfile: unknown): { profile: ReferenceProfile | null; predictionSample: number[] | null } {
  const p = trainerProfile as Record<string, unknown> | null;
  const none = { profile: null, predictionSample: null };
  if (!p || typeof p !== 'object' || (p.profileVersion !== 2 && p.profileVersion !== REFERENCE_PROFILE_VERSION)) return none;
  if (typeof p.inputName !== 'string' || typeof p.outputName !== 'string' || !Array.isArray(p.inputColumns) || !p.inputColumns.every((c) => typeof c === 'string')) return none;
  if (!p.features || typeof p.features !== 'object') return none;
  const features: Record<string, NumericReference | CategoricalReference> = {};
  for (const [name, value] of Object.entries(p.features as Record<string, Record<string, unknown>>)) {
    const ref = value?.type === 'numeric' ? storedNumeric(value) : value?.type === 'categorical' ? storedCategorical(value) : null;
    if (ref) features[name] = ref;
  }
  const out = p.prediction as Record<string, unknown> | null | undefined;
  const prediction = out && out.type === 'numeric' ? storedNumeric(out) : null;
  const sample = prediction && finiteList(out!.sample) ? [...out!.sample].sort((a, b) => a - b) : null;
  return {
    profile: { profileVersion: REFERENCE_PROFILE_VERSION, inputName: p.inputName, outputName: p.outputName, inputColumns: [...(p.inputColumns as string[])], features, prediction },
    predictionSample: sample && sample.length > 0 ? sample : null,
  };
}
