// A deployment's loop policies: when to retrain on production data (retrain policy) and how a
// candidate that passed the gate reaches the traffic (promotion policy). Types, defaults and checks.
import { CronExpressionParser } from 'cron-parser';
import { Field, Float, ID, InputType, Int, ObjectType, registerEnumType } from 'type-graphql';
import { badInput } from '../core/errors';
import { AlertSeverity } from './alert.entity';
import { MonitoringReason } from './monitoring.errors';

export enum PromotionApproval {
  REQUIRED = 'REQUIRED',
  AUTOMATIC = 'AUTOMATIC',
}
registerEnumType(PromotionApproval, {
  name: 'PromotionApproval',
  description:
    'For PRODUCTION deployments (STAGING never waits for approval): REQUIRED waits for a reviewer to approve the candidate; ' +
    "AUTOMATIC approves it, as the policy on behalf of whoever set it, when it passed the gate with the stated margin over the champion's accuracy (otherwise it waits for a reviewer too)",
  valuesConfig: {
    REQUIRED: { description: 'A reviewer must approve the candidate before it takes PRODUCTION traffic' },
    AUTOMATIC: { description: "The policy approves the candidate, on behalf of whoever set it, when it passed the gate with autoApproveMargin over the champion's accuracy; otherwise a reviewer must" },
  },
});

/** Metrics a quality trigger may watch (those with an offline baseline and a direction). */
const QUALITY_METRICS = ['accuracy', 'precision', 'recall', 'f1', 'rocAuc', 'logLoss', 'brier', 'ece', 'mae', 'rmse'];

@ObjectType({ description: 'Retrain when a drift alert of the serving version is open at this severity or above' })
@InputType('DriftTriggerInput', { description: 'Retrain when a drift alert of the serving version is open at this severity or above' })
export class DriftTrigger {
  @Field(() => AlertSeverity, { defaultValue: AlertSeverity.CRITICAL, description: 'The least severe drift alert that fires' })
  minSeverity!: AlertSeverity;
}

@ObjectType({ description: "Retrain when an online quality metric of the serving version is worse than its offline value by `maxDrop` (relative), over the monitor's quality lookback" })
@InputType('QualityTriggerInput', { description: "Retrain when an online quality metric of the serving version is worse than its offline value by `maxDrop` (relative), over the monitor's quality lookback" })
export class QualityTrigger {
  @Field({ defaultValue: 'accuracy', description: `One of ${QUALITY_METRICS.join(', ')}` })
  metric!: string;

  @Field(() => Float, { defaultValue: 0.1, description: 'Relative degradation that fires (0.1: 10 % worse); above 0, below 1' })
  maxDrop!: number;

  @Field(() => Int, { defaultValue: 200, description: 'Labelled rows the lookback must hold before the metric is trusted; 1 to 1,000,000' })
  minLabelled!: number;
}

@ObjectType({ description: "Retrain when the labelled production rows since the champion was trained reach this share of the champion's training rows" })
@InputType('LabelVolumeTriggerInput', { description: "Retrain when the labelled production rows since the champion was trained reach this share of the champion's training rows" })
export class LabelVolumeTrigger {
  @Field(() => Float, { defaultValue: 0.5, description: 'Above 0, at most 100' })
  minShare!: number;
}

@ObjectType({ description: "The champion/challenger gate's thresholds for the loop's candidates (see challengeModelVersion)" })
@InputType('LoopGateInput', { description: "The champion/challenger gate's thresholds for the loop's candidates (see challengeModelVersion)" })
export class LoopGate {
  @Field(() => Int, { defaultValue: 200, description: 'Fewer holdout rows reject the candidate; 1 to 1,000,000' })
  minRows!: number;

  @Field(() => Float, { defaultValue: 0, description: "Largest accuracy drop below the champion's tolerated, relative; 0 to below 1" })
  maxAccuracyDrop!: number;

  @Field(() => Float, { defaultValue: 0.05, description: "Significance level of McNemar's one-sided tests; above 0, at most 0.5" })
  alpha!: number;

  @Field({ defaultValue: true, description: 'The candidate must be significantly better than the champion, not merely not worse (so that retraining on noise promotes nothing)' })
  requireImprovement!: boolean;
}

@ObjectType({ description: 'When a deployment retrains on its labelled production traffic, and how' })
export class RetrainPolicy {
  @Field({ description: 'false: the policy is kept but fires no trigger' })
  enabled!: boolean;

