import type { Logger } from '../core/logger';
import { mergeRollupStats, rollupParams, rollupUpsert, ROLLUP_SELECT, statsOfRow, type RollupDelta, type StoredRollupRow } from './window-rollup';

/** Deltas folded per transaction. */
const BATCH = 5000;

/** Something that runs a function in one database transaction, giving it a way to query. */
export type InTransaction = <T>(work: (q: { query(sql: string, params?: unknown[]): Promise<any> }) => Promise<T>) => Promise<T>;

// A TypeORM query answers rows, a pg client a result holding them.
const rowsOf = <T>(result: any): T[] => (Array.isArray(result) ? result : result.rows);

/**
 * Folds appended rollup deltas into their windows' rows every `everyMs`, each fold one transaction
 * (a delta is either still a delta or already in its row, never both nor neither): up to 5,000
 * deltas are taken (deleted; those another folder holds are skipped, so any number of processes
 * fold at once), summed per window here, and each sum is added to its row under the row's lock
 * (`rollup_add`) in key order — one merge per window per fold, whatever the number of batches. A
 * failed fold changes nothing and is tried again at the next tick.
 */
export class RollupCompactor {
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<number> | null = null;
  private failing = false;

  constructor(
    private readonly inTransaction: InTransaction,
    private readonly log: Logger,
    private readonly everyMs = 1000,
  ) {}

  start(): void {
    this.timer = setInterval(() => void this.compact().catch(() => undefined), this.everyMs);
    this.timer.unref();
  }

  /** Folds every delta there is now; resolves with how many. */
  compact(): Promise<number> {
    if (this.running) return this.running.then(() => this.compact());
    this.running = (async () => {
      let total = 0;
      try {
        for (;;) {
          const n = await this.inTransaction((q) => fold(q));
          total += n;
          if (n < BATCH) break;
        }
        if (this.failing) this.log.info('rollup deltas are folded again');
        this.failing = false;
      } catch (e) {
        // Logged once per run of failures: the deltas wait, and readers count them meanwhile.
        if (!this.failing) this.log.warn({ err: (e as Error).message }, 'rollup deltas could not be folded; retrying');
        this.failing = true;
        throw e;
      } finally {
        this.running = null;
      }
      return total;
    })();
    return this.running;
  }

  async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.running?.catch(() => undefined);
  }
}

async function fold(q: { query(sql: string, params?: unknown[]): Promise<any> }): Promise<number> {
  const taken = rowsOf<StoredRollupRow & { deployment_id: string }>(
    await q.query(
      `WITH taken AS (
         DELETE FROM prediction_rollup_delta WHERE id IN (SELECT id FROM prediction_rollup_delta ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED)
         RETURNING deployment_id, ${ROLLUP_SELECT}
       ) SELECT * FROM taken`,
      [BATCH],
    ),
  );
  if (!taken.length) return 0;
  const sums = new Map<string, RollupDelta>();
  for (const r of taken) {
    const windowStart = new Date(r.window_start).getTime();
    const key = `${r.deployment_id}/${r.model_version_id}/${r.shadow}/${windowStart}/${r.window_seconds}`;
    const sum = sums.get(key);
    if (sum) mergeRollupStats(sum.stats, statsOfRow(r));
    else sums.set(key, { deploymentId: r.deployment_id, modelVersionId: r.model_version_id, shadow: r.shadow, windowStart, windowSeconds: r.window_seconds, teamId: r.team_id, stats: statsOfRow(r) });
  }
  const rows = [...sums.values()].sort(
    (a, b) => a.deploymentId.localeCompare(b.deploymentId) || a.modelVersionId.localeCompare(b.modelVersionId) || Number(a.shadow) - Number(b.shadow) || a.windowStart - b.windowStart || a.windowSeconds - b.windowSeconds,
  );
  await q.query(rollupUpsert(1), rollupParams(rows));
  return taken.length;
}
