import { createHash } from 'node:crypto';
import { Client, Pool } from 'pg';
import { Registry } from 'prom-client';
import type { InferenceConfig } from '../config';
import { withDefaultUser } from '../core/database';
import { toGlobalId } from '../core/global-id';
import type { RateLimitedLog } from '../core/rate-limited-log';
import type { Logger } from '../core/logger';
import type { ArtifactStore } from '../core/artifact-store';
import type { OnnxSignature } from '../registry/onnx';
import { PredictionLog, type RollupWriter } from './prediction-log';
import type { RollupBins } from './rollup-bins';
import { ServingMetrics } from './serving-metrics';
import { modelSpec, warmupFeeds, type ModelSpec, type WireTensor } from './tensors';
import { InferencePool } from './worker-pool';

/** The PostgreSQL notification channel raised (on commit) when any deployment's serving set changes. */
export const SERVING_CHANNEL = 'modelgov_serving';

const CLASSIFICATION_ORDER = ['NONE', 'PUBLIC', 'INTERNAL', 'CONFIDENTIAL', 'RESTRICTED'];

/**
 * The two thread pools. `production` serves only the versions PRODUCTION deployments route traffic
 * to (and their fallbacks): versions that had to be APPROVED to get there. `shared` serves the rest:
 * STAGING and DEVELOPMENT deployments, and every shadow (a PRODUCTION shadow may be unapproved).
 */
export type PoolName = 'production' | 'shared';

/**
 * What the engine reports when a version's runs in one pool overran the run budget repeatedly, or
 * one got stuck, and it was unloaded from that pool.
 */
export interface BudgetTrip {
  versionId: string;
  /** The pool it was unloaded from; its copy in the other pool, if any, keeps serving. */
  pool: PoolName;
  /** The version's own team. */
  teamId: string;
  /** Every deployment whose requests for the version (traffic, shadow or fallback) ran on that pool, with its team. */
  deployments: Array<{ deploymentId: string; teamId: string; environment: string }>;
  budgetMs: number;
  /** Runs over the budget within the window (at least 1 when a run got stuck). */
  overruns: number;
  /** Whether a run got stuck (still running past the stuck limit). */
  stuck: boolean;
  firstOverrunAt: Date;
  unloadedUntil: Date;
  reason: string;
}

/** A model version loaded into the inference threads of the pools that serve it. */
export interface ServedVersion {
  id: string;
  nodeId: string;
  modelId: string;
  teamId: string;
  version: number;
  spec: ModelSpec;
  provider: string;
  /** Providers tried before `provider`, with why each failed. */
  fellBack: string[];
  loadedAt: Date;
  /** Whether inputs are logged as sent (else only their hash), from the training data's classification. */
  logInputs: boolean;
}

export type ServingRole = 'TRAFFIC' | 'SHADOW' | 'FALLBACK';

/**
 * A version a deployment routes to on this instance: loaded (`version`), failed (`error`),
 * unloaded by its breaker (`unloaded`, until `unloadedUntil`) or still loading.
 */
export interface ServingEntry {
  versionId: string;
  role: ServingRole;
  weight: number;
  version?: ServedVersion;
  error?: string;
  unloaded?: string;
  unloadedUntil?: Date;
}

/** What one deployment routes to, as this instance serves it. */
export interface Route {
  deploymentId: string;
  teamId: string;
  environment: string;
  createdBy: string;
  name: string;
  teamName: string;
  /** In model version id order, weights in percent summing to 100. */
  shares: Array<{ versionId: string; weight: number }>;
  shadows: string[];
  /** The last version that held all the traffic: answers when the routed version fails. */
  fallbackVersionId: string | null;
}

interface DeploymentRow {
  id: string;
  team_id: string;
  environment: string;
  created_by: string;
  name: string;
  team_name: string;
  last_stable_version_id: string | null;
  shares: Array<{ v: string; w: number }>;
  shadows: string[];
}

interface VersionRow {
  id: string;
  model_id: string;
  team_id: string;
  version: number;
  artifact_sha256: string;
  signature_json: OnnxSignature;
  classification: string | null;
  has_lineage: boolean;
}

const routesTo = (r: Route, versionId: string) => r.shares.some((s) => s.versionId === versionId) || r.shadows.includes(versionId) || r.fallbackVersionId === versionId;

