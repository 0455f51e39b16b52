import { Arg, Args, Ctx, Field, FieldResolver, ID, Int, Mutation, ObjectType, Query, Resolver, Root } from 'type-graphql';
import { subjectOf } from '../core/ability';
import type { RequestContext } from '../core/context';
import { PageArgs } from '../core/pagination';
import { Policy } from '../core/policy';
import { CodeVersion } from './code-version.entity';
import { Config } from './config.entity';
import { Dataset } from './dataset.entity';
import { DatasetVersion } from './dataset-version.entity';
import { Environment } from './environment.entity';
import { Lineage, LineageDirection, traverseLineage } from './lineage-graph';
import {
  CodeVersionConnection,
  ConfigConnection,
  CreateDatasetInput,
  DatasetConnection,
  DatasetFilter,
  DatasetVersionConnection,
  DatasetVersionFilter,
  EnvironmentConnection,
  RegisterCodeVersionInput,
  RegisterConfigInput,
  RegisterDatasetVersionInput,
  RegisterEnvironmentInput,
  RegisterSeedSetInput,
  SeedSetConnection,
  TeamScopedFilter,
  TrainingRunConnection,
  TrainingRunFilter,
} from './lineage.inputs';
import * as queries from './lineage-query.service';
import * as lineage from './lineage.service';
import { SeedSet } from './seed-set.entity';
import { runDatasetLinks } from './lineage.loaders';
import { DatasetRole, TrainingRun } from './training-run.entity';

@ObjectType({ description: 'A dataset version a run used, and for what' })
export class TrainingRunDatasetUse {
  @Field(() => DatasetRole, { description: 'What the run used it for' })
  role!: DatasetRole;

  @Field(() => DatasetVersion, { description: 'The version used' })
  datasetVersion!: DatasetVersion;
}

@Resolver()
export class LineageQueryResolver {
  @Query(() => DatasetConnection, { nullable: true, description: 'Datasets the caller may read' })
  @Policy({ action: 'read', subject: 'Dataset' })
  datasets(@Ctx() ctx: RequestContext, @Args() page: PageArgs, @Arg('filter', () => DatasetFilter, { nullable: true, description: 'Narrows the list; null: every dataset the caller may read' }) filter?: DatasetFilter) {
    return queries.listDatasets(ctx, page, filter);
  }

  @Query(() => DatasetVersionConnection, { nullable: true, description: 'Dataset versions the caller may read, of every dataset, newest first' })
  @Policy({ action: 'read', subject: 'DatasetVersion' })
  datasetVersions(@Ctx() ctx: RequestContext, @Args() page: PageArgs, @Arg('filter', () => DatasetVersionFilter, { nullable: true, description: 'Narrows the list; null: every version the caller may read' }) filter?: DatasetVersionFilter) {
    return queries.listDatasetVersions(ctx, page, filter);
  }

  @Query(() => CodeVersionConnection, { nullable: true, description: 'Code versions the caller may read, newest first' })
  @Policy({ action: 'read', subject: 'CodeVersion' })
  codeVersions(@Ctx() ctx: RequestContext, @Args() page: PageArgs, @Arg('filter', () => TeamScopedFilter, { nullable: true, description: 'Narrows the list by team or sha256; null: all' }) filter?: TeamScopedFilter) {
    return queries.listCodeVersions(ctx, page, filter);
  }

  @Query(() => ConfigConnection, { nullable: true, description: 'Configs the caller may read, newest first' })
  @Policy({ action: 'read', subject: 'Config' })
  configs(@Ctx() ctx: RequestContext, @Args() page: PageArgs, @Arg('filter', () => TeamScopedFilter, { nullable: true, description: 'Narrows the list by team or sha256; null: all' }) filter?: TeamScopedFilter) {
    return queries.listConfigs(ctx, page, filter);
  }

  @Query(() => SeedSetConnection, { nullable: true, description: 'Seed sets the caller may read, newest first' })
  @Policy({ action: 'read', subject: 'SeedSet' })
  seedSets(@Ctx() ctx: RequestContext, @Args() page: PageArgs, @Arg('filter', () => TeamScopedFilter, { nullable: true, description: 'Narrows the list by team or sha256; null: all' }) filter?: TeamScopedFilter) {
    return queries.listSeedSets(ctx, page, filter);
  }

