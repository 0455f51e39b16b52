import { IsOptional, Length, Matches, MaxLength } from 'class-validator';
import { Field, ID, InputType } from 'type-graphql';
import { Connection } from '../core/pagination';
import { JSONObjectScalar } from '../core/scalars';
import { NAME, SHA256 } from '../core/validation';
import { Model } from './model.entity';
import { ModelVersion, ModelVersionStatus } from './model-version.entity';

@InputType()
export class CreateModelInput {
  @Field(() => String, { nullable: true, description: "Team name; defaults to the caller's only team" })
  @IsOptional()
  @MaxLength(63)
  team?: string | null;

  @Field()
  @Matches(NAME, { message: 'name must be 1–63 lowercase letters, digits, ".", "_" or "-"' })
  name!: string;

  @Field(() => String, { nullable: true })
  @IsOptional()
  @MaxLength(2000)
  description?: string | null;
}

@InputType()
export class RegisterModelVersionInput {
  @Field(() => ID)
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

@InputType()
export class ReviewInput {
  @Field(() => ID)
  modelVersion!: string;

  @Field({ description: 'Why: recorded with the decision' })
  @Length(3, 2000)
  reason!: string;
}

@InputType()
export class SetAliasInput {
  @Field(() => ID)
  modelVersion!: string;

  @Field({ description: 'e.g. champion, challenger, stable' })
  @Matches(/^[a-z][a-z0-9-]{0,39}$/, { message: 'alias must be 1–40 lowercase letters, digits or "-", starting with a letter' })
  alias!: string;
}

@InputType()
export class RemoveAliasInput {
  @Field(() => ID)
  model!: string;

  @Field()
  @Length(1, 40)
  alias!: string;
}

@InputType()
export class ModelFilter {
  @Field(() => String, { nullable: true })
  team?: string | null;

  @Field(() => String, { nullable: true })
  name?: string | null;
}

@InputType()
export class ModelVersionFilter {
  @Field(() => ID, { nullable: true })
  model?: string | null;

  @Field(() => String, { nullable: true })
  team?: string | null;

  @Field(() => ModelVersionStatus, { nullable: true })
  status?: ModelVersionStatus | null;

  @Field(() => String, { nullable: true, description: 'Only versions holding this alias' })
  alias?: string | null;

  @Field(() => ID, { nullable: true, description: 'Only versions produced by this run' })
  trainingRun?: string | null;
}

/** Pages of models and model versions. */
export const ModelConnection = Connection(Model);
export const ModelVersionConnection = Connection(ModelVersion);
