import { UnrecoverableError, type Job } from 'bullmq';
import type { AppServices } from '../src/core/context';
import { TrainingRunStatus } from '../src/lineage/training-run.entity';
import { executeTrainingRun, finishRun } from '../src/training/training.service';
import type { TrainingJob } from '../src/core/queue/queues';
import { systemContext } from '../src/access/system-context';

/** Rebuilds the context from the job (the worker acts as itself, on the run's request) and executes the run. */
export function trainingProcessor(app: AppServices) {
  return async (job: Job<TrainingJob>): Promise<void> => {
    const ctx = systemContext(app, { id: 'worker:training', kind: 'system' }, job.data.requestId);
    const attempt = job.attemptsMade + 1;
    const final = attempt >= (job.opts.attempts ?? 1);
    try {
      await executeTrainingRun(ctx, job.data.runId, { number: attempt, final });
    } catch (e) {
      // Out of retries: the run must not stay RUNNING (UnrecoverableError paths have finished it already).
      if (final && !(e instanceof UnrecoverableError)) await finishRun(ctx, job.data.runId, TrainingRunStatus.FAILED, `gave up after ${attempt} attempts: ${(e as Error).message}`);
      throw e;
    }
  };
}
