import type { Job } from 'bullmq';
import type { AppServices } from '../src/core/context';
import type { RolloutJob } from '../src/core/queue/queues';
import { abandonRolloutStep, runRolloutStep } from '../src/rollouts/rollout.service';
import { systemContext } from '../src/access/system-context';

/** Rebuilds the context (the worker acts as itself, on the request that scheduled the step) and runs the step's check. */
export function rolloutProcessor(app: AppServices) {
  return async (job: Job<RolloutJob>): Promise<void> => {
    const ctx = systemContext(app, { id: 'worker:rollouts', kind: 'system' }, job.data.requestId);
    try {
      await runRolloutStep(ctx, job.data.rolloutId, job.data.generation);
    } catch (e) {
      // Out of retries: roll back rather than leave traffic half-way with nobody checking it.
      if (job.attemptsMade + 1 >= (job.opts.attempts ?? 1)) await abandonRolloutStep(ctx, job.data.rolloutId, job.data.generation, (e as Error).message);
      throw e;
    }
  };
}