/** What every deployment routing to `versionId` routes, in one string: it changes when any of them does. */
function fingerprint(table: Map<string, Route>, versionId: string): string {
  return JSON.stringify(
    [...table.values()]
      .filter((r) => routesTo(r, versionId))
      .sort((a, b) => a.deploymentId.localeCompare(b.deploymentId))
      .map((r) => [r.deploymentId, r.environment, r.shares, r.shadows, r.fallbackVersionId]),
  );
}

/** Where the request key's hash lands, 0–9999; the same key on the same deployment always lands the same. */
export function stickyBucket(deploymentId: string, key: string): number {
  return createHash('sha256').update(deploymentId).update('\u0000').update(key).digest().readUInt32BE(0) % 10_000;
}

/**
 * One breaker per version and pool, for two conditions; what happens in one pool never judges the
 * version's copy in the other. Errors and timeouts (`failures`, in a row) make requests skip the
 * version for a cool-down while it stays loaded. Runs over the run budget (`overrunsAt`, a sliding
 * window: successes in between do not reset it) or one stuck run mean the version holds threads
 * it should not: it is unloaded from the pool until `unloadedUntil`, or, unless a run got stuck
 * (`stuck`), until a deployment that routes to it changes (`routes` is what they were when it tripped).
 */
interface Breaker {
  failures: number;
  openUntil: number;
  /** When each run over budget within the window was seen (performance.now()). */
  overrunsAt: number[];
  /** Back after a cool-down: the next run over budget unloads it again. */
  halfOpen: boolean;
  unloadedUntil: number;
  reason: string | null;
  routes: string;
  stuck: boolean;
}

const POOLS: readonly PoolName[] = ['production', 'shared'];

/**
 * The inference engine of one API process: the worker-thread pools, the routing table of every
 * deployment, the prediction log and the serving statistics.
 *
 * Isolation: PRODUCTION traffic runs on threads of its own (see {@link PoolName}); nothing routed
 * by a STAGING or DEVELOPMENT deployment, and no shadow, is ever loaded into them, so production
 * requests never queue behind those versions, never wait for their warm-ups, and lose no thread
 * when one of theirs is stuck and replaced. Pools rather than per-environment queues on one set
 * of threads, because a native run cannot be interrupted: with queues alone, a slow version could
 * still occupy every thread. Each pool bounds its own threads, retired ones included, so a stuck
 * version costs at most its pool's share of the cores. Within a pool, teams
 * take turns (see {@link InferencePool}). A version whose runs keep overrunning the run budget is
 * unloaded, and reported to the `onBudgetTrip` listeners.
 *
 * The routing table follows the database: a trigger notifies on commit whenever a traffic split,
 * a shadow or a deployment changes, and every instance then reconciles (also every
 * `reconcileMs`, in case a notification was missed). Versions are loaded and warmed up before a
 * route may reach them, and unloaded once no route does and the requests that reached them are answered.
 */
export class InferenceEngine {
  readonly pools: Record<PoolName, InferencePool>;
  readonly metrics: ServingMetrics;
  readonly log: PredictionLog;
  private table = new Map<string, Route>();
  private readonly versions = new Map<string, ServedVersion>();
  /** Providers already said to be missing on this machine (said once, not once per model). */
  private readonly missingProviders = new Set<string>();
  /** The pools each served version is loaded into. */
  private readonly placed = new Map<string, Set<PoolName>>();
  /** `model:vN` of every version the routes name, for the metrics' labels (read at each reconcile). */
  private versionNames = new Map<string, string>();
  private readonly tripListeners: Array<(trip: BudgetTrip) => void> = [];
  /** Per pool, versions that could not be loaded into it, with why (retried on the next reconcile). */
  readonly failures: Record<PoolName, Map<string, string>> = { production: new Map(), shared: new Map() };
  private readonly breakers: Record<PoolName, Map<string, Breaker>> = { production: new Map(), shared: new Map() };
  private reconciling: Promise<void> | null = null;
  private again = false;
  private listener: Client | null = null;
  private timer: NodeJS.Timeout | null = null;
  private closed = false;
  /** True once the first reconcile has loaded every routed version. */
  ready = false;

  /** The engine's own connections: its housekeeping never waits behind, or is counted with, requests. */
  private readonly sql: Pool;