  @Field(() => DriftTrigger, { nullable: true, description: 'The drift trigger; null when drift does not retrain' })
  drift!: DriftTrigger | null;

  @Field(() => QualityTrigger, { nullable: true, description: 'The quality trigger; null when quality does not retrain' })
  quality!: QualityTrigger | null;

  @Field(() => LabelVolumeTrigger, { nullable: true, description: 'The label-volume trigger; null when label volume does not retrain' })
  labelVolume!: LabelVolumeTrigger | null;

  @Field(() => String, { nullable: true, description: 'A cron schedule (five or six fields, UTC)' })
  schedule!: string | null;

  @Field(() => Int, { description: 'After an iteration, no new one begins for this long' })
  cooldownSeconds!: number;

  @Field(() => Int, { description: 'The production sample spans the last this many monitor windows' })
  sampleWindows!: number;

  @Field(() => Int, { description: 'After a trigger, the loop collects this long before sampling, so that the sample holds traffic from after the change' })
  collectSeconds!: number;

  @Field(() => Int, { description: 'An iteration that cannot take a sample (too few usable labelled rows) for this long fails' })
  sampleTimeoutSeconds!: number;

  @Field(() => Float, { description: 'The latest share of the sampled rows held out for the gate' })
  holdoutShare!: number;

  @Field({ description: "The champion's own training data is added to the production sample" })
  includeChampionData!: boolean;

  @Field(() => ID, { nullable: true, description: 'A fixed DatasetVersion added to the production sample' })
  alsoTrainOn!: string | null;

  @Field(() => LoopGate, { description: 'What a candidate must show against the champion before it is promoted' })
  gate!: LoopGate;

  @Field({ description: 'Who set the policy: the loop retrains as them, with their rights as they are then' })
  setBy!: string;
}

@ObjectType({ description: 'How a candidate that passed the gate reaches the traffic' })
export class PromotionPolicy {
  @Field(() => Int, { description: 'Seconds the candidate mirrors traffic first (a SHADOW rollout); 0: no shadow' })
  shadowSeconds!: number;

  @Field(() => Float, { description: "Shadow agreement with the serving version below which the shadow rolls back; 0 by default, since a model retrained after a change is expected to disagree where the world changed" })
  shadowMinAgreement!: number;

  @Field(() => [Int], { description: 'Canary steps (percent of traffic), increasing, ending at 100' })
  steps!: number[];

  @Field(() => Int, { description: 'How long each canary step runs before its health check' })
  bakeSeconds!: number;

  @Field(() => Int, { description: 'Requests a step must see before it is judged' })
  minRequests!: number;

  @Field(() => PromotionApproval, { description: 'Whether a PRODUCTION candidate waits for a reviewer' })
  approval!: PromotionApproval;

  @Field(() => Float, { description: "AUTOMATIC approval needs the candidate's holdout accuracy at least this far above the champion's (absolute)" })
  autoApproveMargin!: number;

  @Field({ description: 'Who set the policy: rollouts start as them, and an automatic approval is theirs' })
  setBy!: string;
}

@InputType({ description: "A deployment's whole retrain policy: it replaces the current one; fields left out take their defaults. An enabled policy needs at least one trigger" })
export class SetRetrainPolicyInput {
  @Field(() => ID, { description: 'The Deployment id' })
  deployment!: string;

  @Field({ defaultValue: true, description: 'false keeps the policy but fires no trigger' })
  enabled!: boolean;

  @Field(() => DriftTrigger, { nullable: true, description: 'Retrain on drift alerts; no drift trigger when left out' })
  drift?: DriftTrigger | null;

  @Field(() => QualityTrigger, { nullable: true, description: 'Retrain on degraded online quality; no quality trigger when left out' })
  quality?: QualityTrigger | null;

  @Field(() => LabelVolumeTrigger, { nullable: true, description: 'Retrain once enough new labels arrived; no label-volume trigger when left out' })
  labelVolume?: LabelVolumeTrigger | null;

  @Field(() => String, { nullable: true, description: "A cron schedule (five or six fields, UTC), e.g. '0 3 * * 1'" })
  schedule?: string | null;

  @Field(() => Int, { defaultValue: 3600, description: '0 to 30 days' })
  cooldownSeconds!: number;

  @Field(() => Int, { defaultValue: 12, description: '1 to 10,000 windows (at most 90 days)' })
  sampleWindows!: number;

  @Field(() => Int, { defaultValue: 0, description: '0 to 7 days' })
  collectSeconds!: number;

