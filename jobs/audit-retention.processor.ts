import type { AppServices } from '../src/core/context';
import { jobProcessor } from '../src/core/queue/job-processor';
import { applyRetention } from '../src/audit/audit-retention.service';
import type { AuditRetentionJob } from '../src/audit/audit-schedules';

/** The daily retention pass, as the retention principal on behalf of the configuration. Idempotent: a second pass finds nothing older. */
export function auditRetentionProcessor(app: AppServices) {
  return jobProcessor<AuditRetentionJob>(app, {
    run: async (ctx) => {
      await applyRetention(ctx);
    },
  });
}
