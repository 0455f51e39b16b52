import { Counter, Gauge, Histogram, Registry } from 'prom-client';

/** Latency buckets, seconds: sub-millisecond resolution where in-process inference lives. */
const LATENCY_BUCKETS = [0.00025, 0.0005, 0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.256, 0.512, 1.024, 2.048];

/**
 * The inference engine's Prometheus metrics, on the registry GET /metrics serves (the process's own
 * by default). Labels are readable and bounded: `deployment` is `team:deployment` (as on the Open
 * Inference paths), `model_version` is `model:vN`, both of what the engine routes to; never ids or principals.
 */
export class ServingMetrics {
  readonly predictions = new Counter({
    name: 'modelgov_predictions_total',
    help: 'Prediction requests by deployment, model version, role (served or shadow) and outcome (ok, error, timeout, skipped: its circuit breaker was open)',
    labelNames: ['deployment', 'model_version', 'role', 'outcome'] as const,
    registers: [this.registry],
  });

  readonly rows = new Counter({
    name: 'modelgov_prediction_rows_total',
    help: 'Rows predicted, by deployment and model version',
    labelNames: ['deployment', 'model_version'] as const,
    registers: [this.registry],
  });

  readonly fallbacks = new Counter({
    name: 'modelgov_prediction_fallbacks_total',
    help: 'Requests answered by the fallback version, by deployment and the model version that failed',
    labelNames: ['deployment', 'model_version'] as const,
    registers: [this.registry],
  });

  readonly latency = new Histogram({
    name: 'modelgov_prediction_latency_seconds',
    help: 'Time from accepting a prediction request to having its outputs, by deployment, model version and role',
    labelNames: ['deployment', 'model_version', 'role'] as const,
    buckets: LATENCY_BUCKETS,
    registers: [this.registry],
  });

  readonly batchRequests = new Histogram({
    name: 'modelgov_inference_batch_requests',
    help: 'Requests stacked into one runtime call (micro-batching)',
    labelNames: ['model_version'] as const,
    buckets: [1, 2, 4, 8, 16, 32, 64, 128],
    registers: [this.registry],
  });

  readonly splitRuns = new Counter({
    name: 'modelgov_inference_split_runs_total',
    help: 'Runs split by rows across inference threads that would otherwise have stayed idle',
    labelNames: ['model_version'] as const,
    registers: [this.registry],
  });

  /** The served series of each deployment and version, made once: a label set is validated and hashed on every lookup. */
  private readonly servedSeries = new Map<string, { ok: { inc(): void }; latency: { observe(v: number): void }; rows: { inc(n: number): void } }>();

  /**
   * Counts a served request that ran and answered (`outcome` ok): one prediction, its latency and
   * its rows, on the same series as `predictions`, `latency` and `rows` with `role` served.
   */
  servedOk(deployment: string, modelVersion: string, seconds: number, rows: number): void {
    const key = `${deployment}\u0000${modelVersion}`;
    let s = this.servedSeries.get(key);
    if (!s) {
      const labels = { deployment, model_version: modelVersion };
      s = { ok: this.predictions.labels({ ...labels, role: 'served', outcome: 'ok' }), latency: this.latency.labels({ ...labels, role: 'served' }), rows: this.rows.labels(labels) };
      this.servedSeries.set(key, s);
    }
    s.ok.inc();
    s.latency.observe(seconds);
    s.rows.inc(rows);
  }

  readonly rateLimited = new Counter({
    name: 'modelgov_prediction_rate_limited_total',
    help: 'Prediction requests refused by the per-principal rate limit',
    registers: [this.registry],
  });

  readonly logWritten = new Counter({
    name: 'modelgov_prediction_log_written_total',
    help: 'Prediction log records written to the database',
    registers: [this.registry],
  });

  readonly logQuarantined = new Counter({
    name: 'modelgov_prediction_log_quarantined_total',
    help: 'Prediction log records the database refused (their data), moved to prediction_log_quarantine',
    registers: [this.registry],
  });

  readonly logWriteFailures = new Counter({
    name: 'modelgov_prediction_log_write_failures_total',
    help: 'Failed prediction log writes (the records stay buffered and are retried)',
    registers: [this.registry],
  });

  constructor(
    readonly registry: Registry,
    gauges: { queued: () => number; logBuffered: () => number; threads: () => number; replacedThreads: () => number; stuckThreads: () => Record<string, number> },
  ) {
    new Gauge({ name: 'modelgov_inference_queued_requests', help: 'Requests waiting for an inference thread', registers: [this.registry], collect() { this.set(gauges.queued()); } });
    new Gauge({ name: 'modelgov_inference_threads', help: 'Inference threads', registers: [this.registry], collect() { this.set(gauges.threads()); } });
    // Counted by the pools; read at the scrape, as a counter (it only grows).
    let replaced = 0;
    new Counter({
      name: 'modelgov_inference_threads_replaced_total',
      help: 'Inference threads replaced after a stuck run or a crash',
      registers: [this.registry],
      collect() {
        const now = gauges.replacedThreads();
        if (now > replaced) this.inc(now - replaced);
        replaced = Math.max(replaced, now);
      },
    });
    new Gauge({
      name: 'modelgov_inference_threads_stuck',
      help: 'Retired inference threads stuck in a model run that cannot be stopped, by pool; each holds a core until the process exits',
      labelNames: ['pool'] as const,
      registers: [this.registry],
      collect() {
        for (const [pool, n] of Object.entries(gauges.stuckThreads())) this.set({ pool }, n);
      },
    });
    new Gauge({ name: 'modelgov_prediction_log_buffered', help: 'Prediction log records waiting to be written', registers: [this.registry], collect() { this.set(gauges.logBuffered()); } });
  }
}
