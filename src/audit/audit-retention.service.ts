import type { RequestContext } from '../core/context';
import { toGlobalId } from '../core/global-id';
import { appendAudit, CHAIN_LOCK } from '../core/audit/audit-chain';
import { checkpointPayload } from './audit-chain.verify';
import { AuditCheckpoint } from './audit-export.entity';
import { publicKeyOf, signCanonical } from './audit-signing';

export interface RetentionResult {
  /** The new checkpoint, or null when nothing was old enough. */
  checkpoint: AuditCheckpoint | null;
  removed: number;
  cutoff: Date;
}

/**
 * Rolls the oldest events (older than AUDIT_RETENTION_DAYS, as a prefix of the chain: a newer
 * event stops it) into a signed checkpoint, then removes them, in one transaction with its audit
 * event. The append-only trigger lets this DELETE through only because the transaction sets
 * `modelgov.audit_retention` and only for events the checkpoint covers. The remaining chain
 * verifies from the checkpoint's hash.
 */
export async function applyRetention(ctx: RequestContext, opts: { now?: Date } = {}): Promise<RetentionResult> {
  const now = opts.now ?? new Date();
  const cutoff = new Date(now.getTime() - ctx.app.config.auditRetentionDays * 24 * 3600 * 1000);
  const result = await ctx.app.db.transaction(async (em): Promise<RetentionResult> => {
    // Appends wait meanwhile: the chain's start and its head do not move under the roll-up.
    await em.query('SELECT pg_advisory_xact_lock($1)', [CHAIN_LOCK]);
    const [row]: Array<{ seq: string | null; hash: string; occurred_at: Date; first: string | null }> = await em.query(
      `WITH bounds AS (
         SELECT (SELECT min(seq) FROM audit_event) AS first,
                COALESCE((SELECT min(seq) FROM audit_event WHERE occurred_at >= $1), (SELECT max(seq) + 1 FROM audit_event)) - 1 AS upto)
       SELECT b.first::text AS first, a.seq::text AS seq, a.hash, a.occurred_at FROM bounds b LEFT JOIN audit_event a ON a.seq = b.upto AND b.upto >= b.first`,
      [cutoff],
    );
    if (!row || row.seq === null) return { checkpoint: null, removed: 0, cutoff };
    const seq = Number(row.seq);
    const checkpoint = em.create(AuditCheckpoint, {
      seq,
      hash: row.hash,
      eventCount: seq,
      lastOccurredAt: row.occurred_at,
      keyId: publicKeyOf(ctx.app.config.auditSigningKeyPem).keyId,
      createdAt: new Date(Math.floor(now.getTime())),
      signature: '',
    });
    checkpoint.signature = signCanonical(ctx.app.config.auditSigningKeyPem, checkpointPayload(checkpoint));
    await em.insert(AuditCheckpoint, checkpoint);
    await em.query(`SELECT set_config('modelgov.audit_retention', 'on', true)`);
    const removed: [unknown, number] = await em.query('DELETE FROM audit_event WHERE seq <= $1', [seq]);
    await em.query(`SELECT set_config('modelgov.audit_retention', 'off', true)`);
    await appendAudit(em, ctx, {
      action: 'applyAuditRetention',
      subjectType: 'AuditCheckpoint',
      subjectId: toGlobalId('AuditCheckpoint', String(seq)),
      after: { seq, hash: row.hash, removed: removed[1], cutoff: cutoff.toISOString(), keyId: checkpoint.keyId },
    });
    return { checkpoint, removed: removed[1], cutoff };
  });
  if (result.checkpoint) ctx.log.info({ seq: result.checkpoint.seq, removed: result.removed }, 'audit events rolled into a checkpoint');
  return result;
}
