import type { Job } from 'bullmq';
import type { AppServices } from '../src/core/context';
import { AuditExportStatus } from '../src/audit/audit-export.entity';
import { exporterContext, finishExport, publishExport, writeFileExport } from '../src/audit/audit-export.service';
import type { AuditExportJob } from '../src/core/queue/queues';

/** Rebuilds the exporter's context from the job and writes the export's file. */
export function auditExportProcessor(app: AppServices) {
  return async (job: Job<AuditExportJob>): Promise<void> => {
    const ctx = await exporterContext(app, job.data);
    try {
      await writeFileExport(ctx, job.data.exportId);
    } catch (e) {
      // Out of retries: the export must not stay RUNNING.
      if (job.attemptsMade + 1 >= (job.opts.attempts ?? 1)) {
        await finishExport(ctx, job.data.exportId, { status: AuditExportStatus.FAILED, error: (e as Error).message });
        publishExport(ctx, job.data.exportId);
      }
      throw e;
    }
  };
}
