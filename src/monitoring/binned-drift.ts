// Drift statistics from window rollups: the merged per-bin counts and sums of the logged values
// against the version's rollup bins. PSI, Jensen–Shannon and chi-squared come out exactly as the
// raw-log scan gives them; the two-sample KS statistic and the Wasserstein distance against the
// reference sample come with a lower and an upper bound, since the bins keep counts and sums, not
// the values.

import { chiSquared, jensenShannon, ksPValue, psi } from './drift-stats';
import { binOf } from '../registry/reference-profile';
import type { CategoricalBins, CategoryHistogram, NumericBins, NumericHistogram } from '../inference/rollup-bins';

/**
 * The drift of a numeric column from its rollup histogram, against the reference of its bins.
 *
 * - `psi`, `jensenShannon`: on the profile's decile bins, exactly as the raw-log scan.
 * - `ks` ≤ the two-sample KS statistic of (reference sample, current values) ≤ `ksUpper`;
 *   `ksPValue` is scipy's `ks_2samp` p-value of `ks` for sizes (refSize, n).
 * - `wasserstein` ≤ scipy's `wasserstein_distance(reference sample, current values)` ≤
 *   `wassersteinUpper`; the normed ones divide both by the profile's std (a constant reference:
 *   Infinity for any positive distance, 0 for none), as the raw-log scan does.
 */
export interface BinnedNumericDrift {
  n: number;
  psi: number;
  jensenShannon: number;
  ks: number;
  ksUpper: number;
  ksPValue: number;
  wasserstein: number;
  wassersteinUpper: number;
  wassersteinNormed: number;
  wassersteinNormedUpper: number;
}

/** The drift of a categorical column from its rollup histogram; chi-squared, PSI and Jensen–Shannon exactly as the raw-log scan. */
export interface BinnedCategoricalDrift {
  n: number;
  psi: number;
  jensenShannon: number;
  chi2: number;
  chi2PValue: number;
}

/**
 * Numeric drift from bins and a histogram counted against them (null when the histogram is
 * empty).
 *
 * Notation: edges e_0 < … < e_{E−1}; R_j = #{reference < e_j}/L and C_j = #{current < e_j}/n,
 * both exact from the counts of bins 0..j. F_ref, F_cur are the right-continuous ECDFs.
 *
 * KS. Every R_j − C_j is a left limit of F_ref − F_cur, so `ks` = max_j |R_j − C_j| ≤ sup|F_ref −
 * F_cur|. Upper bound, bin by bin:
 * - bin 0, x < e_0 ≤ min(sample): F_ref(x) = 0 and F_cur(x) ≤ C_0 = |R_0 − C_0| ≤ ks: exact.
 * - interior bin [e_{j−1}, e_j): both ECDFs are nondecreasing, so for x in it R_{j−1} ≤ F_ref(x)
 *   ≤ R_j and C_{j−1} ≤ F_cur(x) ≤ C_j (the upper ends are left limits at e_j > x), hence
 *   F_ref(x) − F_cur(x) ≤ R_j − C_{j−1} and F_cur(x) − F_ref(x) ≤ C_j − R_{j−1}: |F_ref − F_cur| ≤
 *   max(R_j − C_{j−1}, C_j − R_{j−1}) there. Where either ECDF is constant on the bin this is one of
 *   the edge terms already in `ks`.
 * - last bin, x ≥ e_{E−1} ≥ max(sample): F_ref(x) = 1 and F_cur(x) ≥ C_{E−1}, so the gap is at most
 *   1 − C_{E−1}. Rollup bins put e_{E−1} just above the maximum, so R_{E−1} = 1 and this is the
 *   edge term |R_{E−1} − C_{E−1}|: exact.
 * `ksUpper` is the largest of these, so sup|F_ref − F_cur| ≤ `ksUpper`.
 *
 * Wasserstein, W = ∫|F_ref − F_cur|, summed over bins. On [a, b) with m values summing to S in a
 * sample of size N, ∫_a^b F = F(a−)(b − a) + (m·b − S)/N (each value v in the bin adds 1/N on
 * [v, b)). Bin 0 (F_ref = 0) and the last bin (F_ref = 1) have an integrand of one sign, so their
 * share is exact: Σ(e_0 − v)/n below, Σ(v − e_{E−1})/n above. On an interior bin of width w let
 * g = F_ref − F_cur and d = ∫g (exact). Then |d| ≤ ∫|g| (lower bound), and ∫|g| = −d + 2∫g⁺ =
 * d + 2∫g⁻ with g⁺ ≤ (F_ref − C_{j−1})⁺, g⁺ ≤ (R_j − F_cur)⁺, g⁻ ≤ (C_j − F_ref)⁺, g⁻ ≤ (F_cur −
 * R_{j−1})⁺. Each right-hand side is a convex function φ of an ECDF F that stays in [lo, hi] on the
 * bin, so φ(F) ≤ the chord φ(lo) + (F − lo)(φ(hi) − φ(lo))/(hi − lo), whose integral needs only ∫F
 * (known). With the pointwise KS bound above times w this gives three upper bounds of ∫|g| over
 * the bin; `wassersteinUpper` sums their minimum.
 */
