import express, { type NextFunction, type Request, type Response, type Router } from 'express';
import { subjectOf } from '../core/ability';
import { recordDenial } from '../core/audit/audit-chain';
import type { AppServices, RequestContext } from '../core/context';
import { AppError, badInput, ErrorCode, forbidden, HTTP_STATUS, notFound, unauthenticated } from '../core/errors';
import { fromGlobalId, toGlobalId } from '../core/global-id';
import { readiness } from '../core/readiness';
import { assertStorable, MAX_KEY_LENGTH } from '../core/validation';
import type { InferenceEngine, Route } from './inference.engine';
import { predict } from './inference.service';
import { checkRequestKey } from './request-key';
import { feedsFromOip, OIP_DATATYPE, tensorToFlat, tensorToRows, type OipTensor, type TensorSpec } from './tensors';
import { InferenceReason } from './inference.errors';
import { encodeResponse, HEADER_LENGTH, splitBinaryRequest, wantsBinaryOutput } from './oip-binary';
import { CoreReason } from '../core/error-reasons';

/**
 * The Open Inference Protocol (KServe / Triton "v2" REST) beside GraphQL: same engine, same
 * policy, same prediction log. A model name is a deployment: its global id, `team:deployment`,
 * or a deployment name that is unique among those the caller may predict on.
 */
