import type { AppServices } from '../src/core/context';
import { jobProcessor } from '../src/core/queue/job-processor';
import { publishAnchors } from '../src/audit/audit-anchor.service';
import type { AuditAnchorJob } from '../src/audit/audit-schedules';

/** The periodic anchor, as the anchoring principal on behalf of the configuration (see publishAnchors). */
export function auditAnchorProcessor(app: AppServices) {
  return jobProcessor<AuditAnchorJob>(app, {
    run: (ctx) => publishAnchors(ctx),
  });
}
