import { Field, ID, ObjectType, registerEnumType } from 'type-graphql';
import { Column, Entity, Index, PrimaryColumn, UpdateDateColumn } from 'typeorm';
import { TeamOwnedEntity } from '../access/team-owned.entity';
import { toGlobalId } from '../core/global-id';
import { Node } from '../core/node';
import { JSONObjectScalar } from '../core/scalars';
import type { SerializedContext } from '../core/job-context';

export enum IterationStatus {
  SAMPLING = 'SAMPLING',
  TRAINING = 'TRAINING',
  GATING = 'GATING',
  SHADOW = 'SHADOW',
  AWAITING_APPROVAL = 'AWAITING_APPROVAL',
  CANARY = 'CANARY',
  PROMOTED = 'PROMOTED',
  HANDED_OFF = 'HANDED_OFF',
  REJECTED = 'REJECTED',
  ROLLED_BACK = 'ROLLED_BACK',
  FAILED = 'FAILED',
}
registerEnumType(IterationStatus, {
  name: 'IterationStatus',
  description:
    'In flight: SAMPLING (waiting to sample labelled production traffic), TRAINING (the retraining run is queued or running), GATING (the candidate and the champion are judged on the shared holdout), ' +
    'SHADOW (the candidate mirrors traffic), AWAITING_APPROVAL (a reviewer must approve the candidate for PRODUCTION), CANARY (the candidate takes traffic step by step). ' +
    'Finished: PROMOTED (it serves all of the traffic), HANDED_OFF (it passed the gate; no promotion policy, so a person rolls it out), REJECTED (by its training gate, the champion/challenger gate or a reviewer), ' +
    'ROLLED_BACK (a rollout step failed its health checks, or was aborted), FAILED (the loop could not go on: the message says why)',
  valuesConfig: {
    SAMPLING: { description: 'In flight: waiting to sample labelled production traffic' },
    TRAINING: { description: 'In flight: the retraining run is queued or running' },
    GATING: { description: 'In flight: the candidate and the champion are judged on the shared holdout' },
    SHADOW: { description: 'In flight: the candidate mirrors traffic' },
    AWAITING_APPROVAL: { description: 'In flight: a reviewer must approve the candidate for PRODUCTION' },
    CANARY: { description: 'In flight: the candidate takes traffic step by step' },
    PROMOTED: { description: 'Finished: the candidate serves all of the traffic' },
    HANDED_OFF: { description: 'Finished: the candidate passed the gate; with no promotion policy, a person rolls it out' },
    REJECTED: { description: 'Finished: rejected by its training gate, the champion/challenger gate or a reviewer' },
    ROLLED_BACK: { description: 'Finished: a rollout step failed its health checks, or was aborted' },
    FAILED: { description: 'Finished: the loop could not go on; the message says why' },
  },
});

/** The statuses of an iteration still in flight (at most one per deployment). */
export const ACTIVE_ITERATION: readonly IterationStatus[] = [
  IterationStatus.SAMPLING,
  IterationStatus.TRAINING,
  IterationStatus.GATING,
  IterationStatus.SHADOW,
  IterationStatus.AWAITING_APPROVAL,
  IterationStatus.CANARY,
];

export enum IterationTriggerKind {
  DRIFT = 'DRIFT',
  QUALITY = 'QUALITY',
  LABEL_VOLUME = 'LABEL_VOLUME',
  SCHEDULE = 'SCHEDULE',
}
registerEnumType(IterationTriggerKind, {
  name: 'IterationTriggerKind',
  description:
    'DRIFT: an open drift alert of the serving version at or above the policy\'s severity; QUALITY: an online metric degraded beyond the policy\'s threshold; ' +
    'LABEL_VOLUME: labelled production rows since the champion was trained reached the policy\'s share of its training rows; SCHEDULE: the policy\'s cron schedule',
  valuesConfig: {
    DRIFT: { description: "An open drift alert of the serving version at or above the policy's severity" },
    QUALITY: { description: "An online metric degraded beyond the policy's threshold" },
    LABEL_VOLUME: { description: "Labelled production rows since the champion was trained reached the policy's share of its training rows" },
    SCHEDULE: { description: "The policy's cron schedule" },
  },
});

/** One step of an iteration as recorded: what happened, when, and the audit event that records it. */
export interface StoredIterationStep {
  step: string;
  at: string;
  detail: Record<string, unknown>;
  auditSeq: string | null;
}

@ObjectType({ description: 'One step of an iteration: what happened and when, with its audit event' })
export class IterationStep {
  @Field({ description: 'TRIGGERED, SAMPLED, TRAINING_STARTED, CANDIDATE_REGISTERED, GATE_PASSED, GATE_REJECTED, SHADOW_STARTED, APPROVAL_REQUESTED, APPROVED, CANARY_STARTED, PROMOTED, …' })
  step!: string;

  @Field({ description: 'When the step happened' })
  at!: Date;

