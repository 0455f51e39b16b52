// Arguments and pages of the monitoring API, and the range checks of its numeric arguments.
import { Field, Float, ID, InputType, Int } from 'type-graphql';
import { badInput } from '../core/errors';
import { Connection } from '../core/pagination';
import { JSONObjectScalar } from '../core/scalars';
import { Alert, AlertKind, AlertSeverity, AlertStatus } from './alert.entity';

@InputType({ description: 'Narrows a list (or a stream) of alerts; every field given must match' })
export class AlertFilter {
  @Field(() => ID, { nullable: true, description: 'Only alerts of this Deployment id' })
  deployment?: string | null;

  @Field(() => [AlertKind], { nullable: true, description: 'Only alerts of these kinds' })
  kinds?: AlertKind[] | null;

  @Field(() => AlertSeverity, { nullable: true, description: 'This severity and above' })
  minSeverity?: AlertSeverity | null;

  @Field(() => [AlertStatus], { nullable: true, description: 'Only alerts in these statuses' })
  statuses?: AlertStatus[] | null;

  @Field(() => String, { nullable: true, description: 'Only alerts of the team with this name' })
  team?: string | null;
}

@InputType({ description: 'Quality thresholds of a deployment; each one given replaces the current one, the rest are kept' })
export class DeploymentQualityInput {
  @Field(() => Float, { nullable: true, description: 'Relative degradation of a metric against its offline baseline that opens a WARNING alert (default 0.05); 0 < warning ≤ critical < 1' })
  warning?: number | null;

  @Field(() => Float, { nullable: true, description: 'Relative degradation that makes a quality alert CRITICAL (default 0.10)' })
  critical?: number | null;

  @Field(() => Int, { nullable: true, description: 'Labelled rows a version needs over the lookback to be judged (default 100)' })
  minLabelled?: number | null;

  @Field(() => Int, { nullable: true, description: 'Seconds of labelled traffic each pass judges, ending at its window end: labels arrive late (default 86400)' })
  lookbackSeconds?: number | null;
}

@InputType({ description: "Changes to a deployment's monitor settings; each field given replaces the current value, the rest are kept" })
export class DeploymentMonitoringInput {
  @Field(() => ID, { description: 'The Deployment id' })
  deployment!: string;

  @Field(() => Int, { nullable: true, description: 'Length of the window each pass judges (seconds)' })
  windowSeconds?: number | null;

  @Field(() => Int, { nullable: true, description: 'How often the monitor runs (seconds)' })
  everySeconds?: number | null;

  @Field(() => Int, { nullable: true, description: 'After an alert is resolved, how long the same condition stays quiet (seconds)' })
  cooldownSeconds?: number | null;

  @Field(() => Int, { nullable: true, description: 'Requests a version needs in a window to be judged' })
  minRequests?: number | null;

  @Field(() => JSONObjectScalar, { nullable: true, description: 'Drift thresholds over the defaults, e.g. { "pValue": 0.01, "wasserstein": 0.2, "psiWarning": 0.1, "psiCritical": 0.25 }' })
  drift?: Record<string, number> | null;

  @Field(() => ID, { nullable: true, description: 'Retrain policy: a CRITICAL drift alert starts a training run on this dataset version' })
  retrainDatasetVersion?: string | null;

  @Field(() => DeploymentQualityInput, { nullable: true, description: "Quality alerts: thresholds against each version's offline metrics" })
  quality?: DeploymentQualityInput | null;
}

export const AlertConnection = Connection(Alert);

/** `v` when it is a whole number from `lo` to `hi`, undefined when absent; BAD_USER_INPUT otherwise. */
export const intIn = (v: number | null | undefined, lo: number, hi: number, field: string) => {
  if (v === null || v === undefined) return undefined;
  if (!Number.isInteger(v) || v < lo || v > hi) throw badInput(`${field} must be ${lo} to ${hi}`, { field });
  return v;
};

@InputType({ description: "Which of a deployment's labelled production traffic to sample, and how much of it to hold out" })
export class SampleProductionDataInput {
  @Field(() => ID, { description: 'The Deployment id whose traffic to sample' })
  deployment!: string;

  @Field(() => Date, { nullable: true, description: 'Predictions that occurred at or after this instant (default: 7 days before `to`)' })
  from?: Date | null;

  @Field(() => Date, { nullable: true, description: 'Predictions that occurred before this instant (default: now); the range spans at most 90 days' })
  to?: Date | null;

  @Field(() => Float, { defaultValue: 0.2, description: 'The latest share of the rows, by time, that becomes the HOLDOUT part; above 0, at most 0.5' })
  holdoutShare!: number;
}

@InputType({ description: 'What a candidate must show against the champion on the holdout' })
export class ChallengePolicyInput {
  @Field(() => Int, { defaultValue: 200, description: 'Fewer holdout rows reject the candidate: too little evidence; 1 to 1,000,000' })
  minRows!: number;

  @Field(() => Float, { defaultValue: 0, description: "Largest accuracy drop below the champion's tolerated, relative (0.01: 1 %); 0 to below 1" })
  maxAccuracyDrop!: number;

  @Field(() => Float, { defaultValue: 0.05, description: "Significance level of McNemar's one-sided test that the candidate is worse; above 0, at most 0.5" })
  alpha!: number;

  @Field({ defaultValue: false, description: "The candidate must be significantly better than the champion (McNemar's one-sided test at alpha), not merely not worse: a retrained model replaces the champion only on evidence that it is better" })
  requireImprovement!: boolean;

  @Field(() => Float, { nullable: true, description: "Score at or above it predicts class 1, for both models (default: each version's metrics.threshold, else 0.5); above 0, below 1" })
  decisionThreshold?: number | null;
}

@InputType({ description: 'A candidate model version to judge against a champion on a shared holdout' })
export class ChallengeModelVersionInput {
  @Field(() => ID, { description: 'The ModelVersion to judge' })
  candidate!: string;

  @Field(() => ID, { nullable: true, description: "The ModelVersion to judge it against (default: the version holding the candidate's model's `champion` alias)" })
  champion?: string | null;

  @Field(() => ID, { description: 'A DatasetVersion whose content is a CSV: the input columns, then `label` (0 or 1)' })
  holdout!: string;

  @Field(() => ChallengePolicyInput, { nullable: true, description: 'The thresholds; the defaults of ChallengePolicyInput when left out' })
  policy?: ChallengePolicyInput | null;
}
