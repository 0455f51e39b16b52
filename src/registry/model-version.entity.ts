import { Field, Int, ObjectType, registerEnumType } from 'type-graphql';
import { Column, Entity, Index, JoinColumn, ManyToOne, PrimaryColumn, UpdateDateColumn } from 'typeorm';
import { Node } from '../core/node';
import { TeamOwnedEntity } from '../access/team-owned.entity';
import { bigintAsNumber, JSONObjectScalar, JSONScalar } from '../core/scalars';
import { TrainingRun } from '../lineage/training-run.entity';
import { Artifact } from './artifact.entity';
import { Model } from './model.entity';
import type { StoredChallenge } from './model-version-challenge';
import type { OnnxSignature } from './onnx';

export enum ModelVersionStatus {
  REGISTERED = 'REGISTERED',
  CANDIDATE = 'CANDIDATE',
  APPROVED = 'APPROVED',
  REJECTED = 'REJECTED',
  ARCHIVED = 'ARCHIVED',
}
registerEnumType(ModelVersionStatus, {
  name: 'ModelVersionStatus',
  description: 'REGISTERED → CANDIDATE → APPROVED | REJECTED; any but ARCHIVED → ARCHIVED',
  valuesConfig: {
    REGISTERED: { description: 'Uploaded and registered; not yet submitted for review' },
    CANDIDATE: { description: "Awaiting review (submitted, or trained by the server and passed its config's gate)" },
    APPROVED: { description: 'Approved by a reviewer other than its registrant; may take PRODUCTION traffic and hold the champion and production aliases' },
    REJECTED: { description: "Rejected by a reviewer, or by the gate of the server's training run; cannot hold an alias" },
    ARCHIVED: { description: 'Retired: serves no traffic and holds no alias; final' },
  },
});

export enum ArtifactFormat {
  ONNX = 'ONNX',
}
registerEnumType(ArtifactFormat, {
  name: 'ArtifactFormat',
  description: "The file format of a model version's artifact",
  valuesConfig: { ONNX: { description: 'An ONNX model, served by the ONNX Runtime' } },
});

@ObjectType({ description: 'One input or output tensor of an ONNX graph' })
export class TensorSpec {
  @Field({ description: "The tensor's name in the graph; a prediction request names its inputs by it" })
  name!: string;

  @Field({ description: 'ONNX element type: FLOAT, INT64, …' })
  elemType!: string;

  @Field(() => JSONScalar, { description: 'Dimensions: a number, a symbolic name, or null when unknown' })
  shape!: Array<number | string | null>;
}

@ObjectType({ description: "The model's ONNX interface, read by the server from the artifact" })
export class ModelSignature {
  @Field(() => [TensorSpec], { description: "The graph's inputs, in order" })
  inputs!: TensorSpec[];

  @Field(() => [TensorSpec], { description: "The graph's outputs, in order" })
  outputs!: TensorSpec[];

  @Field(() => Int, { description: 'The ONNX operator set version the graph imports' })
  opsetVersion!: number;
}

@ObjectType({ implements: Node, description: 'An immutable model artifact with its lineage, metrics and review status' })
@Entity()
@Index(['modelId', 'version'], { unique: true })
@Index(['teamId', 'createdAt'])
@Index(['trainingRunId'], { unique: true })
export class ModelVersion extends TeamOwnedEntity implements Node {
  @Column('uuid')
  modelId!: string;

  @ManyToOne(() => Model, { onDelete: 'RESTRICT' })
  @JoinColumn({ name: 'model_id' })
  model?: Model;

  @Field(() => Int, { description: 'Numbered from 1 within its model' })
  @Column({ type: 'int' })
  version!: number;

  @Column('uuid', { nullable: true })
  trainingRunId!: string | null;

  @ManyToOne(() => TrainingRun, { onDelete: 'RESTRICT' })
  @JoinColumn({ name: 'training_run_id' })
  trainingRun?: TrainingRun;

  @Field({ description: 'sha256 of the artifact file, lowercase hex (as POST /artifacts returned it)' })
  @Column({ type: 'char', length: 64 })
  artifactSha256!: string;

  @ManyToOne(() => Artifact, { onDelete: 'RESTRICT' })
  @JoinColumn({ name: 'artifact_sha256' })
  artifact?: Artifact;

  @Field(() => Number, { description: 'Size of the artifact file, in bytes' })
  @Column({ type: 'bigint', transformer: bigintAsNumber })
  artifactSizeBytes!: number;

  @Field(() => ArtifactFormat, { description: 'The format of the artifact' })
  @Column({ type: 'text' })
  format!: ArtifactFormat;

  @Column({ type: 'jsonb' })
  signatureJson!: OnnxSignature;

  @Field(() => ModelSignature, { description: 'Its inputs and outputs, as read from the artifact' })
  get signature(): ModelSignature {
    return this.signatureJson as ModelSignature;
  }

  @Field(() => JSONObjectScalar, { description: 'Metric name → number' })
  @Column({ type: 'jsonb', default: () => "'{}'" })
  metrics!: Record<string, number>;

  @Field(() => ModelVersionStatus, { description: 'Where it stands in review' })
  @Column({ type: 'enum', enum: ModelVersionStatus, enumName: 'model_version_status' })
  status!: ModelVersionStatus;

  // Computed from the training data: exposed through a field resolver that withholds it like the
  // protected fields of the dataset versions it was trained on.
  @Column({ type: 'jsonb', nullable: true })
  referenceProfile!: object | null;

  // The sorted sample of the model's outputs on its training rows, for the exact statistics of
  // prediction drift; kept apart from the profile and never exposed.
  @Column({ type: 'jsonb', nullable: true })
  predictionReferenceSample!: number[] | null;

  // The bins window rollups count this version's inputs and predictions in, fixed once (every API
  // instance bins alike): derived from the training data, so never exposed.
  @Column({ type: 'jsonb', nullable: true })
  rollupBins!: object | null;

  @Field(() => JSONScalar, { nullable: true, description: 'The evaluation gate: { passed, checks: [{ metric, rule, threshold, value, passed }] }' })
  @Column({ type: 'jsonb', nullable: true })
  evaluation!: object | null;

  // The latest champion/challenger comparison, exposed through a field resolver as a typed object.
  @Column({ type: 'jsonb', nullable: true })
  challenge!: StoredChallenge | null;

  @Field({ description: 'When it last changed (status, challenge)' })
  @UpdateDateColumn({ type: 'timestamptz', precision: 3 })
  updatedAt!: Date;
}

/** A movable name (such as `champion`) that points at one version of a model. */
@Entity()
@Index(['modelVersionId'])
export class ModelVersionAlias {
  @PrimaryColumn('uuid')
  modelId!: string;

  @PrimaryColumn({ type: 'text' })
  alias!: string;

  @Column('uuid')
  modelVersionId!: string;

  @ManyToOne(() => Model, { onDelete: 'CASCADE' })
  @JoinColumn({ name: 'model_id' })
  model?: Model;

  @ManyToOne(() => ModelVersion, { onDelete: 'CASCADE' })
  @JoinColumn({ name: 'model_version_id' })
  modelVersion?: ModelVersion;

  @Column({ type: 'text' })
  updatedBy!: string;

  @UpdateDateColumn({ type: 'timestamptz', precision: 3 })
  updatedAt!: Date;
}