  @Field(() => Int, { defaultValue: 86_400, description: '1 s to 30 days' })
  sampleTimeoutSeconds!: number;

  @Field(() => Float, { defaultValue: 0.2, description: 'Above 0, at most 0.5' })
  holdoutShare!: number;

  @Field({ defaultValue: false, description: "Add the champion's own training data to the production sample" })
  includeChampionData!: boolean;

  @Field(() => ID, { nullable: true, description: "A DatasetVersion id of the deployment's team, added to every production sample" })
  alsoTrainOn?: string | null;

  @Field(() => LoopGate, { nullable: true, description: 'The gate thresholds; the defaults of LoopGateInput when left out' })
  gate?: LoopGate | null;
}

@InputType({ description: "A deployment's whole promotion policy: it replaces the current one; fields left out take their defaults" })
export class SetPromotionPolicyInput {
  @Field(() => ID, { description: 'The Deployment id' })
  deployment!: string;

  @Field(() => Int, { defaultValue: 300, description: '0 to 7 days' })
  shadowSeconds!: number;

  @Field(() => Float, { defaultValue: 0, description: '0 to 1' })
  shadowMinAgreement!: number;

  @Field(() => [Int], { nullable: true, description: 'Default 5, 25, 50, 100' })
  steps?: number[] | null;

  @Field(() => Int, { defaultValue: 300, description: '1 s to 7 days' })
  bakeSeconds!: number;

  @Field(() => Int, { defaultValue: 200, description: '1 to 10,000,000' })
  minRequests!: number;

  @Field(() => PromotionApproval, { defaultValue: PromotionApproval.REQUIRED, description: 'Whether a PRODUCTION candidate waits for a reviewer (REQUIRED) or may be approved by the policy (AUTOMATIC)' })
  approval!: PromotionApproval;

  @Field(() => Float, { defaultValue: 0.01, description: '0 to 1' })
  autoApproveMargin!: number;
}

/** The retrain policy as stored (deployment ids as uuids; `setBy` is stored beside it). */
export type StoredRetrainPolicy = Omit<RetrainPolicy, 'setBy' | 'alsoTrainOn'> & { alsoTrainOn: string | null };
export type StoredPromotionPolicy = Omit<PromotionPolicy, 'setBy'>;

const DAY = 86_400;
const policyError = (field: string, message: string) => badInput(message, { field, reason: MonitoringReason.LOOP_POLICY });
const inRange = (v: number, lo: number, hi: number, integer: boolean) => Number.isFinite(v) && v >= lo && v <= hi && (!integer || Number.isInteger(v));

