import { Arg, Args, Ctx, FieldResolver, ID, Int, Mutation, Query, Resolver, Root, Subscription } from 'type-graphql';
import { notFound } from '../core/errors';
import { TOPICS } from '../core/events';
import { authorizeField, Policy } from '../core/policy';
import { Rollout, RolloutStatus, RolloutStrategy } from './rollout.entity';
import * as rollouts from './rollout.service';
import type { RequestContext } from '../core/context';
import { eventContext } from '../core/subscription-context';
import { expectId } from '../core/global-id';
import { PageArgs } from '../core/pagination';
import { ModelVersion } from '../registry/model-version.entity';
import { Deployment, TrafficShare } from './deployment.entity';
import * as deployments from './deployment.service';
import * as queries from './rollouts-query.service';
import { trafficByDeployment } from './rollouts.loaders';
import {
  CreateDeploymentInput,
  DeploymentConnection,
  DeploymentFilter,
  RollbackDeploymentInput,
  RolloutActionInput,
  RolloutConnection,
  RolloutFilter,
  SetTrafficSplitInput,
  StartRolloutInput,
} from './rollouts.inputs';

const ROLLOUT_READ = { action: 'read', subject: 'Rollout' } as const;

@Resolver()
export class RolloutsResolver {
  @Query(() => DeploymentConnection, { nullable: true, description: 'Deployments the caller may read, newest first' })
  @Policy({ action: 'read', subject: 'Deployment' })
  deployments(@Ctx() ctx: RequestContext, @Args() page: PageArgs, @Arg('filter', () => DeploymentFilter, { nullable: true, description: 'Only deployments matching it; all readable ones when left out' }) filter?: DeploymentFilter) {
    return queries.listDeployments(ctx, page, filter);
  }

  @Mutation(() => Deployment, { nullable: true, description: 'Creates a deployment in a team and starts its monitor; an initial split must sum to 100 (APPROVED versions only for PRODUCTION)' })
  @Policy({ action: 'create', subject: 'Deployment' })
  createDeployment(@Ctx() ctx: RequestContext, @Arg('input', () => CreateDeploymentInput, { description: 'The deployment to create' }) input: CreateDeploymentInput) {
    return deployments.createDeployment(ctx, input);
  }

  @Mutation(() => Deployment, { nullable: true, description: 'Replaces the traffic split at once; weights sum to 100; PRODUCTION takes APPROVED versions only' })
  @Policy({ action: 'update', subject: 'Deployment' })
  setTrafficSplit(@Ctx() ctx: RequestContext, @Arg('input', () => SetTrafficSplitInput, { description: 'The deployment and its new split' }) input: SetTrafficSplitInput) {
    return deployments.setTrafficSplit(ctx, input);
  }
}

@Resolver()
export class RolloutResolver {
  @Query(() => RolloutConnection, { nullable: true, description: 'Rollouts, newest first' })
  @Policy(ROLLOUT_READ)
  rollouts(@Ctx() ctx: RequestContext, @Args() page: PageArgs, @Arg('filter', () => RolloutFilter, { nullable: true, description: 'Only rollouts matching it; all readable ones when left out' }) filter?: RolloutFilter) {
    return queries.listRollouts(ctx, page, filter);
  }

  @Mutation(() => Rollout, { nullable: true, description: 'Starts moving a deployment to a model version (CANARY, SHADOW or BLUE_GREEN); steps advance after their bake time if healthy' })
  @Policy({ action: 'create', subject: 'Rollout' })
  startRollout(@Ctx() ctx: RequestContext, @Arg('input', () => StartRolloutInput, { description: 'The deployment, the version and the strategy, with optional step settings' }) input: StartRolloutInput) {
    return rollouts.startRollout(ctx, input);
  }

