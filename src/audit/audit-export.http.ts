import { createHmac, timingSafeEqual } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Request, Response, Router } from 'express';
import type { AppServices, RequestContext } from '../core/context';
import { AppError, badInput, ErrorCode, notFound } from '../core/errors';
import { authorizeField } from '../core/policy';
import { recordDenial } from '../core/audit/audit-chain';
import { AuditExport, AuditExportFormat, AuditExportStatus } from './audit-export.entity';
import { parseExportQuery, scopeSubjects } from './audit-export.filter';
import { beginExport, exportById, exportKey, exportPublicKey, finishExport, loadExport, parsedOrRefused } from './audit-export.service';
import { exportChunks } from './audit-export.stream';
import { AuditReason } from './audit.errors';

/** The context of an HTTP request (its caller noted on the request's access log line). */
type ContextFor = (req: Request, res: Response) => Promise<RequestContext>;

const EXPORT = { action: 'export', subject: 'AuditEvent' } as const;
const CONTENT_TYPE: Record<AuditExportFormat, string> = { NDJSON: 'application/x-ndjson; charset=utf-8', CSV: 'text/csv; charset=utf-8' };
const EXTENSION: Record<AuditExportFormat, string> = { NDJSON: 'ndjson', CSV: 'csv' };

/** The HMAC that makes a download link valid until `expires` (seconds since the epoch). */
export function downloadSignature(secret: string, exportId: string, expires: number): string {
  return createHmac('sha256', secret).update(`audit-export-download:${exportId}:${expires}`).digest('base64url');
}

/** A relative download link for a finished file export, valid for the configured lifetime. */
export function downloadLink(app: AppServices, exp: AuditExport, part: 'file' | 'manifest' = 'file'): { url: string; expiresAt: Date } {
  const expires = Math.floor(Date.now() / 1000) + app.config.auditExportLinkTtlSeconds;
  const sig = downloadSignature(app.config.jwtSecret, exp.id, expires);
  return { url: `/audit/exports/${exp.nodeId}/${part}?expires=${expires}&signature=${sig}`, expiresAt: new Date(expires * 1000) };
}

async function exporter(app: AppServices, contextFor: ContextFor, req: Request, res: Response): Promise<RequestContext> {
  const ctx = await contextFor(req, res);
  try {
    authorizeField(ctx, EXPORT);
  } catch (e) {
    if (e instanceof AppError && e.code === ErrorCode.FORBIDDEN) {
      throw await recordDenial(ctx, { action: 'exportAuditEvents', subjectType: 'AuditEvent', reason: e.message }, e);
    }
    throw e;
  }
  return ctx;
}

/**
 * The audit export routes:
 * - `GET /audit/export?format=ndjson|csv&from&to&actor&action&subject&scope` streams an export
 *   (NDJSON ends with its manifest line; a CSV's manifest is at `/audit/exports/:id/manifest`,
 *   named by the `X-Audit-Export-Id` and `Link` headers);
 * - `GET /audit/exports/:id/manifest` the signed manifest of an export (credential required, or a
 *   signed link);
 * - `GET /audit/exports/:id/file?expires&signature` a file export, by its expiring signed link;
 * - `GET /audit/export/public-key` the PEM public key that signs manifests, and its key id.
 */