/** The retrain policy to store, checked: BAD_USER_INPUT (LOOP_POLICY) naming the first field out of range. `alsoTrainOn` is resolved by the caller. */
export function checkedRetrainPolicy(input: SetRetrainPolicyInput, windowSeconds: number, alsoTrainOn: string | null): StoredRetrainPolicy {
  const drift = input.drift ? { minSeverity: input.drift.minSeverity ?? AlertSeverity.CRITICAL } : null;
  const quality = input.quality ? { metric: input.quality.metric ?? 'accuracy', maxDrop: input.quality.maxDrop ?? 0.1, minLabelled: input.quality.minLabelled ?? 200 } : null;
  const labelVolume = input.labelVolume ? { minShare: input.labelVolume.minShare ?? 0.5 } : null;
  const schedule = input.schedule?.trim() || null;
  if (quality) {
    if (!QUALITY_METRICS.includes(quality.metric)) throw policyError('quality.metric', `metric must be one of ${QUALITY_METRICS.join(', ')}`);
    if (!(quality.maxDrop > 0 && quality.maxDrop < 1)) throw policyError('quality.maxDrop', 'maxDrop must be above 0 and below 1');
    if (!inRange(quality.minLabelled, 1, 1_000_000, true)) throw policyError('quality.minLabelled', 'minLabelled must be a whole number from 1 to 1,000,000');
  }
  if (labelVolume && !(labelVolume.minShare > 0 && labelVolume.minShare <= 100)) throw policyError('labelVolume.minShare', 'minShare must be above 0 and at most 100');
  if (schedule) {
    // cron-parser pads a short expression with '*' ("0" would be every minute of every Sunday): five or six fields, or an @alias.
    const fields = schedule.split(/\s+/).length;
    if (fields !== 5 && fields !== 6 && !/^@[a-z]+$/i.test(schedule)) throw policyError('schedule', `schedule must be a cron expression of five or six fields (UTC), not ${fields}`);
    try {
      CronExpressionParser.parse(schedule, { tz: 'UTC' });
    } catch (e) {
      throw policyError('schedule', `schedule is not a cron expression: ${(e as Error).message}`);
    }
  }
  if (input.enabled !== false && !drift && !quality && !labelVolume && !schedule) throw policyError('enabled', 'an enabled retrain policy needs at least one trigger: drift, quality, labelVolume or schedule');
  if (!inRange(input.cooldownSeconds, 0, 30 * DAY, true)) throw policyError('cooldownSeconds', 'cooldownSeconds must be a whole number from 0 to 30 days');
  if (!inRange(input.sampleWindows, 1, 10_000, true) || input.sampleWindows * windowSeconds > 90 * DAY) {
    throw policyError('sampleWindows', `sampleWindows must be a whole number from 1 to 10,000 spanning at most 90 days (a window is ${windowSeconds} s)`);
  }
  if (!inRange(input.collectSeconds, 0, 7 * DAY, true)) throw policyError('collectSeconds', 'collectSeconds must be a whole number from 0 to 7 days');
  if (!inRange(input.sampleTimeoutSeconds, 1, 30 * DAY, true)) throw policyError('sampleTimeoutSeconds', 'sampleTimeoutSeconds must be a whole number from 1 s to 30 days');
  if (!(input.holdoutShare > 0 && input.holdoutShare <= 0.5)) throw policyError('holdoutShare', 'holdoutShare must be above 0 and at most 0.5');
  const g = { minRows: input.gate?.minRows ?? 200, maxAccuracyDrop: input.gate?.maxAccuracyDrop ?? 0, alpha: input.gate?.alpha ?? 0.05, requireImprovement: input.gate?.requireImprovement ?? true };
  if (!inRange(g.minRows, 1, 1_000_000, true)) throw policyError('gate.minRows', 'minRows must be a whole number from 1 to 1,000,000');
  if (!(g.maxAccuracyDrop >= 0 && g.maxAccuracyDrop < 1)) throw policyError('gate.maxAccuracyDrop', 'maxAccuracyDrop must be at least 0 and below 1');
  if (!(g.alpha > 0 && g.alpha <= 0.5)) throw policyError('gate.alpha', 'alpha must be above 0 and at most 0.5');
  return {
    enabled: input.enabled !== false,
    drift,
    quality,
    labelVolume,
    schedule,
    cooldownSeconds: input.cooldownSeconds,
    sampleWindows: input.sampleWindows,
    collectSeconds: input.collectSeconds,
    sampleTimeoutSeconds: input.sampleTimeoutSeconds,
    holdoutShare: input.holdoutShare,
    includeChampionData: input.includeChampionData === true,
    alsoTrainOn,
    gate: g,
  };
}

/** The promotion policy to store, checked: BAD_USER_INPUT (LOOP_POLICY) naming the first field out of range. */
export function checkedPromotionPolicy(input: SetPromotionPolicyInput, defaultSteps: number[]): StoredPromotionPolicy {
  const steps = input.steps ?? defaultSteps;
  if (!steps.length || steps.some((s, i) => !Number.isInteger(s) || s < 1 || s > 100 || (i > 0 && s <= steps[i - 1])) || steps[steps.length - 1] !== 100) {
    throw policyError('steps', 'steps must be whole percentages that increase and end at 100');
  }
  if (!inRange(input.shadowSeconds, 0, 7 * DAY, true)) throw policyError('shadowSeconds', 'shadowSeconds must be a whole number from 0 to 7 days');
  if (!inRange(input.shadowMinAgreement, 0, 1, false)) throw policyError('shadowMinAgreement', 'shadowMinAgreement must be from 0 to 1');
  if (!inRange(input.bakeSeconds, 1, 7 * DAY, true)) throw policyError('bakeSeconds', 'bakeSeconds must be a whole number from 1 s to 7 days');
  if (!inRange(input.minRequests, 1, 10_000_000, true)) throw policyError('minRequests', 'minRequests must be a whole number from 1 to 10,000,000');
  if (!inRange(input.autoApproveMargin, 0, 1, false)) throw policyError('autoApproveMargin', 'autoApproveMargin must be from 0 to 1');
  return {
    shadowSeconds: input.shadowSeconds,
    shadowMinAgreement: input.shadowMinAgreement,
    steps,
    bakeSeconds: input.bakeSeconds,
    minRequests: input.minRequests,
    approval: input.approval ?? PromotionApproval.REQUIRED,
    autoApproveMargin: input.autoApproveMargin,
  };
}
