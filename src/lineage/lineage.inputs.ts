import { ArrayMaxSize, IsInt, IsOptional, IsUrl, Length, Matches, Max, MaxLength, Min, ValidateNested, IsISO8601 } from 'class-validator';
import { Field, ID, InputType } from 'type-graphql';
import { Connection } from '../core/pagination';
import { JSONObjectScalar, JSONScalar } from '../core/scalars';
import { NAME, NAME_MSG, SHA256 } from '../core/validation';
import { CodeVersion } from './code-version.entity';
import { Config } from './config.entity';
import { Classification, Dataset } from './dataset.entity';
import { DatasetVersion } from './dataset-version.entity';
import { Environment } from './environment.entity';
import { SeedSet } from './seed-set.entity';
import { DatasetRole, TrainingRun, TrainingRunStatus } from './training-run.entity';


@InputType({ description: 'A dataset to create' })
export class CreateDatasetInput {
  @Field(() => String, { nullable: true, description: "Team name; defaults to the caller's only team" })
  @IsOptional()
  @MaxLength(63)
  team?: string | null;

  @Field({ description: `Unique within the team; ${NAME_MSG}` })
  @Matches(NAME, { message: `name ${NAME_MSG}` })
  name!: string;

  @Field(() => Classification, { description: 'Its sensitivity; every version inherits it' })
  classification!: Classification;

  @Field(() => String, { nullable: true, description: 'Free text, up to 2,000 characters' })
  @IsOptional()
  @MaxLength(2000)
  description?: string | null;
}

@InputType({ description: 'One column of a dataset version' })
export class ColumnSchemaInput {
  @Field({ description: 'Column name, 1–200 characters, unique within the version' })
  @Length(1, 200)
  name!: string;

  @Field({ description: 'Logical type, e.g. float64, int64, string, bool, timestamp' })
  @Length(1, 50)
  type!: string;

  @Field({ defaultValue: true, description: 'The column may hold nulls' })
  nullable!: boolean;
}

@InputType({ description: 'A new version of a dataset: where its content lives, its hash and its columns' })
export class RegisterDatasetVersionInput {
  @Field(() => ID, { description: 'Global ID of the Dataset; the version is numbered next within it' })
  dataset!: string;

  @Field({ description: 'Where the data lives (s3://…, gs://…, file:…); recorded, never opened by the server' })
  @Length(1, 2000)
  uri!: string;

  @Field({ description: 'sha256 of the content, 64 lowercase hex characters' })
  @Matches(SHA256, { message: 'sha256 must be 64 lowercase hex characters' })
  sha256!: string;

  @Field(() => Number, { description: 'Rows in the content, a whole number, 0 or more' })
  @IsInt()
  @Min(0)
  @Max(Number.MAX_SAFE_INTEGER)
  rowCount!: number;

  @Field(() => [ColumnSchemaInput], { description: 'Its columns, in order; at most 5,000, names unique' })
  @ArrayMaxSize(5000)
  @ValidateNested({ each: true })
  columns!: ColumnSchemaInput[];

  @Field(() => String, { nullable: true, description: 'The query that produced the content, up to 100,000 characters; recorded, never run' })
  @IsOptional()
  @MaxLength(100_000)
  sourceQuery?: string | null;

  @Field(() => [ID], { nullable: true, description: 'Dataset versions this one was derived from' })
  @IsOptional()
  @ArrayMaxSize(100)
  derivedFrom?: string[] | null;
}

@InputType({ description: 'The code a run used; identified by the sha256 of its fields' })
export class RegisterCodeVersionInput {
  @Field(() => String, { nullable: true, description: "Team name; defaults to the caller's only team" })
  @IsOptional()
  @MaxLength(63)
  team?: string | null;

