// The shape of a quality report and the arithmetic behind it: online metrics finished from merged
// rollups, the offline baseline read from a version's training metrics, and how far one is from
// the other. Nothing here reads the database.
import { Field, Float, ID, Int, ObjectType } from 'type-graphql';
import { sketchQuantile } from '../inference/latency-sketch';
import { qualityMetrics } from './quality-metrics';
import type { VersionRollup } from './rollup-read';

/** The metrics a report compares and an alert may name. */
export const QUALITY_METRICS = ['accuracy', 'precision', 'recall', 'f1', 'rocAuc', 'logLoss', 'brier', 'mae', 'rmse'] as const;

export type QualityMetricName = (typeof QUALITY_METRICS)[number];

/** Metrics where a larger value is better; the rest (losses and errors) are better smaller. */
export const HIGHER_IS_BETTER: ReadonlySet<QualityMetricName> = new Set(['accuracy', 'precision', 'recall', 'f1', 'rocAuc']);

// The names training runs write their evaluation under (the tabular trainer writes accuracy, auc
// and logLoss; other trainers follow scikit-learn's names), each read as one metric.
const BASELINE_NAMES: Record<QualityMetricName, string[]> = {
  accuracy: ['accuracy'],
  precision: ['precision'],
  recall: ['recall'],
  f1: ['f1', 'f1_score'],
  rocAuc: ['rocAuc', 'roc_auc', 'auc', 'roc_auc_score'],
  logLoss: ['logLoss', 'log_loss'],
  brier: ['brier', 'brier_score', 'brier_score_loss'],
  mae: ['mae', 'mean_absolute_error'],
  rmse: ['rmse', 'root_mean_squared_error'],
};

@ObjectType({ description: 'Quality metrics of a set of labelled rows; a metric that cannot be computed from them (or was not recorded) is null' })
export class QualityFigures {
  @Field(() => Float, { nullable: true, description: 'Share of classification rows whose decision (score ≥ threshold) matches the label' })
  accuracy: number | null = null;

  @Field(() => Float, { nullable: true, description: 'Precision of the positive class at the decision threshold' })
  precision: number | null = null;

  @Field(() => Float, { nullable: true, description: 'Recall of the positive class at the decision threshold' })
  recall: number | null = null;

  @Field(() => Float, { nullable: true, description: 'F1 of the positive class at the decision threshold' })
  f1: number | null = null;

  @Field(() => Float, { nullable: true, description: 'ROC AUC (online: from score histograms, within rocAucBound of the exact value)' })
  rocAuc: number | null = null;

  @Field(() => Float, { nullable: true, description: 'Largest difference between the online rocAuc and the exact one' })
  rocAucBound: number | null = null;

  @Field(() => Float, { nullable: true, description: 'Mean log loss of the scores' })
  logLoss: number | null = null;

  @Field(() => Float, { nullable: true, description: 'Brier score: mean squared difference of score and label' })
  brier: number | null = null;

  @Field(() => Float, { nullable: true, description: 'Expected calibration error over ten equal-width score bins' })
  expectedCalibrationError: number | null = null;

  @Field(() => Float, { nullable: true, description: 'Mean absolute error of regression rows' })
  mae: number | null = null;

  @Field(() => Float, { nullable: true, description: 'Root mean squared error of regression rows' })
  rmse: number | null = null;

  @Field(() => Float, { nullable: true, description: 'Mean error (prediction − label) of regression rows' })
  bias: number | null = null;

  @Field(() => Float, { nullable: true, description: 'Coefficient of determination of regression rows' })
  r2: number | null = null;
}

@ObjectType({ description: 'One metric online beside its offline baseline' })
export class QualityMetricChange {
  @Field({ description: 'The metric, as named in QualityFigures' })
  metric!: string;

  @Field(() => Float, { description: "The version's offline value (its training run's evaluation)" })
  baseline!: number;

  @Field(() => Float, { nullable: true, description: 'The value over the labelled rows; null when they cannot give it' })
  online!: number | null;

  @Field(() => Float, { nullable: true, description: '(online − baseline) / baseline; null without an online value or with a zero baseline' })
  relativeChange!: number | null;

  @Field(() => Float, { nullable: true, description: 'The relative change in the bad direction: positive when the metric got worse (lower for accuracy, precision, recall, f1 and rocAuc; higher for the losses and errors)' })
  degradation!: number | null;
}

@ObjectType({ description: 'Another version serving the same windows, for reading two versions side by side' })
export class PeerQuality {
  @Field(() => ID, { description: 'The other ModelVersion' })
  modelVersionId!: string;

  @Field(() => Int, { description: 'Its version number within its model' })
  version!: number;

  @Field(() => Int, { description: 'Prediction rows it answered in the windows both served' })
  rows!: number;

  @Field(() => Int, { description: 'Those rows with an outcome' })
  labelled!: number;

  @Field(() => QualityFigures, { description: 'Its metrics over those labelled rows, at its own decision threshold' })
  online!: QualityFigures;
}

@ObjectType({ description: "One served version's quality over the report's windows" })
export class VersionQuality {
  @Field(() => ID, { description: 'The ModelVersion judged' })
  modelVersionId!: string;

  @Field(() => Int, { description: 'Its version number within its model' })
  version!: number;

