import { randomUUID } from 'node:crypto';
import { Readable } from 'node:stream';
import { TOPICS } from '../core/events';
import { serializeContext, type JobPayload } from '../core/job-context';
import { enqueue } from '../core/queue/outbox';
import { QUEUES } from '../core/queue/queues';
import { inTransaction, type AppServices, type RequestContext } from '../core/context';
import { AppError, badInput, ErrorCode, forbidden, notFound } from '../core/errors';
import { fromGlobalId, isUuid, toGlobalId } from '../core/global-id';
import { audit, auditDenied } from '../core/audit/audit-chain';
import { NotificationKind } from '../core/notify/notification.entity';
import { raiseNotification } from '../core/notify/notify';
import { AuditExport, AuditExportFormat, AuditExportStatus } from './audit-export.entity';
import { normaliseFilter, scopeSubjects, type AuditExportFilter } from './audit-export.filter';
import type { ExportManifest } from './audit-export.format';
import { publicKeyOf } from './audit-signing';
import { exportChunks } from './audit-export.stream';
import { CoreReason } from '../core/error-reasons';

/** The payload of an export written to a file: the export row, as whoever asked for it. */
export interface AuditExportJob extends JobPayload {
  exportId: string;
}

/**
 * Runs `parse` over an export request's parameters; when it refuses them (BAD_USER_INPUT), the
 * refused attempt is audited (DENIED, with the reason) in a transaction of its own, and the error
 * goes on to the client. Nothing else is written.
 */
export async function parsedOrRefused<T>(ctx: RequestContext, action: string, parse: () => T): Promise<T> {
  try {
    return parse();
  } catch (e) {
    if (e instanceof AppError && e.code === ErrorCode.BAD_USER_INPUT) {
      await auditDenied(ctx.app.db, ctx, {
        action,
        subjectType: 'AuditExport',
        reason: e.message,
        after: { refused: e.details.reason ?? ErrorCode.BAD_USER_INPUT, field: e.details.field ?? null },
      });
    }
    throw e;
  }
}

/**
 * Records the export (row + audit event, one transaction of its own) before any event is read.
 * Its range ends just before its own audit event: the chain as it was when the export was asked
 * for, so the export's own event never shifts what it proves.
 */
export async function beginExport(ctx: RequestContext, format: AuditExportFormat, filter: AuditExportFilter, asFile: boolean): Promise<AuditExport> {
  const id = randomUUID();
  return inTransaction(ctx, async (em, ctx) => {
    const event = await audit(ctx, {
      action: asFile ? 'requestAuditExport' : 'exportAuditEvents',
      subjectType: 'AuditExport',
      subjectId: toGlobalId('AuditExport', id),
      after: { format, filter, asFile },
    });
    const row = em.create(AuditExport, {
      id,
      requestedBy: ctx.principal!.id,
      format,
      filter,
      asFile,
      status: asFile ? AuditExportStatus.QUEUED : AuditExportStatus.RUNNING,
      upToSeq: event.seq - 1,
      processed: 0,
      progress: 0,
      manifest: null,
      fileSha256: null,
      sizeBytes: null,
      error: null,
      finishedAt: null,
    });
    await em.save(row);
    return em.findOneByOrFail(AuditExport, { id });
  });
}

// An export ends once.
const ENDED: readonly AuditExportStatus[] = [AuditExportStatus.SUCCEEDED, AuditExportStatus.FAILED, AuditExportStatus.ABORTED];

/**
 * Closes an export: SUCCEEDED (its manifest is on the row), FAILED, or ABORTED (the client went
 * away). The outcome is audited with the row change.
 */
export async function finishExport(
  ctx: RequestContext,
  id: string,
  outcome: { status: AuditExportStatus; error?: string | null; fileSha256?: string | null; sizeBytes?: number | null },
): Promise<AuditExport> {
  return inTransaction(ctx, async (em, ctx) => {
    const row = await em.findOneOrFail(AuditExport, { where: { id }, lock: { mode: 'pessimistic_write' } });
    // Ended once: a job taken over after it stalled, or a client that left, never ends it again.
    if (ENDED.includes(row.status)) return row;
    const before = { status: row.status };
    Object.assign(row, { status: outcome.status, error: outcome.error ?? null, finishedAt: new Date() });
    if (outcome.fileSha256 !== undefined) row.fileSha256 = outcome.fileSha256;
    if (outcome.sizeBytes !== undefined) row.sizeBytes = outcome.sizeBytes;
    await em.save(row);
    const manifest = row.manifest as ExportManifest | null;
    await audit(ctx, {
      action: 'finishAuditExport',
      subjectType: 'AuditExport',
      subjectId: row.nodeId,
      reason: outcome.error ?? null,
      before,
      after: {
        status: row.status,
        manifest: manifest && row.status === AuditExportStatus.SUCCEEDED
          ? { firstSeq: manifest.firstSeq, lastSeq: manifest.lastSeq, lastHash: manifest.lastHash, events: manifest.events, contentSha256: manifest.contentSha256, signature: manifest.signature }
          : null,
      },
    });
    // A file is ready to download: told to the teams of whoever asked for it (an export is theirs, not a team's).
    if (row.asFile && row.status === AuditExportStatus.SUCCEEDED) {
      for (const teamId of ctx.principal?.teamIds ?? []) {
        await raiseNotification(em, {
          teamId,
          kind: NotificationKind.AUDIT_EXPORT_READY,
          severity: 'INFO',
          subject: row.nodeId,
          // Who asked and what it holds stay with the export (readable by its requester and auditors):
          // a team's channel may be read by the person an audit is about.
          summary: `Audit export ${row.nodeId} is ready`,
          data: { auditExport: row.nodeId },
          requestId: ctx.requestId,
        });
      }
    }
    return row;
  });
}