  constructor(
    private readonly databaseUrl: string,
    private readonly artifacts: ArtifactStore,
    readonly config: InferenceConfig,
    private readonly logger: Logger,
    rollups?: RollupWriter,
    /** Where failures that repeat while PostgreSQL is away are reported, rate-limited (else each is logged). */
    private readonly postgresTrouble?: RateLimitedLog,
    /** Where the serving metrics are registered: the registry GET /metrics serves. */
    registry: Registry = new Registry(),
  ) {
    this.sql = new Pool({ connectionString: withDefaultUser(databaseUrl), max: 3, application_name: 'modelgov-inference' });
    this.sql.on('error', (e) => this.pgWarn('inference', { err: e.message }, 'inference database connection error'));
    const both = <T>(f: (p: InferencePool) => T): T[] => [f(this.pools.production), f(this.pools.shared)];
    this.metrics = new ServingMetrics(registry, {
      queued: () => both((p) => p.queued).reduce((a, b) => a + b),
      logBuffered: () => this.log.buffered,
      threads: () => both((p) => p.size).reduce((a, b) => a + b),
      replacedThreads: () => both((p) => p.replacedThreads).reduce((a, b) => a + b),
      stuckThreads: () => ({ production: this.pools.production.stuckThreads, shared: this.pools.shared.stuckThreads }),
    });
    const pool = (name: PoolName, size: number) =>
      new InferencePool({
        name,
        size,
        providers: config.providers,
        intraOpNumThreads: config.intraOpNumThreads,
        maxBatchRows: config.maxBatchRows,
        batchWaitUs: config.batchWaitUs,
        splitMinMs: config.splitMinMs,
        runBudgetMs: config.runBudgetMs,
        runBudgetPerRowMs: config.runBudgetPerRowMs,
        stuckAfterMs: config.runStuckMs,
        log: logger,
        onBatch: (versionId, requests) => this.metrics.batchRequests.observe({ model_version: this.versionLabel(versionId) }, requests),
        onSplit: (versionId) => this.metrics.splitRuns.inc({ model_version: this.versionLabel(versionId) }),
        onRun: (versionId, ms, overran) => this.ran(name, versionId, ms, overran),
        onStuck: (versionId) => this.ranStuck(name, versionId),
      });
    this.pools = { production: pool('production', config.productionThreads), shared: pool('shared', config.threads) };
    this.log = new PredictionLog(this.sql, { batchSize: config.logBatch, flushIntervalMs: config.logFlushMs, maxBuffered: config.logMaxBuffered, rollups }, logger, this.metrics);
  }

  private pgWarn(source: string, fields: Record<string, unknown>, msg: string): void {
    if (this.postgresTrouble) this.postgresTrouble.warn(source, fields, msg);
    else this.logger.warn(fields, msg);
  }

  /** Listens for serving changes, loads every routed version, and keeps doing so. */
  async start(): Promise<void> {
    await this.listen();
    await this.reconcile();
    this.ready = true;
    this.timer = setInterval(() => void this.reconcile(), this.config.reconcileMs);
    this.timer.unref();
  }

  private async listen(): Promise<void> {
    if (this.closed) return;
    const client = new Client({ connectionString: withDefaultUser(this.databaseUrl), application_name: 'modelgov-inference-listener' });
    const retry = () => {
      if (this.listener !== client || this.closed) return;
      this.listener = null;
      void client.end().catch(() => undefined);
      setTimeout(() => void this.listen().then(() => this.reconcile()), 1000).unref();
    };
    client.on('error', (e) => {
      this.pgWarn('inference listener', { err: e.message }, 'serving change listener lost its connection; reconnecting');
      retry();
    });
    client.on('end', retry);
    client.on('notification', () => void this.reconcile());
    try {
      await client.connect();
      await client.query(`LISTEN ${SERVING_CHANNEL}`);
      if (this.closed) {
        await client.end();
        return;
      }
      this.listener = client;
      this.postgresTrouble?.clear('inference listener');
      this.postgresTrouble?.clear('inference');
    } catch (e) {
      void client.end().catch(() => undefined);
      if (this.closed) return;
      this.pgWarn('inference listener', { err: (e as Error).message }, 'serving change listener could not connect; polling only');
      setTimeout(() => void this.listen(), 1000).unref();
    }
  }

