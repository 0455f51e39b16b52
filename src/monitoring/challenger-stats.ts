// Statistics of a champion/challenger comparison on one shared holdout: paired, exact where it can
// be, and deterministic, so that the same rows always give the same decision.
import { mulberry32 } from '../core/prng';

/** McNemar's test on paired correct/incorrect decisions of two models on the same rows. */
export interface McNemarResult {
  /** Rows the champion got right and the candidate wrong. */
  b: number;
  /** Rows the candidate got right and the champion wrong. */
  c: number;
  /** Exact two-sided binomial p-value of b against b + c at ½ (1 without discordant rows). */
  pValue: number;
  /** One-sided p-value of "the candidate is worse": P(X ≥ b), X ~ Binomial(b + c, ½). */
  pCandidateWorse: number;
  /** One-sided p-value of "the candidate is better": P(X ≥ c), X ~ Binomial(b + c, ½). */
  pCandidateBetter: number;
}

/** ln(n!) for every n up to `max`, summed exactly from logs (no gamma approximation). */
function logFactorials(max: number): Float64Array {
  const out = new Float64Array(max + 1);
  for (let i = 2; i <= max; i++) out[i] = out[i - 1] + Math.log(i);
  return out;
}

/** The Binomial(n, ½) probability of each k in 0..n. */
function binomialHalf(n: number): Float64Array {
  const lf = logFactorials(n);
  const out = new Float64Array(n + 1);
  const logHalf = n * Math.log(0.5);
  for (let k = 0; k <= n; k++) out[k] = Math.exp(lf[n] - lf[k] - lf[n - k] + logHalf);
  return out;
}

/**
 * McNemar's exact test from the discordant counts, as `scipy.stats.binomtest(b, b + c, 0.5)`:
 * the two-sided p-value sums the probabilities no larger than that of the observed count (with
 * scipy's relative tolerance 1 + 1e-7), capped at 1.
 */
export function mcnemar(b: number, c: number): McNemarResult {
  if (!Number.isInteger(b) || !Number.isInteger(c) || b < 0 || c < 0) throw new RangeError('b and c must be counts');
  const n = b + c;
  if (n === 0) return { b, c, pValue: 1, pCandidateWorse: 1, pCandidateBetter: 1 };
  const p = binomialHalf(n);
  const observed = p[b] * (1 + 1e-7);
  let two = 0;
  for (let k = 0; k <= n; k++) if (p[k] <= observed) two += p[k];
  let upper = 0;
  for (let k = b; k <= n; k++) upper += p[k];
  let better = 0;
  for (let k = c; k <= n; k++) better += p[k];
  return { b, c, pValue: Math.min(1, two), pCandidateWorse: Math.min(1, upper), pCandidateBetter: Math.min(1, better) };
}

/** Discordant counts of paired decisions: `champion[i]`/`candidate[i]` say whether each was right on row i. */
export function discordant(champion: readonly boolean[], candidate: readonly boolean[]): { b: number; c: number } {
  if (champion.length !== candidate.length) throw new RangeError('paired decisions must be of equal length');
  let b = 0;
  let c = 0;
  for (let i = 0; i < champion.length; i++) {
    if (champion[i] && !candidate[i]) b += 1;
    else if (!champion[i] && candidate[i]) c += 1;
  }
  return { b, c };
}

/**
 * Exact ROC AUC of `scores` against binary `labels` (1 positive, 0 negative): the share of
 * (positive, negative) pairs the scores order correctly, ties counted ½ (the Mann–Whitney
 * statistic, equal to `sklearn.metrics.roc_auc_score`). Null when either class is absent.
 * `weights` counts each row that many times (the bootstrap's resample multiplicities).
 */
export function rocAuc(scores: readonly number[], labels: readonly number[], weights?: ArrayLike<number>): number | null {
  const n = scores.length;
  const order = Array.from({ length: n }, (_, i) => i).sort((x, y) => scores[x] - scores[y]);
  let pos = 0;
  let neg = 0;
  let correct = 0;
  // Walk groups of equal scores in ascending order: each positive beats every lower negative and ties half the equal ones.
  let negBelow = 0;
  for (let i = 0; i < n; ) {
    let j = i;
    let gPos = 0;
    let gNeg = 0;
    while (j < n && scores[order[j]] === scores[order[i]]) {
      const w = weights ? weights[order[j]] : 1;
      if (labels[order[j]] === 1) gPos += w;
      else gNeg += w;
      j += 1;
    }
    correct += gPos * negBelow + 0.5 * gPos * gNeg;
    negBelow += gNeg;
    pos += gPos;
    neg += gNeg;
    i = j;
  }
  return pos > 0 && neg > 0 ? correct / (pos * neg) : null;
}

/** A percentile bootstrap interval of the AUC difference (candidate − champion). */
export interface AucDifferenceInterval {
  /** The difference on the rows themselves. */
  difference: number;
  lower: number;
  upper: number;
  /** Confidence level, e.g. 0.95. */
  level: number;
  /** Resamples that held both classes (the others have no AUC and are left out). */
  resamples: number;
  seed: number;
}

/**
 * Paired bootstrap of AUC(candidate) − AUC(champion): `resamples` draws of n rows with
 * replacement (the same rows for both models), from mulberry32(`seed`); the interval is the
 * (1 − level)/2 and (1 + level)/2 percentiles of the differences (linear interpolation between
 * order statistics, as numpy's default). Null when the rows lack either class.
 */
export function bootstrapAucDifference(
  champion: readonly number[],
  candidate: readonly number[],
  labels: readonly number[],
  opts: { resamples?: number; seed?: number; level?: number } = {},
): AucDifferenceInterval | null {
  const resamples = opts.resamples ?? 1000;
  const seed = opts.seed ?? 1;
  const level = opts.level ?? 0.95;
  const n = labels.length;
  if (champion.length !== n || candidate.length !== n) throw new RangeError('paired scores must match the labels in length');
  const a = rocAuc(champion, labels);
  const b = rocAuc(candidate, labels);
  if (a === null || b === null) return null;
  const random = mulberry32(seed);
  const weights = new Float64Array(n);
  const diffs: number[] = [];
  for (let r = 0; r < resamples; r++) {
    weights.fill(0);
    for (let i = 0; i < n; i++) weights[Math.floor(random() * n)] += 1;
    const ra = rocAuc(champion, labels, weights);
    const rb = rocAuc(candidate, labels, weights);
    if (ra !== null && rb !== null) diffs.push(rb - ra);
  }
  diffs.sort((x, y) => x - y);
  return { difference: b - a, lower: percentile(diffs, (1 - level) / 2), upper: percentile(diffs, (1 + level) / 2), level, resamples: diffs.length, seed };
}

/** The q-quantile of sorted values, interpolating linearly between order statistics. */
function percentile(sorted: readonly number[], q: number): number {
  if (!sorted.length) return Number.NaN;
  const h = (sorted.length - 1) * q;
  const lo = Math.floor(h);
  const hi = Math.min(sorted.length - 1, lo + 1);
  return sorted[lo] + (h - lo) * (sorted[hi] - sorted[lo]);
}