/** An export the caller may see: its own, or any when it may export the audit trail. */
export async function loadExport(ctx: RequestContext, id: string): Promise<AuditExport> {
  const row = await exportById(ctx.app, id);
  if (!(row.requestedBy === ctx.principal?.id || ctx.ability.can('export', 'AuditEvent'))) throw notFound(`AuditExport ${id}`);
  return row;
}

/** The row key an AuditExport ID names (no lookup); BAD_USER_INPUT (`WRONG_ID_TYPE`) when it names none. */
export function exportKey(id: string): string {
  const { type, key } = fromGlobalId(id, 'id');
  if (type !== 'AuditExport' || !isUuid(key)) throw badInput('id must be the ID of an AuditExport', { field: 'id', reason: CoreReason.WRONG_ID_TYPE });
  return key;
}

/** An export by global ID, whoever asks (for signed links, which stand for the credential). */
export async function exportById(app: AppServices, id: string): Promise<AuditExport> {
  const key = exportKey(id);
  const row = await app.db.getRepository(AuditExport).findOne({ where: { id: key } });
  if (!row) throw notFound(`AuditExport ${id}`);
  return row;
}

/** The key that signs manifests and checkpoints: PEM and key id. */
export function exportPublicKey(app: AppServices): { pem: string; keyId: string } {
  return publicKeyOf(app.config.auditSigningKeyPem);
}

/**
 * Queues an export to be written to a file by a worker: the export row, its audit event and the
 * outbox entry commit together. Bad filters and unknown scopes are refused before anything is written.
 */
export async function requestFileExport(ctx: RequestContext, format: AuditExportFormat, rawFilter: Record<string, unknown>): Promise<AuditExport> {
  const filter = await parsedOrRefused(ctx, 'requestAuditExport', () => normaliseFilter(rawFilter));
  if (filter.scope) await scopeSubjects(ctx, filter.scope);
  const exp = await inTransaction(ctx, async (em, ctx) => {
    const row = await beginExport(ctx, format, filter, true);
    const job: AuditExportJob = { exportId: row.id, context: serializeContext(ctx) };
    await enqueue(em, { queue: QUEUES.auditExports, name: 'write-export', jobId: `audit-export-${row.id}`, payload: job });
    return row;
  });
  ctx.app.dispatcher?.kick();
  return exp;
}

/**
 * Writes a queued export to the artifact store, publishing progress page by page. Idempotent: a
 * finished export is left alone; a retried one starts its file again.
 */
export async function writeFileExport(ctx: RequestContext, exportId: string): Promise<void> {
  const exp = await ctx.app.db.getRepository(AuditExport).findOne({ where: { id: exportId } });
  if (!exp || exp.status === AuditExportStatus.SUCCEEDED || exp.status === AuditExportStatus.FAILED) return;
  // Written as whoever asked for it, with the rights they have now: redaction is theirs, and one
  // who may no longer export the audit trail gets no file (the export fails FORBIDDEN).
  if (!ctx.ability.can('export', 'AuditEvent')) throw forbidden('Not allowed to export AuditEvent');
  await ctx.app.db.query(`UPDATE audit_export SET status = 'RUNNING', processed = 0, progress = 0 WHERE id = $1`, [exportId]);
  publishExport(ctx, exportId);
  const filter = exp.filter as AuditExportFilter;
  const scopeIds = filter.scope ? await scopeSubjects(ctx, filter.scope) : null;
  const chunks = exportChunks(ctx, exp, scopeIds, async ({ processed, total }) => {
    await ctx.app.db.query('UPDATE audit_export SET processed = $2, progress = $3 WHERE id = $1', [exportId, processed, total ? processed / total : 1]);
    publishExport(ctx, exportId);
  });
  const received = await ctx.app.artifacts.receive(Readable.from(chunks), Number.MAX_SAFE_INTEGER);
  await ctx.app.artifacts.commit(received.tempPath, received.sha256);
  await finishExport(ctx, exportId, { status: AuditExportStatus.SUCCEEDED, fileSha256: received.sha256, sizeBytes: received.sizeBytes });
  publishExport(ctx, exportId);
}

/** A file export that will not be written (out of retries, or refused to whoever asked): FAILED, unless it has finished. */
export async function failExport(ctx: RequestContext, exportId: string, reason: string): Promise<void> {
  const row = await ctx.app.db.getRepository(AuditExport).findOne({ where: { id: exportId } });
  if (!row || row.status === AuditExportStatus.SUCCEEDED || row.status === AuditExportStatus.FAILED) return;
  await finishExport(ctx, exportId, { status: AuditExportStatus.FAILED, error: reason });
  publishExport(ctx, exportId);
}

export function publishExport(ctx: RequestContext, exportId: string): void {
  ctx.app.events?.publish(TOPICS.auditExportUpdated, { id: exportId });
}