  @Field({ description: 'An https, http, ssh or git URL of the repository (builtin://modelgov/trainers for the trainers that ship with the server)' })
  @IsUrl({ protocols: ['https', 'http', 'ssh', 'git', 'builtin'], require_tld: false, require_protocol: true }, { message: 'repositoryUrl must be an https, ssh or git URL (or builtin://modelgov/trainers)' })
  @MaxLength(2000)
  repositoryUrl!: string;

  @Field({ description: 'The full commit id: 40 (or 64) lowercase hex characters' })
  @Matches(/^[0-9a-f]{40}([0-9a-f]{24})?$/, { message: 'commitSha must be a full 40 (or 64) character hex commit id' })
  commitSha!: string;

  @Field(() => String, { nullable: true, description: 'The branch, up to 250 characters; recorded as given' })
  @IsOptional()
  @MaxLength(250)
  branch?: string | null;

  @Field({ defaultValue: false, description: 'The working tree had uncommitted changes; then diffSha256 is required' })
  dirty!: boolean;

  @Field(() => String, { nullable: true, description: 'sha256 of the uncommitted diff, 64 lowercase hex characters; only with dirty' })
  @IsOptional()
  @Matches(SHA256, { message: 'diffSha256 must be 64 lowercase hex characters' })
  diffSha256?: string | null;

  @Field({ description: 'What was run: a relative path inside the repository, 1–500 characters' })
  @Length(1, 500)
  entrypoint!: string;
}

@InputType({ description: 'A training configuration; the same content again returns the registered one' })
export class RegisterConfigInput {
  @Field(() => JSONScalar, { description: 'A JSON object; stored as canonical JSON and identified by its sha256' })
  content!: unknown;

  @Field(() => String, { nullable: true, description: "Team name; defaults to the caller's only team" })
  @IsOptional()
  @MaxLength(63)
  team?: string | null;
}

@InputType({ description: 'Named seeds; the same seeds again return the registered set' })
export class RegisterSeedSetInput {
  @Field(() => JSONObjectScalar, { description: 'Seed name → integer, e.g. { "split": 7, "init": 42 }' })
  seeds!: Record<string, unknown>;

  @Field(() => String, { nullable: true, description: "Team name; defaults to the caller's only team" })
  @IsOptional()
  @MaxLength(63)
  team?: string | null;
}

@InputType({ description: 'Where a run executed; identified by the sha256 of its fields' })
export class RegisterEnvironmentInput {
  @Field(() => String, { nullable: true, description: "Team name; defaults to the caller's only team" })
  @IsOptional()
  @MaxLength(63)
  team?: string | null;

  @Field({ description: 'The runtime and its version, 1–200 characters, e.g. "python 3.11.7"' })
  @Length(1, 200)
  runtime!: string;

  @Field({ description: 'sha256 of the dependency lockfile, 64 lowercase hex characters' })
  @Matches(SHA256, { message: 'lockfileSha256 must be 64 lowercase hex characters' })
  lockfileSha256!: string;

  @Field(() => String, { nullable: true, description: 'Container image digest, sha256:<64 lowercase hex>; null when it ran outside a container' })
  @IsOptional()
  @Matches(/^sha256:[0-9a-f]{64}$/, { message: 'imageDigest must look like sha256:<64 hex>' })
  imageDigest?: string | null;

  @Field({ description: 'What it ran on, 1–200 characters, e.g. "1x NVIDIA H100"' })
  @Length(1, 200)
  hardware!: string;
}

@InputType({ description: 'A dataset version a run used, and for what' })
export class RunDatasetInput {
  @Field(() => ID, { description: 'Global ID of the DatasetVersion' })
  datasetVersion!: string;

  @Field(() => DatasetRole, { defaultValue: DatasetRole.TRAIN, description: 'What the run used it for' })
  role!: DatasetRole;
}

@InputType({ description: 'A finished run trained elsewhere, with the registered inputs it used' })
export class RecordTrainingRunInput {
  @Field(() => String, { nullable: true, description: "Team name; defaults to the caller's only team" })
  @IsOptional()
  @MaxLength(63)
  team?: string | null;