  @Mutation(() => Rollout, { nullable: true, description: 'Moves to the next step now (or completes), without waiting for the bake time' })
  @Policy({ action: 'update', subject: 'Rollout' })
  promoteRollout(@Ctx() ctx: RequestContext, @Arg('input', () => RolloutActionInput, { description: 'The rollout to move on' }) input: RolloutActionInput) {
    return rollouts.promoteRollout(ctx, input);
  }

  @Mutation(() => Rollout, { nullable: true, description: 'Holds the current step: no automatic advance until resumed or promoted' })
  @Policy({ action: 'update', subject: 'Rollout' })
  pauseRollout(@Ctx() ctx: RequestContext, @Arg('input', () => RolloutActionInput, { description: 'The rollout to hold' }) input: RolloutActionInput) {
    return rollouts.pauseRollout(ctx, input);
  }

  @Mutation(() => Rollout, { nullable: true, description: 'Restarts the bake time of the current step of a paused rollout' })
  @Policy({ action: 'update', subject: 'Rollout' })
  resumeRollout(@Ctx() ctx: RequestContext, @Arg('input', () => RolloutActionInput, { description: 'The paused rollout to resume' }) input: RolloutActionInput) {
    return rollouts.resumeRollout(ctx, input);
  }

  @Mutation(() => Rollout, { nullable: true, description: 'Stops the rollout and restores the split it started from' })
  @Policy({ action: 'update', subject: 'Rollout' })
  abortRollout(@Ctx() ctx: RequestContext, @Arg('input', () => RolloutActionInput, { description: 'The rollout to stop' }) input: RolloutActionInput) {
    return rollouts.abortRollout(ctx, input);
  }

  @Mutation(() => Deployment, { nullable: true, description: 'Rolls back the rollout in flight, or returns all traffic to the last version that held 100 %' })
  @Policy({ action: 'update', subject: 'Deployment' })
  rollbackDeployment(@Ctx() ctx: RequestContext, @Arg('input', () => RollbackDeploymentInput, { description: 'The deployment to roll back' }) input: RollbackDeploymentInput) {
    return rollouts.rollbackDeployment(ctx, input);
  }

  @Subscription(() => Rollout, {
    description: "The deployment's most recent rollout, each time it or the deployment's traffic changes",
    // Checked when the subscription starts, and again for every event.
    subscribe: async ({ args, context }) => {
      const ctx = context as RequestContext;
      authorizeField(ctx, ROLLOUT_READ);
      const key = expectId(args.deployment as string, 'Deployment', 'deployment');
      if (!(await ctx.loaders.byId(Deployment, 'Deployment').load(key))) throw notFound(`Deployment ${args.deployment as string}`);
      return ctx.app.events!.subscribe(TOPICS.rolloutUpdated, key);
    },
  })
  @Policy(ROLLOUT_READ)
  async rolloutUpdated(@Root() event: { id: string }, @Ctx() ctx: RequestContext, @Arg('deployment', () => ID, { description: 'The Deployment id to follow' }) deployment: string): Promise<Rollout> {
    // Each event is checked like a new request: the credential again (revoked keys stop here), and
    // loaders of its own, so nested fields are not answered from the previous event's reads.
    const now = await eventContext(ctx);
    const { latest, hidden } = await queries.latestRollout(now, event.id);
    // The deployment or its rollout is out of the caller's sight now: the subscription ends,
    // rather than answering every later event with NOT_FOUND.
    if (hidden && now.live) throw await now.live.end(`Rollout of deployment ${deployment} not found`);
    if (!latest || hidden) throw notFound(`Rollout of deployment ${deployment}`);
    return latest;
  }
}

@Resolver(() => Rollout)
export class RolloutFieldResolver {
  @FieldResolver(() => Deployment, { nullable: true, description: 'The deployment whose traffic moves; null if the caller may not read it' })
  deployment(@Root() r: Rollout, @Ctx() ctx: RequestContext) {
    return ctx.loaders.byId(Deployment, 'Deployment').load(r.deploymentId);
  }

