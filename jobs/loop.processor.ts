import type { AppServices } from '../src/core/context';
import type { JobPayload } from '../src/core/job-context';
import { jobProcessor } from '../src/core/queue/job-processor';
import { advanceIterations } from '../src/monitoring/iteration.service';
import type { RetrainScheduleJob } from '../src/monitoring/loop-policy.service';
import { scheduledRetraining } from '../src/monitoring/loop-triggers';

/**
 * The loop's jobs: `tick` moves every in-flight iteration on (each under its own lease, so two
 * workers never move one together); `retrain-schedule` is a retrain policy's cron schedule firing.
 */
export function loopProcessor(app: AppServices) {
  return jobProcessor<JobPayload & Partial<RetrainScheduleJob>>(app, {
    run: async (_ctx, job) => {
      if (job.deploymentId) await scheduledRetraining(app, job.deploymentId, new Date());
      else await advanceIterations(app);
    },
  });
}
