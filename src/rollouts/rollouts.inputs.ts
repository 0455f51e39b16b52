import { ArrayMaxSize, IsInt, IsOptional, Matches, Max, MaxLength, Min, ValidateNested } from 'class-validator';
import { Field, ID, InputType, Int } from 'type-graphql';
import { JSONObjectScalar } from '../core/scalars';
import { NAME } from '../lineage/lineage.inputs';
import { DeploymentEnvironment } from './deployment.entity';

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

  @Field(() => DeploymentEnvironment, { nullable: true })
  environment?: DeploymentEnvironment | null;

  @Field(() => ID, { nullable: true, description: 'Only deployments routing traffic to this model version' })
  modelVersion?: string | null;
}
