import type { AppServices, RequestContext } from './context';

/** What readiness found, for a caller allowed to see it. */
export interface ReadinessDetails {
  /** Why the process is not ready (empty when it is). */
  reasons: string[];
  postgres: string;
  redis: string;
  /** The inference engine: threads, providers, served versions and failed loads. */
  inference?: unknown;
  /** Whether the prediction log can write, and why not. */
  predictionLog?: unknown;
}

/** One readiness answer: the verdict, and the details when the caller may see them (else null). */
export interface Readiness {
  ready: boolean;
  details: ReadinessDetails | null;
}

const CHECK_TIMEOUT_MS = 2000;

async function check(f: () => Promise<unknown>): Promise<string> {
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([f(), new Promise((_, reject) => (timer = setTimeout(() => reject(new Error('timeout')), CHECK_TIMEOUT_MS)))]);
    return 'ok';
  } catch (e) {
    return `down: ${(e as Error).message}`;
  } finally {
    clearTimeout(timer);
  }
}

/**
 * The readiness of this process, the one answer behind `GET /readyz` and the Open Inference
 * Protocol's `GET /v2/health/ready`, so the two always agree. Ready when PostgreSQL and Redis
 * answer, every routed model version is loaded, no inference pool is left without a live thread by
 * threads stuck in runs (only replacing the process frees them), and the prediction log can write
 * (its buffer is not full and its writes have not been failing for more than a few seconds).
 *
 * The details (served version ids, providers, failures, the log's state) are for principals who
 * may `read` `Metrics`, as `/metrics` is; anyone else, anonymous probes included, gets the verdict
 * alone. `viewer` builds the caller's context; a caller it cannot identify is treated as anonymous.
 */
export async function readiness(app: AppServices, viewer: () => Promise<RequestContext>): Promise<Readiness> {
  const [postgres, redis, ctx] = await Promise.all([
    check(() => app.db.query('SELECT 1')),
    check(() => app.redis.ping()),
    viewer().catch(() => null),
  ]);
  const serving = app.inference?.status();
  const log = app.inference?.log.state();
  const reasons: string[] = [];
  if (postgres !== 'ok') reasons.push(`postgres ${postgres}`);
  if (redis !== 'ok') reasons.push(`redis ${redis}`);
  if (serving && !serving.ready) reasons.push('inference: the served model versions are still loading');
  if (serving) reasons.push(...serving.stuckPools);
  if (log && !log.writable) reasons.push(`prediction log: ${log.reason}`);
  const ready = reasons.length === 0;
  const maySee = !!ctx?.principal && ctx.ability.can('read', 'Metrics');
  return {
    ready,
    details: maySee ? { reasons, postgres, redis, ...(serving ? { inference: serving } : {}), ...(log ? { predictionLog: log } : {}) } : null,
  };
}