  @Field(() => JSONObjectScalar, { description: 'Figures and ids of the step (global ids)' })
  detail!: Record<string, unknown>;

  @Field(() => ID, { nullable: true, description: 'The audit event written with the step (an AuditEvent id; read it through `node` or `auditEvents`)' })
  auditEvent!: string | null;
}

/**
 * One turn of a deployment's iteration loop: the trigger, the production sample, the retraining
 * run, the champion/challenger gate, the rollouts and the outcome, each step with its time and
 * audit event. At most one iteration per deployment is in flight (a partial unique index). The
 * work of each step runs as whoever set the policy behind it, under the request id
 * `iteration:<id>`, so that the audit trail of the whole chain is one query.
 */
@ObjectType({ implements: Node, description: "One turn of a deployment's iteration loop: trigger → production sample → retraining → gate → rollout → outcome" })
@Entity()
@Index(['deploymentId', 'createdAt'])
@Index('one_active_iteration_per_deployment', ['deploymentId'], { unique: true, where: `"status" IN ('SAMPLING', 'TRAINING', 'GATING', 'SHADOW', 'AWAITING_APPROVAL', 'CANARY')` })
export class Iteration extends TeamOwnedEntity implements Node {
  @Column('uuid')
  deploymentId!: string;

  @Field(() => IterationStatus, { description: 'Where the iteration stands; at most one per deployment is in flight' })
  @Column({ type: 'enum', enum: IterationStatus, enumName: 'iteration_status' })
  status!: IterationStatus;

  @Field(() => IterationTriggerKind, { description: 'Which trigger of the retrain policy began it' })
  @Column({ type: 'enum', enum: IterationTriggerKind, enumName: 'iteration_trigger_kind' })
  triggerKind!: IterationTriggerKind;

  @Field(() => JSONObjectScalar, { description: 'What fired the trigger: the alert, the metric and its figures, the label count, the schedule' })
  @Column('jsonb')
  trigger!: Record<string, unknown>;

  @Column('uuid', { nullable: true })
  alertId!: string | null;

  /** The version serving the most traffic when the iteration began: retrained from, and judged against. */
  @Column('uuid')
  championVersionId!: string;

  @Column('uuid', { nullable: true })
  trainDatasetVersionId!: string | null;

  @Column('uuid', { nullable: true })
  holdoutDatasetVersionId!: string | null;

  @Column('uuid', { nullable: true })
  trainingRunId!: string | null;

  @Column('uuid', { nullable: true })
  candidateVersionId!: string | null;

  @Column('uuid', { nullable: true })
  shadowRolloutId!: string | null;

  @Column('uuid', { nullable: true })
  canaryRolloutId!: string | null;

  /** The open approval alert of an iteration awaiting approval. */
  @Column('uuid', { nullable: true })
  approvalAlertId!: string | null;

  @Field(() => JSONObjectScalar, { description: 'The retrain and promotion policies as they were when the iteration began' })
  @Column('jsonb')
  policy!: Record<string, unknown>;

  @Column('jsonb')
  steps!: StoredIterationStep[];

  @Field(() => String, { nullable: true, description: 'Why the iteration waits (in flight) or how it ended (finished)' })
  @Column('text', { nullable: true })
  message!: string | null;

  /** Who set the retrain and the promotion policy, as jobs carry them: the steps act as them. */
  @Column('jsonb')
  actors!: { retrain: SerializedContext; promotion: SerializedContext | null };

  /** A worker holds an iteration while it moves it on; one that dies loses it when this passes. */
  @Column({ type: 'timestamptz', nullable: true })
  leaseUntil!: Date | null;

  @Column('text', { nullable: true })
  leaseOwner!: string | null;

  @Field({ description: 'When it last moved on (or its record last changed)' })
  @UpdateDateColumn({ type: 'timestamptz', precision: 3 })
  updatedAt!: Date;

  @Field(() => Date, { nullable: true, description: 'When it reached a finished status; null while in flight' })
  @Column({ type: 'timestamptz', nullable: true })
  finishedAt!: Date | null;
}

/** A deployment's loop policies, with whoever set each (the loop acts as them). */
@Entity()
export class LoopPolicy {
  @PrimaryColumn('uuid')
  deploymentId!: string;

  @Column('uuid')
  teamId!: string;

  @Column('jsonb', { nullable: true })
  retrain!: Record<string, unknown> | null;

  @Column('jsonb', { nullable: true })
  retrainSetBy!: SerializedContext | null;

  @Column('jsonb', { nullable: true })
  promotion!: Record<string, unknown> | null;

  @Column('jsonb', { nullable: true })
  promotionSetBy!: SerializedContext | null;

  @UpdateDateColumn({ type: 'timestamptz', precision: 3 })
  updatedAt!: Date;
}

export const iterationRequestId = (id: string) => `iteration:${id}`;
export const iterationGlobalId = (id: string) => toGlobalId('Iteration', id);