  /** Brings the routing table and the loaded versions in line with the database. Calls coalesce. */
  reconcile(): Promise<void> {
    if (this.reconciling) {
      this.again = true;
      return this.reconciling;
    }
    this.reconciling = (async () => {
      do {
        this.again = false;
        try {
          await this.reconcileOnce();
        } catch (e) {
          this.logger.error({ err: (e as Error).message }, 'serving reconcile failed');
        }
      } while (this.again && !this.closed);
    })().finally(() => {
      this.reconciling = null;
    });
    return this.reconciling;
  }

  private async reconcileOnce(): Promise<void> {
    if (this.closed) return;
    const { rows } = await this.sql.query<DeploymentRow>(
      `SELECT d.id, d.team_id, d.environment, d.created_by, d.name, t.name AS team_name, d.last_stable_version_id,
              COALESCE((SELECT json_agg(json_build_object('v', s.model_version_id, 'w', s.weight) ORDER BY s.model_version_id)
                        FROM traffic_share s WHERE s.deployment_id = d.id), '[]') AS shares,
              COALESCE((SELECT json_agg(sh.model_version_id ORDER BY sh.model_version_id)
                        FROM shadow_share sh WHERE sh.deployment_id = d.id), '[]') AS shadows
         FROM deployment d JOIN team t ON t.id = d.team_id`,
    );
    const routes = new Map<string, Route>();
    const needed = new Set<string>();
    const wanted: Record<PoolName, Set<string>> = { production: new Set(), shared: new Set() };
    for (const r of rows) {
      if (r.shares.length === 0 && r.shadows.length === 0) continue;
      const route: Route = {
        deploymentId: r.id,
        teamId: r.team_id,
        environment: r.environment,
        createdBy: r.created_by,
        name: r.name,
        teamName: r.team_name,
        shares: r.shares.map((s) => ({ versionId: s.v, weight: s.w })),
        shadows: r.shadows,
        fallbackVersionId: r.last_stable_version_id,
      };
      routes.set(r.id, route);
      const serves = wanted[this.poolFor(route, 'TRAFFIC')];
      for (const s of route.shares) serves.add(s.versionId);
      if (route.fallbackVersionId) serves.add(route.fallbackVersionId);
      for (const s of route.shadows) wanted[this.poolFor(route, 'SHADOW')].add(s);
    }
    for (const set of Object.values(wanted)) for (const id of set) needed.add(id);
    // Versions leaving the routes keep their names while the pools still hold them (placed now, or
    // retiring): the requests they finish are counted under their own label, not `unknown`.
    const held = [...this.versionNames.keys()].filter((id) => POOLS.some((p) => this.pools[p].holds(id)));
    const named = new Set([...needed, ...[...routes.values()].flatMap((r) => r.shares.map((s) => s.versionId)), ...this.placed.keys(), ...held]);
    const { rows: names } = await this.sql.query<{ id: string; label: string }>(
      `SELECT mv.id, m.name || ':v' || mv.version AS label FROM model_version mv JOIN model m ON m.id = mv.model_id WHERE mv.id = ANY($1::uuid[])`,
      [[...named]],
    );
    this.versionNames = new Map(names.map((n) => [n.id, n.label]));
    const now = performance.now();
    for (const p of POOLS) {
      for (const id of wanted[p]) {
        const b = this.breakers[p].get(id);
        if (!b?.unloadedUntil) continue;
        if (!b.stuck && fingerprint(routes, id) !== b.routes) {
          // A deployment that routes to it changed: the version starts afresh. Not after a stuck
          // run: each one costs a thread for good, so only the cool-down brings it back.
          this.breakers[p].delete(id);
        } else if (now >= b.unloadedUntil) {
          // Cool-down over: back, half-open (one more run over budget unloads it again).
          Object.assign(b, { unloadedUntil: 0, reason: null, overrunsAt: [], halfOpen: true, stuck: false });
        } else {
          wanted[p].delete(id);
        }
      }
    }
    const missing: Array<{ id: string; pools: PoolName[] }> = [];
    for (const id of new Set([...wanted.production, ...wanted.shared])) {
      const pools = (['production', 'shared'] as const).filter((p) => wanted[p].has(id) && !this.placed.get(id)?.has(p));
      if (pools.length) missing.push({ id, pools });
    }
    if (missing.length) await this.loadVersions(missing);
    // Only now may requests reach the new versions: they are loaded and warm.
    this.table = routes;
    for (const [id, pools] of [...this.placed]) {
      for (const p of [...pools]) {
        if (wanted[p].has(id)) continue;
        pools.delete(p);
        // Requests that picked it before the routes changed are still answered by it.
        this.pools[p].retire(id);
      }
      if (!pools.size) {
        this.placed.delete(id);
        this.versions.delete(id);
      }
    }
    for (const p of POOLS) {
      for (const id of [...this.failures[p].keys()]) if (!needed.has(id)) this.failures[p].delete(id);
      for (const id of [...this.breakers[p].keys()]) if (!needed.has(id)) this.breakers[p].delete(id);
    }
  }

