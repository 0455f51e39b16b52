import type { AppServices } from '../src/core/context';
import { jobProcessor } from '../src/core/queue/job-processor';
import { TrainingRunStatus } from '../src/lineage/training-run.entity';
import { executeTrainingRun, finishRun, type TrainingJob } from '../src/training/training.service';

/** Executes a queued run as whoever started it; a run the job gives up on ends FAILED. */
export function trainingProcessor(app: AppServices) {
  return jobProcessor<TrainingJob>(app, {
    run: (ctx, job, attempt) => executeTrainingRun(ctx, job.runId, attempt),
    giveUp: (ctx, job, reason) => finishRun(ctx, job.runId, TrainingRunStatus.FAILED, reason),
  });
}
