import { ArrayMaxSize, ArrayMinSize, IsOptional, MaxLength, ValidateNested } from 'class-validator';
import { Field, ID, InputType } from 'type-graphql';
import { JSONObjectScalar } from '../core/scalars';
import { RunDatasetInput } from './lineage.inputs';

@InputType({ description: 'Train a model version on the server: the inputs of the run, by ID, or config and seeds inline' })
export class StartTrainingRunInput {
  @Field(() => ID, { description: 'The model the resulting version is registered under' })
  model!: string;

  @Field(() => String, { nullable: true })
  @IsOptional()
  @MaxLength(200)
  name?: string | null;

  @Field(() => [RunDatasetInput], { description: 'Dataset versions whose content the server holds (POST /datasets/content)' })
  @ArrayMinSize(1)
  @ArrayMaxSize(20)
  @ValidateNested({ each: true })
  datasets!: RunDatasetInput[];

  @Field(() => ID, { description: 'A code version of a repository the server can run (TRAINER_REPOSITORIES)' })
  codeVersion!: string;

  @Field(() => ID, { nullable: true, description: 'An existing config, or give configContent' })
  @IsOptional()
  config?: string | null;

  @Field(() => JSONObjectScalar, { nullable: true, description: 'A config registered inline (same as registerConfig)' })
  @IsOptional()
  configContent?: Record<string, unknown> | null;

  @Field(() => ID, { nullable: true, description: 'An existing seed set, or give seeds' })
  @IsOptional()
  seedSet?: string | null;

  @Field(() => JSONObjectScalar, { nullable: true, description: 'Seeds registered inline (same as registerSeedSet)' })
  @IsOptional()
  seeds?: Record<string, unknown> | null;

  @Field(() => ID)
  environment!: string;

  @Field(() => ID, { nullable: true, description: 'A model version to start from' })
  @IsOptional()
  baseModelVersion?: string | null;
}