  /** The pool a deployment's requests run on: PRODUCTION traffic and fallback on its own threads, the rest shared. */
  poolFor(route: Pick<Route, 'environment'>, role: ServingRole): PoolName {
    return route.environment === 'PRODUCTION' && role !== 'SHADOW' ? 'production' : 'shared';
  }

  private async loadVersions(wanted: Array<{ id: string; pools: PoolName[] }>): Promise<void> {
    const ids = wanted.map((w) => w.id);
    const poolsOf = new Map(wanted.map((w) => [w.id, w.pools]));
    const { rows } = await this.sql.query<VersionRow>(
      `SELECT mv.id, mv.model_id, mv.team_id, mv.version, mv.artifact_sha256, mv.signature_json,
              (SELECT max(dv.classification)::text FROM training_run_dataset trd JOIN dataset_version dv ON dv.id = trd.dataset_version_id
                WHERE trd.training_run_id = mv.training_run_id) AS classification,
              mv.training_run_id IS NOT NULL AS has_lineage
         FROM model_version mv WHERE mv.id = ANY($1::uuid[])`,
      [ids],
    );
    await Promise.all(
      rows.map(async (r) => {
        try {
          const spec = modelSpec(r.signature_json);
          const pools = poolsOf.get(r.id)!;
          const results = await Promise.allSettled(pools.map((p) => this.pools[p].load(r.id, r.team_id, this.artifacts.pathFor(r.artifact_sha256), warmupFeeds(spec), spec.batchable)));
          let placed = this.placed.get(r.id);
          if (!placed) this.placed.set(r.id, (placed = new Set()));
          // Where it loaded it stays (and is unloaded like any other); the next reconcile retries the rest.
          pools.forEach((p, i) => {
            const result = results[i];
            if (result.status === 'fulfilled') {
              placed.add(p);
              this.failures[p].delete(r.id);
            } else {
              this.failures[p].set(r.id, (result.reason as Error).message);
              this.logger.error({ modelVersion: r.id, pool: p, err: (result.reason as Error).message }, 'model version could not be loaded for serving');
            }
          });
          const first = results.find((x) => x.status === 'fulfilled');
          if (!first) return;
          const loaded = first.value;
          // Without recorded training data the classification is unknown: treated as the highest.
          const classification = r.classification ?? 'RESTRICTED';
          this.versions.set(r.id, {
            id: r.id,
            nodeId: toGlobalId('ModelVersion', r.id),
            modelId: r.model_id,
            teamId: r.team_id,
            version: r.version,
            spec,
            provider: loaded.provider,
            fellBack: loaded.fellBack,
            loadedAt: new Date(),
            logInputs: CLASSIFICATION_ORDER.indexOf(classification) <= CLASSIFICATION_ORDER.indexOf(this.config.logInputsUpTo),
          });
          if (loaded.fellBack.length) this.noteFallback(r.id, loaded.provider, loaded.fellBack);
          this.logger.info({ modelVersion: r.id, provider: loaded.provider }, 'model version loaded for serving');
        } catch (e) {
          for (const p of poolsOf.get(r.id)!) this.failures[p].set(r.id, (e as Error).message);
          this.logger.error({ modelVersion: r.id, err: (e as Error).message }, 'model version could not be loaded for serving');
        }
      }),
    );
  }

  /** A deployment as the metrics label it: `team:deployment`, the name the Open Inference paths take. */
  deploymentLabel(route: Pick<Route, 'teamName' | 'name'>): string {
    return `${route.teamName}:${route.name}`;
  }

  /** A model version as the metrics label it: `model:vN`, while a route names it or a pool still holds it (`unknown` after). */
  versionLabel(versionId: string): string {
    return this.versionNames.get(versionId) ?? 'unknown';
  }

