import type { EntityManager } from 'typeorm';
import type { RequestContext, TransactionContext } from '../core/context';
import { AppError, ErrorCode } from '../core/errors';
import { InferenceReason } from './inference.errors';
import type { RollupBins } from './rollup-bins';
import { agreementOf } from './shadow-agreement';
import { decisionThreshold, outputNameOf } from './quality-source';
import { mergeRollupStats, outputRowOf, RollupAccumulator, rollupParams, rollupUpsert, ROLLUP_SELECT, scoreValue, statsOfRow, windowOf, type RollupDelta, type RollupStats, type StoredRollupRow } from './window-rollup';

/** Raw log records read per statement while rebuilding. */
const PAGE = 5000;

/** What a rebuild found: the windows it recomputed, and those whose stored rollup differed from the raw log. */
export interface RollupRebuild {
  from: Date;
  to: Date;
  windowSeconds: number;
  /** Rollup rows recomputed from the raw log. */
  rows: number;
  /** Prediction log records and outcomes read. */
  records: number;
  outcomes: number;
  /** Rows whose stored figures differed from the recomputed ones (stored rows without any record count as differing). */
  differing: Array<{ modelVersionId: string; shadow: boolean; windowStart: Date; stored: Partial<RollupStats> | null; recomputed: Partial<RollupStats> | null }>;
  /** Whether the recomputed rows replaced the stored ones (false: verified only). */
  written: boolean;
}

const summary = (s: RollupStats | null) => (s ? { requests: s.requests, errors: s.errors, fallbacks: s.fallbacks, rows: s.rows, unbinned: s.unbinned, labelled: s.labelled } : null);

/**
 * Equal field by field, a key holding 0 being the same as a missing one; numbers within a relative
 * 1e-9: stored sums went through PostgreSQL's numeric addition, in another order than the
 * recomputed ones. (Rounding both to a number of digits instead would call two sums on either
 * side of a rounding boundary different.)
 */
function same(a: unknown, b: unknown): boolean {
  if (typeof a === 'number' && typeof b === 'number') return a === b || Math.abs(a - b) <= 1e-9 * Math.max(Math.abs(a), Math.abs(b));
  if (Array.isArray(a) || Array.isArray(b)) return Array.isArray(a) && Array.isArray(b) && a.length === b.length && a.every((x, i) => same(x, b[i]));
  if (a && b && typeof a === 'object' && typeof b === 'object') {
    const x = a as Record<string, unknown>;
    const y = b as Record<string, unknown>;
    return [...new Set([...Object.keys(x), ...Object.keys(y)])].every((k) => same(k in x ? x[k] : 0, k in y ? y[k] : 0));
  }
  return a === b;
}

/**
 * Recomputes a deployment's window rollups over the windows starting in [from, to) from the raw
 * prediction log and the outcomes, in one REPEATABLE READ transaction: the stored rows of those
 * windows are compared with the recomputed ones and, unless `verifyOnly`, replaced by them.
 * Writers adding to the same windows meanwhile either committed before the snapshot (their records
 * are recomputed) or wait for this transaction and add to the new rows; a write between the
 * snapshot and the replacement fails the transaction, which is retried. `audit` records the
 * rebuild in the same transaction.
 */
export async function rebuildRollups(
  ctx: RequestContext,
  deploymentId: string,
  range: { from: Date; to: Date; verifyOnly?: boolean },
  audit: (ctx: TransactionContext, result: RollupRebuild) => Promise<void>,
): Promise<RollupRebuild> {
  const windowSeconds = ctx.app.config.inference.windowSeconds;
  const from = new Date(windowOf(range.from, windowSeconds));
  const to = range.to;
  for (let attempt = 1; ; attempt++) {
    try {
      return await ctx.app.db.transaction('REPEATABLE READ', async (em) => {
        const result = await recompute(ctx, em, deploymentId, from, to, windowSeconds, range.verifyOnly ?? false);
        await audit({ ...ctx, em }, result);
        return result;
      });
    } catch (e) {
      const code = (e as { driverError?: { code?: string }; code?: string }).driverError?.code ?? (e as { code?: string }).code;
      if (code !== '40001' && code !== '40P01') throw e;
      if (attempt >= 5) {
        throw new AppError(ErrorCode.CONFLICT, 'Predictions kept arriving in these windows while they were rebuilt: rebuild windows that have closed (to at most the start of the current window)', {
          field: 'to',
          reason: InferenceReason.ROLLUPS_BUSY,
        });
      }
    }
  }
}

