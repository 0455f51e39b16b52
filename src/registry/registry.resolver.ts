import { Arg, Args, Ctx, Field, FieldResolver, ID, Mutation, ObjectType, Query, Resolver, Root } from 'type-graphql';
import type { RequestContext } from '../core/context';
import { PageArgs } from '../core/pagination';
import { Policy } from '../core/policy';
import { JSONScalar } from '../core/scalars';
import { mayReadTrainingData } from '../lineage/training-data-access';
import { TrainingRun } from '../lineage/training-run.entity';
import { Approval } from './approval.entity';
import { compareVersions, compareVersionsByIds, ModelVersionComparison } from './compare';
import { Model } from './model.entity';
import { ModelVersion } from './model-version.entity';
import { challengeOf, ModelVersionChallenge } from './model-version-challenge';
import { aliasesBy, approvalsByVersion } from './registry.loaders';
import {
  CreateModelInput,
  ModelConnection,
  ModelFilter,
  ModelVersionConnection,
  ModelVersionFilter,
  RegisterModelVersionInput,
  RemoveAliasInput,
  ReviewInput,
  SetAliasInput,
} from './registry.inputs';
import * as queries from './registry-query.service';
import * as registry from './registry.service';

@ObjectType({ description: 'A named pointer to one version of a model' })
export class ModelAlias {
  @Field({ description: 'The name, unique within the model, e.g. champion' })
  alias!: string;

  @Field(() => ModelVersion, { nullable: true, description: 'The version it points at' })
  modelVersion!: ModelVersion | null;
}

@Resolver()
export class RegistryQueryResolver {
  @Query(() => ModelConnection, { nullable: true, description: 'Models the caller may read, newest first' })
  @Policy({ action: 'read', subject: 'Model' })
  models(@Ctx() ctx: RequestContext, @Args() page: PageArgs, @Arg('filter', () => ModelFilter, { nullable: true, description: 'Narrows the list; null: every model the caller may read' }) filter?: ModelFilter) {
    return queries.listModels(ctx, page, filter);
  }

  @Query(() => ModelVersionConnection, { nullable: true, description: 'Model versions the caller may read, of every model, newest first' })
  @Policy({ action: 'read', subject: 'ModelVersion' })
  modelVersions(@Ctx() ctx: RequestContext, @Args() page: PageArgs, @Arg('filter', () => ModelVersionFilter, { nullable: true, description: 'Narrows the list; null: every version the caller may read' }) filter?: ModelVersionFilter) {
    return queries.listModelVersions(ctx, page, filter);
  }

  @Query(() => ModelVersionComparison, { nullable: true, description: 'How two model versions differ: metrics, data, code, config, seeds, environment' })
  @Policy({ action: 'read', subject: 'ModelVersion' })
  compareModelVersions(@Ctx() ctx: RequestContext, @Arg('a', () => ID, { description: 'Global ID of the ModelVersion to compare from' }) a: string, @Arg('b', () => ID, { description: 'Global ID of the ModelVersion to compare to' }) b: string) {
    return compareVersionsByIds(ctx, a, b);
  }
}

@Resolver()
export class RegistryMutationResolver {
  @Mutation(() => Model, { nullable: true, description: 'Creates a model; a name already taken in the team is refused' })
  @Policy({ action: 'create', subject: 'Model' })
  createModel(@Ctx() ctx: RequestContext, @Arg('input', () => CreateModelInput, { description: 'The model to create' }) input: CreateModelInput) {
    return registry.createModel(ctx, input);
  }

  @Mutation(() => ModelVersion, { nullable: true, description: 'Registers an uploaded ONNX artifact as the next version of a model (status REGISTERED)' })
  @Policy({ action: 'create', subject: 'ModelVersion' })
  registerModelVersion(@Ctx() ctx: RequestContext, @Arg('input', () => RegisterModelVersionInput, { description: 'The model, the artifact and optionally the run that produced it' }) input: RegisterModelVersionInput) {
    return registry.registerModelVersion(ctx, input);
  }

