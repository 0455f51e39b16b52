import { Worker, type ConnectionOptions, type Processor, type WorkerOptions } from 'bullmq';
import { followConnection } from '../core/rate-limited-log';
import { withTimeout } from '../core/timeout';
import { bullPrefix, QUEUES, redisFor, type QueueName } from '../core/queue/queues';
import { auditAnchorProcessor } from '../../jobs/audit-anchor.processor';
import { auditExportProcessor } from '../../jobs/audit-export.processor';
import { auditRetentionProcessor } from '../../jobs/audit-retention.processor';
import { rolloutProcessor } from '../../jobs/rollout.processor';
import { trainingProcessor } from '../../jobs/training.processor';
import { monitorProcessor } from '../../jobs/monitor.processor';
import { loopProcessor } from '../../jobs/loop.processor';
import { notificationProcessor } from '../../jobs/notification.processor';
import { reconcileNotificationSchedules } from '../monitoring/notification-routing.service';
import { reconcileLoopSchedules } from '../monitoring/loop-policy.service';
import { reconcileMonitorSchedules } from '../monitoring/monitor.service';
import { reconcileAuditSchedules } from '../audit/audit-schedules';
import type { OpenAppServices } from './services';

export interface RunningWorkers {
  close(): Promise<void>;
}

/**
 * Starts a BullMQ worker per queue. Several processes (API instances, `npm run worker`) may run
 * them against one Redis: each job runs on one of them at a time; a job whose worker died is
 * taken over after the stalled-job interval.
 */
export function startWorkers(app: OpenAppServices): RunningWorkers {
  const connection = redisFor(app.config, 'worker');
  const redisTrouble = app.connectionLogs.redis;
  followConnection(connection, redisTrouble, 'workers', 'Redis connection error');
  // The lock is renewed while a job runs; a worker that died (kill -9) stops renewing it, and the
  // job is taken over once the lock has expired and the stalled check has seen it.
  const locked = { lockDuration: app.config.workerLockMs, stalledInterval: Math.max(500, Math.floor(app.config.workerLockMs / 2)) };
  const worker = <T>(queue: QueueName, processor: Processor<T>, opts: Partial<WorkerOptions>) =>
    new Worker<T>(queue, processor, { connection: connection as unknown as ConnectionOptions, prefix: bullPrefix(app.config), ...opts });
  const training = worker(QUEUES.training, trainingProcessor(app), { concurrency: app.config.workerConcurrency, ...locked, maxStalledCount: 5 });
  const rollouts = worker(QUEUES.rollouts, rolloutProcessor(app), { concurrency: 4, ...locked });
  const auditExports = worker(QUEUES.auditExports, auditExportProcessor(app), { concurrency: 1, ...locked });
  const auditRetention = worker(QUEUES.auditRetention, auditRetentionProcessor(app), { concurrency: 1 });
  const auditAnchor = worker(QUEUES.auditAnchor, auditAnchorProcessor(app), { concurrency: 1 });
  const monitors = worker(QUEUES.monitors, monitorProcessor(app), { concurrency: 2, ...locked });
  const loop = worker(QUEUES.loop, loopProcessor(app), { concurrency: 2, ...locked });
  // Deliveries mostly wait on receivers: many at once.
  const notifications = worker(QUEUES.notifications, notificationProcessor(app), { concurrency: app.config.notify.workerConcurrency, ...locked });
  // Schedules are reconciled by their domains: the audit trail's retention and anchoring, and every
  // deployment's monitor, the loop's tick and its retrain schedules (each upserted by id: idempotent across processes).
  const schedulesReconciled = Promise.all([reconcileAuditSchedules(app), reconcileMonitorSchedules(app), reconcileLoopSchedules(app), reconcileNotificationSchedules(app)]);
  const workers = [training, rollouts, auditExports, auditRetention, auditAnchor, monitors, loop, notifications];
  for (const w of workers) {
    w.on('failed', (job, err) => app.log.warn({ queue: w.name, jobId: job?.id, attempt: job?.attemptsMade, err: err.message }, 'job failed'));
    // Each worker's own connections fail with the shared one: while it is down, part of the outage's log.
    w.on('error', (e) => (connection.status !== 'ready' ? redisTrouble.warn('workers', { queue: w.name, err: e.message }, 'worker error') : app.log.warn({ queue: w.name, err: e.message }, 'worker error')));
  }
  return {
    async close() {
      // A schedule still being written would land after close, under a prefix its owner may
      // already be removing: each settles (written or refused) before the workers stop; a Redis
      // that stopped answering is not waited for.
      await withTimeout(schedulesReconciled, 3000).catch(() => undefined);
      // Lets a running job finish within the grace period; a worker without Redis is not waited for.
      const grace = connection.status === 'ready' ? app.config.shutdownGraceMs : 0;
      await Promise.all(workers.map((w) => withTimeout(w.close(grace === 0), Math.max(grace, 1000)).catch(() => undefined)));
      connection.disconnect();
    },
  };
}