export function mountAuditExportRoutes(expressApp: Router, app: AppServices, contextFor: ContextFor): void {
  expressApp.get('/audit/export/public-key', (_req, res) => {
    const { pem, keyId } = publicKeyOf(app);
    res.setHeader('x-audit-key-id', keyId);
    res.type('application/x-pem-file').send(pem);
  });

  expressApp.get('/audit/export', async (req, res, next) => {
    let ctx: RequestContext;
    let exp: AuditExport;
    let scopeIds: string[] | null = null;
    try {
      ctx = await exporter(app, contextFor, req, res);
      const { format, filter } = await parsedOrRefused(ctx, 'exportAuditEvents', () => parseExportQuery(req.query as Record<string, unknown>));
      if (filter.scope) scopeIds = await scopeSubjects(ctx, filter.scope);
      exp = await beginExport(ctx, format, filter, false);
    } catch (e) {
      next(e);
      return;
    }
    const stamp = new Date().toISOString().replace(/[:.]/g, '-');
    res.status(200);
    res.setHeader('content-type', CONTENT_TYPE[exp.format]);
    res.setHeader('content-disposition', `attachment; filename="audit-${stamp}.${EXTENSION[exp.format]}"`);
    res.setHeader('x-audit-export-id', exp.nodeId);
    res.setHeader('link', `</audit/exports/${exp.nodeId}/manifest>; rel="describedby"`);
    res.setHeader('cache-control', 'no-store');
    let status = AuditExportStatus.SUCCEEDED;
    let error: string | null = null;
    try {
      await pipeline(Readable.from(exportChunks(ctx, exp, scopeIds), { objectMode: false, highWaterMark: 1 }), res);
    } catch (e) {
      // The client went away (the response closed early) or reading failed: either way nothing is
      // left behind: the page queries are over, the generator has been returned. Only a premature
      // close of the response is the client's doing; an error of the source is the server's.
      const gone = (e as NodeJS.ErrnoException).code === 'ERR_STREAM_PREMATURE_CLOSE';
      status = gone ? AuditExportStatus.ABORTED : AuditExportStatus.FAILED;
      error = gone ? 'the client closed the connection before the end' : 'the export failed on the server';
      if (!gone) ctx.log.error({ err: e, exportId: exp.nodeId }, 'audit export failed');
      if (!res.destroyed) res.destroy();
    }
    await finishExport(ctx, exp.id, { status, error }).catch((e) => ctx.log.warn({ err: (e as Error).message }, 'could not record the end of an export'));
  });

  expressApp.get('/audit/exports/:id/manifest', async (req, res, next) => {
    try {
      const exp = await bySignedLinkOrCredential(app, contextFor, req, res);
      if (!exp.manifest) throw notFound(`The manifest of ${req.params.id} (the export is ${exp.status})`);
      res.setHeader('content-disposition', `attachment; filename="audit-export-${exp.id}.manifest.json"`);
      res.type('application/json').send(JSON.stringify(exp.manifest, null, 2) + '\n');
    } catch (e) {
      next(e);
    }
  });

  expressApp.get('/audit/exports/:id/file', async (req, res, next) => {
    try {
      const exp = await bySignedLinkOrCredential(app, contextFor, req, res);
      if (exp.status !== AuditExportStatus.SUCCEEDED || !exp.fileSha256) throw notFound(`The file of ${req.params.id} (the export is ${exp.status})`);
      res.setHeader('content-type', CONTENT_TYPE[exp.format]);
      res.setHeader('content-disposition', `attachment; filename="audit-export-${exp.id}.${EXTENSION[exp.format]}"`);
      if (exp.sizeBytes !== null) res.setHeader('content-length', String(exp.sizeBytes));
      await pipeline(createReadStream(app.artifacts.pathFor(exp.fileSha256)), res);
    } catch (e) {
      if (res.headersSent) res.destroy();
      else next(e);
    }
  });
}

function publicKeyOf(app: AppServices) {
  return exportPublicKey(app);
}

/** A signed link (`expires` + `signature`) stands for the credential; without one, the caller must be allowed to see the export. */
async function bySignedLinkOrCredential(app: AppServices, contextFor: ContextFor, req: Request, res: Response): Promise<AuditExport> {
  const id = String(req.params.id);
  const { expires, signature } = req.query as Record<string, unknown>;
  if (expires !== undefined || signature !== undefined) {
    if (typeof expires !== 'string' || typeof signature !== 'string' || !/^\d{1,12}$/.test(expires)) throw badInput('malformed download link', { reason: AuditReason.BAD_LINK });
    // The signature is checked before the export is looked up: a bad link is refused the same way
    // whether or not the export exists, so links cannot be used to probe for export IDs.
    const expected = Buffer.from(downloadSignature(app.config.jwtSecret, exportKey(id), Number(expires)));
    const given = Buffer.from(signature);
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) throw new AppError(ErrorCode.FORBIDDEN, 'The download link is not valid', { reason: AuditReason.BAD_LINK });
    if (Number(expires) * 1000 < Date.now()) throw new AppError(ErrorCode.FORBIDDEN, 'The download link has expired', { reason: AuditReason.LINK_EXPIRED });
    return exportById(app, id);
  }
  const ctx = await contextFor(req, res);
  authorizeField(ctx, EXPORT);
  return loadExport(ctx, id);
}