  @Mutation(() => ModelVersion, { nullable: true, description: 'REGISTERED → CANDIDATE: ready for review' })
  @Policy({ action: 'update', subject: 'ModelVersion' })
  submitModelVersion(@Ctx() ctx: RequestContext, @Arg('modelVersion', () => ID, { description: 'Global ID of a REGISTERED ModelVersion' }) modelVersion: string) {
    return registry.submitModelVersion(ctx, modelVersion);
  }

  @Mutation(() => ModelVersion, { nullable: true, description: 'CANDIDATE → APPROVED, by someone other than the registrant' })
  @Policy({ action: 'approve', subject: 'ModelVersion' })
  approveModelVersion(@Ctx() ctx: RequestContext, @Arg('input', () => ReviewInput, { description: 'The CANDIDATE version and why it is approved' }) input: ReviewInput) {
    return registry.approveModelVersion(ctx, input);
  }

  @Mutation(() => ModelVersion, { nullable: true, description: 'CANDIDATE → REJECTED, by someone other than the registrant' })
  @Policy({ action: 'reject', subject: 'ModelVersion' })
  rejectModelVersion(@Ctx() ctx: RequestContext, @Arg('input', () => ReviewInput, { description: 'The CANDIDATE version and why it is rejected' }) input: ReviewInput) {
    return registry.rejectModelVersion(ctx, input);
  }

  @Mutation(() => ModelVersion, { nullable: true, description: 'Retires a version that serves no traffic; its aliases are removed' })
  @Policy({ action: 'update', subject: 'ModelVersion' })
  archiveModelVersion(@Ctx() ctx: RequestContext, @Arg('input', () => ReviewInput, { description: 'The version and why it is retired' }) input: ReviewInput) {
    return registry.archiveModelVersion(ctx, input);
  }

  @Mutation(() => ModelVersion, { nullable: true, description: 'Points an alias (unique per model) at this version; champion needs APPROVED' })
  @Policy({ action: 'update', subject: 'ModelVersion' })
  setModelVersionAlias(@Ctx() ctx: RequestContext, @Arg('input', () => SetAliasInput, { description: 'The version and the alias' }) input: SetAliasInput) {
    return registry.setModelVersionAlias(ctx, input);
  }

  @Mutation(() => Model, { nullable: true, description: 'Removes an alias from the model (NOT_FOUND when it has none of that name); answers the model' })
  @Policy({ action: 'update', subject: 'ModelVersion' })
  removeModelVersionAlias(@Ctx() ctx: RequestContext, @Arg('input', () => RemoveAliasInput, { description: 'The model and the alias' }) input: RemoveAliasInput) {
    return registry.removeModelVersionAlias(ctx, input);
  }
}

@Resolver(() => Model)
export class ModelFieldResolver {
  @FieldResolver(() => [ModelVersion], { description: 'Versions the caller may read, newest first' })
  versions(@Root() r: Model, @Ctx() ctx: RequestContext) {
    return ctx.loaders.byColumn(ModelVersion, 'ModelVersion', 'model_id', { version: 'DESC' }).load(r.id);
  }

  @FieldResolver(() => [ModelAlias], { description: 'Its aliases and the versions they point at (those the caller may read)' })
  async aliases(@Root() r: Model, @Ctx() ctx: RequestContext): Promise<ModelAlias[]> {
    const rows = await aliasesBy(ctx, 'model_id').load(r.id);
    const versions = await ctx.loaders.byId(ModelVersion, 'ModelVersion').loadMany(rows.map((a) => a.modelVersionId));
    // Aliases of versions the caller may not read are left out, like the versions themselves.
    return rows
      .map((a, i) => ({ alias: a.alias, modelVersion: versions[i] instanceof ModelVersion ? versions[i] : null }))
      .filter((a): a is ModelAlias => a.modelVersion !== null);
  }

