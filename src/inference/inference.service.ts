import { hash } from 'node:crypto';
import { subjectOf } from '../core/ability';
import type { RequestContext } from '../core/context';
import { AppError, ErrorCode, forbidden } from '../core/errors';
import { hiddenRowError } from '../lineage/lineage.service';
import { Deployment } from '../rollouts/deployment.entity';
import { expectId, toGlobalId } from '../core/global-id';
import type { InferenceEngine, Route, ServedVersion, ServingEntry } from './inference.engine';
import type { PredictionEntry } from './prediction-log';
import { rowsOf, type InputLimits, type ModelSpec, type WireTensor } from './tensors';
import { InferenceRunError, InferenceTimeoutError } from './worker-pool';
import { InferenceReason } from './inference.errors';
import { newPredictionId } from './prediction-id';
import { agreementOf } from './shadow-agreement';

/** What a prediction request carries, whichever protocol it came by. */
export interface PredictRequest {
  /** The deployment's global id (or its raw id, from the Open Inference Protocol's resolution). */
  deploymentId: string;
  /**
   * The deployment's route as the transport resolved it for this caller, `read` checked and
   * `predict` checked by {@link mayPredict} for this same context (the Open Inference Protocol
   * resolves a model name that way): the checks are not made twice. A route that did not pass
   * {@link mayPredict} for this context is checked in full as if unset. Unset, predict checks.
   */
  authorized?: Route;
  requestKey: string | null;
  source: 'graphql' | 'open-inference';
  /**
   * A version of the deployment's traffic split named by the caller (the Open Inference Protocol's
   * versioned paths): that version runs instead of the split's pick, and nothing else answers for it
   * (no fallback). Unset, the split picks.
   */
  versionId?: string;
  /**
   * Builds the feeds for a model's signature; throws BAD_USER_INPUT. Called once per version run,
   * before it; `logged` says whether that version logs its inputs (a protocol that keeps them in
   * another form for the log does so only then). The run leaves the feeds intact.
   */
  feeds(spec: ModelSpec, limits: InputLimits, logged: boolean): { feeds: WireTensor[]; rows: number };
  /** The inputs as they are logged (nested rows per input name). */
  loggedInputs(): Record<string, unknown>;
}

export interface PredictResult {
  /** The id of the logged prediction (its log record's key); rows of the batch are (id, row index). */
  predictionId: string;
  outputs: WireTensor[];
  version: ServedVersion;
  deploymentId: string;
  rows: number;
  latencyMs: number;
  fallback: boolean;
}

/** Per-principal token buckets (per API instance). */
export class RateLimiter {
  private buckets = new Map<string, { tokens: number; at: number }>();

  constructor(
    private readonly perSecond: number,
    private readonly burst: number,
  ) {}

  take(key: string): boolean {
    const now = performance.now();
    let b = this.buckets.get(key);
    if (!b) {
      if (this.buckets.size > 100_000) this.buckets.clear();
      this.buckets.set(key, (b = { tokens: this.burst, at: now }));
    }
    b.tokens = Math.min(this.burst, b.tokens + ((now - b.at) / 1000) * this.perSecond);
    b.at = now;
    if (b.tokens < 1) return false;
    b.tokens -= 1;
    return true;
  }
}

const limiters = new WeakMap<InferenceEngine, RateLimiter>();

function engineOf(ctx: RequestContext): InferenceEngine {
  const engine = ctx.app.inference;
  if (!engine) throw new AppError(ErrorCode.UNAVAILABLE, 'This process does not serve predictions', { reason: InferenceReason.DISABLED });
  return engine;
}

/** What this API instance serves for a deployment (nothing when it runs no inference engine). */
export function servingOf(ctx: RequestContext, deploymentId: string): ServingEntry[] {
  return ctx.app.inference?.servingOf(deploymentId) ?? [];
}

/** A routed deployment as the access rules see it: the same attributes for every check made on a route. */
export function routeSubject(route: Route): { id: string; teamId: string; environment: string; createdBy: string } {
  return { id: route.deploymentId, teamId: route.teamId, environment: route.environment, createdBy: route.createdBy };
}

