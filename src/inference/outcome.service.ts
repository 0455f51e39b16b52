import type { EntityManager } from 'typeorm';
import { canonicalJson, sha256Hex } from '../core/canonical-json';
import type { RequestContext } from '../core/context';
import { inTransaction } from '../core/context';
import { audit } from '../core/audit/audit-chain';
import { assertCan } from '../core/authz';
import { AppError, badInput, ErrorCode } from '../core/errors';
import { expectId, toGlobalId } from '../core/global-id';
import { assertStorable } from '../core/validation';
import { hiddenRowError } from '../lineage/lineage.service';
import { Deployment } from '../rollouts/deployment.entity';
import { InferenceReason } from './inference.errors';
import { checkRequestKey } from './request-key';
import { decisionThreshold, outputNameOf } from './quality-source';
import { RollupAccumulator, rollupDeltaInsert, rollupParams, scoreValue, outputRowOf } from './window-rollup';

/** Outcomes one `recordOutcomes` call (or one batch of `POST /outcomes`) takes at most. */
export const MAX_OUTCOMES_PER_CALL = 1000;
/** The largest label, as canonical JSON. */
export const MAX_LABEL_BYTES = 16 * 1024;
/** The highest row index an outcome may name (the prediction's own row count bounds it further). */
const MAX_ROW = 1_000_000;
// Outcome writes of one deployment are serialised: the same row sent twice at once is decided once.
const OUTCOME_LOCK = 0x6d676f63; // "mgoc"

const FIELDS = new Set(['prediction', 'row', 'requestKey', 'label', 'observedAt', 'correct']);

/** One outcome as every transport checks it: the prediction (by id or request key), its row, the label. */
export interface CheckedOutcome {
  /** Raw prediction id, or null when joined by request key. */
  predictionId: string | null;
  requestKey: string | null;
  row: number | null;
  label: unknown;
  labelSha256: string;
  observedAt: Date | null;
  correct: boolean;
}

const invalid = (message: string, field: string) => badInput(message, { field, reason: InferenceReason.INVALID_OUTCOME });
/** `name` under `prefix` (a bulk line's fields have no prefix). */
const at = (prefix: string, name: string) => (prefix ? `${prefix}.${name}` : name);

/**
 * The one check of an outcome, whatever the transport (a `recordOutcomes` list item, a line of
 * `POST /outcomes`): an object of the known fields only; exactly one of `prediction` (a Prediction
 * ID) and `requestKey`; `row` an index from 0; `label` any JSON value but null, at most
 * {@link MAX_LABEL_BYTES} as canonical JSON; `observedAt` a time; `correct` a boolean. Every string
 * passes the shared storable-input check. Throws BAD_USER_INPUT naming the `field`.
 */
export function checkOutcome(value: unknown, field: string): CheckedOutcome {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw invalid(`${field || 'an outcome'} must be an object`, field || 'outcome');
  assertStorable(value, field);
  const o = value as Record<string, unknown>;
  const unknown = Object.keys(o).find((k) => !FIELDS.has(k));
  if (unknown !== undefined) throw invalid(`${at(field, unknown)} is not a field of an outcome`, at(field, unknown));
  const given = (k: string) => o[k] !== undefined && o[k] !== null;
  if (given('prediction') === given('requestKey')) throw invalid(`${field || 'an outcome'} must name its prediction by exactly one of prediction and requestKey`, at(field, 'prediction'));
  const predictionId = given('prediction') ? expectId(o.prediction as string, 'Prediction', at(field, 'prediction')) : null;
  const requestKey = given('requestKey') ? checkRequestKey(o.requestKey, at(field, 'requestKey')) : null;
  let row: number | null = null;
  if (given('row')) {
    if (!Number.isInteger(o.row) || (o.row as number) < 0 || (o.row as number) > MAX_ROW) throw invalid(`${at(field, 'row')} must be a row index from 0`, at(field, 'row'));
    row = o.row as number;
  }
  if (!given('label')) throw invalid(`${at(field, 'label')} is required`, at(field, 'label'));
  let labelJson: string;
  try {
    labelJson = canonicalJson(o.label);
  } catch (e) {
    throw invalid(`${at(field, 'label')} is not representable as JSON: ${(e as Error).message}`, at(field, 'label'));
  }
  if (Buffer.byteLength(labelJson) > MAX_LABEL_BYTES) throw invalid(`${at(field, 'label')} is larger than ${MAX_LABEL_BYTES} bytes`, at(field, 'label'));
  let observedAt: Date | null = null;
  if (given('observedAt')) {
    observedAt = o.observedAt instanceof Date ? o.observedAt : typeof o.observedAt === 'string' ? new Date(o.observedAt) : new Date(NaN);
    if (Number.isNaN(observedAt.getTime())) throw invalid(`${at(field, 'observedAt')} is not a valid time`, at(field, 'observedAt'));
  }
  if (given('correct') && typeof o.correct !== 'boolean') throw invalid(`${at(field, 'correct')} must be a boolean`, at(field, 'correct'));
  return { predictionId, requestKey, row, label: JSON.parse(labelJson), labelSha256: sha256Hex(labelJson), observedAt, correct: o.correct === true };
}

