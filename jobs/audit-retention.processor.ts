import type { AppServices } from '../src/core/context';
import { applyRetention } from '../src/audit/audit-retention.service';
import { systemContext } from '../src/access/system-context';

/** The daily retention pass: the worker acts as itself. Idempotent: a second pass finds nothing older. */
export function auditRetentionProcessor(app: AppServices) {
  return async (): Promise<void> => {
    const ctx = systemContext(app, { id: 'worker:audit-retention', kind: 'system' }, `audit-retention-${new Date().toISOString()}`);
    const r = await applyRetention(ctx);
    if (r.checkpoint) ctx.log.info({ seq: r.checkpoint.seq, removed: r.removed }, 'audit events rolled into a checkpoint');
  };
}
