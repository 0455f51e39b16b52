import express, { type NextFunction, type Request, type Response, type Router } from 'express';
import { subjectOf } from '../core/ability';
import { recordDenial } from '../core/audit/audit-chain';
import type { AppServices, RequestContext } from '../core/context';
import { AppError, badInput, ErrorCode, forbidden, HTTP_STATUS, notFound, unauthenticated } from '../core/errors';
import { fromGlobalId, toGlobalId } from '../core/global-id';
import { readiness } from '../core/readiness';
import { assertStorable, MAX_KEY_LENGTH } from '../core/validation';
import type { InferenceEngine, Route } from './inference.engine';
import { mayPredict, predict, routeSubject } from './inference.service';
import { checkRequestKey } from './request-key';
import { feedsFromOip, OIP_DATATYPE, tensorToFlat, tensorToRows, type OipTensor, type TensorSpec, type WireTensor } from './tensors';
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
  const engine = () => engineOf(app);
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

  /**
   * On a versioned path (`/models/{name}/versions/{version}/…`), the served version it names: one
   * of the deployment's traffic split, by the global id its metadata lists under `versions`. A
   * version the deployment does not serve is NOT_FOUND. Undefined on an unversioned path.
   */
  const namedVersion = (route: Route, req: Request): string | undefined =>
    namedVersionOf(route, { name: String(req.params.name), version: req.params.version === undefined ? undefined : String(req.params.version) });
  /** The versions a path addresses: the one it names, or the deployment's whole split. */
  const addressed = (route: Route, req: Request): string[] => {
    const named = namedVersion(route, req);
    return named ? [named] : route.shares.map((s) => s.versionId);
  };

  router.get(
    ['/models/:name', '/models/:name/versions/:version'],
    wrap(async (req, res) => {
      const ctx = await authed(req, res);
      const route = resolve(ctx, engine(), String(req.params.name), 'read');
      const ids = addressed(route, req);
      const spec = ids.map((id) => engine().version(id)).find((v) => v !== undefined)?.spec;
      const describe = (t: TensorSpec) => ({ name: t.name, datatype: OIP_DATATYPE[t.type], shape: t.shape.map((d) => d ?? -1) });
      res.json({
        name: String(req.params.name),
        // Every version of the split, loaded or not: each can be named on the versioned paths.
        versions: ids.map((id) => toGlobalId('ModelVersion', id)),
        platform: 'onnxruntime_onnx',
        inputs: spec?.inputs.map(describe) ?? [],
        outputs: spec?.outputs.map(describe) ?? [],
      });
    }),
  );

  router.get(
    ['/models/:name/ready', '/models/:name/versions/:version/ready'],
    wrap(async (req, res) => {
      const ctx = await authed(req, res);
      const route = resolve(ctx, engine(), String(req.params.name), 'read');
      const ready = addressed(route, req).every((id) => engine().version(id, engine().poolFor(route, 'TRAFFIC')));
      res.status(ready ? 200 : 503).json({ name: String(req.params.name), ready });
    }),
  );

  // The binary extension's body is raw bytes (header, then tensors); any other body is JSON. Both
  // are held to the same size limit.
  const parseJson = express.json({ limit: app.config.bodyLimitBytes });
  const parseRaw = express.raw({ type: () => true, limit: app.config.bodyLimitBytes });
  const parseBody = (req: Request, res: Response, next: NextFunction) => (req.header(HEADER_LENGTH) !== undefined ? parseRaw : parseJson)(req, res, next);

  // Unversioned, the deployment's split picks the version (and its fallback answers for a failed
  // run); versioned, the named version runs, and only it. Same policy, audit and log either way.
  // The server answers these paths first with its lean handler (`src/app/open-inference.lean.ts`);
  // requests that handler leaves (other encodings, charsets or content types) arrive here.
  router.post(
    ['/models/:name/infer', '/models/:name/versions/:version/infer'],
    parseBody,
    wrap(async (req, res) => {
      const ctx = await authed(req, res);
      const reply = await inferOip(ctx, { name: String(req.params.name), version: req.params.version === undefined ? undefined : String(req.params.version) }, req.header(HEADER_LENGTH), req.body);
      for (const [k, v] of Object.entries(reply.headers)) res.setHeader(k, v);
      res.status(200).send(reply.body);
    }),
  );

  // Any other path under /v2 is answered in the protocol's shape, not with a page.
  router.use((req, _res, next) => next(new AppError(ErrorCode.NOT_FOUND, `No Open Inference Protocol route for ${req.method} /v2${req.path}`, { reason: InferenceReason.NO_ROUTE })));

  // Errors in the protocol's shape ({ "error": message }), with the same codes as GraphQL.
  router.use((err: unknown, req: Request, res: Response, next: NextFunction) => {
    if (res.headersSent) return next(err);
    const reply = oipErrorReply(app, err, res.locals.requestId as string, req.originalUrl.split('?')[0]);
    for (const [k, v] of Object.entries(reply.headers)) res.setHeader(k, v);
    res.status(reply.status).send(reply.body);
  });
  return router;
}

