import { ArrayMaxSize, ArrayMinSize, IsInt, IsOptional, Matches, Max, MaxLength, Min, ValidateNested } from 'class-validator';
import { Field, Float, ID, InputType, Int } from 'type-graphql';
import { Connection } from '../core/pagination';
import { JSONObjectScalar } from '../core/scalars';
import { NAME } from '../core/validation';
import { Deployment, DeploymentEnvironment } from './deployment.entity';
import { Rollout, RolloutStatus, RolloutStrategy } from './rollout.entity';

@InputType()
export class TrafficShareInput {
  @Field(() => ID)
  modelVersion!: string;

  @Field(() => Int, { description: 'Percent of traffic, 1–100; the shares of a deployment sum to 100' })
  @IsInt()
  @Min(1)
  @Max(100)
  weight!: number;
}

@InputType()
export class CreateDeploymentInput {
  @Field(() => String, { nullable: true, description: "Team name; defaults to the caller's only team" })
  @IsOptional()
  @MaxLength(63)
  team?: string | null;

  @Field()
  @Matches(NAME, { message: 'name must be 1–63 lowercase letters, digits, ".", "_" or "-"' })
  name!: string;

  @Field(() => DeploymentEnvironment)
  environment!: DeploymentEnvironment;

  @Field(() => String, { nullable: true })
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

@InputType()
export class SetTrafficSplitInput {
  @Field(() => ID)
  deployment!: string;

  @Field(() => [TrafficShareInput])
  @ArrayMaxSize(10)
  @ValidateNested({ each: true })
  trafficSplit!: TrafficShareInput[];

  @Field(() => String, { nullable: true })
  @IsOptional()
  @MaxLength(2000)
  reason?: string | null;
}

@InputType()
export class DeploymentFilter {
  @Field(() => String, { nullable: true })
  team?: string | null;

  @Field(() => String, { nullable: true })
  name?: string | null;

  @Field(() => DeploymentEnvironment, { nullable: true })
  environment?: DeploymentEnvironment | null;

  @Field(() => ID, { nullable: true, description: 'Only deployments routing traffic to this model version' })
  modelVersion?: string | null;
}

@InputType()
export class StartRolloutInput {
  @Field(() => ID)
  deployment!: string;

  @Field(() => ID, { description: 'The version to roll out' })
  modelVersion!: string;

  @Field(() => RolloutStrategy)
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

@InputType()
export class RolloutActionInput {
  @Field(() => ID)
  rollout!: string;

  @Field(() => String, { nullable: true })
  @IsOptional()
  @MaxLength(2000)
  reason?: string | null;
}

@InputType()
export class RollbackDeploymentInput {
  @Field(() => ID)
  deployment!: string;

  @Field(() => String, { nullable: true })
  @IsOptional()
  @MaxLength(2000)
  reason?: string | null;
}

@InputType()
export class RolloutFilter {
  @Field(() => ID, { nullable: true })
  deployment?: string | null;

  @Field(() => RolloutStatus, { nullable: true })
  status?: RolloutStatus | null;

  @Field(() => String, { nullable: true })
  team?: string | null;
}

/** Pages of deployments and rollouts. */
export const DeploymentConnection = Connection(Deployment);
export const RolloutConnection = Connection(Rollout);