  @Query(() => EnvironmentConnection, { nullable: true, description: 'Environments the caller may read, newest first' })
  @Policy({ action: 'read', subject: 'Environment' })
  environments(@Ctx() ctx: RequestContext, @Args() page: PageArgs, @Arg('filter', () => TeamScopedFilter, { nullable: true, description: 'Narrows the list by team or sha256; null: all' }) filter?: TeamScopedFilter) {
    return queries.listEnvironments(ctx, page, filter);
  }

  @Query(() => TrainingRunConnection, { nullable: true, description: 'Training runs the caller may read, recorded and executed alike, newest first' })
  @Policy({ action: 'read', subject: 'TrainingRun' })
  trainingRuns(@Ctx() ctx: RequestContext, @Args() page: PageArgs, @Arg('filter', () => TrainingRunFilter, { nullable: true, description: 'Narrows the list; null: every run the caller may read' }) filter?: TrainingRunFilter) {
    return queries.listTrainingRuns(ctx, page, filter);
  }

  @Query(() => Lineage, { nullable: true, description: 'The lineage graph around a dataset version, code version, config, seed set, environment, run, model version or deployment' })
  @Policy({ action: 'read', subject: 'any' })
  lineage(
    @Ctx() ctx: RequestContext,
    @Arg('id', () => ID, { description: 'Global ID of the node to start from (the root)' }) id: string,
    @Arg('direction', () => LineageDirection, { defaultValue: LineageDirection.BOTH, description: 'Which edges to follow from the root' }) direction: LineageDirection,
    @Arg('depth', () => Int, { defaultValue: 3, description: 'Edges to follow from the root, 0 (the root alone) up to the server’s limit (MAX_LINEAGE_DEPTH, 20 by default)' }) depth: number,
  ) {
    return traverseLineage(ctx, id, direction, depth);
  }
}

@Resolver()
export class LineageMutationResolver {
  @Mutation(() => Dataset, { nullable: true, description: 'Creates a dataset; a name already taken in the team is refused' })
  @Policy({ action: 'create', subject: 'Dataset' })
  createDataset(@Ctx() ctx: RequestContext, @Arg('input', () => CreateDatasetInput, { description: 'The dataset to create' }) input: CreateDatasetInput) {
    return lineage.createDataset(ctx, input);
  }

  @Mutation(() => DatasetVersion, { nullable: true, description: 'Registers the next version of a dataset; content with a sha256 already registered in the dataset is refused' })
  @Policy({ action: 'create', subject: 'DatasetVersion' })
  registerDatasetVersion(@Ctx() ctx: RequestContext, @Arg('input', () => RegisterDatasetVersionInput, { description: 'The version to register' }) input: RegisterDatasetVersionInput) {
    return lineage.registerDatasetVersion(ctx, input);
  }

  @Mutation(() => CodeVersion, { nullable: true, description: 'Registers a code version; the same fields again return the existing one' })
  @Policy({ action: 'create', subject: 'CodeVersion' })
  registerCodeVersion(@Ctx() ctx: RequestContext, @Arg('input', () => RegisterCodeVersionInput, { description: 'The code version to register' }) input: RegisterCodeVersionInput) {
    return lineage.registerCodeVersion(ctx, input);
  }

  @Mutation(() => Config, { nullable: true, description: 'Registers a config; the same content again returns the existing one' })
  @Policy({ action: 'create', subject: 'Config' })
  registerConfig(@Ctx() ctx: RequestContext, @Arg('input', () => RegisterConfigInput, { description: 'The config to register' }) input: RegisterConfigInput) {
    return lineage.registerConfig(ctx, input);
  }

  @Mutation(() => SeedSet, { nullable: true, description: 'Registers a seed set; the same seeds again return the existing one' })
  @Policy({ action: 'create', subject: 'SeedSet' })
  registerSeedSet(@Ctx() ctx: RequestContext, @Arg('input', () => RegisterSeedSetInput, { description: 'The seeds to register' }) input: RegisterSeedSetInput) {
    return lineage.registerSeedSet(ctx, input);
  }

  @Mutation(() => Environment, { nullable: true, description: 'Registers an environment; the same fields again return the existing one' })
  @Policy({ action: 'create', subject: 'Environment' })
  registerEnvironment(@Ctx() ctx: RequestContext, @Arg('input', () => RegisterEnvironmentInput, { description: 'The environment to register' }) input: RegisterEnvironmentInput) {
    return lineage.registerEnvironment(ctx, input);
  }
}