  @Field(() => String, { nullable: true, description: 'A label for people, up to 200 characters' })
  @IsOptional()
  @MaxLength(200)
  name?: string | null;

  @Field(() => [RunDatasetInput], { description: 'The dataset versions it used, 1–100, each once' })
  @ArrayMaxSize(100)
  @ValidateNested({ each: true })
  datasets!: RunDatasetInput[];

  @Field(() => ID, { description: 'Global ID of the CodeVersion it ran' })
  codeVersion!: string;

  @Field(() => ID, { description: 'Global ID of the Config it ran with' })
  config!: string;

  @Field(() => ID, { description: 'Global ID of the SeedSet it used' })
  seedSet!: string;

  @Field(() => ID, { description: 'Global ID of the Environment it ran in' })
  environment!: string;

  @Field(() => ID, { nullable: true, description: 'A model version the run started from' })
  @IsOptional()
  baseModelVersion?: string | null;

  @Field(() => TrainingRunStatus, { description: 'Recorded runs are finished: SUCCEEDED, FAILED or CANCELLED' })
  status!: TrainingRunStatus;

  @Field(() => String, { nullable: true, description: 'When it began, ISO 8601; null when unknown' })
  @IsOptional()
  @IsISO8601()
  startedAt?: string | null;

  @Field(() => String, { nullable: true, description: 'When it ended, ISO 8601, not before startedAt; null when unknown' })
  @IsOptional()
  @IsISO8601()
  finishedAt?: string | null;

  @Field(() => JSONObjectScalar, { nullable: true, description: 'Metric name → number' })
  @IsOptional()
  metrics?: Record<string, unknown> | null;
}

@InputType({ description: 'Which datasets to list; every condition given must hold' })
export class DatasetFilter {
  @Field(() => String, { nullable: true, description: 'Only those of the team of this name' })
  team?: string | null;

  @Field(() => Classification, { nullable: true, description: 'Only those of this classification' })
  classification?: Classification | null;

  @Field(() => String, { nullable: true, description: 'Only those of this exact name' })
  name?: string | null;
}

@InputType({ description: 'Which dataset versions to list; every condition given must hold' })
export class DatasetVersionFilter {
  @Field(() => ID, { nullable: true, description: 'Only versions of this Dataset (global ID)' })
  dataset?: string | null;

  @Field(() => String, { nullable: true, description: 'Only those of the team of this name' })
  team?: string | null;

  @Field(() => String, { nullable: true, description: 'Only versions whose content has this sha256' })
  sha256?: string | null;
}

@InputType({ description: 'Which registered records (code versions, configs, seed sets, environments) to list; every condition given must hold' })
export class TeamScopedFilter {
  @Field(() => String, { nullable: true, description: 'Only those of the team of this name' })
  team?: string | null;

  @Field(() => String, { nullable: true, description: 'Content hash' })
  sha256?: string | null;
}

@InputType({ description: 'Which training runs to list; every condition given must hold' })
export class TrainingRunFilter {
  @Field(() => String, { nullable: true, description: 'Only those of the team of this name' })
  team?: string | null;

  @Field(() => TrainingRunStatus, { nullable: true, description: 'Only those in this status' })
  status?: TrainingRunStatus | null;

  @Field(() => ID, { nullable: true, description: 'Runs that used this dataset version' })
  datasetVersion?: string | null;
}

/** Pages of the lineage's records. */
export const DatasetConnection = Connection(Dataset);
export const DatasetVersionConnection = Connection(DatasetVersion);
export const CodeVersionConnection = Connection(CodeVersion);
export const ConfigConnection = Connection(Config);
export const SeedSetConnection = Connection(SeedSet);
export const EnvironmentConnection = Connection(Environment);
export const TrainingRunConnection = Connection(TrainingRun);
