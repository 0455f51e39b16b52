import { Field, Int, ObjectType, registerEnumType } from 'type-graphql';
import { Check, Column, Entity, Index, JoinColumn, ManyToOne, PrimaryColumn, UpdateDateColumn } from 'typeorm';
import { Node } from '../core/node';
import { TeamOwnedEntity } from '../access/team-owned.entity';
import { JSONObjectScalar } from '../core/scalars';
import { ModelVersion } from '../registry/model-version.entity';

export enum DeploymentEnvironment {
  DEVELOPMENT = 'DEVELOPMENT',
  STAGING = 'STAGING',
  PRODUCTION = 'PRODUCTION',
}
registerEnumType(DeploymentEnvironment, {
  name: 'DeploymentEnvironment',
  description: 'The stage a deployment serves, which decides the versions it may route traffic to',
  valuesConfig: {
    DEVELOPMENT: { description: 'Any version that is not ARCHIVED or REJECTED may serve' },
    STAGING: { description: 'Any version that is not ARCHIVED or REJECTED may serve; the iteration loop never waits for approval here' },
    PRODUCTION: { description: 'Only APPROVED versions take traffic (a SHADOW rollout may mirror one not yet approved); its requests run on worker threads of their own' },
  },
});

@ObjectType({ implements: Node, description: 'A named serving endpoint and the model versions it routes traffic to' })
@Entity()
@Index(['teamId', 'name'], { unique: true })
export class Deployment extends TeamOwnedEntity implements Node {
  @Field({ description: 'Unique within its team: 1–63 lowercase letters, digits, ".", "_" or "-"' })
  @Column({ type: 'text' })
  name!: string;

  @Field(() => DeploymentEnvironment, { description: 'The stage it serves; PRODUCTION takes APPROVED versions only' })
  @Column({ type: 'enum', enum: DeploymentEnvironment, enumName: 'deployment_environment' })
  environment!: DeploymentEnvironment;

  @Field(() => String, { nullable: true, description: 'Free text given at creation; null when none was given' })
  @Column({ type: 'text', nullable: true })
  description!: string | null;

  @Field(() => JSONObjectScalar, { description: 'Service-level objectives, e.g. { "p95LatencyMs": 50, "errorRate": 0.01 }' })
  @Column({ type: 'jsonb', default: () => "'{}'" })
  slos!: Record<string, number>;


  @Field({ description: 'When the deployment record last changed (its traffic split is read from trafficSplit)' })
  @UpdateDateColumn({ type: 'timestamptz', precision: 3 })
  updatedAt!: Date;

  /** Monitor settings over the configured defaults (see MonitoringSettings). */
  @Column({ type: 'jsonb', default: () => "'{}'" })
  monitoring!: Record<string, any>;

  /** The last version that held 100 % of the traffic: where rollbackDeployment returns to. */
  @Column('uuid', { nullable: true })
  lastStableVersionId!: string | null;
}

/** One share of a deployment's traffic; a deployment's shares sum to 100. */
@ObjectType({ description: 'A model version and the percentage of traffic it receives' })
@Entity()
@Index(['modelVersionId'])
@Check('"weight" > 0 AND "weight" <= 100')
export class TrafficShare {
  @PrimaryColumn('uuid')
  deploymentId!: string;

  @PrimaryColumn('uuid')
  modelVersionId!: string;

  @Field(() => Int, { description: 'Percent, 1–100' })
  @Column({ type: 'int' })
  weight!: number;

  @ManyToOne(() => Deployment, { onDelete: 'CASCADE' })
  @JoinColumn({ name: 'deployment_id' })
  deployment?: Deployment;

  @ManyToOne(() => ModelVersion, { onDelete: 'RESTRICT' })
  @JoinColumn({ name: 'model_version_id' })
  modelVersion?: ModelVersion;
}
