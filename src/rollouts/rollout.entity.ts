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
});

export enum RolloutStatus {
  IN_PROGRESS = 'IN_PROGRESS',
  PAUSED = 'PAUSED',
  SUCCEEDED = 'SUCCEEDED',
  ABORTED = 'ABORTED',
  ROLLED_BACK = 'ROLLED_BACK',
}
registerEnumType(RolloutStatus, { name: 'RolloutStatus' });

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

  @Field(() => RolloutStrategy)
  @Column({ type: 'enum', enum: RolloutStrategy, enumName: 'rollout_strategy' })
  strategy!: RolloutStrategy;

  @Field(() => RolloutStatus)
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

  @Field()
  @Column({ type: 'timestamptz', precision: 3 })
  stepStartedAt!: Date;

  @Field(() => Date, { nullable: true })
  @Column({ type: 'timestamptz', precision: 3, nullable: true })
  finishedAt!: Date | null;

  @Field(() => String, { nullable: true, description: 'Why it ended as it did (who, or which check)' })
  @Column({ type: 'text', nullable: true })
  reason!: string | null;

  @Field()
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
