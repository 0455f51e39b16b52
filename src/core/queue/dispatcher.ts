import { Client, Pool } from 'pg';
import { inPoolTransaction, withDefaultUser } from '../database';
import type { Logger } from '../logger';
import type { RateLimitedLog } from '../rate-limited-log';
import { withTimeout } from '../timeout';
import { OUTBOX_CHANNEL } from './outbox';
import type { Queues, QueueName } from './queues';

interface PendingRow {
  id: string;
  queue: QueueName;
  job_name: string;
  job_id: string;
  payload: object;
  dispatch_attempts: number;
}

export interface DispatcherOptions {
  batchSize?: number;
  /** How often to look for work when no notification arrives (also the retry tick). */
  pollMs?: number;
  /** Longest wait between retries of an entry Redis refused. */
  maxBackoffMs?: number;
  /** BullMQ attempts and backoff for the jobs it adds. */
  jobAttempts: number;
  /** Where failures that repeat while Redis or PostgreSQL is away are reported, rate-limited (else each is logged). */
  connectionLogs?: { redis: RateLimitedLog; postgres: RateLimitedLog };
}

/**
 * Moves committed outbox entries to BullMQ. Several dispatchers (one per API instance) can run
 * at once: each batch is claimed with FOR UPDATE SKIP LOCKED. An entry is marked dispatched only
 * after BullMQ accepted it; if Redis is unreachable the entry stays, with a growing backoff, and is
 * handed over once Redis is back. Adding a job whose id BullMQ already holds is a no-op, so a crash
 * between the add and the mark does not duplicate work.
 */
export class OutboxDispatcher {
  private listener: Client | null = null;
  // Its own small pool: the dispatcher's polling is infrastructure, not the statements of a request.
  private readonly pool: Pool;
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;
  private again = false;
  private stopped = false;

  constructor(
    private readonly databaseUrl: string,
    private readonly queues: Queues,
    private readonly log: Logger,
    private readonly opts: DispatcherOptions,
  ) {
    this.pool = new Pool({ connectionString: withDefaultUser(databaseUrl), max: 2, application_name: 'modelgov-dispatcher' });
    this.pool.on('error', (e) => this.pgWarn({ err: e.message }, 'dispatcher pool error'));
  }

  async start(): Promise<void> {
    try {
      this.listener = new Client({ connectionString: withDefaultUser(this.databaseUrl) });
      this.listener.on('error', (e) => this.log.warn({ err: e.message }, 'outbox listener lost; polling'));
      await this.listener.connect();
      this.listener.on('notification', () => this.kick());
      await this.listener.query(`LISTEN ${OUTBOX_CHANNEL}`);
    } catch (e) {
      this.log.warn({ err: (e as Error).message }, 'outbox listener unavailable; polling');
    }
    this.schedule();
    this.kick();
  }

  /** Looks for work now (coalesced with a pass already under way). */
  kick(): void {
    if (this.stopped) return;
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = this.drain()
      .then(() => this.opts.connectionLogs?.postgres.clear('dispatcher'))
      .catch((e) => this.pgWarn({ err: (e as Error).message }, 'outbox dispatch failed'))
      .finally(() => {
        this.running = null;
        if (this.again) {
          this.again = false;
          this.kick();
        }
      });
  }

  /** Resolves when every entry available now has been handed over (or refused this round). */
  async flush(): Promise<void> {
    this.kick();
    while (this.running) await this.running;
  }

  // A pass fails each poll while PostgreSQL is away: one outage, logged as one.
  private pgWarn(fields: Record<string, unknown>, msg: string): void {
    if (this.opts.connectionLogs) this.opts.connectionLogs.postgres.warn('dispatcher', fields, msg);
    else this.log.warn(fields, msg);
  }