/** What happened to one outcome. */
export type OutcomeStatus = 'RECORDED' | 'DUPLICATE' | 'CORRECTED' | 'REJECTED';

/** One outcome as a transport hands it over: its position, and the value (or why it could not even be read). */
export type OutcomeItem = { index: number; value: unknown } | { index: number; error: AppError };

export interface OutcomeResult {
  /** The outcome's position: its index in the call's list (from 0), or its line of the bulk body (from 1). */
  index: number;
  status: OutcomeStatus;
  /** The prediction's global ID, once known. */
  prediction: string | null;
  row: number | null;
  /** Why it was refused (REJECTED only). */
  error: { code: ErrorCode; reason: string | null; message: string; field: string | null } | null;
}

export interface OutcomeSummary {
  received: number;
  recorded: number;
  duplicate: number;
  corrected: number;
  rejected: number;
  /** sha256 over the results in order (`index:status:prediction:row:label sha256`, one a line): what the audit event records. */
  digest: string;
  results: OutcomeResult[];
}

/** The deployment's columns the policy tests. */
export type OutcomeDeployment = Pick<Deployment, 'id' | 'teamId' | 'environment' | 'createdBy'>;

/**
 * The deployment outcomes are sent for, if the caller may record them: one it may not read is
 * answered like a missing one (NOT_FOUND, a refused attempt), one it may read but not
 * `recordOutcome` on is FORBIDDEN. Transports record the refusal (the GraphQL guard, the REST route).
 */
export async function outcomeDeployment(ctx: RequestContext, deployment: string): Promise<OutcomeDeployment> {
  const id = expectId(deployment, 'Deployment', 'deployment');
  const row = await ctx.loaders
    .scope(ctx.app.db.getRepository(Deployment).createQueryBuilder('x').select(['x.id', 'x.teamId', 'x.environment', 'x.createdBy']).where('x.id = :id', { id }), 'Deployment', 'x')
    .getOne();
  if (!row) throw hiddenRowError('Deployment', id, deployment);
  assertCan(ctx, 'recordOutcome', 'Deployment', row);
  return row;
}

/** `recordOutcomes`: up to {@link MAX_OUTCOMES_PER_CALL} outcomes of one deployment, answered per item. */
export async function recordOutcomes(ctx: RequestContext, input: { deployment: string; outcomes: unknown[] }): Promise<OutcomeSummary> {
  if (input.outcomes.length > MAX_OUTCOMES_PER_CALL) {
    throw badInput(`At most ${MAX_OUTCOMES_PER_CALL} outcomes per call; send backfills to POST /outcomes`, { field: 'outcomes', reason: InferenceReason.TOO_MANY_OUTCOMES });
  }
  if (input.outcomes.length === 0) throw invalid('outcomes must hold at least one outcome', 'outcomes');
  const deployment = await outcomeDeployment(ctx, input.deployment);
  return recordOutcomeBatch(ctx, deployment, input.outcomes.map((value, index) => ({ index, value })), { source: 'graphql' });
}

interface LoggedPrediction {
  id: string;
  rows: number;
  modelVersionId: string;
}

const rejected = (index: number, e: AppError, prediction: string | null = null, row: number | null = null): OutcomeResult => ({
  index,
  status: 'REJECTED',
  prediction,
  row,
  error: { code: e.code, reason: (e.details.reason as string | undefined) ?? null, message: e.message, field: (e.details.field as string | undefined) ?? null },
});