export function binnedNumericDrift(b: NumericBins, h: NumericHistogram): BinnedNumericDrift | null {
  const E = b.edges.length;
  const L = b.refSize;
  let n = 0;
  for (const c of h.c) n += c;
  if (n === 0 || E === 0 || L === 0) return null;

  // Every decile edge is a rollup edge, so each rollup bin lies in one decile bin: the one of its lower edge.
  const current = new Array<number>(b.deciles.length + 1).fill(0);
  current[0] += h.c[0];
  for (let j = 1; j <= E; j++) current[binOf(b.deciles, b.edges[j - 1])] += h.c[j];

  // cumRef[j] = #{reference < e_j}, cumCur[j] = #{current < e_j}.
  const cumRef: number[] = [];
  const cumCur: number[] = [];
  let rr = 0;
  let cc = 0;
  for (let j = 0; j < E; j++) {
    rr += b.refCounts[j];
    cc += h.c[j];
    cumRef.push(rr);
    cumCur.push(cc);
  }
  const R = (j: number) => cumRef[j] / L;
  const C = (j: number) => cumCur[j] / n;

  let ks = 0;
  for (let j = 0; j < E; j++) ks = Math.max(ks, Math.abs(R(j) - C(j)));
  let ksUpper = Math.max(ks, 1 - C(E - 1));

  const e0 = b.edges[0];
  const eTop = b.edges[E - 1];
  // Both tail shares are sums of nonnegative terms; rounding alone could take them below zero.
  let lower = Math.max(0, (h.c[0] * e0 - h.s[0]) / n) + Math.max(0, (h.s[E] - h.c[E] * eTop) / n);
  let upper = lower;
  for (let j = 1; j < E; j++) {
    const a = b.edges[j - 1];
    const e = b.edges[j];
    const w = e - a;
    const r0 = R(j - 1);
    const r1 = R(j);
    const c0 = C(j - 1);
    const c1 = C(j);
    const pointwise = Math.max(0, r1 - c0, c1 - r0);
    ksUpper = Math.max(ksUpper, pointwise);

    const intRef = r0 * w + (b.refCounts[j] * e - b.refSums[j]) / L;
    const intCur = c0 * w + (h.c[j] * e - h.s[j]) / n;
    const d = intRef - intCur;
    const positive = Math.min(chord((t) => Math.max(t - c0, 0), r0, r1, intRef, w), chord((t) => Math.max(r1 - t, 0), c0, c1, intCur, w));
    const negative = Math.min(chord((t) => Math.max(c1 - t, 0), r0, r1, intRef, w), chord((t) => Math.max(t - r0, 0), c0, c1, intCur, w));
    lower += Math.abs(d);
    upper += Math.max(Math.abs(d), Math.min(pointwise * w, -d + 2 * positive, d + 2 * negative));
  }

  const std = b.refStd ?? 0;
  const normed = (x: number) => (std > 0 ? x / std : x > 0 ? Infinity : 0);
  return {
    n,
    psi: psi(b.refDecileCounts, current),
    jensenShannon: jensenShannon(b.refDecileCounts, current),
    ks,
    ksUpper,
    ksPValue: ksPValue(ks, L, n),
    wasserstein: lower,
    wassersteinUpper: upper,
    wassersteinNormed: normed(lower),
    wassersteinNormedUpper: normed(upper),
  };
}

/**
 * Categorical drift from bins and a histogram (null when the histogram is empty): chi-squared,
 * PSI and Jensen–Shannon over the sorted union of the reference's and the window's categories.
 */
export function binnedCategoricalDrift(b: CategoricalBins, h: CategoryHistogram): BinnedCategoricalDrift | null {
  const own = (r: Record<string, number>, k: string) => (Object.hasOwn(r, k) ? r[k] : 0);
  let n = 0;
  for (const k of Object.keys(h.v)) n += own(h.v, k);
  if (n === 0) return null;
  const keys = [...new Set([...Object.keys(b.refFrequencies), ...Object.keys(h.v)])].sort();
  const r = keys.map((k) => own(b.refFrequencies, k));
  const cur = keys.map((k) => own(h.v, k));
  const chi = chiSquared(r, cur);
  return { n, psi: psi(r, cur), jensenShannon: jensenShannon(r, cur), chi2: chi.statistic, chi2PValue: chi.pValue };
}

// ∫φ(F) over a bin of width w where lo ≤ F ≤ hi and ∫F = integral, for convex φ: at most the
// integral of φ's chord over [lo, hi].
function chord(phi: (t: number) => number, lo: number, hi: number, integral: number, w: number): number {
  if (!(hi > lo)) return phi(lo) * w;
  return phi(lo) * w + (integral - lo * w) * ((phi(hi) - phi(lo)) / (hi - lo));
}
