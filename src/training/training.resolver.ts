import { Arg, Ctx, FieldResolver, ID, Mutation, Resolver, Root, Subscription } from 'type-graphql';
import type { RequestContext } from '../core/context';
import { eventContext } from '../core/subscription-context';
import { notFound } from '../core/errors';
import { TOPICS } from '../core/events';
import { expectId } from '../core/global-id';
import { authorizeField, Policy } from '../core/policy';
import { currentRun } from '../lineage/lineage-query.service';
import { RecordTrainingRunInput } from '../lineage/lineage.inputs';
import { TrainingRun } from '../lineage/training-run.entity';
import { ModelVersion } from '../registry/model-version.entity';
import { recordTrainingRun } from './recorded-run.service';
import { StartTrainingRunInput } from './training.inputs';
import * as training from './training.service';

const RUN_READ = { action: 'read', subject: 'TrainingRun' } as const;

@Resolver()
export class TrainingResolver {
  @Mutation(() => TrainingRun, { nullable: true, description: 'Records a run done elsewhere, linking its inputs' })
  @Policy({ action: 'create', subject: 'TrainingRun' })
  recordTrainingRun(@Ctx() ctx: RequestContext, @Arg('input', () => RecordTrainingRunInput, { description: 'The finished run and the registered inputs it used' }) input: RecordTrainingRunInput) {
    return recordTrainingRun(ctx, input);
  }

  @Mutation(() => TrainingRun, { nullable: true, description: 'Queues a training run on the server; its model version is registered and gated when it finishes' })
  @Policy({ action: 'create', subject: 'TrainingRun' })
  startTrainingRun(@Ctx() ctx: RequestContext, @Arg('input', () => StartTrainingRunInput, { description: 'The model to train for and the inputs to train on' }) input: StartTrainingRunInput) {
    return training.startTrainingRun(ctx, input);
  }

  @Mutation(() => TrainingRun, { nullable: true, description: 'Stops a queued or running run (the process is killed)' })
  @Policy({ action: 'update', subject: 'TrainingRun' })
  cancelTrainingRun(@Ctx() ctx: RequestContext, @Arg('id', () => ID, { description: 'Global ID of the TrainingRun' }) id: string, @Arg('reason', () => String, { nullable: true, description: 'Recorded as its failureReason; null: "cancelled by" the caller' }) reason?: string | null) {
    return training.cancelTrainingRun(ctx, id, reason ?? null);
  }

  @Subscription(() => TrainingRun, {
    description: 'The run each time its status, progress or log changes',
    // Checked when the subscription starts, and again for every event (rights may change meanwhile).
    subscribe: async ({ args, context }) => {
      const ctx = context as RequestContext;
      authorizeField(ctx, RUN_READ);
      const key = expectId(args.id as string, 'TrainingRun');
      const run = await ctx.loaders.byId(TrainingRun, 'TrainingRun').load(key);
      if (!run) throw notFound(`TrainingRun ${args.id as string}`);
      return ctx.app.events!.subscribe(TOPICS.trainingRunUpdated, key);
    },
  })
  @Policy(RUN_READ)
  async trainingRunUpdated(@Root() event: { id: string }, @Ctx() ctx: RequestContext, @Arg('id', () => ID, { description: 'Global ID of the TrainingRun to follow' }) _id: string): Promise<TrainingRun> {
    // Each event is checked like a new request: the credential again (revoked keys stop here), and
    // loaders of its own, so nested fields are not answered from the previous event's reads.
    const now = await eventContext(ctx);
    // Fresh row, through a fresh scoped read: never a cached or unauthorised one.
    const run = await currentRun(now, event.id);
    if (!run) {
      // The run is out of the caller's sight now: the subscription ends, rather than answering
      // every later event with NOT_FOUND.
      const missing = notFound(`TrainingRun ${_id}`);
      throw now.live ? await now.live.end(missing.message) : missing;
    }
    return run;
  }
}

/** What a run started from and what it produced: model versions, which the registry holds. */
@Resolver(() => TrainingRun)
export class TrainingRunVersionsResolver {
  @FieldResolver(() => ModelVersion, { nullable: true, description: 'The model version the run started from, if any' })
  baseModelVersion(@Root() r: TrainingRun, @Ctx() ctx: RequestContext) {
    return r.baseModelVersionId ? ctx.loaders.byId(ModelVersion, 'ModelVersion').load(r.baseModelVersionId) : null;
  }

  @FieldResolver(() => [ModelVersion], { description: 'Model versions the run produced' })
  outputs(@Root() r: TrainingRun, @Ctx() ctx: RequestContext) {
    return ctx.loaders.byColumn(ModelVersion, 'ModelVersion', 'training_run_id', { version: 'ASC' }).load(r.id);
  }
}
