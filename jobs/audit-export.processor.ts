import type { AppServices } from '../src/core/context';
import { jobProcessor } from '../src/core/queue/job-processor';
import { failExport, writeFileExport, type AuditExportJob } from '../src/audit/audit-export.service';

/** Writes an export's file as whoever asked for it (redaction is theirs); an export the job gives up on ends FAILED. */
export function auditExportProcessor(app: AppServices) {
  return jobProcessor<AuditExportJob>(app, {
    run: (ctx, job) => writeFileExport(ctx, job.exportId),
    giveUp: (ctx, job, reason) => failExport(ctx, job.exportId, reason),
  });
}
