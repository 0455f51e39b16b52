import type { Job } from 'bullmq';
import type { AppServices } from '../src/core/context';
import { executeTrainingRun } from '../src/lineage/training.service';
import type { TrainingJob } from '../src/queue/queues';
import { systemContext } from '../src/seed/system-context';

/** Rebuilds the context from the job (the worker acts as itself, on the run's request) and executes the run. */
export function trainingProcessor(app: AppServices) {
  return async (job: Job<TrainingJob>): Promise<void> => {
    const ctx = systemContext(app, { id: 'worker:training', kind: 'system' }, job.data.requestId);
    const attempt = job.attemptsMade + 1;
    await executeTrainingRun(ctx, job.data.runId, { number: attempt, final: attempt >= (job.opts.attempts ?? 1) });
  };
}
