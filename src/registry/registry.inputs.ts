import { IsOptional, Length, Matches, MaxLength } from 'class-validator';
import { Field, ID, InputType } from 'type-graphql';
import { Connection } from '../core/pagination';
import { JSONObjectScalar } from '../core/scalars';
import { NAME, NAME_MSG, SHA256 } from '../core/validation';
import { Model } from './model.entity';
import { ModelVersion, ModelVersionStatus } from './model-version.entity';

@InputType({ description: 'A model to create' })
export class CreateModelInput {
  @Field(() => String, { nullable: true, description: "Team name; defaults to the caller's only team" })
  @IsOptional()
  @MaxLength(63)
  team?: string | null;

  @Field({ description: `Unique within the team; ${NAME_MSG}` })
  @Matches(NAME, { message: 'name must be 1–63 lowercase letters, digits, ".", "_" or "-"' })
  name!: string;

  @Field(() => String, { nullable: true, description: 'Free text, up to 2,000 characters' })
  @IsOptional()
  @MaxLength(2000)
  description?: string | null;
}

@InputType({ description: 'An uploaded artifact to register as the next version of a model' })
export class RegisterModelVersionInput {
  @Field(() => ID, { description: 'Global ID of the Model' })
  model!: string;

  @Field({ description: 'sha256 returned by POST /artifacts for the uploaded ONNX file' })
  @Matches(SHA256, { message: 'artifactSha256 must be 64 lowercase hex characters' })
  artifactSha256!: string;

  @Field(() => ID, { nullable: true, description: 'The run that produced it (its lineage)' })
  @IsOptional()
  trainingRun?: string | null;

  @Field(() => JSONObjectScalar, { nullable: true, description: 'Metric name → number' })
  @IsOptional()
  metrics?: Record<string, unknown> | null;
}

@InputType({ description: 'A model version and the reason for the decision on it' })
export class ReviewInput {
  @Field(() => ID, { description: 'Global ID of the ModelVersion' })
  modelVersion!: string;

  @Field({ description: 'Why: recorded with the decision' })
  @Length(3, 2000)
  reason!: string;
}

@InputType({ description: 'An alias to point at a model version' })
export class SetAliasInput {
  @Field(() => ID, { description: 'Global ID of the ModelVersion; the alias moves to it from any other version of the model' })
  modelVersion!: string;

  @Field({ description: 'e.g. champion, challenger, stable' })
  @Matches(/^[a-z][a-z0-9-]{0,39}$/, { message: 'alias must be 1–40 lowercase letters, digits or "-", starting with a letter' })
  alias!: string;
}

@InputType({ description: 'An alias to remove from a model' })
export class RemoveAliasInput {
  @Field(() => ID, { description: 'Global ID of the Model' })
  model!: string;

  @Field({ description: 'The alias to remove, 1–40 characters' })
  @Length(1, 40)
  alias!: string;
}

@InputType({ description: 'Which models to list; every condition given must hold' })
export class ModelFilter {
  @Field(() => String, { nullable: true, description: 'Only those of the team of this name' })
  team?: string | null;

  @Field(() => String, { nullable: true, description: 'Only those of this exact name' })
  name?: string | null;
}

@InputType({ description: 'Which model versions to list; every condition given must hold' })
export class ModelVersionFilter {
  @Field(() => ID, { nullable: true, description: 'Only versions of this Model (global ID)' })
  model?: string | null;

  @Field(() => String, { nullable: true, description: 'Only those of the team of this name' })
  team?: string | null;

  @Field(() => ModelVersionStatus, { nullable: true, description: 'Only those in this status' })
  status?: ModelVersionStatus | null;

  @Field(() => String, { nullable: true, description: 'Only versions holding this alias' })
  alias?: string | null;

  @Field(() => ID, { nullable: true, description: 'Only versions produced by this run' })
  trainingRun?: string | null;
}

/** Pages of models and model versions. */
export const ModelConnection = Connection(Model);
export const ModelVersionConnection = Connection(ModelVersion);
