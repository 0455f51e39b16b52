import { Field, Float, Int, ObjectType, registerEnumType } from 'type-graphql';
import { Column, Entity, Index, PrimaryGeneratedColumn, Unique } from 'typeorm';
import { Node } from '../core/node';
import { JSONObjectScalar } from '../core/scalars';
import { TeamOwnedEntity } from '../access/team-owned.entity';

export enum AlertKind {
  DRIFT = 'DRIFT',
  PREDICTION_DRIFT = 'PREDICTION_DRIFT',
  LATENCY = 'LATENCY',
  ERROR_RATE = 'ERROR_RATE',
  RUN_BUDGET = 'RUN_BUDGET',
  ROLLOUT_STALLED = 'ROLLOUT_STALLED',
  QUALITY = 'QUALITY',
  APPROVAL_REQUIRED = 'APPROVAL_REQUIRED',
  NOTIFICATION_FAILED = 'NOTIFICATION_FAILED',
}
registerEnumType(AlertKind, {
  name: 'AlertKind',
  description:
    'DRIFT: an input feature drifted from the reference; PREDICTION_DRIFT: the model outputs did; LATENCY / ERROR_RATE: a serving SLO is breached; ' +
    'RUN_BUDGET: the version\'s runs kept overrunning the inference run budget and it was unloaded; ' +
    'ROLLOUT_STALLED: a rollout step never reached its minimum sample of requests and the rollout paused; ' +
    'QUALITY: an online quality metric (from outcomes) degraded beyond its threshold from the version\'s offline evaluation; ' +
    'APPROVAL_REQUIRED: the iteration loop retrained a candidate that passed its gate, and a reviewer must approve it before it takes PRODUCTION traffic; ' +
    'NOTIFICATION_FAILED: a notification channel dead-lettered a delivery (about no deployment)',
  valuesConfig: {
    DRIFT: { description: 'An input feature drifted from the reference profile' },
    PREDICTION_DRIFT: { description: "The model's outputs drifted from the reference profile" },
    LATENCY: { description: 'A latency SLO (p95LatencyMs, p99LatencyMs) is breached' },
    ERROR_RATE: { description: 'The errorRate SLO is breached' },
    RUN_BUDGET: { description: "The version's runs kept overrunning the inference run budget, and it was unloaded" },
    ROLLOUT_STALLED: { description: 'A rollout step never reached its minimum sample of requests, and the rollout paused' },
    QUALITY: { description: "An online quality metric degraded beyond its threshold from the version's offline evaluation" },
    APPROVAL_REQUIRED: { description: 'A candidate of the iteration loop passed its gate and waits for a reviewer before it takes PRODUCTION traffic' },
    NOTIFICATION_FAILED: { description: "A notification channel gave up on a delivery (every attempt failed, or one no retry fixes); feature is the channel's id, details say why. Resolved when a delivery to it succeeds again" },
  },
});

export enum AlertSeverity {
  INFO = 'INFO',
  WARNING = 'WARNING',
  CRITICAL = 'CRITICAL',
}
registerEnumType(AlertSeverity, {
  name: 'AlertSeverity', description: 'Lowest to highest',
  valuesConfig: {
    INFO: { description: 'Lowest: for information, nothing to act on' },
    WARNING: { description: 'A threshold is crossed, not yet the critical one' },
    CRITICAL: { description: 'Highest: act now; by default, the severity at which a drift alert makes a deployment retrain' },
  },
});

export const SEVERITY_RANK: Record<AlertSeverity, number> = { INFO: 0, WARNING: 1, CRITICAL: 2 };

export enum AlertStatus {
  OPEN = 'OPEN',
  ACKNOWLEDGED = 'ACKNOWLEDGED',
  RESOLVED = 'RESOLVED',
}
registerEnumType(AlertStatus, {
  name: 'AlertStatus',
  description: 'Where an alert stands; at most one alert per deployment, version, kind and feature is OPEN or ACKNOWLEDGED',
  valuesConfig: {
    OPEN: { description: 'The condition was found and nobody has acknowledged it (or it escalated since)' },
    ACKNOWLEDGED: { description: 'Someone has seen it; it stays until resolved by hand or cleared by the monitor' },
    RESOLVED: { description: 'Closed, by hand, by the monitor when the condition cleared, or by the iteration loop; the same condition opens a new alert only after the cool-down' },
  },
});

/**
 * A condition a monitor (or, for RUN_BUDGET, the inference engine) found on a deployment's model
 * version. At most one alert per deployment, version, kind and feature is open (or acknowledged) at
 * a time: a persisting condition updates it (`occurrences`, `lastSeenAt`, severity only upward);
 * after it is resolved, the same condition opens a new alert only once the cool-down has passed.
 */
@ObjectType({ implements: Node, description: 'A condition found on a model version serving a deployment (drift, latency, error rate, run budget, a stalled rollout, quality, an approval awaited), with its statistic and threshold' })
@Entity()
@Index(['deploymentId', 'createdAt'])
@Index(['deploymentId', 'modelVersionId', 'kind', 'feature'], { unique: true, where: `"status" IN ('OPEN', 'ACKNOWLEDGED')` })
export class Alert extends TeamOwnedEntity implements Node {
  /** Null for an alert about no deployment (NOTIFICATION_FAILED). */
  @Column('uuid', { nullable: true })
  deploymentId!: string | null;