  /**
   * Waits for a reconcile, at most the inference timeout: for a request naming a deployment that
   * has a traffic split in the database but not yet in this instance's routing table (made a moment
   * ago; the change notification is on its way).
   */
  async catchUp(): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.reconcile(), new Promise<void>((resolve) => (timer = setTimeout(resolve, this.config.timeoutMs)))]);
    clearTimeout(timer);
  }

  route(deploymentId: string): Route | undefined {
    return this.table.get(deploymentId);
  }

  routes(): Route[] {
    return [...this.table.values()];
  }

  /** A served version; with `pool`, only when it is loaded into that pool. */
  version(versionId: string, pool?: PoolName): ServedVersion | undefined {
    if (pool && !this.placed.get(versionId)?.has(pool)) return undefined;
    return this.versions.get(versionId);
  }

  /** The version a request goes to: by the request key's hash when given (sticky), else at random. */
  pick(route: Route, requestKey: string | null | undefined): string {
    const bucket = requestKey ? stickyBucket(route.deploymentId, requestKey) : Math.floor(Math.random() * 10_000);
    let upTo = 0;
    for (const s of route.shares) {
      upTo += s.weight * 100;
      if (bucket < upTo) return s.versionId;
    }
    return route.shares[route.shares.length - 1].versionId;
  }

  /**
   * Circuit breaker: true while a version that failed `breakerFailures` times in a row on `pool` is
   * skipped there (its requests go straight to the fallback). After the cool-down one request tries it again.
   */
  breakerOpen(versionId: string, pool: PoolName): boolean {
    const b = this.breakers[pool].get(versionId);
    if (!b || b.openUntil === 0) return false;
    if (performance.now() < b.openUntil) return true;
    // Half-open: this request tries; one more failure opens it again.
    b.openUntil = 0;
    b.failures = this.config.breakerFailures - 1;
    return false;
  }

  /** Counts a run's outcome toward its version's breaker in `pool`. */
  outcome(versionId: string, pool: PoolName, ok: boolean): void {
    if (this.config.breakerFailures === 0) return;
    if (ok) {
      const b = this.breakers[pool].get(versionId);
      if (b) Object.assign(b, { failures: 0, openUntil: 0 });
      return;
    }
    const b = this.breaker(pool, versionId);
    b.failures += 1;
    if (b.failures >= this.config.breakerFailures && b.openUntil === 0) {
      b.openUntil = performance.now() + this.config.breakerCooldownMs;
      this.logger.warn({ modelVersion: versionId, pool, failures: b.failures, cooldownMs: this.config.breakerCooldownMs }, 'model version failing: requests go to the fallback during the cool-down');
    }
  }

  private breaker(pool: PoolName, versionId: string): Breaker {
    let b = this.breakers[pool].get(versionId);
    if (!b) this.breakers[pool].set(versionId, (b = { failures: 0, openUntil: 0, overrunsAt: [], halfOpen: false, unloadedUntil: 0, reason: null, routes: '', stuck: false }));
    return b;
  }

  /**
   * Counts a run on `pool` toward its version's breaker there: the `budgetOverruns`-th run over the
   * budget within `budgetWindowMs` (or the first after a cool-down) unloads the version from that
   * pool. Runs within the budget clear nothing: an attacker alternating heavy and light inputs
   * still adds up.
   */
  private ran(pool: PoolName, versionId: string, ms: number, overran: boolean): void {
    if (!overran) {
      const b = this.breakers[pool].get(versionId);
      if (b && !b.unloadedUntil) b.halfOpen = false;
      return;
    }
    if (this.config.budgetOverruns === 0) return;
    const b = this.breaker(pool, versionId);
    if (b.unloadedUntil) return;
    const now = performance.now();
    b.overrunsAt = b.overrunsAt.filter((at) => at > now - this.config.budgetWindowMs);
    b.overrunsAt.push(now);
    const overruns = b.overrunsAt.length;
    this.logger.warn({ modelVersion: versionId, pool, ms: Math.round(ms), budgetMs: this.config.runBudgetMs, overruns }, 'model version run over its time budget');
    if (overruns < this.config.budgetOverruns && !b.halfOpen) return;
    const minutes = Math.round(this.config.budgetWindowMs / 6000) / 10;
    this.trip(pool, versionId, b, false, `${overruns} runs within ${minutes} min took longer than the run budget (${this.config.runBudgetMs} ms + ${this.config.runBudgetPerRowMs} ms per row)`);
  }

  /** A run abandoned on `pool` is still running past the stuck limit: its version leaves that pool at once. */
  private ranStuck(pool: PoolName, versionId: string): void {
    const b = this.breaker(pool, versionId);
    // Already unloaded (by its other overruns): this stuck run still keeps it out until the cool-down.
    if (b.unloadedUntil) {
      b.stuck = true;
      return;
    }
    if (!b.overrunsAt.length) b.overrunsAt.push(performance.now());
    this.trip(pool, versionId, b, true, `a run was still running ${this.config.runStuckMs} ms after it started, holding its thread for good`);
  }

  private trip(pool: PoolName, versionId: string, b: Breaker, stuck: boolean, why: string): void {
    const version = this.versions.get(versionId);
    const until = Date.now() + this.config.budgetCooldownMs;
    b.unloadedUntil = performance.now() + this.config.budgetCooldownMs;
    b.stuck = stuck;
    b.halfOpen = false;
    const bringsBack = stuck ? '' : ' or until a deployment routing to it changes';
    b.reason = `${why}; unloaded from the ${pool} pool until ${new Date(until).toISOString()}${bringsBack}`;
    b.routes = fingerprint(this.table, versionId);
    const placed = this.placed.get(versionId);
    placed?.delete(pool);
    // Also when no route leads to it any more and it is only finishing the requests it had (retiring).
    this.pools[pool].unload(versionId, 'unloaded: its runs kept overrunning the run budget');
    if (placed && !placed.size) {
      this.placed.delete(versionId);
      this.versions.delete(versionId);
    }
    this.logger.error({ modelVersion: versionId, pool, overruns: b.overrunsAt.length, stuck, cooldownMs: this.config.budgetCooldownMs }, 'model version unloaded from a pool: its runs overrun the run budget');
    setTimeout(() => void this.reconcile(), this.config.budgetCooldownMs + 10).unref();
    const trip: BudgetTrip = {
      versionId,
      pool,
      teamId: version?.teamId ?? '',
      deployments: [...this.table.values()]
        .filter((r) => this.routesOn(r, versionId, pool))
        .map((r) => ({ deploymentId: r.deploymentId, teamId: r.teamId, environment: r.environment })),
      budgetMs: this.config.runBudgetMs,
      overruns: b.overrunsAt.length,
      stuck,
      firstOverrunAt: new Date(Date.now() - (performance.now() - (b.overrunsAt[0] ?? performance.now()))),
      unloadedUntil: new Date(until),
      reason: b.reason,
    };
    for (const listener of this.tripListeners) {
      try {
        listener(trip);
      } catch (e) {
        this.logger.error({ err: (e as Error).message }, 'run budget listener failed');
      }
    }
  }

  /** Whether `route` sends requests for `versionId` to `pool` (as traffic, fallback or shadow). */
  private routesOn(route: Route, versionId: string, pool: PoolName): boolean {
    const served = route.shares.some((s) => s.versionId === versionId) || route.fallbackVersionId === versionId;
    return (served && this.poolFor(route, 'TRAFFIC') === pool) || (route.shadows.includes(versionId) && this.poolFor(route, 'SHADOW') === pool);
  }

  /** Calls `listener` each time a version is unloaded for overrunning the run budget. */
  onBudgetTrip(listener: (trip: BudgetTrip) => void): void {
    this.tripListeners.push(listener);
  }

  /** Why a routed version cannot answer on `pool`: unloaded by its breaker, failed to load, or still loading. */
  unavailable(versionId: string, pool: PoolName): string {
    const b = this.breakers[pool].get(versionId);
    return (b?.unloadedUntil ? b.reason : null) ?? this.failures[pool].get(versionId) ?? 'loading';
  }

  /** Runs on `pool` (see {@link poolFor}); rejects with InferenceTimeoutError or InferenceRunError. */
  run(versionId: string, feeds: WireTensor[], rows: number, pool: PoolName): Promise<WireTensor[]> {
    return this.pools[pool].run(versionId, feeds, rows, this.config.timeoutMs);
  }

  /** Every version this instance serves for a deployment, with its role and state. */
  servingOf(deploymentId: string): ServingEntry[] {
    const route = this.table.get(deploymentId);
    if (!route) return [];
    const out: ServingEntry[] = [];
    // Each entry as the pool the deployment's requests for it run on sees it.
    const add = (versionId: string, role: ServingRole, weight: number) => {
      const pool = this.poolFor(route, role);
      const b = this.breakers[pool].get(versionId);
      const unloaded = b?.unloadedUntil ? { unloaded: b.reason!, unloadedUntil: new Date(Date.now() + b.unloadedUntil - performance.now()) } : {};
      out.push({ versionId, role, weight, version: this.version(versionId, pool), error: this.failures[pool].get(versionId), ...unloaded });
    };
    for (const s of route.shares) add(s.versionId, 'TRAFFIC', s.weight);
    for (const s of route.shadows) add(s, 'SHADOW', 0);
    if (route.fallbackVersionId && !route.shares.some((s) => s.versionId === route.fallbackVersionId)) add(route.fallbackVersionId, 'FALLBACK', 0);
    return out;
  }

  /** For /readyz: providers in use and every loaded version's provider. */
  status(): {
    ready: boolean;
    threads: number;
    /**
     * Per pool: its size, the threads alive (retired ones still in a run included), those live
     * (able to take work), those stuck for good in a run, and how many were replaced.
     */
    pools: Record<PoolName, { threads: number; running: number; live: number; stuck: number; replaced: number }>;
    /** Why the process cannot serve and needs replacing: a pool whose threads are all stuck. */
    stuckPools: string[];
    providers: string[];
    versions: Record<string, string>;
    failed: Record<string, string>;
    unloaded: Record<string, string>;
  } {
    const versions: Record<string, string> = {};
    for (const v of this.versions.values()) versions[v.nodeId] = v.provider;
    // Keyed by version; a version failed or unloaded in both pools lists both reasons.
    const failed: Record<string, string> = {};
    const unloaded: Record<string, string> = {};
    const note = (into: Record<string, string>, id: string, why: string) => {
      const key = toGlobalId('ModelVersion', id);
      into[key] = into[key] ? `${into[key]}; ${why}` : why;
    };
    for (const p of POOLS) {
      for (const [id, why] of this.failures[p]) note(failed, id, `${p} pool: ${why}`);
      for (const [id, b] of this.breakers[p]) if (b.unloadedUntil) note(unloaded, id, b.reason!);
    }
    const of = (p: InferencePool) => ({ threads: p.size, running: p.running, live: p.live, stuck: p.stuckThreads, replaced: p.replacedThreads });
    const pools = { production: of(this.pools.production), shared: of(this.pools.shared) };
    const stuckPools = POOLS.filter((p) => pools[p].live === 0 && pools[p].stuck > 0).map(
      (p) => `inference: the ${p} pool has no live thread: ${pools[p].stuck} threads are stuck in model runs that cannot be stopped; replace this process`,
    );
    return { ready: this.ready, threads: pools.production.threads + pools.shared.threads, pools, stuckPools, providers: [...new Set(Object.values(versions))], versions, failed, unloaded };
  }

  /** Stops listening, writes the prediction log (and its rollups), stops the threads. */
  async close(): Promise<void> {
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    const listener = this.listener;
    this.listener = null;
    await listener?.end().catch(() => undefined);
    await this.reconciling;
    await this.log.close();
    await Promise.all([this.pools.production.close(), this.pools.shared.close()]);
    await this.sql.end();
  }

  /**
   * A provider whose library this machine lacks (CUDA on a CPU machine) is a fact about the
   * machine, said once at info; a provider that is present but failed for a model is a warning.
   */
  private noteFallback(versionId: string, provider: string, fellBack: string[]): void {
    const missing = fellBack.every((f) => /failed to load shared library/i.test(f));
    if (!missing) {
      this.logger.warn({ modelVersion: versionId, provider, fellBack }, 'execution provider fell back');
      return;
    }
    const names = fellBack.map((f) => f.split(':')[0]).join(', ');
    if (this.missingProviders.has(names)) {
      this.logger.debug({ modelVersion: versionId, provider, fellBack }, 'execution provider not available here');
      return;
    }
    this.missingProviders.add(names);
    this.logger.info({ provider, unavailable: fellBack }, `${names} not available on this machine: models run on ${provider} (INFERENCE_PROVIDERS=${provider} skips trying)`);
  }
}

declare module '../core/context' {
  interface AppServices {
    /** Present in API processes that serve predictions. */
    inference?: InferenceEngine;
    /** A model version's rollup bins (null: no reference; see `RollupBins`). The monitoring domain provides them, the assembly wires them. */
    rollupBins(modelVersionId: string): Promise<RollupBins | null>;
  }
}
