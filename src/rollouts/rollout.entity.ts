import { Field, Float, Int, ObjectType, registerEnumType } from 'type-graphql';
import { Column, Entity, Index, JoinColumn, ManyToOne, PrimaryColumn, UpdateDateColumn } from 'typeorm';
import { Node } from '../core/node';
import { JSONObjectScalar } from '../core/scalars';
import { TeamOwnedEntity } from '../access/team-owned.entity';
import { ModelVersion } from '../registry/model-version.entity';
import { Deployment } from './deployment.entity';

export enum RolloutStrategy {
  CANARY = 'CANARY',
  SHADOW = 'SHADOW',
  BLUE_GREEN = 'BLUE_GREEN',
}
registerEnumType(RolloutStrategy, {
  name: 'RolloutStrategy',
  description: 'CANARY: traffic in steps; SHADOW: mirrored traffic, never served; BLUE_GREEN: all at once, the old version kept for instant rollback',
  valuesConfig: {
    CANARY: { description: 'The new version takes the traffic in increasing steps, each judged before the next' },
    SHADOW: { description: 'The new version gets a mirrored copy of the traffic; its answers are never served' },
    BLUE_GREEN: { description: 'The new version takes all of the traffic at once; the old split is kept to roll back to' },
  },
});

export enum RolloutStatus {
  IN_PROGRESS = 'IN_PROGRESS',
  PAUSED = 'PAUSED',
  SUCCEEDED = 'SUCCEEDED',
  ABORTED = 'ABORTED',
  ROLLED_BACK = 'ROLLED_BACK',
}
registerEnumType(RolloutStatus, {
  name: 'RolloutStatus',
  description: 'Where a rollout stands; at most one rollout per deployment is IN_PROGRESS or PAUSED',
  valuesConfig: {
    IN_PROGRESS: { description: 'In flight: each step advances after its bake time when its health check passes' },
    PAUSED: { description: 'In flight, held at its current step (by a person, or by a step short of minRequests past maxHoldSeconds) until resumed, promoted, aborted or rolled back' },
    SUCCEEDED: { description: 'Finished: the new version holds all of the traffic (SHADOW: the mirror passed and was removed, the split untouched)' },
    ABORTED: { description: 'Finished: stopped by abortRollout; the split it started from is restored' },
    ROLLED_BACK: { description: 'Finished: a health check failed or rollbackDeployment was called; the split it started from is restored' },
  },
});

export interface SplitEntry {
  modelVersionId: string;
  weight: number;
}

@ObjectType({ implements: Node, description: 'Moving a deployment to a new model version, step by step, with health checks and automatic rollback' })
@Entity()
@Index(['deploymentId', 'createdAt'])
// At most one rollout in flight per deployment.
@Index(['deploymentId'], { unique: true, where: `"status" IN ('IN_PROGRESS', 'PAUSED')` })
export class Rollout extends TeamOwnedEntity implements Node {
  @Column('uuid')
  deploymentId!: string;

  @ManyToOne(() => Deployment, { onDelete: 'RESTRICT' })
  @JoinColumn({ name: 'deployment_id' })
  deployment?: Deployment;

  @Column('uuid')
  modelVersionId!: string;

  @ManyToOne(() => ModelVersion, { onDelete: 'RESTRICT' })
  @JoinColumn({ name: 'model_version_id' })
  modelVersion?: ModelVersion;

  @Field(() => RolloutStrategy, { description: 'How the new version takes the traffic' })
  @Column({ type: 'enum', enum: RolloutStrategy, enumName: 'rollout_strategy' })
  strategy!: RolloutStrategy;

  @Field(() => RolloutStatus, { description: 'IN_PROGRESS or PAUSED while in flight; SUCCEEDED, ABORTED or ROLLED_BACK once finished' })
  @Column({ type: 'enum', enum: RolloutStatus, enumName: 'rollout_status' })
  status!: RolloutStatus;

  @Field(() => [Int], { description: 'Percent of traffic the new version gets at each step (CANARY); [100] otherwise' })
  @Column({ type: 'int', array: true })
  steps!: number[];

  @Field(() => Int, { description: 'Index into steps' })
  @Column({ type: 'int', default: 0 })
  currentStep!: number;

  @Field(() => Int, { description: 'How long each step runs before its health check' })
  @Column({ type: 'int' })
  bakeSeconds!: number;

  @Field(() => Int, { description: 'Requests the new version must have served in a step (mirrored ones for SHADOW) before the step may advance' })
  @Column({ type: 'int', default: 200 })
  minRequests!: number;

  @Field(() => Int, { description: 'How long past its bake time a step without the minimum sample is held before the rollout pauses' })
  @Column({ type: 'int', default: 900 })
  maxHoldSeconds!: number;

  @Field(() => Float, { description: "Significance level of the one-sided test that the new version's error rate is worse than the baseline's" })
  @Column({ type: 'double precision', default: 0.05 })
  significance!: number;

  @Field(() => Float, { description: "SHADOW: the share of rows on which the shadow's decisions must agree with the served ones for it to succeed" })
  @Column({ type: 'double precision', default: 0.95 })
  minAgreement!: number;

  @Field(() => JSONObjectScalar, { nullable: true, description: 'The last health verdict (advance, hold, pause or rollback): the observed figures, the baseline, and the test that decided it' })
  @Column({ type: 'jsonb', nullable: true })
  lastVerdict!: Record<string, any> | null;

  /** The split before the rollout began: what a rollback restores. */
  @Column({ type: 'jsonb' })
  baselineSplit!: SplitEntry[];

  /** Bumped whenever a step is (re)scheduled; a job for an older generation does nothing. */
  @Column({ type: 'int', default: 0 })
  generation!: number;

  @Field({ description: 'When the current step began (or its bake time last restarted, on resume); its health check falls due bakeSeconds later' })
  @Column({ type: 'timestamptz', precision: 3 })
  stepStartedAt!: Date;

  @Field(() => Date, { nullable: true, description: 'When it SUCCEEDED, was ABORTED or ROLLED_BACK; null while in flight' })
  @Column({ type: 'timestamptz', precision: 3, nullable: true })
  finishedAt!: Date | null;

  @Field(() => String, { nullable: true, description: 'Why it ended as it did (who, or which check)' })
  @Column({ type: 'text', nullable: true })
  reason!: string | null;

  @Field({ description: 'When the rollout record last changed (a step, a verdict, its status)' })
  @UpdateDateColumn({ type: 'timestamptz', precision: 3 })
  updatedAt!: Date;
}

/** A version receiving a mirrored copy of a deployment's traffic; its answers are never served. */
@Entity()
export class ShadowShare {
  @PrimaryColumn('uuid')
  deploymentId!: string;

  @PrimaryColumn('uuid')
  modelVersionId!: string;

  @ManyToOne(() => Deployment, { onDelete: 'CASCADE' })
  @JoinColumn({ name: 'deployment_id' })
  deployment?: Deployment;

  @ManyToOne(() => ModelVersion, { onDelete: 'RESTRICT' })
  @JoinColumn({ name: 'model_version_id' })
  modelVersion?: ModelVersion;
}