/** An answer of the Open Inference Protocol's infer route, ready to be written by any HTTP handler. */
export interface OipReply {
  status: number;
  headers: Record<string, string>;
  /** JSON text or the binary extension's bytes. */
  body: string | Buffer;
}

const JSON_TYPE = 'application/json; charset=utf-8';

/**
 * The error answer of the Open Inference Protocol's routes: `{ error, code, reason?, field?,
 * requestId }` with the HTTP status of `code` (GraphQL's codes and reasons), never a stack. Errors
 * that are not the API's own are logged and answered as INTERNAL.
 */
export function oipErrorReply(app: AppServices, err: unknown, requestId: string, path: string): OipReply {
  const json = (status: number, body: Record<string, unknown>, headers: Record<string, string> = {}): OipReply => ({ status, headers: { 'content-type': JSON_TYPE, ...headers }, body: JSON.stringify(body) });
  const e = err as { type?: string; status?: number };
  if (e.type === 'entity.too.large' || e.status === 413) {
    return json(413, { error: `Body exceeds ${app.config.bodyLimitBytes} bytes`, code: ErrorCode.BAD_USER_INPUT, reason: CoreReason.BODY_TOO_LARGE, requestId });
  }
  if (e.type === 'entity.parse.failed') {
    return json(400, { error: 'Body is not valid JSON', code: ErrorCode.BAD_USER_INPUT, reason: CoreReason.MALFORMED_JSON, requestId });
  }
  if (err instanceof AppError) {
    const headers: Record<string, string> = typeof err.details.retryAfterSeconds === 'number' ? { 'retry-after': String(err.details.retryAfterSeconds) } : {};
    return json(HTTP_STATUS[err.code], { error: err.message, code: err.code, ...(err.details.reason ? { reason: err.details.reason } : {}), ...(err.details.field ? { field: err.details.field } : {}), requestId }, headers);
  }
  // The HTTP layer's own refusals (an aborted body, an unsupported encoding or charset, a path that is not valid percent-encoding).
  const http = err as { status?: unknown; expose?: unknown; message?: unknown };
  if (typeof http.status === 'number' && http.status >= 400 && http.status < 500 && (http.expose === true || err instanceof URIError)) {
    return json(http.status, { error: String(http.message), code: ErrorCode.BAD_USER_INPUT, requestId });
  }
  app.log.error({ err, requestId, path }, 'unexpected error');
  return json(500, { error: 'Internal server error', code: ErrorCode.INTERNAL, requestId });
}

/** The path parameters of an infer route: the model name, and on a versioned path the version. */
export interface InferTarget {
  name: string;
  version?: string;
}

/**
 * One Open Inference Protocol infer request, whichever HTTP handler received it: resolves the model
 * name among the deployments the caller may predict on (refusals audited as GraphQL's guard audits
 * them), checks the body (JSON, or the binary extension's bytes when `headerLength` is given) with
 * the same checks as every transport, predicts, and encodes the answer (JSON, or binary outputs
 * when asked). `ctx` must carry an authenticated principal. Throws AppError for every refusal.
 */