export function openInferenceRouter(app: AppServices, contextFor: (req: Request, res: Response) => Promise<RequestContext>): Router {
  const router = express.Router();
  const engine = () => {
    if (!app.inference) throw new AppError(ErrorCode.UNAVAILABLE, 'This process does not serve predictions', { reason: InferenceReason.DISABLED });
    return app.inference;
  };
  const authed = async (req: Request, res: Response): Promise<RequestContext> => {
    const ctx = await contextFor(req, res);
    if (!ctx.principal) throw ctx.authError ?? unauthenticated();
    return ctx;
  };
  const wrap = (f: (req: Request, res: Response) => Promise<void>) => (req: Request, res: Response, next: NextFunction) => f(req, res).catch(next);

  router.get('/health/live', (_req, res) => {
    res.json({ live: true });
  });
  // The same readiness as /readyz (one function), in the protocol's shape.
  router.get(
    '/health/ready',
    wrap(async (req, res) => {
      const r = await readiness(app, () => contextFor(req, res));
      res.status(r.ready ? 200 : 503).json({ ready: r.ready, ...r.details });
    }),
  );
  router.get('/', (_req, res) => {
    res.json({ name: 'modelgov', version: '2', extensions: [] });
  });

  router.get(
    '/models/:name',
    wrap(async (req, res) => {
      const ctx = await authed(req, res);
      const route = resolve(ctx, engine(), String(req.params.name), 'read');
      const versions = route.shares.map((s) => engine().version(s.versionId)).filter((v) => v !== undefined);
      const spec = versions[0]?.spec;
      const describe = (t: TensorSpec) => ({ name: t.name, datatype: OIP_DATATYPE[t.type], shape: t.shape.map((d) => d ?? -1) });
      res.json({
        name: String(req.params.name),
        versions: versions.map((v) => v.nodeId),
        platform: 'onnxruntime_onnx',
        inputs: spec?.inputs.map(describe) ?? [],
        outputs: spec?.outputs.map(describe) ?? [],
      });
    }),
  );

  router.get(
    '/models/:name/ready',
    wrap(async (req, res) => {
      const ctx = await authed(req, res);
      const route = resolve(ctx, engine(), String(req.params.name), 'read');
      const ready = route.shares.every((s) => engine().version(s.versionId, engine().poolFor(route, 'TRAFFIC')));
      res.status(ready ? 200 : 503).json({ name: String(req.params.name), ready });
    }),
  );

  // The binary extension's body is raw bytes (header, then tensors); any other body is JSON. Both
  // are held to the same size limit.
  const parseJson = express.json({ limit: app.config.bodyLimitBytes });
  const parseRaw = express.raw({ type: () => true, limit: app.config.bodyLimitBytes });
  const parseBody = (req: Request, res: Response, next: NextFunction) => (req.header(HEADER_LENGTH) !== undefined ? parseRaw : parseJson)(req, res, next);

  router.post(
    '/models/:name/infer',
    parseBody,
    wrap(async (req, res) => {
      const ctx = await authed(req, res);
      assertStorable(String(req.params.name), 'model', MAX_KEY_LENGTH);
      let route: Route;
      try {
        route = resolve(ctx, engine(), String(req.params.name), 'predict');
      } catch (e) {
        // Refusals (a model the caller cannot see included) are audited here as the GraphQL guard audits them for `predict`.
        if (e instanceof AppError && (e.code === ErrorCode.FORBIDDEN || e.code === ErrorCode.NOT_FOUND)) {
          throw await recordDenial(ctx, { action: 'predict', subjectType: 'Deployment', subjectId: String(req.params.name), reason: e.message }, e);
        }
        throw e;
      }
      const headerLength = req.header(HEADER_LENGTH);
      const split = headerLength !== undefined ? splitBinaryRequest(Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0), headerLength) : undefined;
      const body = (split ? split.header : req.body) as { id?: unknown; inputs?: OipTensor[]; outputs?: Array<{ name?: unknown }>; parameters?: Record<string, unknown> };
      if (!body || typeof body !== 'object' || !Array.isArray(body.inputs)) throw badInput('The body must be a JSON object with an "inputs" array', { field: 'inputs', reason: InferenceReason.INPUT_SHAPE });
      const requestKey = body.parameters?.request_key;
      if (requestKey !== undefined) checkRequestKey(requestKey, 'parameters.request_key');
      checkStorableBody(body);
      // A requested output no routed version gives is refused before anything runs (the protocol would otherwise answer with nothing for it).
      if (Array.isArray(body.outputs)) {
        const given = new Set(route.shares.flatMap((s) => engine().version(s.versionId)?.spec.outputs.map((o) => o.name) ?? []));
        body.outputs.forEach((o, i) => {
          if (given.size && !given.has(String(o?.name))) {
            throw badInput(`The model has no output "${String(o?.name)}": it gives ${[...given].join(', ')}`, { field: `outputs.${i}.name`, reason: InferenceReason.UNKNOWN_OUTPUT });
          }
        });
      }
      let logged: Record<string, unknown> | null = null;
      const result = await predict(ctx, {
        deploymentId: toGlobalId('Deployment', route.deploymentId),
        requestKey: (requestKey as string | undefined) ?? null,
        source: 'open-inference',
        feeds: (spec, limits) => {
          const built = feedsFromOip(spec, body.inputs!, limits, split?.binary);
          // Logged in the same nested-rows form as GraphQL requests (before the buffers move to a thread).
          logged ??= Object.fromEntries(built.feeds.map((f) => [f.name, tensorToRows(f)]));
          return built;
        },
        loggedInputs: () => logged ?? {},
      });
      const predictionId = toGlobalId('Prediction', result.predictionId);
      const wanted = Array.isArray(body.outputs) && body.outputs.length ? new Set(body.outputs.map((o) => String(o?.name))) : null;
      const encoded = encodeResponse(
        {
          model_name: String(req.params.name),
          model_version: result.version.nodeId,
          // The protocol returns the request's own id when it gave one; otherwise the prediction id.
          id: typeof body.id === 'string' ? body.id : predictionId,
          parameters: { prediction_id: predictionId, fallback: result.fallback, latency_ms: result.latencyMs, deployment: toGlobalId('Deployment', result.deploymentId) },
        },
        result.outputs
          .filter((o) => !wanted || wanted.has(o.name))
          .map((o) => ({ tensor: o, binary: wantsBinaryOutput(body.parameters, body.outputs, o.name), data: () => tensorToFlat(o) })),
      );
      if ('json' in encoded) {
        res.json(encoded.json);
        return;
      }
      res.setHeader(HEADER_LENGTH, String(encoded.headerLength));
      res.type('application/octet-stream').send(encoded.body);
    }),
  );

  // Any other path under /v2 is answered in the protocol's shape, not with a page.
  router.use((req, _res, next) => next(new AppError(ErrorCode.NOT_FOUND, `No Open Inference Protocol route for ${req.method} /v2${req.path}`, { reason: InferenceReason.NO_ROUTE })));

  // Errors in the protocol's shape ({ "error": message }), with the same codes as GraphQL.
  router.use((err: unknown, _req: Request, res: Response, next: NextFunction) => {
    if (res.headersSent) return next(err);
    const requestId = res.locals.requestId as string;
    const e = err as { type?: string; status?: number };
    if (e.type === 'entity.too.large' || e.status === 413) {
      res.status(413).json({ error: `Body exceeds ${app.config.bodyLimitBytes} bytes`, code: ErrorCode.BAD_USER_INPUT, reason: CoreReason.BODY_TOO_LARGE, requestId });
      return;
    }
    if (e.type === 'entity.parse.failed') {
      res.status(400).json({ error: 'Body is not valid JSON', code: ErrorCode.BAD_USER_INPUT, reason: CoreReason.MALFORMED_JSON, requestId });
      return;
    }
    if (err instanceof AppError) {
      if (typeof err.details.retryAfterSeconds === 'number') res.setHeader('retry-after', String(err.details.retryAfterSeconds));
      res.status(HTTP_STATUS[err.code]).json({ error: err.message, code: err.code, ...(err.details.reason ? { reason: err.details.reason } : {}), ...(err.details.field ? { field: err.details.field } : {}), requestId });
      return;
    }
    next(err);
  });
  return router;
}

