import type { NumericBins, NumericHistogram, RollupBins, CategoryHistogram } from '../inference/rollup-bins';
import { binnedCategoricalDrift, binnedNumericDrift } from './binned-drift';
import { decide, decideAll, DEFAULT_DRIFT_THRESHOLDS, feature, type DriftReport, type DriftStatistics, type DriftThresholds, type FeatureDrift } from './drift.service';
import type { VersionRollup } from './rollup-read';

export interface RollupDriftArgs {
  deploymentId: string;
  modelVersionId: string;
  windowStart: Date;
  windowEnd: Date;
  bins: RollupBins;
  /** The version's rollups merged over the window. */
  rollup: Pick<VersionRollup, 'rows' | 'features' | 'prediction'>;
  thresholds?: Partial<DriftThresholds>;
}

/**
 * A drift report from a version's merged window rollups, against the bins fixed from its
 * reference: PSI and Jensen–Shannon on the reference deciles and chi-squared on categories equal
 * the raw scan's; KS and the normed Wasserstein distance are lower bounds with their upper bounds
 * beside them (`ksUpper`, `wassersteinNormedUpper`). The method follows the raw report's (Evidently's):
 * KS test (p-value from the lower bound) for a reference of at most `smallReference` rows, the
 * normed Wasserstein distance (its lower bound) otherwise. Its cost grows with windows × bins, not rows.
 */
export function driftReportFromRollup(args: RollupDriftArgs): DriftReport {
  const t: DriftThresholds = { ...DEFAULT_DRIFT_THRESHOLDS, ...args.thresholds };
  const numeric = (name: string, b: NumericBins, h: NumericHistogram | undefined): FeatureDrift | null => {
    const d = h ? binnedNumericDrift(b, h) : null;
    if (!d) return null;
    const statistics: DriftStatistics = {
      psi: d.psi,
      jensenShannon: d.jensenShannon,
      ks: d.ks,
      ksUpper: d.ksUpper,
      ksPValue: d.ksPValue,
      wassersteinNormed: d.wassersteinNormed,
      wassersteinNormedUpper: d.wassersteinNormedUpper,
      chi2: null,
      chi2PValue: null,
    };
    return b.refCount <= t.smallReference
      ? feature(name, 'numeric', 'ks', d.ks, d.ksPValue, t.pValue, statistics, d.n, b.refCount)
      : feature(name, 'numeric', 'wasserstein', d.wassersteinNormed, null, t.wasserstein, statistics, d.n, b.refCount);
  };
  const features: FeatureDrift[] = [];
  for (const c of args.bins.columns) {
    const h = Object.hasOwn(args.rollup.features, c.name) ? args.rollup.features[c.name] : undefined;
    if (c.bins.kind === 'numeric') {
      const f = numeric(c.name, c.bins, h as NumericHistogram | undefined);
      if (f) features.push(f);
      continue;
    }
    const d = h ? binnedCategoricalDrift(c.bins, h as CategoryHistogram) : null;
    if (!d) continue;
    const statistics: DriftStatistics = { psi: d.psi, jensenShannon: d.jensenShannon, ks: null, ksPValue: null, wassersteinNormed: null, chi2: d.chi2, chi2PValue: d.chi2PValue };
    features.push(
      c.bins.refCount <= t.smallReference
        ? feature(c.name, 'categorical', 'chi2', d.chi2, d.chi2PValue, t.pValue, statistics, d.n, c.bins.refCount)
        : feature(c.name, 'categorical', 'jensen_shannon', d.jensenShannon, null, t.jensenShannon, statistics, d.n, c.bins.refCount),
    );
  }
  decideAll(features, t);
  const prediction = args.bins.prediction && args.rollup.prediction ? numeric('prediction', args.bins.prediction, args.rollup.prediction) : null;
  if (prediction) decide(prediction, prediction.pValue, t);
  return {
    source: 'rollup',
    deploymentId: args.deploymentId,
    modelVersionId: args.modelVersionId,
    windowStart: args.windowStart,
    windowEnd: args.windowEnd,
    rows: args.rollup.rows,
    features,
    prediction,
    driftedShare: features.length ? features.filter((f) => f.drifted).length / features.length : 0,
  };
}