/** Per request context, the routes its caller was found allowed to predict on by {@link mayPredict}. */
const predictable = new WeakMap<RequestContext, WeakSet<Route>>();

/**
 * Whether the context's caller may `predict` on a route: the policy check a transport makes while it
 * resolves a model name (`read` is its own). A route found allowed here may be handed to
 * {@link predict} as `authorized` with the same context, which then does not check it again; no
 * other route is taken on trust.
 */
export function mayPredict(ctx: RequestContext, route: Route): boolean {
  const allowed = ctx.ability.can('predict', subjectOf('Deployment', routeSubject(route)) as never);
  if (allowed) {
    let routes = predictable.get(ctx);
    if (!routes) predictable.set(ctx, (routes = new WeakSet()));
    routes.add(route);
  }
  return allowed;
}

/**
 * The route of a deployment the caller may predict on. A deployment the caller may not read is
 * answered like a missing one (NOT_FOUND, recorded as refused by the guard), and both are looked up
 * with the caller's read scope in SQL; FORBIDDEN is for a deployment it may read but not predict on.
 */
async function authorizedRoute(ctx: RequestContext, engine: InferenceEngine, deploymentId: string, given: string): Promise<Route> {
  let route = engine.route(deploymentId);
  let row: object | null = route ? routeSubject(route) : null;
  if (!row || !ctx.ability.can('read', subjectOf('Deployment', row) as never)) {
    row = await ctx.loaders
      .scope(ctx.app.db.getRepository(Deployment).createQueryBuilder('x').select(['x.id', 'x.teamId', 'x.environment', 'x.createdBy']).where('x.id = :id', { id: deploymentId }), 'Deployment', 'x')
      .getOne();
    if (!row) throw hiddenRowError('Deployment', deploymentId, given);
  }
  if (!ctx.ability.can('predict', subjectOf('Deployment', row) as never)) {
    const e = forbidden('Not allowed to predict on this deployment');
    Object.assign(e.details, { subjectType: 'Deployment', subjectId: toGlobalId('Deployment', deploymentId) });
    throw e;
  }
  if (!route) route = await caughtUp(ctx, engine, deploymentId);
  if (!route) {
    throw new AppError(ErrorCode.CONFLICT, 'The deployment has no model version serving traffic', { reason: InferenceReason.NOT_SERVING });
  }
  return route;
}

/**
 * The route of a deployment this instance does not route yet although it has a traffic split: one
 * created, or given its first split, a moment ago, whose change notification this instance has not
 * acted on yet. Waits for a reconcile instead of answering NOT_SERVING for a deployment that
 * serves. A deployment without a split costs one lookup.
 */
async function caughtUp(ctx: RequestContext, engine: InferenceEngine, deploymentId: string): Promise<Route | undefined> {
  const [split] = await ctx.app.db.query(`SELECT 1 FROM traffic_share WHERE deployment_id = $1 LIMIT 1`, [deploymentId]);
  if (!split) return undefined;
  await engine.catchUp();
  return engine.route(deploymentId);
}

/** sha256 over each input's name, shape and element bytes: identifies the inputs without keeping them. */
function hashFeeds(feeds: WireTensor[]): string {
  // One buffer and a one-shot hash: cheaper than a Hash object fed piece by piece for the small
  // inputs most requests carry, and a copy of microseconds for large ones.
  const parts: Uint8Array[] = [];
  for (const f of feeds) {
    parts.push(Buffer.from(`${f.name}\u0000${f.dims.join(',')}\u0000`), new Uint8Array(f.data.buffer, f.data.byteOffset, f.data.byteLength));
  }
  return hash('sha256', Buffer.concat(parts));
}

const outcomeOf = (e: unknown) => (e instanceof InferenceTimeoutError ? 'timeout' : 'error');

/**
 * Serves one prediction request: checks the `predict` policy on the deployment, picks the version
 * from the traffic split (sticky by request key) unless the request names one of the split's
 * versions, validates the inputs against that version's signature, runs it on an inference thread,
 * and answers from the fallback version if it fails or times out (a named version has no fallback). Shadow versions get a copy after the answer; every run is logged (in batches).
 */