async function recompute(ctx: RequestContext, em: EntityManager, deploymentId: string, from: Date, to: Date, windowSeconds: number, verifyOnly: boolean): Promise<RollupRebuild> {
  // Windows of another length overlapping the range (the window length was changed) would hold
  // records recomputed here too: refused rather than counted twice.
  const other: Array<{ window_seconds: number }> = await em.query(
    `SELECT DISTINCT window_seconds FROM (
       SELECT window_seconds, window_start FROM prediction_rollup WHERE deployment_id = $1
       UNION ALL SELECT window_seconds, window_start FROM prediction_rollup_delta WHERE deployment_id = $1) w
      WHERE window_seconds <> $2 AND window_start < $4 AND window_start + make_interval(secs => window_seconds) > $3`,
    [deploymentId, windowSeconds, from, new Date(windowOf(new Date(to.getTime() - 1), windowSeconds) + windowSeconds * 1000)],
  );
  if (other.length) {
    throw new AppError(
      ErrorCode.CONFLICT,
      `Windows of ${other.map((o) => o.window_seconds).join(', ')} s overlap this range, written before the window length became ${windowSeconds} s: rebuild a range that holds windows of one length`,
      { field: 'from', reason: InferenceReason.ROLLUP_WINDOW_LENGTH },
    );
  }
  const bins = new Map<string, RollupBins | null>();
  const acc = new RollupAccumulator(windowSeconds, (id) => bins.get(id) ?? null);
  // Records by the windows they fall in: [from, to) widened to whole windows.
  const end = new Date(windowOf(new Date(to.getTime() - 1), windowSeconds) + windowSeconds * 1000);
  let records = 0;
  let after: { at: Date; id: string } | null = null;
  // Each shadow record's served answer: the request it mirrored (same request id and inputs).
  const pairs: Array<{ id: string; outputs: Record<string, unknown> }> = await em.query(
    `SELECT DISTINCT ON (s.id) s.id, p.outputs FROM prediction_log s
       JOIN prediction_log p ON p.deployment_id = s.deployment_id AND p.request_id = s.request_id AND p.inputs_sha256 = s.inputs_sha256
                            AND NOT p.shadow AND p.outputs IS NOT NULL AND p.occurred_at <= s.occurred_at
      WHERE s.deployment_id = $1 AND s.shadow AND s.outputs IS NOT NULL AND s.occurred_at >= $2 AND s.occurred_at < $3
      ORDER BY s.id, p.occurred_at DESC`,
    [deploymentId, from, end],
  );
  const servedFor = new Map(pairs.map((p) => [p.id, p.outputs]));
  for (;;) {
    const page: Array<Record<string, any>> = await em.query(
      `SELECT id, occurred_at, team_id, model_version_id, failed_version_id, shadow, latency_ms, fallback, rows, inputs, outputs
         FROM prediction_log WHERE deployment_id = $1 AND occurred_at >= $2 AND occurred_at < $3
          ${after ? 'AND (occurred_at, id) > ($4, $5)' : ''}
        ORDER BY occurred_at, id LIMIT ${PAGE}`,
      after ? [deploymentId, from, end, after.at, after.id] : [deploymentId, from, end],
    );
    for (const r of page) {
      if (!bins.has(r.model_version_id)) bins.set(r.model_version_id, await ctx.app.rollupBins(r.model_version_id));
      acc.addPrediction({
        deploymentId,
        teamId: r.team_id,
        modelVersionId: r.model_version_id,
        failedVersionId: r.failed_version_id,
        shadow: r.shadow,
        occurredAt: new Date(r.occurred_at),
        latencyMs: Number(r.latency_ms),
        fallback: r.fallback,
        rows: r.rows,
        inputs: r.inputs,
        outputs: r.outputs,
        agreement: r.shadow ? agreementOf(servedFor.get(r.id) ?? null, r.outputs) : null,
      });
    }
    records += page.length;
    if (page.length < PAGE) break;
    const last = page[page.length - 1];
    after = { at: last.occurred_at, id: last.id };
  }
  const outcomes: Array<Record<string, any>> = await em.query(
    `SELECT o.row, o.label, o.recorded_at, p.occurred_at, p.team_id, p.model_version_id, p.outputs, v.metrics, v.reference_profile
       FROM prediction_outcome o JOIN prediction_log p ON p.id = o.prediction_id JOIN model_version v ON v.id = p.model_version_id
      WHERE p.deployment_id = $1 AND p.occurred_at >= $2 AND p.occurred_at < $3`,
    [deploymentId, from, end],
  );
  for (const o of outcomes) {
    acc.addOutcome({
      deploymentId,
      teamId: o.team_id,
      modelVersionId: o.model_version_id,
      occurredAt: new Date(o.occurred_at),
      score: scoreValue(outputRowOf(o.outputs, outputNameOf(o.reference_profile), o.row)),
      threshold: decisionThreshold(o.metrics),
      label: o.label,
      recordedAt: new Date(o.recorded_at),
    });
  }
  const recomputed = acc.deltas();
  // What is stored: the windows' rows and the deltas not folded into them yet, summed per window.
  const range = `WHERE deployment_id = $1 AND window_seconds = $2 AND window_start >= $3 AND window_start < $4`;
  const stored: StoredRollupRow[] = await em.query(
    `SELECT ${ROLLUP_SELECT} FROM prediction_rollup ${range} UNION ALL SELECT ${ROLLUP_SELECT} FROM prediction_rollup_delta ${range}`,
    [deploymentId, windowSeconds, from, end],
  );
  const key = (v: string, shadow: boolean, start: number) => `${v}/${shadow}/${start}`;
  const storedByKey = new Map<string, { model_version_id: string; shadow: boolean; window_start: Date; stats: RollupStats }>();
  for (const r of stored) {
    const k = key(r.model_version_id, r.shadow, new Date(r.window_start).getTime());
    const s = storedByKey.get(k);
    if (s) mergeRollupStats(s.stats, statsOfRow(r));
    else storedByKey.set(k, { model_version_id: r.model_version_id, shadow: r.shadow, window_start: r.window_start, stats: statsOfRow(r) });
  }
  const differing: RollupRebuild['differing'] = [];
  for (const d of recomputed) {
    const k = key(d.modelVersionId, d.shadow, d.windowStart);
    const s = storedByKey.get(k);
    storedByKey.delete(k);
    // Label delays depend on when outcomes arrived, which the rebuild reads as recorded: compared apart from them.
    const mine = { ...d.stats, labelDelay: {} };
    const theirs = s ? { ...s.stats, labelDelay: {} } : null;
    if (!theirs || !same(theirs, mine)) {
      differing.push({ modelVersionId: d.modelVersionId, shadow: d.shadow, windowStart: new Date(d.windowStart), stored: summary(theirs), recomputed: summary(d.stats) });
    }
  }
  for (const s of storedByKey.values()) {
    differing.push({ modelVersionId: s.model_version_id, shadow: s.shadow, windowStart: new Date(s.window_start), stored: summary(s.stats), recomputed: null });
  }
  if (!verifyOnly) {
    await em.query(`DELETE FROM prediction_rollup ${range}`, [deploymentId, windowSeconds, from, end]);
    await em.query(`DELETE FROM prediction_rollup_delta ${range}`, [deploymentId, windowSeconds, from, end]);
    if (recomputed.length) await em.query(rollupUpsert(1), rollupParams(recomputed as RollupDelta[]));
  }
  return { from, to: end, windowSeconds, rows: recomputed.length, records, outcomes: outcomes.length, differing, written: !verifyOnly };
}
