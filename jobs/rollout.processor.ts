import type { AppServices } from '../src/core/context';
import { jobProcessor } from '../src/core/queue/job-processor';
import { abandonRolloutStep, runRolloutStep, type RolloutJob } from '../src/rollouts/rollout.service';

/**
 * Runs a rollout step's check as whoever scheduled the step; a step the job gives up on rolls the
 * rollout back rather than leave traffic half-way with nobody checking it.
 */
export function rolloutProcessor(app: AppServices) {
  return jobProcessor<RolloutJob>(app, {
    run: (ctx, job) => runRolloutStep(ctx, job.rolloutId, job.generation),
    giveUp: (ctx, job, reason) => abandonRolloutStep(ctx, job.rolloutId, job.generation, reason),
  });
}