/**
 * Records one batch of outcomes of `deployment` (already authorised) in one transaction, with one
 * audit event holding the counts, the digest and every correction. Each outcome is checked and
 * joined on its own: one that cannot be (malformed, unknown prediction, a conflicting label) is
 * reported and the rest are kept. The same label again is a DUPLICATE and changes nothing; a
 * different label for a labelled row is a CONFLICT unless `correct: true`.
 */
export async function recordOutcomeBatch(
  ctx: RequestContext,
  deployment: OutcomeDeployment,
  items: OutcomeItem[],
  about: { source: 'graphql' | 'bulk'; batch?: number },
): Promise<OutcomeSummary> {
  // Predictions this instance answered a moment ago may still wait in its log's buffer.
  await ctx.app.inference?.log.flush();
  // Fields are named as the transport shows them: `outcomes.3.label` in a call, `label` on a line.
  const prefixOf = (index: number) => (about.source === 'graphql' ? `outcomes.${index}` : '');
  return inTransaction(ctx, async (em, ctx) => {
    await em.query('SELECT pg_advisory_xact_lock($1, hashtext($2))', [OUTCOME_LOCK, deployment.id]);
    const checked = items.map((item) => {
      if ('error' in item) return { index: item.index, error: item.error };
      try {
        return { index: item.index, outcome: checkOutcome(item.value, prefixOf(item.index)) };
      } catch (e) {
        if (e instanceof AppError) return { index: item.index, error: e };
        throw e;
      }
    });
    const ok = checked.flatMap((c) => ('outcome' in c && c.outcome ? [c.outcome] : []));

    // The answered (not shadow, not failed) predictions of this deployment the batch names.
    const ids = [...new Set(ok.flatMap((o) => (o.predictionId ? [o.predictionId] : [])))];
    const keys = [...new Set(ok.flatMap((o) => (o.requestKey !== null ? [o.requestKey] : [])))];
    const byId = new Map<string, LoggedPrediction>();
    if (ids.length) {
      const found: Array<{ id: string; rows: number; model_version_id: string }> = await em.query(
        `SELECT id, rows, model_version_id FROM prediction_log WHERE deployment_id = $1 AND id = ANY($2::uuid[]) AND NOT shadow AND outputs IS NOT NULL`,
        [deployment.id, ids],
      );
      for (const r of found) byId.set(r.id, { id: r.id, rows: r.rows, modelVersionId: r.model_version_id });
    }
    const byKey = new Map<string, LoggedPrediction | 'ambiguous'>();
    if (keys.length) {
      const found: Array<{ request_key: string; n: number; id: string; rows: number; model_version_id: string }> = await em.query(
        `SELECT request_key, count(*)::int AS n, min(id::text) AS id, min(rows) AS rows, min(model_version_id::text) AS model_version_id
           FROM prediction_log WHERE deployment_id = $1 AND request_key = ANY($2::text[]) AND NOT shadow AND outputs IS NOT NULL
          GROUP BY request_key`,
        [deployment.id, keys],
      );
      for (const r of found) byKey.set(r.request_key, r.n > 1 ? 'ambiguous' : { id: r.id, rows: r.rows, modelVersionId: r.model_version_id });
    }

    // Resolve each outcome to (prediction, row).
    const resolved = checked.map((c) => {
      if (!('outcome' in c) || !c.outcome) return { index: c.index, error: c.error! };
      const o = c.outcome;
      const p = o.predictionId ? byId.get(o.predictionId) : byKey.get(o.requestKey!);
      const field = prefixOf(c.index);
      if (p === 'ambiguous') {
        return { index: c.index, error: new AppError(ErrorCode.CONFLICT, `Several predictions of this deployment carry request key "${o.requestKey}": name the prediction by its id`, { field: at(field, 'requestKey'), reason: InferenceReason.AMBIGUOUS_REQUEST_KEY }) };
      }
      if (!p) {
        const what = o.predictionId ? `Prediction ${toGlobalId('Prediction', o.predictionId)}` : `A prediction with request key "${o.requestKey}"`;
        return { index: c.index, error: new AppError(ErrorCode.NOT_FOUND, `${what} of this deployment not found`, { field: at(field, o.predictionId ? 'prediction' : 'requestKey'), reason: InferenceReason.UNKNOWN_PREDICTION }) };
      }
      const prediction = toGlobalId('Prediction', p.id);
      if (o.row === null && p.rows !== 1) {
        return { index: c.index, prediction, error: badInput(`The prediction has ${p.rows} rows: name the row`, { field: at(field, 'row'), reason: InferenceReason.OUTCOME_ROW }) };
      }
      const row = o.row ?? 0;
      if (row >= p.rows) {
        return { index: c.index, prediction, row, error: badInput(`The prediction has ${p.rows} rows (0 to ${p.rows - 1})`, { field: at(field, 'row'), reason: InferenceReason.OUTCOME_ROW }) };
      }
      return { index: c.index, prediction, row, p, o };
    });

    // The rows already labelled, locked until the batch commits.
    const targets = resolved.flatMap((r) => ('p' in r && r.p ? [[r.p.id, r.row] as const] : []));
    const current = new Map<string, { labelSha256: string; label: unknown; stored: boolean }>();
    if (targets.length) {
      const found: Array<{ prediction_id: string; row: number; label_sha256: string; label: unknown }> = await em.query(
        `SELECT o.prediction_id, o.row, o.label_sha256, o.label FROM prediction_outcome o
           JOIN unnest($1::uuid[], $2::int[]) AS t(prediction_id, row) ON t.prediction_id = o.prediction_id AND t.row = o.row
           FOR UPDATE OF o`,
        [targets.map((t) => t[0]), targets.map((t) => t[1])],
      );
      for (const r of found) current.set(`${r.prediction_id}/${r.row}`, { labelSha256: r.label_sha256, label: r.label, stored: true });
    }
    // The labels as stored before this batch: a correction takes the old one out of the rollups.
    const stored = new Map([...current.entries()].map(([k, v]) => [k, v.label]));

    const results: OutcomeResult[] = [];
    const writes = new Map<string, { predictionId: string; row: number; modelVersionId: string; o: CheckedOutcome; insert: boolean; corrected: boolean }>();
    const corrections: Array<{ index: number; prediction: string; row: number; before: unknown; after: unknown }> = [];
    const labelShas: Array<string | null> = [];
    for (const r of resolved) {
      if (!('p' in r) || !r.p) {
        results.push(rejected(r.index, r.error!, (r as { prediction?: string }).prediction ?? null, (r as { row?: number }).row ?? null));
        labelShas.push(null);
        continue;
      }
      const key = `${r.p.id}/${r.row}`;
      const now = current.get(key);
      labelShas.push(r.o.labelSha256);
      const result = (status: OutcomeStatus): OutcomeResult => ({ index: r.index, status, prediction: r.prediction, row: r.row!, error: null });
      if (!now) {
        writes.set(key, { predictionId: r.p.id, row: r.row!, modelVersionId: r.p.modelVersionId, o: r.o, insert: true, corrected: false });
        current.set(key, { labelSha256: r.o.labelSha256, label: r.o.label, stored: false });
        results.push(result('RECORDED'));
      } else if (now.labelSha256 === r.o.labelSha256) {
        results.push(result('DUPLICATE'));
      } else if (r.o.correct) {
        const pending = writes.get(key);
        writes.set(key, { predictionId: r.p.id, row: r.row!, modelVersionId: r.p.modelVersionId, o: r.o, insert: pending?.insert ?? !now.stored, corrected: true });
        corrections.push({ index: r.index, prediction: r.prediction, row: r.row!, before: now.label, after: r.o.label });
        current.set(key, { labelSha256: r.o.labelSha256, label: r.o.label, stored: now.stored });
        results.push(result('CORRECTED'));
      } else {
        results.push(
          rejected(
            r.index,
            new AppError(ErrorCode.CONFLICT, 'The row already has a different label: send correct: true to replace it', { field: at(prefixOf(r.index), 'label'), reason: InferenceReason.LABEL_CONFLICT }),
            r.prediction,
            r.row!,
          ),
        );
      }
    }

    const recordedBy = ctx.principal!.id;
    const inserts = [...writes.values()].filter((w) => w.insert);
    if (inserts.length) {
      await em.query(
        `INSERT INTO prediction_outcome (prediction_id, row, deployment_id, team_id, model_version_id, label, label_sha256, observed_at, recorded_at, recorded_by, corrections)
         SELECT t.prediction_id, t.row, $3, $4, t.model_version_id, t.label, t.label_sha256, t.observed_at, now(), $5, t.corrections
           FROM unnest($1::uuid[], $2::int[], $6::uuid[], $7::jsonb[], $8::text[], $9::timestamptz[], $10::int[])
             AS t(prediction_id, row, model_version_id, label, label_sha256, observed_at, corrections)`,
        [
          inserts.map((w) => w.predictionId),
          inserts.map((w) => w.row),
          deployment.id,
          deployment.teamId,
          recordedBy,
          inserts.map((w) => w.modelVersionId),
          inserts.map((w) => JSON.stringify(w.o.label)),
          inserts.map((w) => w.o.labelSha256),
          inserts.map((w) => w.o.observedAt?.toISOString() ?? null),
          inserts.map((w) => (w.corrected ? 1 : 0)),
        ],
      );
    }
    const updates = [...writes.values()].filter((w) => !w.insert);
    if (updates.length) {
      await em.query(
        `UPDATE prediction_outcome o SET label = t.label, label_sha256 = t.label_sha256, observed_at = t.observed_at, recorded_at = now(), recorded_by = $1, corrections = o.corrections + 1
           FROM unnest($2::uuid[], $3::int[], $4::jsonb[], $5::text[], $6::timestamptz[]) AS t(prediction_id, row, label, label_sha256, observed_at)
          WHERE o.prediction_id = t.prediction_id AND o.row = t.row`,
        [
          recordedBy,
          updates.map((w) => w.predictionId),
          updates.map((w) => w.row),
          updates.map((w) => JSON.stringify(w.o.label)),
          updates.map((w) => w.o.labelSha256),
          updates.map((w) => w.o.observedAt?.toISOString() ?? null),
        ],
      );
    }

    await addOutcomesToRollups(ctx, em, deployment, [...writes.entries()].map(([key, w]) => ({ ...w, before: w.insert ? undefined : stored.get(key) })));

    const count = (s: OutcomeStatus) => results.filter((r) => r.status === s).length;
    const digest = sha256Hex(results.map((r, i) => `${r.index}:${r.status}:${r.prediction ?? ''}:${r.row ?? ''}:${labelShas[i] ?? ''}`).join('\n'));
    const summary: OutcomeSummary = { received: results.length, recorded: count('RECORDED'), duplicate: count('DUPLICATE'), corrected: count('CORRECTED'), rejected: count('REJECTED'), digest, results };
    await audit(ctx, {
      action: 'recordOutcomes',
      subjectType: 'Deployment',
      subjectId: toGlobalId('Deployment', deployment.id),
      after: {
        source: about.source,
        ...(about.batch !== undefined ? { batch: about.batch, lines: [items[0]?.index ?? null, items[items.length - 1]?.index ?? null] } : {}),
        received: summary.received,
        recorded: summary.recorded,
        duplicate: summary.duplicate,
        corrected: summary.corrected,
        rejected: summary.rejected,
        digest,
        corrections,
      },
    });
    return summary;
  });
}

