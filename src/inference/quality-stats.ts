// Sufficient statistics of prediction quality, one labelled row at a time. Rollup rows are
// merged by a database function that deep-adds JSON, so everything here is additive: numbers,
// objects of numbers keyed by fixed or numeric strings, and fixed-length arrays of numbers.
// Removing a row is adding its contribution times −1.

/** Equal-width score bins over [0, 1] of the per-class score histograms (binned ROC AUC). */
export const SCORE_BINS = 1000;

/** Equal-width bins over [0, 1] of the expected calibration error. */
export const CALIBRATION_BINS = 10;

/**
 * Additive statistics of binary classification rows. A row's score is P(label = 1) in [0, 1].
 * Sparse histogram entries may be 0 after a corrected label is removed; readers ignore them.
 */
export interface ClassificationStats {
  /** Labelled rows. */
  n: number;
  /** Rows labelled 1 (or `true`). */
  pos: number;
  /** Confusion counts at the decision threshold: a row is predicted positive when score ≥ threshold. */
  tp: number;
  fp: number;
  tn: number;
  fn: number;
  /** Σ per-row log loss, the score clipped to [ε, 1 − ε] with ε = 2⁻⁵² as scikit-learn's `log_loss` does for float64. */
  logLoss: number;
  /** Σ (score − label)². */
  brier: number;
  /** Positives per score bin ({@link scoreBin} as a decimal string); bins without rows are absent. */
  h1: Record<string, number>;
  /** Negatives per score bin, keyed as `h1`. */
  h0: Record<string, number>;
  /** Rows per calibration bin (length {@link CALIBRATION_BINS}; bin = ⌊score · 10⌋, score 1 in the last). */
  calN: number[];
  /** Σ score per calibration bin. */
  calP: number[];
  /** Σ label per calibration bin. */
  calY: number[];
}

/** Additive statistics of regression rows; error = prediction − label. */
export interface RegressionStats {
  n: number;
  sumError: number;
  sumAbsError: number;
  sumSqError: number;
  sumY: number;
  sumSqY: number;
}

/** Quality statistics of a set of labelled rows; parts without rows are absent. */
export interface QualityStats {
  classification?: ClassificationStats;
  regression?: RegressionStats;
  /** Labelled rows whose label or score cannot be scored (see {@link labelKind}). */
  unscored?: number;
}

/** Labels and scores beyond this magnitude are unscored: their squares, summed, would overflow to Infinity. */
export const MAX_MAGNITUDE = 1e100;

/** Machine epsilon of float64: the clip scikit-learn's `log_loss` applies to float64 probabilities. */
const LOG_LOSS_EPS = 2 ** -52;

/**
 * How a label is read: a boolean, or the number 0 or 1, with a score in [0, 1] → classification
 * (score = P(label = 1)); any other finite number with a finite score → regression (so is 0 or 1
 * with a finite score outside [0, 1]); anything else (strings, objects, a boolean with a score
 * outside [0, 1], a missing or non-finite score) → unscored.
 */
export function labelKind(label: unknown, score: number | null): 'classification' | 'regression' | 'unscored' {
  if (score === null || typeof score !== 'number' || !Number.isFinite(score) || Math.abs(score) > MAX_MAGNITUDE) return 'unscored';
  const probability = score >= 0 && score <= 1;
  if (typeof label === 'boolean') return probability ? 'classification' : 'unscored';
  if (typeof label !== 'number' || !Number.isFinite(label) || Math.abs(label) > MAX_MAGNITUDE) return 'unscored';
  if ((label === 0 || label === 1) && probability) return 'classification';
  return 'regression';
}

/** The score histogram bin of a score in [0, 1]: ⌊score · SCORE_BINS⌋, score 1 in the last bin. */
export function scoreBin(score: number): number {
  return binOf(score, SCORE_BINS);
}

/** The calibration bin of a score in [0, 1]: ⌊score · CALIBRATION_BINS⌋, score 1 in the last bin. */
export function calibrationBin(score: number): number {
  return binOf(score, CALIBRATION_BINS);
}

