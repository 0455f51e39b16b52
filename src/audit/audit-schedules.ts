import type { AppServices } from '../core/context';
import { scheduledContext, type JobPayload } from '../core/job-context';
import { QUEUES } from '../core/queue/queues';

/** The named principal the daily retention pass runs as, on behalf of the configuration (AUDIT_RETENTION_DAYS). */
export const RETENTION_PRINCIPAL = 'system:audit-retention';
/** The named principal the periodic anchoring runs as, on behalf of the configuration (AUDIT_ANCHOR_*). */
export const ANCHOR_PRINCIPAL = 'system:audit-anchor';

/** The payload of the daily retention pass: only the context it runs as. */
export type AuditRetentionJob = JobPayload;
/** The payload of the periodic anchoring: only the context it runs as. */
export type AuditAnchorJob = JobPayload;

/**
 * The audit trail's repeatable jobs, upserted by id (one scheduler per Redis, whichever process
 * starts first; the configured interval wins): retention once a day, anchoring every
 * AUDIT_ANCHOR_EVERY_SECONDS, each as a named principal on behalf of the configuration. A Redis that
 * does not answer is logged, not thrown: `audit retention` and `audit anchor` run them by hand.
 */
export async function reconcileAuditSchedules(app: AppServices): Promise<void> {
  const queues = app.queues;
  if (!queues) return;
  const retention: AuditRetentionJob = { context: scheduledContext(RETENTION_PRINCIPAL, 'config', 'audit-retention') };
  const anchor: AuditAnchorJob = { context: scheduledContext(ANCHOR_PRINCIPAL, 'config', 'audit-anchor') };
  await Promise.all([
    queues
      .get(QUEUES.auditRetention)
      .upsertJobScheduler('audit-retention-daily', { every: 24 * 3600 * 1000 }, { name: 'apply-retention', data: retention, opts: { removeOnComplete: 30, removeOnFail: 30 } })
      .catch((e: Error) => app.log.warn({ err: e.message }, 'audit retention not scheduled (Redis unavailable); `audit retention` runs it by hand')),
    queues
      .get(QUEUES.auditAnchor)
      .upsertJobScheduler('audit-anchor', { every: app.config.auditAnchorEverySeconds * 1000 }, { name: 'publish-anchor', data: anchor, opts: { removeOnComplete: 30, removeOnFail: 30 } })
      .catch((e: Error) => app.log.warn({ err: e.message }, 'audit anchoring not scheduled (Redis unavailable); `audit anchor` publishes by hand')),
  ]);
}