/**
 * The outcomes' effect on the window rollups of their predictions, in the batch's transaction: a
 * new label adds its row to the labelled rows and the quality statistics; a correction replaces
 * the old label's statistics with the new one's.
 */
async function addOutcomesToRollups(
  ctx: RequestContext,
  em: EntityManager,
  deployment: OutcomeDeployment,
  writes: Array<{ predictionId: string; row: number; modelVersionId: string; o: CheckedOutcome; before: unknown }>,
): Promise<void> {
  if (!writes.length) return;
  const predictions: Array<{ id: string; occurred_at: Date; outputs: Record<string, unknown> | null; metrics: unknown; reference_profile: unknown }> = await em.query(
    `SELECT p.id, p.occurred_at, p.outputs, v.metrics, v.reference_profile FROM prediction_log p JOIN model_version v ON v.id = p.model_version_id
      WHERE p.id = ANY($1::uuid[])`,
    [[...new Set(writes.map((w) => w.predictionId))]],
  );
  const byId = new Map(predictions.map((p) => [p.id, p]));
  const acc = new RollupAccumulator(ctx.app.config.inference.windowSeconds, () => null);
  const recordedAt = new Date();
  for (const w of writes) {
    const p = byId.get(w.predictionId);
    if (!p) continue;
    acc.addOutcome({
      deploymentId: deployment.id,
      teamId: deployment.teamId,
      modelVersionId: w.modelVersionId,
      occurredAt: new Date(p.occurred_at),
      score: scoreValue(outputRowOf(p.outputs, outputNameOf(p.reference_profile), w.row)),
      threshold: decisionThreshold(p.metrics),
      label: w.o.label,
      before: w.before,
      recordedAt,
    });
  }
  await em.query(rollupDeltaInsert(1), rollupParams(acc.deltas()));
}
