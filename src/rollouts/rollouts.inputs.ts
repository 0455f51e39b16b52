import { ArrayMaxSize, ArrayMinSize, IsInt, IsOptional, Matches, Max, MaxLength, Min, ValidateNested } from 'class-validator';
import { Field, Float, ID, InputType, Int } from 'type-graphql';
import { Connection } from '../core/pagination';
import { JSONObjectScalar } from '../core/scalars';
import { NAME } from '../core/validation';
import { Deployment, DeploymentEnvironment } from './deployment.entity';
import { Rollout, RolloutStatus, RolloutStrategy } from './rollout.entity';

@InputType({ description: 'A model version and the percentage of traffic it is to receive' })
export class TrafficShareInput {
  @Field(() => ID, { description: "A ModelVersion id of the deployment's team; not ARCHIVED or REJECTED, and APPROVED for PRODUCTION" })
  modelVersion!: string;

  @Field(() => Int, { description: 'Percent of traffic, 1–100; the shares of a deployment sum to 100' })
  @IsInt()
  @Min(1)
  @Max(100)
  weight!: number;
}

@InputType({ description: 'A new deployment: its name, environment, objectives and first traffic split' })
export class CreateDeploymentInput {
  @Field(() => String, { nullable: true, description: "Team name; defaults to the caller's only team" })
  @IsOptional()
  @MaxLength(63)
  team?: string | null;

  @Field({ description: '1–63 lowercase letters, digits, ".", "_" or "-"; unique within the team' })
  @Matches(NAME, { message: 'name must be 1–63 lowercase letters, digits, ".", "_" or "-"' })
  name!: string;

  @Field(() => DeploymentEnvironment, { description: 'Fixed once created; PRODUCTION takes APPROVED versions only' })
  environment!: DeploymentEnvironment;

  @Field(() => String, { nullable: true, description: 'Free text, at most 2,000 characters' })
  @IsOptional()
  @MaxLength(2000)
  description?: string | null;

  @Field(() => JSONObjectScalar, { nullable: true, description: 'e.g. { "p95LatencyMs": 50, "errorRate": 0.01 }' })
  @IsOptional()
  slos?: Record<string, unknown> | null;

  @Field(() => [TrafficShareInput], { nullable: true, description: 'Initial split; empty means not serving yet' })
  @IsOptional()
  @ArrayMaxSize(10)
  @ValidateNested({ each: true })
  trafficSplit?: TrafficShareInput[] | null;
}

@InputType({ description: 'A whole new traffic split for a deployment with no rollout in flight' })
export class SetTrafficSplitInput {
  @Field(() => ID, { description: 'The Deployment id' })
  deployment!: string;

  @Field(() => [TrafficShareInput], { description: 'The new shares, at most 10, one per version, summing to 100; they replace the current ones' })
  @ArrayMaxSize(10)
  @ValidateNested({ each: true })
  trafficSplit!: TrafficShareInput[];

  @Field(() => String, { nullable: true, description: 'Why, recorded in the audit event; at most 2,000 characters' })
  @IsOptional()
  @MaxLength(2000)
  reason?: string | null;
}

@InputType({ description: 'Narrows a list of deployments; every field given must match' })
export class DeploymentFilter {
  @Field(() => String, { nullable: true, description: 'Only deployments of the team with this name' })
  team?: string | null;

  @Field(() => String, { nullable: true, description: 'Only the deployment with exactly this name' })
  name?: string | null;

  @Field(() => DeploymentEnvironment, { nullable: true, description: 'Only deployments serving this stage' })
  environment?: DeploymentEnvironment | null;

  @Field(() => ID, { nullable: true, description: 'Only deployments routing traffic to this model version' })
  modelVersion?: string | null;
}

@InputType({ description: 'A rollout to start: the deployment, the version and how it takes the traffic; settings left out take their defaults' })
export class StartRolloutInput {
  @Field(() => ID, { description: 'The Deployment id; it must have no rollout in flight' })
  deployment!: string;

  @Field(() => ID, { description: 'The version to roll out' })
  modelVersion!: string;

  @Field(() => RolloutStrategy, { description: 'CANARY needs another version already serving; SHADOW may roll out a version not yet APPROVED to PRODUCTION' })
  strategy!: RolloutStrategy;

  @Field(() => [Int], { nullable: true, description: 'CANARY steps in percent, increasing, ending at 100 (default 5, 25, 50, 100)' })
  @IsOptional()
  @ArrayMinSize(1)
  @ArrayMaxSize(20)
  @IsInt({ each: true })
  @Min(1, { each: true })
  @Max(100, { each: true })
  steps?: number[] | null;

  @Field(() => Int, { nullable: true, description: 'Seconds each step runs before its health check (default 300)' })
  @IsOptional()
  @IsInt()
  @Min(0)
  @Max(7 * 24 * 3600)
  bakeSeconds?: number | null;

  @Field(() => Int, { nullable: true, description: 'Requests the new version must serve in each step before it may advance (mirrored requests for SHADOW; default 200)' })
  @IsOptional()
  @IsInt()
  @Min(1)
  @Max(100_000_000)
  minRequests?: number | null;

  @Field(() => Int, { nullable: true, description: 'How long past its bake time a step short of minRequests is held before the rollout pauses with an alert (default 3 bake times)' })
  @IsOptional()
  @IsInt()
  @Min(0)
  @Max(30 * 24 * 3600)
  maxHoldSeconds?: number | null;

  @Field(() => Float, { nullable: true, description: "Significance level of the one-sided two-proportion test that rolls back a version whose error rate is worse than the baseline's (default 0.05)" })
  @IsOptional()
  @Min(1e-9)
  @Max(0.5)
  significance?: number | null;

  @Field(() => Float, { nullable: true, description: "SHADOW: share of rows on which the shadow's decisions must agree with the served ones for it to succeed (default 0.95)" })
  @IsOptional()
  @Min(0)
  @Max(1)
  minAgreement?: number | null;
}

@InputType({ description: 'The rollout in flight to act on, and why' })
export class RolloutActionInput {
  @Field(() => ID, { description: 'The Rollout id; it must be IN_PROGRESS or PAUSED' })
  rollout!: string;

  @Field(() => String, { nullable: true, description: "Why, recorded in the audit event (and as the rollout's reason when it ends it); at most 2,000 characters" })
  @IsOptional()
  @MaxLength(2000)
  reason?: string | null;
}

@InputType({ description: 'The deployment to roll back, and why' })
export class RollbackDeploymentInput {
  @Field(() => ID, { description: 'The Deployment id' })
  deployment!: string;

  @Field(() => String, { nullable: true, description: "Why, recorded in the audit event and as the rolled-back rollout's reason; at most 2,000 characters" })
  @IsOptional()
  @MaxLength(2000)
  reason?: string | null;
}

@InputType({ description: 'Narrows a list of rollouts; every field given must match' })
export class RolloutFilter {
  @Field(() => ID, { nullable: true, description: 'Only rollouts of this Deployment id' })
  deployment?: string | null;

  @Field(() => RolloutStatus, { nullable: true, description: 'Only rollouts in this status' })
  status?: RolloutStatus | null;

  @Field(() => String, { nullable: true, description: 'Only rollouts of the team with this name' })
  team?: string | null;
}

/** Pages of deployments and rollouts. */
export const DeploymentConnection = Connection(Deployment);
export const RolloutConnection = Connection(Rollout);