export async function inferOip(ctx: RequestContext, target: InferTarget, headerLength: string | undefined, rawBody: unknown): Promise<OipReply> {
  const engine = engineOf(ctx.app);
  assertStorable(target.name, 'model', MAX_KEY_LENGTH);
  let route: Route;
  try {
    route = await resolveServing(ctx, engine, target.name, 'predict');
  } catch (e) {
    // Refusals (a model the caller cannot see included) are audited here as the GraphQL guard audits them for `predict`.
    if (e instanceof AppError && (e.code === ErrorCode.FORBIDDEN || e.code === ErrorCode.NOT_FOUND)) {
      throw await recordDenial(ctx, { action: 'predict', subjectType: 'Deployment', subjectId: target.name, reason: e.message }, e);
    }
    throw e;
  }
  const versionId = namedVersionOf(route, target);
  const split = headerLength !== undefined ? splitBinaryRequest(Buffer.isBuffer(rawBody) ? rawBody : Buffer.alloc(0), headerLength) : undefined;
  const body = (split ? split.header : rawBody) as { id?: unknown; inputs?: OipTensor[]; outputs?: Array<{ name?: unknown }>; parameters?: Record<string, unknown> };
  if (!body || typeof body !== 'object' || !Array.isArray(body.inputs)) throw badInput('The body must be a JSON object with an "inputs" array', { field: 'inputs', reason: InferenceReason.INPUT_SHAPE });
  const requestKey = body.parameters?.request_key;
  if (requestKey !== undefined) checkRequestKey(requestKey, 'parameters.request_key');
  checkStorableBody(body);
  // A requested output no version that may run gives is refused before anything runs (the protocol would otherwise answer with nothing for it).
  if (Array.isArray(body.outputs)) {
    const given = new Set((versionId ? [versionId] : route.shares.map((s) => s.versionId)).flatMap((id) => engine.version(id)?.spec.outputs.map((o) => o.name) ?? []));
    body.outputs.forEach((o, i) => {
      if (given.size && !given.has(String(o?.name))) {
        throw badInput(`The model has no output "${String(o?.name)}": it gives ${[...given].join(', ')}`, { field: `outputs.${i}.name`, reason: InferenceReason.UNKNOWN_OUTPUT });
      }
    });
  }
  let logged: WireTensor[] | null = null;
  const result = await predict(ctx, {
    deploymentId: toGlobalId('Deployment', route.deploymentId),
    authorized: route,
    requestKey: (requestKey as string | undefined) ?? null,
    source: 'open-inference',
    versionId,
    feeds: (spec, limits, logs) => {
      const built = feedsFromOip(spec, body.inputs!, limits, split?.binary);
      // Kept for the log (the pool leaves the feeds intact) only for a version that logs its inputs,
      // and nested as rows, the form GraphQL requests are logged in, when the record is built after
      // the answer: nesting 256 rows of 64 features takes about 0.15 ms.
      if (logs) logged ??= built.feeds;
      return built;
    },
    loggedInputs: () => (logged ? Object.fromEntries(logged.map((f) => [f.name, tensorToRows(f)])) : {}),
  });
  const predictionId = toGlobalId('Prediction', result.predictionId);
  const wanted = Array.isArray(body.outputs) && body.outputs.length ? new Set(body.outputs.map((o) => String(o?.name))) : null;
  const encoded = encodeResponse(
    {
      model_name: target.name,
      model_version: result.version.nodeId,
      // The protocol returns the request's own id when it gave one; otherwise the prediction id.
      id: typeof body.id === 'string' ? body.id : predictionId,
      parameters: { prediction_id: predictionId, fallback: result.fallback, latency_ms: result.latencyMs, deployment: toGlobalId('Deployment', result.deploymentId) },
    },
    result.outputs
      .filter((o) => !wanted || wanted.has(o.name))
      .map((o) => ({ tensor: o, binary: wantsBinaryOutput(body.parameters, body.outputs, o.name), data: () => tensorToFlat(o) })),
  );
  if ('json' in encoded) return { status: 200, headers: { 'content-type': JSON_TYPE }, body: JSON.stringify(encoded.json) };
  return { status: 200, headers: { 'content-type': 'application/octet-stream', [HEADER_LENGTH]: String(encoded.headerLength) }, body: encoded.body };
}

