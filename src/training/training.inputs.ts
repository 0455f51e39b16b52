import { ArrayMaxSize, ArrayMinSize, IsOptional, MaxLength, ValidateNested } from 'class-validator';
import { Field, ID, InputType } from 'type-graphql';
import { JSONObjectScalar } from '../core/scalars';
import { RegisterCodeVersionInput, RegisterEnvironmentInput, RunDatasetInput } from '../lineage/lineage.inputs';

@InputType({ description: 'Train a model version on the server: the inputs of the run by ID, or registered inline (config, seeds, code version, environment)' })
export class StartTrainingRunInput {
  @Field(() => ID, { description: 'The model the resulting version is registered under' })
  model!: string;

  @Field(() => String, { nullable: true, description: 'A label for people, up to 200 characters' })
  @IsOptional()
  @MaxLength(200)
  name?: string | null;

  @Field(() => [RunDatasetInput], { description: 'Dataset versions whose content the server holds (POST /datasets/content)' })
  @ArrayMinSize(1)
  @ArrayMaxSize(20)
  @ValidateNested({ each: true })
  datasets!: RunDatasetInput[];

  @Field(() => ID, { nullable: true, description: 'A code version of a repository the server can run (TRAINER_REPOSITORIES), or give newCodeVersion' })
  @IsOptional()
  codeVersion?: string | null;

  @Field(() => RegisterCodeVersionInput, { nullable: true, description: 'A code version registered inline (same as registerCodeVersion)' })
  @IsOptional()
  @ValidateNested()
  newCodeVersion?: RegisterCodeVersionInput | null;

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

  @Field(() => ID, { nullable: true, description: 'An existing environment, or give newEnvironment' })
  @IsOptional()
  environment?: string | null;

  @Field(() => RegisterEnvironmentInput, { nullable: true, description: 'An environment registered inline (same as registerEnvironment)' })
  @IsOptional()
  @ValidateNested()
  newEnvironment?: RegisterEnvironmentInput | null;

  @Field(() => ID, { nullable: true, description: 'A model version to start from' })
  @IsOptional()
  baseModelVersion?: string | null;
}