export async function predict(ctx: RequestContext, req: PredictRequest): Promise<PredictResult> {
  const engine = engineOf(ctx);
  const deploymentId = req.authorized ? req.authorized.deploymentId : expectId(req.deploymentId, 'Deployment', 'deployment');
  const principal = ctx.principal!;
  let limiter = limiters.get(engine);
  if (!limiter) limiters.set(engine, (limiter = new RateLimiter(engine.config.rateLimitPerSecond, engine.config.rateLimitBurst)));
  if (!limiter.take(`${principal.kind}:${principal.id}`)) {
    engine.metrics.rateLimited.inc();
    throw new AppError(ErrorCode.RATE_LIMITED, `More than ${engine.config.rateLimitPerSecond} predictions per second`, { reason: InferenceReason.RATE_LIMITED });
  }
  const trusted = req.authorized && predictable.get(ctx)?.has(req.authorized) ? req.authorized : undefined;
  const route = trusted ?? (await authorizedRoute(ctx, engine, deploymentId, req.authorized ? toGlobalId('Deployment', deploymentId) : req.deploymentId));
  const started = performance.now();
  const limits: InputLimits = { maxRows: engine.config.maxRows, maxElements: engine.config.maxElements, allowNonFinite: engine.config.allowNonFinite };
  if (req.versionId !== undefined && !route.shares.some((s) => s.versionId === req.versionId)) {
    // The split changed since the caller named the version.
    throw new AppError(ErrorCode.NOT_FOUND, 'The deployment does not serve this model version', { reason: InferenceReason.UNKNOWN_VERSION });
  }
  const primaryId = req.versionId ?? engine.pick(route, req.requestKey);
  const pool = engine.poolFor(route, 'TRAFFIC');
  const primary = engine.version(primaryId, pool);

  let failure: Error | null = null;
  let served: ServedVersion | undefined;
  let outputs: WireTensor[] | undefined;
  let rows = 0;
  // The feeds the log's inputs hash is taken of, after the answer (the pool leaves them intact).
  let hashed: WireTensor[] | null = null;
  let skipped = false;
  if (primary) {
    // Bad input is refused here, before anything runs or is logged.
    const built = req.feeds(primary.spec, limits, primary.logInputs);
    rows = built.rows;
    hashed = built.feeds;
    if (engine.breakerOpen(primary.id, pool)) {
      skipped = true;
      failure = new InferenceRunError(`model version ${primaryId} is failing repeatedly; skipped during its cool-down`);
    } else {
      try {
        outputs = await engine.run(primary.id, built.feeds, built.rows, pool);
        served = primary;
        engine.outcome(primary.id, pool, true);
      } catch (e) {
        if (!(e instanceof InferenceTimeoutError || e instanceof InferenceRunError)) throw e;
        failure = e;
        engine.outcome(primary.id, pool, false);
      }
    }
  } else {
    failure = new InferenceRunError(`model version ${primaryId} is not loaded: ${engine.unavailable(primaryId, pool)}`);
  }
  const afterPrimary = performance.now();
  const labels = { deployment: engine.deploymentLabel(route), model_version: engine.versionLabel(primaryId) };
  const primaryFailed = failure !== null;
  // A run that answered is counted with its rows below, on series made once; anything else here.
  if (primaryFailed) {
    engine.metrics.predictions.inc({ ...labels, role: 'served', outcome: skipped ? 'skipped' : outcomeOf(failure) });
    if (!skipped) engine.metrics.latency.observe({ ...labels, role: 'served' }, (afterPrimary - started) / 1000);
  }

  let fallback = false;
  if (failure && req.versionId === undefined) {
    const fb = route.fallbackVersionId && route.fallbackVersionId !== primaryId ? engine.version(route.fallbackVersionId, pool) : undefined;
    if (fb) {
      engine.metrics.fallbacks.inc(labels);
      try {
        const built = req.feeds(fb.spec, limits, fb.logInputs);
        rows = built.rows;
        hashed ??= built.feeds;
        outputs = await engine.run(fb.id, built.feeds, built.rows, pool);
        served = fb;
        fallback = true;
      } catch (e) {
        if (!(e instanceof AppError || e instanceof InferenceTimeoutError || e instanceof InferenceRunError)) throw e;
        failure = new InferenceRunError(`${failure.message}; the fallback version failed too: ${e.message}`);
      }
    }
  }
  const latencyMs = performance.now() - started;
  const predictionId = newPredictionId();
  const occurredAt = new Date();
  const loggedVersion = served ?? primary;
  // The record is built after the answer has gone out (nesting a batch's inputs and outputs as rows
  // takes time the caller need not wait for); its id is in the answer already.
  const record = (): PredictionEntry => ({
    id: predictionId,
    occurredAt,
    deploymentId,
    teamId: route.teamId,
    modelVersionId: served?.id ?? primaryId,
    requestId: ctx.requestId,
    requestKey: req.requestKey,
    principalId: principal.id,
    principalKind: principal.kind,
    source: req.source,
    rows,
    inputs: loggedVersion?.logInputs ? req.loggedInputs() : null,
    inputsSha256: hashed ? hashFeeds(hashed) : '',
    outputs: outputs ? rowsOf(outputs) : null,
    latencyMs,
    fallback,
    shadow: false,
    failedVersionId: failure ? primaryId : null,
    error: failure ? failure.message : null,
  });
  await engine.log.appendSoon(record, route.shadows.length
      ? (entry) => void mirror(engine, route, req, entry, limits).catch((e: unknown) => ctx.log.error({ err: e instanceof Error ? e.message : String(e) }, 'shadow run failed'))
      : undefined);
  if (!outputs || !served) {
    ctx.log.warn({ deployment: deploymentId, modelVersion: primaryId, err: failure?.message }, 'prediction failed and no fallback answered');
    throw new AppError(ErrorCode.UNAVAILABLE, 'The model version failed and no fallback version could answer', { reason: InferenceReason.FAILED });
  }
  if (primaryFailed) engine.metrics.rows.inc({ deployment: labels.deployment, model_version: engine.versionLabel(served.id) }, rows);
  else engine.metrics.servedOk(labels.deployment, labels.model_version, (afterPrimary - started) / 1000, rows);
  return { predictionId, outputs, version: served, deploymentId, rows, latencyMs, fallback };
}

