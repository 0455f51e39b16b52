import type { Job } from 'bullmq';
import type { AppServices } from '../src/core/context';
import { lastWindow, monitoringOf, monitorWindow } from '../src/monitoring/monitor.service';
import { Deployment } from '../src/rollouts/deployment.entity';
import type { MonitorJob } from '../src/core/queue/queues';

/** A deployment's repeatable monitor job: judges the window that ended last (idempotent per window). */
export function monitorProcessor(app: AppServices) {
  return async (job: Job<MonitorJob>): Promise<void> => {
    const deployment = await app.db.getRepository(Deployment).findOneBy({ id: job.data.deploymentId });
    if (!deployment) return;
    const { windowSeconds } = monitoringOf(app, deployment);
    await monitorWindow(app, deployment.id, lastWindow(Date.now(), windowSeconds), windowSeconds, `monitor:${job.id}`);
  };
}
