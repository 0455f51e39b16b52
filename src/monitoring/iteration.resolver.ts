import { Arg, Ctx, FieldResolver, ID, Int, Mutation, Query, Resolver, Root, Subscription } from 'type-graphql';
import { subjectOf } from '../core/ability';
import type { RequestContext } from '../core/context';
import { badInput } from '../core/errors';
import { TOPICS } from '../core/events';
import { expectId, toGlobalId } from '../core/global-id';
import { authorizeField, Policy } from '../core/policy';
import { DatasetVersion } from '../lineage/dataset-version.entity';
import { TrainingRun } from '../lineage/training-run.entity';
import { ModelVersion } from '../registry/model-version.entity';
import { ModelVersionChallenge, challengeOf } from '../registry/model-version-challenge';
import { Deployment } from '../rollouts/deployment.entity';
import { Rollout } from '../rollouts/rollout.entity';
import { Alert } from './alert.entity';
import { Iteration, IterationStep, LoopPolicy } from './iteration.entity';
import { PromotionPolicy, RetrainPolicy, SetPromotionPolicyInput, SetRetrainPolicyInput } from './loop-policy';
import * as policies from './loop-policy.service';
import { readableDeployment } from './monitoring-query.service';
import { filtered } from './subscription-stream';

const DEPLOYMENT_READ = { action: 'read', subject: 'Deployment' } as const;

/** An iteration by its key: readable exactly when its deployment is; null otherwise, like a missing one. */
export async function readableIteration(ctx: RequestContext, key: string): Promise<Iteration | null> {
  const it = await ctx.app.db.getRepository(Iteration).findOneBy({ id: key });
  if (!it) return null;
  return (await ctx.loaders.byId(Deployment, 'Deployment').load(it.deploymentId)) ? it : null;
}

@Resolver()
export class IterationResolver {
  @Query(() => Iteration, { nullable: true, description: 'One iteration of a deployment\'s loop; null when it does not exist or its deployment is not readable' })
  @Policy(DEPLOYMENT_READ)
  iteration(@Ctx() ctx: RequestContext, @Arg('id', () => ID, { description: 'The Iteration id' }) id: string) {
    return readableIteration(ctx, expectId(id, 'Iteration', 'id'));
  }

  @Query(() => [Iteration], { nullable: true, description: "A deployment's iterations, newest first" })
  @Policy(DEPLOYMENT_READ)
  async iterations(@Ctx() ctx: RequestContext, @Arg('deployment', () => ID, { description: 'The Deployment id' }) deployment: string, @Arg('last', () => Int, { defaultValue: 20, description: '1 to 200' }) last: number) {
    if (!Number.isInteger(last) || last < 1 || last > 200) throw badInput('last must be 1 to 200', { field: 'last' });
    const d = await readableDeployment(ctx, deployment, 'deployment');
    return ctx.app.db.getRepository(Iteration).find({ where: { deploymentId: d.id }, order: { createdAt: 'DESC' }, take: last });
  }

  @Mutation(() => Deployment, {
    nullable: true,
    description:
      "Sets a deployment's retrain policy: its triggers (drift, quality, label volume, schedule), cool-down, production sample and gate. " +
      'The loop retrains as whoever set it (their rights as they are then); at most one iteration per deployment is in flight',
  })
  @Policy({ action: 'update', subject: 'Deployment' })
  setRetrainPolicy(@Ctx() ctx: RequestContext, @Arg('input', () => SetRetrainPolicyInput, { description: 'The deployment and its whole retrain policy' }) input: SetRetrainPolicyInput) {
    return policies.setRetrainPolicy(ctx, input);
  }

  @Mutation(() => Deployment, {
    nullable: true,
    description:
      "Sets a deployment's promotion policy: how a candidate that passed the gate reaches the traffic (shadow, canary steps, bake, approval for PRODUCTION). " +
      'Rollouts start as whoever set it; an automatic approval is recorded as the policy on their behalf',
  })
  @Policy({ action: 'update', subject: 'Deployment' })
  setPromotionPolicy(@Ctx() ctx: RequestContext, @Arg('input', () => SetPromotionPolicyInput, { description: 'The deployment and its whole promotion policy' }) input: SetPromotionPolicyInput) {
    return policies.setPromotionPolicy(ctx, input);
  }

  @Subscription(() => Iteration, {
    name: 'iterationUpdated',
    description: "A deployment's iteration each time it begins or moves on, from every instance; checked for every event",
    subscribe: async ({ args, context }) => {
      const ctx = context as RequestContext;
      authorizeField(ctx, DEPLOYMENT_READ);
      const d = await readableDeployment(ctx, args.deployment as string, 'deployment');
      return filtered(ctx, ctx.app.events!.subscribe(TOPICS.iterationUpdated, d.id), (_event, now) => now.ability.can('read', subjectOf('Deployment', d) as never));
    },
  })
  @Policy(DEPLOYMENT_READ)
  async iterationUpdatedEvent(@Root() event: { iterationId: string }, @Ctx() ctx: RequestContext, @Arg('deployment', () => ID, { description: 'The Deployment id to follow' }) _deployment: string) {
    return ctx.app.db.getRepository(Iteration).findOneByOrFail({ id: event.iterationId });
  }
}

@Resolver(() => Iteration)
export class IterationFieldResolver {
  @FieldResolver(() => Deployment, { nullable: true, description: 'The deployment whose loop it is; null if the caller may not read it' })
  deployment(@Root() it: Iteration, @Ctx() ctx: RequestContext) {
    return ctx.loaders.byId(Deployment, 'Deployment').load(it.deploymentId);
  }