  @FieldResolver(() => ModelVersion, { nullable: true, description: 'The version being rolled out' })
  modelVersion(@Root() r: Rollout, @Ctx() ctx: RequestContext) {
    return ctx.loaders.byId(ModelVersion, 'ModelVersion').load(r.modelVersionId);
  }

  @FieldResolver(() => Int, { description: 'Percent of traffic the new version has now' })
  percent(@Root() r: Rollout) {
    if (r.strategy === RolloutStrategy.SHADOW || r.status === RolloutStatus.ABORTED || r.status === RolloutStatus.ROLLED_BACK) return 0;
    return r.status === RolloutStatus.SUCCEEDED ? 100 : r.steps[r.currentStep];
  }

  @FieldResolver(() => [TrafficShare], { description: 'The split before the rollout began (what a rollback restores)' })
  baselineSplit(@Root() r: Rollout) {
    return r.baselineSplit.map((s) => Object.assign(new TrafficShare(), { deploymentId: r.deploymentId, modelVersionId: s.modelVersionId, weight: s.weight }));
  }
}

@Resolver(() => Deployment)
export class DeploymentFieldResolver {
  @FieldResolver(() => [Rollout], { description: 'Rollouts of this deployment, newest first' })
  rollouts(@Root() r: Deployment, @Ctx() ctx: RequestContext) {
    return ctx.loaders.byColumn(Rollout, 'Rollout', 'deployment_id', { created_at: 'DESC' }).load(r.id);
  }

  @FieldResolver(() => Rollout, { nullable: true, description: 'The rollout in progress or paused, if any' })
  async activeRollout(@Root() r: Deployment, @Ctx() ctx: RequestContext) {
    const all = await ctx.loaders.byColumn(Rollout, 'Rollout', 'deployment_id', { created_at: 'DESC' }).load(r.id);
    return all.find((x) => x.status === RolloutStatus.IN_PROGRESS || x.status === RolloutStatus.PAUSED) ?? null;
  }

  @FieldResolver(() => [ModelVersion], { description: 'Versions receiving mirrored traffic (never served)' })
  shadowVersions(@Root() r: Deployment, @Ctx() ctx: RequestContext) {
    return ctx.loaders.through(ModelVersion, 'ModelVersion', { table: 'shadow_share', from: 'deployment_id', to: 'model_version_id' }).load(r.id);
  }

  @FieldResolver(() => ModelVersion, { nullable: true, description: 'The last version that held 100 % of the traffic (where rollbackDeployment returns)' })
  lastStableVersion(@Root() r: Deployment, @Ctx() ctx: RequestContext) {
    return r.lastStableVersionId ? ctx.loaders.byId(ModelVersion, 'ModelVersion').load(r.lastStableVersionId) : null;
  }

  @FieldResolver(() => [TrafficShare], { description: 'Current split, largest share first; shares of versions the caller may not read are left out' })
  trafficSplit(@Root() r: Deployment, @Ctx() ctx: RequestContext) {
    return trafficByDeployment(ctx).load(r.id);
  }
}

@Resolver(() => TrafficShare)
export class TrafficShareFieldResolver {
  @FieldResolver(() => ModelVersion, { nullable: true, description: 'The version receiving the share; null if the caller may not read it' })
  modelVersion(@Root() r: TrafficShare, @Ctx() ctx: RequestContext) {
    return ctx.loaders.byId(ModelVersion, 'ModelVersion').load(r.modelVersionId);
  }
}

/** Where a model version serves: deployments are the rollouts domain's to answer. */
@Resolver(() => ModelVersion)
export class ModelVersionDeploymentsResolver {
  @FieldResolver(() => [Deployment], { description: 'Deployments routing traffic to this version' })
  deployments(@Root() r: ModelVersion, @Ctx() ctx: RequestContext) {
    return ctx.loaders.through(Deployment, 'Deployment', { table: 'traffic_share', from: 'model_version_id', to: 'deployment_id' }).load(r.id);
  }
}