  @Field(() => Int, { description: 'Prediction rows the version answered' })
  rows!: number;

  @Field(() => Int, { description: 'Rows with an outcome (label)' })
  labelled!: number;

  @Field(() => Int, { description: 'Labelled rows whose label or score could not be scored' })
  unscored!: number;

  @Field(() => Int, { description: 'Labelled rows scored as classification (a 0/1 or boolean label, a score in [0, 1]): what accuracy … calibration are computed over' })
  classificationRows!: number;

  @Field(() => Int, { description: 'Labelled rows scored as regression (any other numeric label): what MAE, RMSE, bias and R² are computed over' })
  regressionRows!: number;

  @Field(() => Float, { nullable: true, description: 'labelled / rows; null without rows' })
  labelCoverage!: number | null;

  @Field(() => Float, { nullable: true, description: 'Median seconds from a prediction to its outcome' })
  labelDelayP50Seconds!: number | null;

  @Field(() => Float, { nullable: true, description: '95th percentile of the seconds from a prediction to its outcome; null without labelled rows' })
  labelDelayP95Seconds!: number | null;

  @Field(() => Float, { nullable: true, description: '99th percentile of the seconds from a prediction to its outcome; null without labelled rows' })
  labelDelayP99Seconds!: number | null;

  @Field(() => Float, { description: 'The score at and above which a row is predicted positive' })
  decisionThreshold!: number;

  @Field(() => QualityFigures, { description: 'Metrics over the labelled rows' })
  online!: QualityFigures;

  @Field(() => QualityFigures, { description: "The version's offline metrics, from its training run's evaluation" })
  baseline!: QualityFigures;

  @Field(() => [QualityMetricChange], { description: 'Each metric with an offline baseline, online beside it' })
  changes!: QualityMetricChange[];

  @Field(() => [PeerQuality], { description: 'The other served versions over the windows this one served' })
  peers!: PeerQuality[];
}

@ObjectType({ description: "A deployment's prediction quality from its outcomes: per served version, over the rollup windows starting in [from, to)" })
export class QualityReport {
  @Field(() => ID, { description: 'The Deployment reported on' })
  deploymentId!: string;

  @Field({ description: 'Earliest rollup window start included' })
  from!: Date;

  @Field({ description: 'Windows starting before this instant are included' })
  to!: Date;

  @Field(() => [VersionQuality], { description: 'Served (not shadow) versions with rows in the range' })
  versions!: VersionQuality[];
}

/** Online metrics of merged rollups, classification judged at `threshold`. */
export function onlineFigures(r: Pick<VersionRollup, 'quality'>, threshold: number): QualityFigures {
  const m = qualityMetrics(r.quality, threshold);
  const c = m.classification;
  const g = m.regression;
  const figures = {
    accuracy: c?.accuracy ?? null,
    precision: c?.precision ?? null,
    recall: c?.recall ?? null,
    f1: c?.f1 ?? null,
    rocAuc: c?.rocAuc ?? null,
    rocAucBound: c && c.rocAuc !== null ? c.rocAucBound : null,
    logLoss: c?.logLoss ?? null,
    brier: c?.brier ?? null,
    expectedCalibrationError: c?.expectedCalibrationError ?? null,
    mae: g?.mae ?? null,
    rmse: g?.rmse ?? null,
    bias: g?.bias ?? null,
    r2: g?.r2 ?? null,
  };
  // A figure its sums cannot give (an overflow, a corrupt row) is unknown, never NaN or Infinity.
  return Object.assign(new QualityFigures(), Object.fromEntries(Object.entries(figures).map(([k, v]) => [k, typeof v === 'number' && !Number.isFinite(v) ? null : v])));
}

/** A version's offline metrics under the report's names; a metric its training run did not record is null. */
export function baselineFigures(metrics: unknown): QualityFigures {
  const out = new QualityFigures();
  const m = (metrics ?? {}) as Record<string, unknown>;
  for (const metric of QUALITY_METRICS) {
    const found = BASELINE_NAMES[metric].map((name) => m[name]).find((v): v is number => typeof v === 'number' && Number.isFinite(v));
    out[metric] = found ?? null;
  }
  return out;
}

/** How far `online` is from `baseline` for every metric with a baseline. */
export function metricChanges(online: QualityFigures, baseline: QualityFigures): QualityMetricChange[] {
  const out: QualityMetricChange[] = [];
  for (const metric of QUALITY_METRICS) {
    const b = baseline[metric];
    if (b === null) continue;
    const o = online[metric];
    const relativeChange = o === null || b === 0 ? null : (o - b) / Math.abs(b);
    const degradation = relativeChange === null ? null : HIGHER_IS_BETTER.has(metric) ? -relativeChange : relativeChange;
    out.push(Object.assign(new QualityMetricChange(), { metric, baseline: b, online: o, relativeChange, degradation }));
  }
  return out;
}

/** Label delay percentiles (seconds) of merged rollups. */
export function labelDelays(r: Pick<VersionRollup, 'labelDelay'>) {
  return {
    labelDelayP50Seconds: sketchQuantile(r.labelDelay, 0.5),
    labelDelayP95Seconds: sketchQuantile(r.labelDelay, 0.95),
    labelDelayP99Seconds: sketchQuantile(r.labelDelay, 0.99),
  };
}