  /** Null for an alert about no model version (NOTIFICATION_FAILED). */
  @Column('uuid', { nullable: true })
  modelVersionId!: string | null;

  @Field(() => AlertKind, { description: 'What sort of condition it is' })
  @Column({ type: 'enum', enum: AlertKind, enumName: 'alert_kind' })
  kind!: AlertKind;

  @Field(() => AlertSeverity, { description: 'How serious; rises (never falls) while the alert is open' })
  @Column({ type: 'enum', enum: AlertSeverity, enumName: 'alert_severity' })
  severity!: AlertSeverity;

  @Field(() => AlertStatus, { description: 'OPEN, ACKNOWLEDGED or RESOLVED; an escalation reopens an acknowledged alert' })
  @Column({ type: 'enum', enum: AlertStatus, enumName: 'alert_status' })
  status!: AlertStatus;

  @Field(() => String, { description: 'The feature or output (drift); "" for latency and error rate' })
  @Column({ type: 'text', default: '' })
  feature!: string;

  @Field({ description: 'The statistic compared: ks, chi2, psi, wasserstein, jensen_shannon, p95LatencyMs, p99LatencyMs, errorRate, budgetOverruns, requests (a stalled rollout step: threshold is its minimum sample)' })
  @Column({ type: 'text' })
  statistic!: string;

  @Field(() => Float, { description: 'The statistic as last found (in the unit of `statistic`)' })
  @Column({ type: 'double precision' })
  value!: number;

  @Field(() => Float, { description: 'The value of `statistic` the condition is judged against' })
  @Column({ type: 'double precision' })
  threshold!: number;

  @Field(() => Float, { nullable: true, description: 'The p-value of the drift test, after the multiple-testing correction' })
  @Column({ type: 'double precision', nullable: true })
  pValue!: number | null;

  @Field({ description: 'Start of the monitor window that first found the condition' })
  @Column({ type: 'timestamptz', precision: 3 })
  windowStart!: Date;

  @Field({ description: 'End of the latest monitor window that found it' })
  @Column({ type: 'timestamptz', precision: 3 })
  windowEnd!: Date;

  @Field({ description: 'When a pass last found the condition' })
  @Column({ type: 'timestamptz', precision: 3 })
  lastSeenAt!: Date;

  @Field(() => Int, { description: 'Monitor windows that found the condition while this alert was open' })
  @Column({ type: 'int', default: 1 })
  occurrences!: number;

  @Field(() => String, { nullable: true, description: 'The principal that acknowledged it; null until acknowledged' })
  @Column({ type: 'text', nullable: true })
  acknowledgedBy!: string | null;

  @Field(() => Date, { nullable: true, description: 'When it was acknowledged; null until then' })
  @Column({ type: 'timestamptz', precision: 3, nullable: true })
  acknowledgedAt!: Date | null;

  @Field(() => String, { nullable: true, description: 'Who resolved it, or "monitor" when the condition cleared' })
  @Column({ type: 'text', nullable: true })
  resolvedBy!: string | null;

  @Field(() => Date, { nullable: true, description: 'When it was resolved; null while OPEN or ACKNOWLEDGED' })
  @Column({ type: 'timestamptz', precision: 3, nullable: true })
  resolvedAt!: Date | null;

  @Field(() => String, { nullable: true, description: 'Why it was resolved: the reason given by hand, or what cleared it; null until resolved' })
  @Column({ type: 'text', nullable: true })
  resolution!: string | null;

  /** The training run a CRITICAL drift alert started (retrain policy). */
  @Column('uuid', { nullable: true })
  retrainRunId!: string | null;

  /** Shown through AlertFieldResolver.details: a NOTIFICATION_FAILED alert's are the channel's. */
  @Column({ type: 'jsonb', default: () => "'{}'" })
  details!: Record<string, any>;
}

/** One monitor pass over one window of one deployment: idempotent by (deployment, window). */
@ObjectType({ description: 'What a monitor found for a deployment over one window: latency, errors and drift per serving version' })
@Entity()
@Unique(['deploymentId', 'windowStart', 'windowSeconds'])
export class MonitorRun {
  @PrimaryGeneratedColumn({ type: 'bigint' })
  id!: string;

  @Column('uuid')
  deploymentId!: string;

  @Column('uuid')
  teamId!: string;

  @Field({ description: 'Start of the window judged; the window is [windowStart, windowStart + windowSeconds)' })
  @Column({ type: 'timestamptz', precision: 3 })
  windowStart!: Date;

  @Field(() => Int, { description: 'Length of the window judged' })
  @Column({ type: 'int' })
  windowSeconds!: number;

  @Field({ description: 'When the pass ran' })
  @Column({ type: 'timestamptz', precision: 3, default: () => 'now()' })
  ranAt!: Date;

  @Field(() => JSONObjectScalar, { description: 'Per model version: requests, errors, errorRate, p50/p95/p99 latency (ms)' })
  @Column({ type: 'jsonb' })
  latency!: Record<string, unknown>;

  @Field(() => JSONObjectScalar, { description: 'Per model version: rows and every feature\'s drift statistics' })
  @Column({ type: 'jsonb' })
  drift!: Record<string, unknown>;

  @Field(() => Int, { description: 'Alerts opened or escalated by this pass' })
  @Column({ type: 'int', default: 0 })
  alertsRaised!: number;
}