function engineOf(app: AppServices): InferenceEngine {
  if (!app.inference) throw new AppError(ErrorCode.UNAVAILABLE, 'This process does not serve predictions', { reason: InferenceReason.DISABLED });
  return app.inference;
}

/**
 * On a versioned path, the served version it names: one of the deployment's traffic split, by the
 * global id its metadata lists under `versions`. A version the deployment does not serve is
 * NOT_FOUND. Undefined on an unversioned path.
 */
function namedVersionOf(route: Route, target: InferTarget): string | undefined {
  if (target.version === undefined) return undefined;
  const given = target.version;
  const share = route.shares.find((s) => toGlobalId('ModelVersion', s.versionId) === given);
  if (!share) throw new AppError(ErrorCode.NOT_FOUND, `Model "${target.name}" does not serve version "${given}"`, { reason: InferenceReason.UNKNOWN_VERSION });
  return share.versionId;
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
/**
 * {@link resolve}, after waiting for this instance's routing table to catch up when the name matches
 * no deployment it routes but one with a traffic split in the database (made a moment ago: its
 * change notification is on its way). A name the table knows, readable or not, never waits.
 */
async function resolveServing(ctx: RequestContext, engine: InferenceEngine, name: string, action: 'read' | 'predict'): Promise<Route> {
  const id = deploymentIdOf(name);
  const known = (id !== null && engine.route(id) !== undefined) || engine.routes().some(named(name));
  if (!known) {
    const sep = name.indexOf(':');
    const [split] = await ctx.app.db.query(
      `SELECT 1 FROM deployment d JOIN team t ON t.id = d.team_id
        WHERE EXISTS (SELECT 1 FROM traffic_share s WHERE s.deployment_id = d.id)
          AND (d.id::text = $1 OR (d.name = $3 AND ($2::text IS NULL OR t.name = $2))) LIMIT 1`,
      [id ?? '', sep > 0 ? name.slice(0, sep) : null, sep > 0 ? name.slice(sep + 1) : name],
    );
    if (split) await engine.catchUp();
  }
  return resolve(ctx, engine, name, action);
}

/** Whether a route is the deployment `name` names: `team:deployment`, or a deployment name alone. */
function named(name: string): (r: Route) => boolean {
  const sep = name.indexOf(':');
  return sep > 0 ? (r) => r.teamName === name.slice(0, sep) && r.name === name.slice(sep + 1) : (r) => r.name === name;
}

/** The deployment id a model name that is a Deployment global id stands for (null: a name). */
function deploymentIdOf(name: string): string | null {
  try {
    const decoded = fromGlobalId(name, 'model');
    return decoded.type === 'Deployment' ? decoded.key : null;
  } catch {
    return null;
  }
}

function resolve(ctx: RequestContext, engine: InferenceEngine, name: string, action: 'read' | 'predict'): Route {
  // A deployment the caller may not read is answered exactly like a missing one (NOT_FOUND);
  // FORBIDDEN is for one it may read but not `action`.
  const may = (a: 'read' | 'predict') => (r: Route) =>
    ctx.ability.can(a, subjectOf('Deployment', routeSubject(r)) as never);
  // `predict` through the service's own check, which lets predict take the route without checking it again.
  const allowed = action === 'predict' ? (r: Route) => mayPredict(ctx, r) : may(action);
  const readable = may('read');
  const id = deploymentIdOf(name);
  let route = id === null ? undefined : engine.route(id);
  if (!route) {
    const candidates = engine.routes().filter(named(name));
    const visible = candidates.filter(allowed);
    if (visible.length > 1) throw badInput(`"${name}" names deployments of several teams: use team:deployment`, { reason: InferenceReason.AMBIGUOUS_MODEL });
    route = visible[0] ?? candidates.find(readable);
  }
  if (!route || !readable(route)) throw notFound(`Model "${name}"`);
  if (!allowed(route)) throw forbidden(`Not allowed to ${action} on this deployment`);
  return route;
}