  @FieldResolver(() => ModelVersion, { nullable: true, description: 'The version holding `alias`, e.g. champion' })
  async version(@Root() r: Model, @Ctx() ctx: RequestContext, @Arg('alias', { description: 'The alias, e.g. champion' }) alias: string) {
    const rows = await aliasesBy(ctx, 'model_id').load(r.id);
    const hit = rows.find((a) => a.alias === alias);
    return hit ? ctx.loaders.byId(ModelVersion, 'ModelVersion').load(hit.modelVersionId) : null;
  }
}

@Resolver(() => ModelVersion)
export class ModelVersionFieldResolver {
  @FieldResolver(() => Model, { nullable: true, description: 'The model it is a version of (null if the caller may not read it)' })
  model(@Root() r: ModelVersion, @Ctx() ctx: RequestContext) {
    return ctx.loaders.byId(Model, 'Model').load(r.modelId);
  }

  @FieldResolver(() => TrainingRun, { nullable: true, description: 'The run that produced it: its data, code, config, seeds and environment' })
  trainingRun(@Root() r: ModelVersion, @Ctx() ctx: RequestContext) {
    return r.trainingRunId ? ctx.loaders.byId(TrainingRun, 'TrainingRun').load(r.trainingRunId) : null;
  }

  @FieldResolver(() => JSONScalar, {
    nullable: true,
    description:
      'Counts, moments, decile edges and category frequencies of the training data (and of predictions), no rows or samples: the drift reference. Withheld (null) unless the caller may read the protected fields of every dataset version the version was trained on (without recorded training data: as RESTRICTED data)',
  })
  async referenceProfile(@Root() r: ModelVersion, @Ctx() ctx: RequestContext) {
    return (await mayReadTrainingData(ctx, r)) ? r.referenceProfile : null;
  }

  @FieldResolver(() => [String], { description: 'Fields withheld from the caller on this version' })
  async withheldFields(@Root() r: ModelVersion, @Ctx() ctx: RequestContext) {
    return (await mayReadTrainingData(ctx, r)) ? [] : ['referenceProfile'];
  }

  @FieldResolver(() => [String], { description: 'The aliases of its model that point at it, e.g. champion' })
  async aliases(@Root() r: ModelVersion, @Ctx() ctx: RequestContext) {
    return (await aliasesBy(ctx, 'model_version_id').load(r.id)).map((a) => a.alias);
  }

  @FieldResolver(() => [Approval], { description: 'Review decisions, oldest first' })
  approvals(@Root() r: ModelVersion, @Ctx() ctx: RequestContext) {
    return approvalsByVersion(ctx).load(r.id);
  }

  @FieldResolver(() => ModelVersion, { nullable: true, description: 'The version numbered just before this one (that the caller may read)' })
  async previousVersion(@Root() r: ModelVersion, @Ctx() ctx: RequestContext) {
    const all = await ctx.loaders.byColumn(ModelVersion, 'ModelVersion', 'model_id', { version: 'DESC' }).load(r.modelId);
    return all.find((v) => v.version < r.version) ?? null;
  }

  @FieldResolver(() => ModelVersionChallenge, { nullable: true, description: 'The latest champion/challenger comparison of this version (challengeModelVersion), if any' })
  challenge(@Root() r: ModelVersion) {
    return challengeOf(r.challenge);
  }

  @FieldResolver(() => ModelVersionComparison, { nullable: true, description: 'compareModelVersions(previousVersion, this)' })
  async comparedToPrevious(@Root() r: ModelVersion, @Ctx() ctx: RequestContext) {
    const previous = await this.previousVersion(r, ctx);
    return previous ? compareVersions(ctx, previous, r) : null;
  }
}

@Resolver(() => Approval)
export class ApprovalFieldResolver {
  @FieldResolver(() => ModelVersion, { nullable: true, description: 'The version decided on (null if the caller may not read it)' })
  modelVersion(@Root() r: Approval, @Ctx() ctx: RequestContext) {
    return ctx.loaders.byId(ModelVersion, 'ModelVersion').load(r.modelVersionId);
  }
}