  private schedule(): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.kick();
      this.schedule();
    }, this.opts.pollMs ?? 1000);
    this.timer.unref();
  }

  private passes = 0;

  private async drain(): Promise<void> {
    // Dispatched entries are kept a week (to answer "was it handed over?"), then removed in batches.
    if (this.passes++ % 600 === 0) {
      await this.pool
        .query(`DELETE FROM outbox_entry WHERE id IN (SELECT id FROM outbox_entry WHERE dispatched_at < now() - interval '7 days' LIMIT 5000)`)
        .catch((e) => this.log.warn({ err: (e as Error).message }, 'outbox pruning failed'));
    }
    const batch = this.opts.batchSize ?? 100;
    for (;;) {
      const moved = await this.inTransaction(async (em) => {
        const rows: PendingRow[] = await em.query(
          `SELECT id, queue, job_name, job_id, payload, dispatch_attempts FROM outbox_entry
           WHERE dispatched_at IS NULL AND available_at <= now()
           ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED`,
          [batch],
        );
        // One round trip per queue for the whole batch; when that fails with Redis up (an entry
        // BullMQ refuses), entry by entry, so that one bad entry holds back only itself.
        if (rows.length && this.queues.connection.status === 'ready') {
          try {
            await this.addBatch(em, rows);
            return rows.length < batch ? 0 : rows.length;
          } catch (e) {
            this.log.warn({ err: (e as Error).message, entries: rows.length }, 'outbox batch refused; handing entries over one by one');
          }
        }
        let done = 0;
        for (const row of rows) {
          try {
            // BullMQ waits for Redis indefinitely: fail fast instead, and keep the entry for later.
            if (this.queues.connection.status !== 'ready') throw new Error(`redis is ${this.queues.connection.status}`);
            await withTimeout(this.queues.get(row.queue).add(row.job_name, row.payload, { jobId: row.job_id, ...this.jobOptions() }), 5000);
            await em.query(`UPDATE outbox_entry SET dispatched_at = now(), dispatch_attempts = dispatch_attempts + 1, last_error = NULL WHERE id = $1`, [row.id]);
            done += 1;
          } catch (e) {
            const backoff = Math.min(this.opts.maxBackoffMs ?? 30_000, 500 * 2 ** Math.min(row.dispatch_attempts, 10));
            await em.query(
              `UPDATE outbox_entry SET dispatch_attempts = dispatch_attempts + 1, last_error = $2, available_at = now() + ($3 || ' milliseconds')::interval WHERE id = $1`,
              [row.id, String((e as Error).message).slice(0, 500), String(backoff)],
            );
            const fields = { jobId: row.job_id, queue: row.queue, err: (e as Error).message, retryInMs: backoff };
            // With Redis away every pass says so: part of the outage's log (cleared when the connection is back).
            if (this.opts.connectionLogs && this.queues.connection.status !== 'ready') this.opts.connectionLogs.redis.warn('queues', fields, 'queue unavailable; job kept in the outbox');
            else this.log.warn(fields, 'queue unavailable; job kept in the outbox');
            // Redis is likely down: stop this pass, the rest of the batch keeps its place.
            return -1;
          }
        }
        return rows.length < batch ? 0 : done;
      });
      if (moved <= 0) return;
    }
  }

  private jobOptions() {
    return {
      attempts: this.opts.jobAttempts,
      backoff: { type: 'exponential', delay: 2000 },
      removeOnComplete: { age: 24 * 3600, count: 10_000 },
      removeOnFail: { age: 7 * 24 * 3600 },
    };
  }

  /** Hands `rows` to BullMQ, one `addBulk` per queue, and marks them dispatched (all, or none on failure). */
  private async addBatch(em: { query: (text: string, params?: unknown[]) => Promise<any[]> }, rows: PendingRow[]): Promise<void> {
    const byQueue = new Map<QueueName, PendingRow[]>();
    for (const row of rows) byQueue.set(row.queue, [...(byQueue.get(row.queue) ?? []), row]);
    for (const [queue, list] of byQueue) {
      await withTimeout(this.queues.get(queue).addBulk(list.map((row) => ({ name: row.job_name, data: row.payload, opts: { jobId: row.job_id, ...this.jobOptions() } }))), 5000);
    }
    await em.query(`UPDATE outbox_entry SET dispatched_at = now(), dispatch_attempts = dispatch_attempts + 1, last_error = NULL WHERE id = ANY($1::bigint[])`, [rows.map((r) => r.id)]);
  }

  private inTransaction<T>(work: (client: { query: (text: string, params?: unknown[]) => Promise<any[]> }) => Promise<T>): Promise<T> {
    return inPoolTransaction(this.pool, (client) => work({ query: async (text, params) => (await client.query(text, params)).rows }));
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    while (this.running) await this.running;
    await this.listener?.end().catch(() => undefined);
    await this.pool.end().catch(() => undefined);
  }
}
