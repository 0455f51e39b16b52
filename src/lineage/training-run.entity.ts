import { Field, Float, Int, ObjectType, registerEnumType } from 'type-graphql';
import { Column, Entity, Index, JoinColumn, ManyToOne, PrimaryColumn } from 'typeorm';
import { Node } from '../core/node';
import { TeamOwnedEntity } from '../access/team-owned.entity';
import { JSONObjectScalar } from '../core/scalars';
import { CodeVersion } from './code-version.entity';
import { Config } from './config.entity';
import { DatasetVersion } from './dataset-version.entity';
import { Environment } from './environment.entity';
import { SeedSet } from './seed-set.entity';

export enum TrainingRunStatus {
  QUEUED = 'QUEUED',
  RUNNING = 'RUNNING',
  SUCCEEDED = 'SUCCEEDED',
  FAILED = 'FAILED',
  CANCELLED = 'CANCELLED',
}
registerEnumType(TrainingRunStatus, {
  name: 'TrainingRunStatus',
  description: 'Where a training run stands; SUCCEEDED, FAILED and CANCELLED are final. Recorded runs are final from the start',
  valuesConfig: {
    QUEUED: { description: 'Started on the server, waiting for an executor' },
    RUNNING: { description: 'An executor is training it' },
    SUCCEEDED: { description: 'It finished; a run the server executes has registered its model version' },
    FAILED: { description: 'It stopped with an error (the trainer, its output, or the rights of whoever started it): failureReason says why' },
    CANCELLED: { description: 'It was cancelled before it finished: failureReason says why' },
  },
});

export enum DatasetRole {
  TRAIN = 'TRAIN',
  VALIDATION = 'VALIDATION',
  TEST = 'TEST',
}
registerEnumType(DatasetRole, {
  name: 'DatasetRole',
  description: 'What a run used a dataset version for',
  valuesConfig: {
    TRAIN: { description: 'To fit the model' },
    VALIDATION: { description: 'To tune or select it while training' },
    TEST: { description: 'To evaluate the trained model' },
  },
});

@ObjectType({ implements: Node, description: 'The activity that turned data, code, config, seeds and an environment into model versions' })
@Entity()
@Index(['teamId', 'createdAt'])
export class TrainingRun extends TeamOwnedEntity implements Node {
  @Field(() => String, { nullable: true, description: 'A label for people; null when none was given' })
  @Column({ type: 'text', nullable: true })
  name!: string | null;

  @Field(() => TrainingRunStatus, { description: 'Where it stands; trainingRunUpdated reports each change' })
  @Column({ type: 'enum', enum: TrainingRunStatus, enumName: 'training_run_status' })
  status!: TrainingRunStatus;

  @Column('uuid')
  codeVersionId!: string;

  @ManyToOne(() => CodeVersion, { onDelete: 'RESTRICT' })
  @JoinColumn({ name: 'code_version_id' })
  codeVersion?: CodeVersion;

  @Column('uuid')
  configId!: string;

  @ManyToOne(() => Config, { onDelete: 'RESTRICT' })
  @JoinColumn({ name: 'config_id' })
  config?: Config;

  @Column('uuid')
  seedSetId!: string;

  @ManyToOne(() => SeedSet, { onDelete: 'RESTRICT' })
  @JoinColumn({ name: 'seed_set_id' })
  seedSet?: SeedSet;

  @Column('uuid')
  environmentId!: string;

  @ManyToOne(() => Environment, { onDelete: 'RESTRICT' })
  @JoinColumn({ name: 'environment_id' })
  environment?: Environment;

  /** A model version the run started from (fine-tuning, warm start). */
  @Column('uuid', { nullable: true })
  baseModelVersionId!: string | null;

  @Field({
    description:
      "The config gate's comparisons with the champion (minDeltaVsChampion, maxDeltaVsChampion) were left to the champion/challenger gate, which judges both versions on the same holdout " +
      "(the iteration loop's runs): the champion's offline figures come from other data. Absolute thresholds (min, max) still apply",
  })
  @Column({ type: 'boolean', default: false })
  championComparisonDeferred!: boolean;

  @Field(() => Date, { nullable: true, description: 'When it began running; null while QUEUED, or when a recorded run did not say' })
  @Column({ type: 'timestamptz', nullable: true })
  startedAt!: Date | null;

  @Field(() => Date, { nullable: true, description: 'When it reached its final status; null until then, or when a recorded run did not say' })
  @Column({ type: 'timestamptz', nullable: true })
  finishedAt!: Date | null;

  @Field(() => JSONObjectScalar, { description: 'Metric name → number' })
  @Column({ type: 'jsonb', default: () => "'{}'" })
  metrics!: Record<string, number>;

  /** For runs the server executes: the model its output is registered under. */
  @Column('uuid', { nullable: true })
  targetModelId!: string | null;

  @Field(() => Float, { description: 'Share of the work done, 0–1 (runs the server executes)' })
  @Column({ type: 'double precision', default: 0 })
  progress!: number;

  @Field(() => String, { nullable: true, description: 'The last lines the trainer printed' })
  @Column({ type: 'text', nullable: true })
  logTail!: string | null;

  @Field(() => String, { nullable: true, description: 'Why the run failed or was cancelled' })
  @Column({ type: 'text', nullable: true })
  failureReason!: string | null;

  @Field(() => Int, { description: 'Executions started so far (retries included)' })
  @Column({ type: 'int', default: 0 })
  attempts!: number;

  /** The executor's handle on the current execution (host, process group…), so that a takeover can stop it. */
  @Column({ type: 'jsonb', nullable: true })
  executionHandle!: Record<string, string | number | null> | null;
}

/** A dataset version a run used, and for what. */
@Entity()
@Index(['datasetVersionId'])
export class TrainingRunDataset {
  @PrimaryColumn('uuid')
  trainingRunId!: string;

  @PrimaryColumn('uuid')
  datasetVersionId!: string;

  @Column({ type: 'enum', enum: DatasetRole, enumName: 'dataset_role', default: DatasetRole.TRAIN })
  role!: DatasetRole;

  @ManyToOne(() => TrainingRun, { onDelete: 'CASCADE' })
  @JoinColumn({ name: 'training_run_id' })
  trainingRun?: TrainingRun;

  @ManyToOne(() => DatasetVersion, { onDelete: 'RESTRICT' })
  @JoinColumn({ name: 'dataset_version_id' })
  datasetVersion?: DatasetVersion;
}
