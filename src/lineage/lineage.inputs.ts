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


@InputType()
export class CreateDatasetInput {
  @Field(() => String, { nullable: true, description: "Team name; defaults to the caller's only team" })
  @IsOptional()
  @MaxLength(63)
  team?: string | null;

  @Field()
  @Matches(NAME, { message: `name ${NAME_MSG}` })
  name!: string;

  @Field(() => Classification)
  classification!: Classification;

  @Field(() => String, { nullable: true })
  @IsOptional()
  @MaxLength(2000)
  description?: string | null;
}

@InputType()
export class ColumnSchemaInput {
  @Field()
  @Length(1, 200)
  name!: string;

  @Field({ description: 'Logical type, e.g. float64, int64, string, bool, timestamp' })
  @Length(1, 50)
  type!: string;

  @Field({ defaultValue: true })
  nullable!: boolean;
}

@InputType()
export class RegisterDatasetVersionInput {
  @Field(() => ID)
  dataset!: string;

  @Field({ description: 'Where the data lives (s3://…, gs://…, file:…); recorded, never opened by the server' })
  @Length(1, 2000)
  uri!: string;

  @Field({ description: 'sha256 of the content, 64 lowercase hex characters' })
  @Matches(SHA256, { message: 'sha256 must be 64 lowercase hex characters' })
  sha256!: string;

  @Field(() => Number)
  @IsInt()
  @Min(0)
  @Max(Number.MAX_SAFE_INTEGER)
  rowCount!: number;

  @Field(() => [ColumnSchemaInput])
  @ArrayMaxSize(5000)
  @ValidateNested({ each: true })
  columns!: ColumnSchemaInput[];

  @Field(() => String, { nullable: true })
  @IsOptional()
  @MaxLength(100_000)
  sourceQuery?: string | null;

  @Field(() => [ID], { nullable: true, description: 'Dataset versions this one was derived from' })
  @IsOptional()
  @ArrayMaxSize(100)
  derivedFrom?: string[] | null;
}

@InputType()
export class RegisterCodeVersionInput {
  @Field(() => String, { nullable: true })
  @IsOptional()
  @MaxLength(63)
  team?: string | null;

  @Field()
  @IsUrl({ protocols: ['https', 'http', 'ssh', 'git', 'builtin'], require_tld: false, require_protocol: true }, { message: 'repositoryUrl must be an https, ssh or git URL (or builtin://modelgov/trainers)' })
  @MaxLength(2000)
  repositoryUrl!: string;

  @Field()
  @Matches(/^[0-9a-f]{40}([0-9a-f]{24})?$/, { message: 'commitSha must be a full 40 (or 64) character hex commit id' })
  commitSha!: string;

  @Field(() => String, { nullable: true })
  @IsOptional()
  @MaxLength(250)
  branch?: string | null;

  @Field({ defaultValue: false })
  dirty!: boolean;

  @Field(() => String, { nullable: true })
  @IsOptional()
  @Matches(SHA256, { message: 'diffSha256 must be 64 lowercase hex characters' })
  diffSha256?: string | null;

  @Field()
  @Length(1, 500)
  entrypoint!: string;
}

@InputType()
export class RegisterConfigInput {
  @Field(() => JSONScalar, { description: 'Any JSON value; stored as canonical JSON and identified by its sha256' })
  content!: unknown;

  @Field(() => String, { nullable: true, description: "Team name; defaults to the caller's only team" })
  @IsOptional()
  @MaxLength(63)
  team?: string | null;
}

@InputType()
export class RegisterSeedSetInput {
  @Field(() => JSONObjectScalar, { description: 'Seed name → integer, e.g. { "split": 7, "init": 42 }' })
  seeds!: Record<string, unknown>;

  @Field(() => String, { nullable: true })
  @IsOptional()
  @MaxLength(63)
  team?: string | null;
}

@InputType()
export class RegisterEnvironmentInput {
  @Field(() => String, { nullable: true })
  @IsOptional()
  @MaxLength(63)
  team?: string | null;

  @Field()
  @Length(1, 200)
  runtime!: string;

  @Field()
  @Matches(SHA256, { message: 'lockfileSha256 must be 64 lowercase hex characters' })
  lockfileSha256!: string;

  @Field(() => String, { nullable: true })
  @IsOptional()
  @Matches(/^sha256:[0-9a-f]{64}$/, { message: 'imageDigest must look like sha256:<64 hex>' })
  imageDigest?: string | null;

  @Field()
  @Length(1, 200)
  hardware!: string;
}

@InputType()
export class RunDatasetInput {
  @Field(() => ID)
  datasetVersion!: string;

  @Field(() => DatasetRole, { defaultValue: DatasetRole.TRAIN })
  role!: DatasetRole;
}

@InputType()
export class RecordTrainingRunInput {
  @Field(() => String, { nullable: true })
  @IsOptional()
  @MaxLength(63)
  team?: string | null;

  @Field(() => String, { nullable: true })
  @IsOptional()
  @MaxLength(200)
  name?: string | null;

  @Field(() => [RunDatasetInput])
  @ArrayMaxSize(100)
  @ValidateNested({ each: true })
  datasets!: RunDatasetInput[];

  @Field(() => ID)
  codeVersion!: string;

  @Field(() => ID)
  config!: string;

  @Field(() => ID)
  seedSet!: string;

  @Field(() => ID)
  environment!: string;

  @Field(() => ID, { nullable: true, description: 'A model version the run started from' })
  @IsOptional()
  baseModelVersion?: string | null;

  @Field(() => TrainingRunStatus, { description: 'Recorded runs are finished: SUCCEEDED, FAILED or CANCELLED' })
  status!: TrainingRunStatus;

  @Field(() => String, { nullable: true })
  @IsOptional()
  @IsISO8601()
  startedAt?: string | null;

  @Field(() => String, { nullable: true })
  @IsOptional()
  @IsISO8601()
  finishedAt?: string | null;

  @Field(() => JSONObjectScalar, { nullable: true, description: 'Metric name → number' })
  @IsOptional()
  metrics?: Record<string, unknown> | null;
}

@InputType()
export class DatasetFilter {
  @Field(() => String, { nullable: true })
  team?: string | null;

  @Field(() => Classification, { nullable: true })
  classification?: Classification | null;

  @Field(() => String, { nullable: true })
  name?: string | null;
}

@InputType()
export class DatasetVersionFilter {
  @Field(() => ID, { nullable: true })
  dataset?: string | null;

  @Field(() => String, { nullable: true })
  team?: string | null;

  @Field(() => String, { nullable: true })
  sha256?: string | null;
}

@InputType()
export class TeamScopedFilter {
  @Field(() => String, { nullable: true })
  team?: string | null;

  @Field(() => String, { nullable: true, description: 'Content hash' })
  sha256?: string | null;
}

@InputType()
export class TrainingRunFilter {
  @Field(() => String, { nullable: true })
  team?: string | null;

  @Field(() => TrainingRunStatus, { nullable: true })
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
