import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';

/** Every metric name begins with it. */
export const METRIC_PREFIX = 'modelgov_';

/**
 * prom-client's default metrics that are gauges named `*_total` (`promtool check metrics`: "non-counter
 * metrics should not have _total suffix"). Each is the sum of a gauge it also exposes, labelled by
 * type (`nodejs_active_handles{type}` and so on): `sum()` of that gives the same figure.
 */
const DEFAULT_GAUGES_NAMED_TOTAL = ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total'];

/** HTTP request durations, seconds: from a cached read to a slow upload. */
const HTTP_BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

/** This program's version, from its package.json (found above this file, built or not). */
function programVersion(): string {
  for (let dir = __dirname, i = 0; i < 5; i++, dir = path.dirname(dir)) {
    const file = path.join(dir, 'package.json');
    if (!existsSync(file)) continue;
    try {
      const pkg = JSON.parse(readFileSync(file, 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'modelgov' && pkg.version) return pkg.version;
    } catch {
      // unreadable: look further up
    }
  }
  return 'unknown';
}

/**
 * The Prometheus metrics of one process, on one registry (own registry, so several servers in one
 * process never share counters): the process and Node.js defaults, `modelgov_build_info`, HTTP
 * requests and GraphQL operations (counted by `http-metrics`). Domains register theirs on `registry` (see `counterOn`); GET
 * /metrics serves it. Labels carry names and bounded classes, never ids, principals or raw paths.
 */
export class Metrics {
  readonly registry = new Registry();

  readonly httpRequests = new Counter({
    name: `${METRIC_PREFIX}http_requests_total`,
    help: 'HTTP requests answered, by method, route template (unmatched: no route) and status class (2xx, 4xx, …)',
    labelNames: ['method', 'route', 'status'] as const,
    registers: [this.registry],
  });

  readonly httpDuration = new Histogram({
    name: `${METRIC_PREFIX}http_request_duration_seconds`,
    help: 'Time from receiving an HTTP request to the end of its answer, by method, route template and status class',
    labelNames: ['method', 'route', 'status'] as const,
    buckets: HTTP_BUCKETS,
    registers: [this.registry],
  });

  readonly graphqlOperations = new Counter({
    name: `${METRIC_PREFIX}graphql_operations_total`,
    help: 'GraphQL operations over HTTP, by operation type (query, mutation, subscription; unknown when it did not parse) and outcome (ok, error: answered with errors, invalid: refused before running)',
    labelNames: ['operation_type', 'outcome'] as const,
    registers: [this.registry],
  });

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: METRIC_PREFIX });
    for (const name of DEFAULT_GAUGES_NAMED_TOTAL) this.registry.removeSingleMetric(`${METRIC_PREFIX}${name}`);
    new Gauge({
      name: `${METRIC_PREFIX}build_info`,
      help: 'Always 1; its labels say which build runs: version (of modelgov) and node (the Node.js version)',
      labelNames: ['version', 'node'] as const,
      registers: [this.registry],
    }).set({ version: programVersion(), node: process.version }, 1);
  }

  /** A counter on this registry: the one already registered under `name`, or a new one. */
  counter<L extends string>(config: { name: string; help: string; labelNames: readonly L[] }): Counter<L> {
    return (this.registry.getSingleMetric(config.name) as Counter<L> | undefined) ?? new Counter({ ...config, registers: [this.registry] });
  }
}
