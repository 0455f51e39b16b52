// Quality metrics finished from the additive statistics of src/inference/quality-stats: a few
// thousand operations at most, whatever the number of labelled rows.

import { CALIBRATION_BINS, type ClassificationStats, type QualityStats, type RegressionStats } from '../inference/quality-stats';

/** Binary classification metrics, positive label 1, as scikit-learn computes them. */
export interface ClassificationMetrics {
  rows: number;
  positives: number;
  /** The decision threshold the confusion counts were taken at (predicted positive when score ≥ threshold). */
  threshold: number;
  /** `accuracy_score`. */
  accuracy: number;
  /** `precision_score`, 0 without predicted positives (`zero_division=0`). */
  precision: number;
  /** `recall_score`, 0 without positives. */
  recall: number;
  /** `f1_score`, 0 when precision and recall are both 0. */
  f1: number;
  /** ROC AUC from the score histograms (pairs in one bin count ½); null with a single class. */
  rocAuc: number | null;
  /** |`roc_auc_score` − rocAuc| ≤ rocAucBound; 0 when rocAuc is null. */
  rocAucBound: number;
  /** `log_loss` (mean), scores clipped to [ε, 1 − ε] with ε the float64 machine epsilon. */
  logLoss: number;
  /** `brier_score_loss`: mean (score − label)². */
  brier: number;
  /**
   * Expected calibration error over {@link CALIBRATION_BINS} equal-width score bins (bin =
   * ⌊score · 10⌋, score 1 in the last): Σ_b (n_b / N)·|mean score_b − mean label_b|.
   */
  expectedCalibrationError: number;
}

/** Regression metrics; error = prediction − label. */
export interface RegressionMetrics {
  rows: number;
  /** `mean_absolute_error`. */
  mae: number;
  /** √`mean_squared_error`. */
  rmse: number;
  /** Mean error: positive when the model over-predicts. */
  bias: number;
  /** `r2_score`; null with fewer than 2 rows or labels without variance. */
  r2: number | null;
}

/** Metrics of a set of labelled rows; a part without rows is null. */
export interface QualityMetrics {
  /** Labelled rows, scored or not. */
  labelled: number;
  /** Labelled rows whose label or score could not be scored. */
  unscored: number;
  classification: ClassificationMetrics | null;
  regression: RegressionMetrics | null;
}

// Labels whose variance is below this share of their mean square are treated as constant: the
// one-pass Σy² − (Σy)²/n cancels to rounding noise of about this size when all labels are equal.
const CONSTANT_LABELS = 1e-10;

/**
 * Finishes {@link QualityStats} into metrics. `threshold` is reported with the classification
 * metrics: pass the one the statistics were folded with, since their confusion counts were taken there.
 */
export function qualityMetrics(stats: QualityStats, threshold: number): QualityMetrics {
  const classification = stats.classification && stats.classification.n > 0 ? classificationMetrics(stats.classification, threshold) : null;
  const regression = stats.regression && stats.regression.n > 0 ? regressionMetrics(stats.regression) : null;
  const unscored = stats.unscored ?? 0;
  return {
    labelled: unscored + (classification?.rows ?? 0) + (regression?.rows ?? 0),
    unscored,
    classification,
    regression,
  };
}

function classificationMetrics(c: ClassificationStats, threshold: number): ClassificationMetrics {
  const precision = ratio(c.tp, c.tp + c.fp);
  const recall = ratio(c.tp, c.tp + c.fn);
  const auc = binnedRocAuc(c.h1, c.h0);
  return {
    rows: c.n,
    positives: c.pos,
    threshold,
    accuracy: (c.tp + c.tn) / c.n,
    precision,
    recall,
    f1: ratio(2 * c.tp, 2 * c.tp + c.fp + c.fn),
    rocAuc: auc.auc,
    rocAucBound: auc.bound,
    logLoss: c.logLoss / c.n,
    brier: c.brier / c.n,
    expectedCalibrationError: expectedCalibrationError(c),
  };
}

/**
 * Mann–Whitney ROC AUC over score bins: a positive above a negative's bin counts 1, one in the
 * same bin counts ½. scikit-learn's `roc_auc_score` equals the same sum over exact scores (ties
 * ½) divided by P·N. Bins are monotone in the score, so a pair in different bins is ordered the
 * same way by bin and by score and contributes equally to both; a pair within one bin contributes
 * ½ here and 0, ½ or 1 there. Each of the Σ_b pos_b·neg_b same-bin pairs is thus off by at most
 * ½, and |exact − binned| ≤ ½·Σ_b pos_b·neg_b / (P·N), the bound returned.
 */
function binnedRocAuc(h1: Record<string, number>, h0: Record<string, number>): { auc: number | null; bound: number } {
  const bins = new Map<number, { pos: number; neg: number }>();
  const at = (key: string) => {
    const b = Number(key);
    let entry = bins.get(b);
    if (!entry) bins.set(b, (entry = { pos: 0, neg: 0 }));
    return entry;
  };
  for (const [key, count] of Object.entries(h1)) if (count > 0) at(key).pos += count;
  for (const [key, count] of Object.entries(h0)) if (count > 0) at(key).neg += count;
  let positives = 0;
  let negatives = 0;
  for (const { pos, neg } of bins.values()) {
    positives += pos;
    negatives += neg;
  }
  if (positives === 0 || negatives === 0) return { auc: null, bound: 0 };
  let below = 0;
  let wins = 0;
  let tied = 0;
  for (const b of [...bins.keys()].sort((x, y) => x - y)) {
    const { pos, neg } = bins.get(b)!;
    wins += pos * below;
    tied += pos * neg;
    below += neg;
  }
  const pairs = positives * negatives;
  return { auc: (wins + tied / 2) / pairs, bound: tied / 2 / pairs };
}

function expectedCalibrationError(c: ClassificationStats): number {
  let total = 0;
  for (let b = 0; b < CALIBRATION_BINS; b++) {
    // A bin emptied by corrections may keep rounding residue in its sums.
    if (c.calN[b] > 0) total += Math.abs(c.calP[b] - c.calY[b]);
  }
  return total / c.n;
}

function regressionMetrics(r: RegressionStats): RegressionMetrics {
  const n = r.n;
  const total = r.sumSqY - (r.sumY * r.sumY) / n;
  const constant = total <= CONSTANT_LABELS * r.sumSqY;
  const r2 = n < 2 || constant ? null : 1 - r.sumSqError / total;
  return {
    rows: n,
    mae: r.sumAbsError / n,
    rmse: Math.sqrt(Math.max(0, r.sumSqError / n)),
    bias: r.sumError / n,
    // A figure the sums cannot give (they overflowed) is unknown, never NaN or Infinity.
    r2: r2 !== null && Number.isFinite(r2) ? r2 : null,
  };
}

function ratio(numerator: number, denominator: number): number {
  return denominator > 0 ? numerator / denominator : 0;
}
