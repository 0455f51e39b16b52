import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import express, { type NextFunction, type Request, type Response, type Router } from 'express';
import { Registry } from 'prom-client';
import { mountAuditExportRoutes } from '../audit/audit-export.http';
import { ArtifactRejectedError } from '../core/artifact-store';
import type { AppServices } from '../core/context';
import { CoreReason, type ErrorReason } from '../core/error-reasons';
import { AppError, ErrorCode, HTTP_STATUS, unauthenticated } from '../core/errors';
import type { Logger } from '../core/logger';
import { readiness } from '../core/readiness';
import { openInferenceRouter } from '../inference/open-inference';
import { bulkOutcomeDeployment, recordOutcomeStream } from '../inference/outcome.stream';
import { uploadDatasetContent } from '../lineage/dataset-content.service';
import { uploadArtifact } from '../registry/artifact.service';
import { accessLog } from './access-log';
import { httpContextFor } from './request-context';

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,100}$/;

/** The request id a client sent in `X-Request-Id` when it is a plain token of at most 100 characters, else a fresh one. */
export function requestIdFrom(given: string | string[] | undefined): string {
  return typeof given === 'string' && REQUEST_ID.test(given) ? given : randomUUID();
}

function requestIdOf(req: Request): string {
  return requestIdFrom(req.header('x-request-id'));
}

function errorBody(code: ErrorCode, message: string, requestId: string, reason?: ErrorReason) {
  return { errors: [{ message, extensions: { code, requestId, ...(reason ? { reason } : {}) } }] };
}

/**
 * The REST side of the API: request ids and access log, health and readiness, Prometheus metrics,
 * the Open Inference Protocol (/v2), artifact and dataset uploads, bulk outcomes, audit export downloads. Every
 * route builds the same request context as GraphQL and answers errors in the same shape.
 */
export function httpRoutes(app: AppServices, subscriptionMetrics: Registry, log: Logger): Router {
  const router = express.Router();
  const contextOf = (req: Request, res: Response) => httpContextFor(app, req, res);
  router.use((req, res, next) => {
    const requestId = requestIdOf(req);
    res.locals.requestId = requestId;
    res.setHeader('x-request-id', requestId);
    next();
  });
  router.use(accessLog(log));

  router.get('/healthz', (_req, res) => {
    res.json({ status: 'ok' });
  });

  router.get('/readyz', async (req, res) => {
    const r = await readiness(app, () => contextOf(req, res));
    res.status(r.ready ? 200 : 503).json({ status: r.ready ? 'ready' : 'not ready', ...r.details });
  });

  // Prometheus metrics of this process (the serving metrics among them where it serves predictions); the scraper authenticates like any client and needs
  // `read` on `Metrics` (admin and auditor have it; give a scraper's API key a role that does).
  router.get('/metrics', async (req, res, next) => {
    try {
      const ctx = await contextOf(req, res);
      if (!ctx.principal) throw ctx.authError ?? unauthenticated();
      if (!ctx.ability.can('read', 'Metrics')) throw new AppError(ErrorCode.FORBIDDEN, 'Not allowed to read Metrics');
      const registry = Registry.merge([app.metrics!.registry, subscriptionMetrics]);
      res.setHeader('content-type', registry.contentType);
      res.send(await registry.metrics());
    } catch (e) {
      next(e);
    }
  });

  router.use('/v2', openInferenceRouter(app, contextOf));

  router.post('/artifacts', async (req, res, next) => {
    try {
      const ctx = await contextOf(req, res);
      const result = await uploadArtifact(ctx, req);
      res.status(result.created ? 201 : 200).json(result);
    } catch (e) {
      next(e);
    }
  });

  router.post('/datasets/content', async (req, res, next) => {
    try {
      const ctx = await contextOf(req, res);
      const result = await uploadDatasetContent(ctx, req);
      res.status(result.created ? 201 : 200).json(result);
    } catch (e) {
      next(e);
    }
  });

  // Bulk outcomes (backfills): NDJSON lines in, one NDJSON report per batch out as each commits,
  // then a closing line with the totals. Refusals before the first byte are answered like any route's.
  router.post('/outcomes', async (req, res, next) => {
    try {
      const ctx = await contextOf(req, res);
      if (!ctx.principal) throw ctx.authError ?? unauthenticated();
      const deployment = await bulkOutcomeDeployment(ctx, typeof req.query.deployment === 'string' ? req.query.deployment : '');
      res.status(200).setHeader('content-type', 'application/x-ndjson; charset=utf-8');
      const totals = { batches: 0, received: 0, recorded: 0, duplicate: 0, corrected: 0, rejected: 0 };
      try {
        for await (const report of recordOutcomeStream(ctx, deployment, req)) {
          totals.batches += 1;
          for (const k of ['received', 'recorded', 'duplicate', 'corrected', 'rejected'] as const) totals[k] += report[k];
          if (!res.write(`${JSON.stringify(report)}\n`)) await Promise.race([once(res, 'drain'), once(res, 'close')]);
        }
        res.end(`${JSON.stringify({ done: true, ...totals })}\n`);
      } catch (e) {
        // Batches already reported are committed; the failed one and the rest of the body are not.
        const known = e instanceof AppError;
        if (!known) log.error({ err: e, requestId: res.locals.requestId }, 'bulk outcomes failed');
        const error = known ? { code: e.code, reason: e.details.reason ?? null, message: e.message } : { code: ErrorCode.INTERNAL, reason: null, message: 'Internal server error' };
        res.end(`${JSON.stringify({ done: false, ...totals, error, requestId: res.locals.requestId })}\n`);
      }
    } catch (e) {
      next(e);
    }
  });

  mountAuditExportRoutes(router, app, contextOf);
  return router;
}

/** Errors outside GraphQL execution (body too large, malformed JSON, uploads): JSON, no stack. */
export function httpErrorHandler(bodyLimitBytes: number, log: Logger) {
  return (err: unknown, req: Request, res: Response, _next: NextFunction) => {
    const requestId = res.locals.requestId ?? randomUUID();
    const e = err as { type?: string; status?: number; message?: string };
    if (res.headersSent) {
      res.destroy();
      return;
    }
    if (req.destroyed && !req.complete) {
      // The body was cut off unread (an upload past the size limit): the connection cannot carry
      // another request, and a client reusing it would hang until the keep-alive timeout.
      res.setHeader('connection', 'close');
    }
    if (e.type === 'entity.too.large' || e.status === 413 || err instanceof ArtifactRejectedError) {
      res.status(413).json(errorBody(ErrorCode.BAD_USER_INPUT, err instanceof ArtifactRejectedError ? err.message : `Body exceeds ${bodyLimitBytes} bytes`, requestId, CoreReason.BODY_TOO_LARGE));
      return;
    }
    if (e.type === 'entity.parse.failed') {
      res.status(400).json(errorBody(ErrorCode.BAD_USER_INPUT, 'Body is not valid JSON', requestId, CoreReason.MALFORMED_JSON));
      return;
    }
    if (err instanceof AppError) {
      const status = HTTP_STATUS[err.code];
      if (typeof err.details.retryAfterSeconds === 'number') res.setHeader('retry-after', String(err.details.retryAfterSeconds));
      res.status(status).json(errorBody(err.code, err.message, requestId, err.details.reason));
      return;
    }
    log.error({ err, requestId, path: req.originalUrl.split('?')[0] }, 'unexpected error');
    res.status(500).json(errorBody(ErrorCode.INTERNAL, 'Internal server error', requestId));
  };
}