  @FieldResolver(() => ID, { nullable: true, description: 'The alert that fired the trigger (drift)' })
  triggerAlert(@Root() it: Iteration) {
    return it.alertId ? toGlobalId('Alert', it.alertId) : null;
  }

  @FieldResolver(() => ModelVersion, { nullable: true, description: 'The version serving the most traffic when the iteration began: retrained from (its code, config, seeds, environment) and judged against' })
  champion(@Root() it: Iteration, @Ctx() ctx: RequestContext) {
    return ctx.loaders.byId(ModelVersion, 'ModelVersion').load(it.championVersionId);
  }

  @FieldResolver(() => DatasetVersion, { nullable: true, description: 'The production sample trained on (lineage: Deployment –SAMPLED→ this)' })
  trainingData(@Root() it: Iteration, @Ctx() ctx: RequestContext) {
    return it.trainDatasetVersionId ? ctx.loaders.byId(DatasetVersion, 'DatasetVersion').load(it.trainDatasetVersionId) : null;
  }

  @FieldResolver(() => DatasetVersion, { nullable: true, description: 'The later rows of the same sample, held out: the shared evidence of the gate' })
  holdout(@Root() it: Iteration, @Ctx() ctx: RequestContext) {
    return it.holdoutDatasetVersionId ? ctx.loaders.byId(DatasetVersion, 'DatasetVersion').load(it.holdoutDatasetVersionId) : null;
  }

  @FieldResolver(() => TrainingRun, { nullable: true, description: 'The retraining run; null before TRAINING, or if the caller may not read it' })
  trainingRun(@Root() it: Iteration, @Ctx() ctx: RequestContext) {
    return it.trainingRunId ? ctx.loaders.byId(TrainingRun, 'TrainingRun').load(it.trainingRunId) : null;
  }

  @FieldResolver(() => ModelVersion, { nullable: true, description: 'The model version the retraining registered; null before it is registered, or if the caller may not read it' })
  candidate(@Root() it: Iteration, @Ctx() ctx: RequestContext) {
    return it.candidateVersionId ? ctx.loaders.byId(ModelVersion, 'ModelVersion').load(it.candidateVersionId) : null;
  }

  @FieldResolver(() => ModelVersionChallenge, { nullable: true, description: "The gate's verdict on the candidate against the champion, on the holdout (read with the candidate)" })
  async gate(@Root() it: Iteration, @Ctx() ctx: RequestContext) {
    if (!it.candidateVersionId || !it.holdoutDatasetVersionId) return null;
    const candidate = await ctx.loaders.byId(ModelVersion, 'ModelVersion').load(it.candidateVersionId);
    const verdict = candidate ? challengeOf(candidate.challenge) : null;
    return verdict && verdict.holdout === toGlobalId('DatasetVersion', it.holdoutDatasetVersionId) ? verdict : null;
  }

  @FieldResolver(() => Rollout, { nullable: true, description: 'The SHADOW rollout of the candidate; null when none was started (shadowSeconds 0, or not yet)' })
  shadowRollout(@Root() it: Iteration, @Ctx() ctx: RequestContext) {
    return it.shadowRolloutId ? ctx.loaders.byId(Rollout, 'Rollout').load(it.shadowRolloutId) : null;
  }

  @FieldResolver(() => Rollout, { nullable: true, description: 'The CANARY rollout of the candidate; null until it starts' })
  canaryRollout(@Root() it: Iteration, @Ctx() ctx: RequestContext) {
    return it.canaryRolloutId ? ctx.loaders.byId(Rollout, 'Rollout').load(it.canaryRolloutId) : null;
  }

  @FieldResolver(() => Alert, { nullable: true, description: 'The alert that told the reviewers (awaiting approval)' })
  approvalAlert(@Root() it: Iteration, @Ctx() ctx: RequestContext) {
    return it.approvalAlertId ? ctx.loaders.byId(Alert, 'Alert').load(it.approvalAlertId) : null;
  }

  @FieldResolver(() => [IterationStep], { description: 'Trigger → sample → run → gate → rollouts → outcome, oldest first, each with its time and audit event' })
  steps(@Root() it: Iteration) {
    return it.steps.map((s) => Object.assign(new IterationStep(), { step: s.step, at: new Date(s.at), detail: s.detail, auditEvent: s.auditSeq ? toGlobalId('AuditEvent', s.auditSeq) : null }));
  }

  @FieldResolver(() => String, { description: "The request id under which every step's work is audited: `auditEvents(filter: { requestId })` is the whole chain" })
  requestId(@Root() it: Iteration) {
    return `iteration:${it.id}`;
  }
}

@Resolver(() => Deployment)
export class DeploymentLoopResolver {
  @FieldResolver(() => RetrainPolicy, { nullable: true, description: 'When the deployment retrains on its production traffic (setRetrainPolicy)' })
  async retrainPolicy(@Root() d: Deployment, @Ctx() ctx: RequestContext) {
    return policies.retrainPolicyOf(await ctx.app.db.getRepository(LoopPolicy).findOneBy({ deploymentId: d.id }));
  }

  @FieldResolver(() => PromotionPolicy, { nullable: true, description: 'How a retrained candidate reaches the traffic (setPromotionPolicy)' })
  async promotionPolicy(@Root() d: Deployment, @Ctx() ctx: RequestContext) {
    return policies.promotionPolicyOf(await ctx.app.db.getRepository(LoopPolicy).findOneBy({ deploymentId: d.id }));
  }
}