function binOf(score: number, bins: number): number {
  return Math.min(bins - 1, Math.max(0, Math.floor(score * bins)));
}

/**
 * The contribution of one labelled row, times `sign` (−1 removes it: a corrected label).
 * A classification row is predicted positive when `score >= threshold`.
 */
export function qualityDelta(score: number | null, label: unknown, threshold: number, sign: 1 | -1): QualityStats {
  const kind = labelKind(label, score);
  if (kind === 'unscored') return { unscored: sign };
  const s = score as number;
  if (kind === 'regression') {
    const y = label as number;
    const error = s - y;
    return {
      regression: {
        n: sign,
        sumError: sign * error,
        sumAbsError: sign * Math.abs(error),
        sumSqError: sign * error * error,
        sumY: sign * y,
        sumSqY: sign * y * y,
      },
    };
  }
  const positive = label === true || label === 1;
  const predicted = s >= threshold;
  // As scikit-learn's log_loss: clip the score, take the columns [1 − c, c], divide them by
  // their sum (which rounding can move off 1), then −ln of the label's column.
  const c = Math.min(1 - LOG_LOSS_EPS, Math.max(LOG_LOSS_EPS, s));
  const q = 1 - c;
  const loss = -Math.log((positive ? c : q) / (q + c));
  const y = positive ? 1 : 0;
  const calN = new Array<number>(CALIBRATION_BINS).fill(0);
  const calP = new Array<number>(CALIBRATION_BINS).fill(0);
  const calY = new Array<number>(CALIBRATION_BINS).fill(0);
  const cb = calibrationBin(s);
  calN[cb] = sign;
  calP[cb] = sign * s;
  calY[cb] = positive ? sign : 0;
  const bin = String(scoreBin(s));
  return {
    classification: {
      n: sign,
      pos: positive ? sign : 0,
      tp: positive && predicted ? sign : 0,
      fp: !positive && predicted ? sign : 0,
      tn: !positive && !predicted ? sign : 0,
      fn: positive && !predicted ? sign : 0,
      logLoss: sign * loss,
      brier: sign * (s - y) * (s - y),
      h1: positive ? { [bin]: sign } : {},
      h0: positive ? {} : { [bin]: sign },
      calN,
      calP,
      calY,
    },
  };
}

/**
 * In-memory merge with the semantics of the database's JSON deep add: numbers are added, objects
 * merged key by key (union of keys, shared values deep-added), arrays added element-wise. Values
 * of different shapes (a number against an object, arrays of different lengths) throw a
 * RangeError: no statistics written by {@link qualityDelta} have them.
 */
export function addQuality(a: QualityStats, b: QualityStats): QualityStats {
  return deepAdd(a, b, '') as QualityStats;
}

type Additive = number | Additive[] | { [key: string]: Additive };

function deepAdd(a: unknown, b: unknown, at: string): Additive {
  if (typeof a === 'number' && typeof b === 'number') return a + b;
  if (Array.isArray(a) && Array.isArray(b)) {
    if (a.length !== b.length) throw new RangeError(`cannot add arrays of lengths ${a.length} and ${b.length} at ${at || 'the root'}`);
    return a.map((v, i) => deepAdd(v, b[i], `${at}[${i}]`));
  }
  if (isObject(a) && isObject(b)) {
    const out: { [key: string]: Additive } = {};
    for (const [key, value] of Object.entries(a)) out[key] = Object.hasOwn(b, key) ? deepAdd(value, b[key], `${at}.${key}`) : copy(value);
    for (const [key, value] of Object.entries(b)) if (!Object.hasOwn(a, key)) out[key] = copy(value);
    return out;
  }
  throw new RangeError(`cannot add values of different shapes at ${at || 'the root'}`);
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

// Merged results share no structure with their inputs, so a caller may keep folding into one.
function copy(v: unknown): Additive {
  if (Array.isArray(v)) return v.map(copy);
  if (isObject(v)) return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, copy(x)]));
  return v as Additive;
}