/** Runs the request on every shadow version, after the answer; logged, counted, never returned. */
async function mirror(engine: InferenceEngine, route: Route, req: PredictRequest, served: PredictionEntry, limits: InputLimits): Promise<void> {
  for (const shadowId of route.shadows) {
    const pool = engine.poolFor(route, 'SHADOW');
    const version = engine.version(shadowId, pool);
    const started = performance.now();
    let outputs: WireTensor[] | null = null;
    let error: string | null = null;
    let rows = served.rows;
    try {
      if (!version) throw new InferenceRunError(`model version ${shadowId} is not loaded: ${engine.unavailable(shadowId, pool)}`);
      const built = req.feeds(version.spec, limits, version.logInputs);
      rows = built.rows;
      outputs = await engine.run(shadowId, built.feeds, built.rows, pool);
    } catch (e) {
      error = (e as Error).message;
    }
    const latencyMs = performance.now() - started;
    const labels = { deployment: engine.deploymentLabel(route), model_version: engine.versionLabel(shadowId), role: 'shadow' };
    engine.metrics.latency.observe(labels, latencyMs / 1000);
    engine.metrics.predictions.inc({ ...labels, outcome: error ? 'error' : 'ok' });
    const shadowOutputs = outputs ? rowsOf(outputs) : null;
    await engine.log.append({
      ...served,
      agreement: agreementOf(served.outputs, shadowOutputs),
      id: newPredictionId(),
      occurredAt: new Date(),
      modelVersionId: shadowId,
      rows,
      inputs: version?.logInputs ? served.inputs ?? req.loggedInputs() : null,
      outputs: shadowOutputs,
      latencyMs,
      fallback: false,
      shadow: true,
      failedVersionId: error ? shadowId : null,
      error,
    });
  }
}