/**
 * The body passes the same storable-input check as every transport before anything runs or is
 * logged: identifiers (id, tensor names) at most {@link MAX_KEY_LENGTH} characters, any other
 * string (parameters included) at most the general limit.
 */
function checkStorableBody(body: { id?: unknown; inputs?: OipTensor[]; outputs?: Array<{ name?: unknown }> }): void {
  if (typeof body.id === 'string') assertStorable(body.id, 'id', MAX_KEY_LENGTH);
  body.inputs?.forEach((t, i) => assertStorable(t?.name, `inputs.${i}.name`, MAX_KEY_LENGTH));
  if (Array.isArray(body.outputs)) body.outputs.forEach((o, i) => assertStorable(o?.name, `outputs.${i}.name`, MAX_KEY_LENGTH));
  assertStorable(body, '');
}

/** The deployment a model name designates, among those the caller may `action`. */
function resolve(ctx: RequestContext, engine: InferenceEngine, name: string, action: 'read' | 'predict'): Route {
  // A deployment the caller may not read is answered exactly like a missing one (NOT_FOUND);
  // FORBIDDEN is for one it may read but not `action`.
  const may = (a: 'read' | 'predict') => (r: Route) =>
    ctx.ability.can(a, subjectOf('Deployment', { id: r.deploymentId, teamId: r.teamId, environment: r.environment, createdBy: r.createdBy }) as never);
  const allowed = may(action);
  const readable = may('read');
  let route: Route | undefined;
  try {
    const decoded = fromGlobalId(name, 'model');
    if (decoded.type === 'Deployment') route = engine.route(decoded.key);
  } catch {
    // Not a global id: a name.
  }
  if (!route) {
    const sep = name.indexOf(':');
    const candidates = engine.routes().filter((r) => (sep > 0 ? r.teamName === name.slice(0, sep) && r.name === name.slice(sep + 1) : r.name === name));
    const visible = candidates.filter(allowed);
    if (visible.length > 1) throw badInput(`"${name}" names deployments of several teams: use team:deployment`, { reason: InferenceReason.AMBIGUOUS_MODEL });
    route = visible[0] ?? candidates.find(readable);
  }
  if (!route || !readable(route)) throw notFound(`Model "${name}"`);
  if (!allowed(route)) throw forbidden(`Not allowed to ${action} on this deployment`);
  return route;
}