@Resolver(() => Dataset)
export class DatasetFieldResolver {
  @FieldResolver(() => [DatasetVersion], { description: 'Versions the caller may read, newest first' })
  versions(@Root() r: Dataset, @Ctx() ctx: RequestContext) {
    return ctx.loaders.byColumn(DatasetVersion, 'DatasetVersion', 'dataset_id', { version: 'DESC' }).load(r.id);
  }
}

@Resolver(() => DatasetVersion)
export class DatasetVersionFieldResolver {
  @FieldResolver(() => Dataset, { nullable: true, description: 'The dataset it is a version of (null if the caller may not read it)' })
  dataset(@Root() r: DatasetVersion, @Ctx() ctx: RequestContext) {
    return ctx.loaders.byId(Dataset, 'Dataset').load(r.datasetId);
  }

  @FieldResolver(() => String, { nullable: true, description: 'Withheld (null) for CONFIDENTIAL and RESTRICTED data unless the caller holds the field permission' })
  uri(@Root() r: DatasetVersion, @Ctx() ctx: RequestContext) {
    return ctx.ability.can('read', subjectOf('DatasetVersion', r), 'uri') ? r.uri : null;
  }

  @FieldResolver(() => String, { nullable: true, description: 'Withheld (null) like uri' })
  sourceQuery(@Root() r: DatasetVersion, @Ctx() ctx: RequestContext) {
    return ctx.ability.can('read', subjectOf('DatasetVersion', r), 'sourceQuery') ? r.sourceQuery : null;
  }

  @FieldResolver(() => [String], { description: 'Fields withheld from the caller on this version' })
  withheldFields(@Root() r: DatasetVersion, @Ctx() ctx: RequestContext) {
    return ['uri', 'sourceQuery'].filter((f) => !ctx.ability.can('read', subjectOf('DatasetVersion', r), f));
  }

  @FieldResolver(() => [DatasetVersion], { description: 'The versions this one was derived from' })
  derivedFrom(@Root() r: DatasetVersion, @Ctx() ctx: RequestContext) {
    return ctx.loaders.through(DatasetVersion, 'DatasetVersion', { table: 'dataset_version_parent', from: 'child_id', to: 'parent_id' }).load(r.id);
  }

  @FieldResolver(() => [TrainingRun], { description: 'Runs that used this version' })
  usedBy(@Root() r: DatasetVersion, @Ctx() ctx: RequestContext) {
    return ctx.loaders.through(TrainingRun, 'TrainingRun', { table: 'training_run_dataset', from: 'dataset_version_id', to: 'training_run_id' }).load(r.id);
  }
}

@Resolver(() => TrainingRun)
export class TrainingRunFieldResolver {
  @FieldResolver(() => [TrainingRunDatasetUse], { description: 'Dataset versions used, those the caller may read' })
  async datasets(@Root() r: TrainingRun, @Ctx() ctx: RequestContext): Promise<TrainingRunDatasetUse[]> {
    const links = await runDatasetLinks(ctx).load(r.id);
    const versions = await ctx.loaders.byId(DatasetVersion, 'DatasetVersion').loadMany(links.map((l) => l.datasetVersionId));
    return links
      .map((l, i) => ({ role: l.role, datasetVersion: versions[i] as DatasetVersion | null }))
      .filter((u): u is TrainingRunDatasetUse => !!u.datasetVersion && !(u.datasetVersion instanceof Error));
  }

  @FieldResolver(() => CodeVersion, { nullable: true, description: 'The code it ran (null if the caller may not read it)' })
  codeVersion(@Root() r: TrainingRun, @Ctx() ctx: RequestContext) {
    return ctx.loaders.byId(CodeVersion, 'CodeVersion').load(r.codeVersionId);
  }

  @FieldResolver(() => Config, { nullable: true, description: 'The config it ran with (null if the caller may not read it)' })
  config(@Root() r: TrainingRun, @Ctx() ctx: RequestContext) {
    return ctx.loaders.byId(Config, 'Config').load(r.configId);
  }

  @FieldResolver(() => SeedSet, { nullable: true, description: 'The seeds it used (null if the caller may not read them)' })
  seedSet(@Root() r: TrainingRun, @Ctx() ctx: RequestContext) {
    return ctx.loaders.byId(SeedSet, 'SeedSet').load(r.seedSetId);
  }

  @FieldResolver(() => Environment, { nullable: true, description: 'Where it ran (null if the caller may not read it)' })
  environment(@Root() r: TrainingRun, @Ctx() ctx: RequestContext) {
    return ctx.loaders.byId(Environment, 'Environment').load(r.environmentId);
  }
}

