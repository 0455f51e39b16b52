import type { AppServices } from '../src/core/context';
import { jobProcessor } from '../src/core/queue/job-processor';
import { monitorLastWindow, type MonitorJob } from '../src/monitoring/monitor.service';

/** A deployment's repeatable monitor job, as the monitor on behalf of the deployment's creator: judges the window that ended last (idempotent per window). */
export function monitorProcessor(app: AppServices) {
  return jobProcessor<MonitorJob>(app, {
    run: async (ctx, job) => {
      await monitorLastWindow(ctx, job.deploymentId);
    },
  });
}
