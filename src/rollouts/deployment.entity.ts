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
registerEnumType(DeploymentEnvironment, { name: 'DeploymentEnvironment' });

@ObjectType({ implements: Node, description: 'A named serving endpoint and the model versions it routes traffic to' })
@Entity()
@Index(['teamId', 'name'], { unique: true })
export class Deployment extends TeamOwnedEntity implements Node {
  @Field()
  @Column({ type: 'text' })
  name!: string;

  @Field(() => DeploymentEnvironment)
  @Column({ type: 'enum', enum: DeploymentEnvironment, enumName: 'deployment_environment' })
  environment!: DeploymentEnvironment;

  @Field(() => String, { nullable: true })
  @Column({ type: 'text', nullable: true })
  description!: string | null;

  @Field(() => JSONObjectScalar, { description: 'Service-level objectives, e.g. { "p95LatencyMs": 50, "errorRate": 0.01 }' })
  @Column({ type: 'jsonb', default: () => "'{}'" })
  slos!: Record<string, number>;


  @Field()
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
