import { Counter, Gauge } from 'prom-client';
import { METRIC_PREFIX, type Metrics } from '../metrics';
import { withTimeout } from '../timeout';
import { QUEUES, type Queues } from './queues';

/** The job states read at each scrape. */
const STATES = ['waiting', 'active', 'delayed', 'failed'] as const;

/** How long a scrape waits for Redis before it answers without the queue depths. */
const READ_TIMEOUT_MS = 1000;

/**
 * `modelgov_queue_jobs{queue, state}`: the jobs of every queue by state, read from BullMQ at each
 * scrape (one round trip per queue). While Redis does not answer, the depths are left out of that
 * scrape (a stale figure would look like a healthy queue) and `modelgov_queue_scrape_errors_total` counts it.
 */
export function registerQueueMetrics(metrics: Metrics, queues: Queues): void {
  const errors = new Counter({
    name: `${METRIC_PREFIX}queue_scrape_errors_total`,
    help: 'Scrapes that could not read the queue depths (Redis down or slow)',
    registers: [metrics.registry],
  });
  new Gauge({
    name: `${METRIC_PREFIX}queue_jobs`,
    help: 'Jobs of each queue by state (waiting, active, delayed, failed), read at the scrape',
    labelNames: ['queue', 'state'] as const,
    registers: [metrics.registry],
    async collect() {
      this.reset();
      // Without a connection, asking would only wait for the timeout.
      if (queues.connection.status !== 'ready') {
        errors.inc();
        return;
      }
      try {
        const names = Object.values(QUEUES);
        const counts = await withTimeout(Promise.all(names.map((q) => queues.get(q).getJobCounts(...STATES))), READ_TIMEOUT_MS);
        names.forEach((queue, i) => {
          for (const state of STATES) this.set({ queue, state }, counts[i][state] ?? 0);
        });
      } catch {
        errors.inc();
      }
    },
  });
}
