// The registry's side of the champion/challenger gate: monitoring judges, the registry records the
// verdict on the candidate (its own table) with the audit event, in one transaction.
import { audit } from '../core/audit/audit-chain';
import { assertCan } from '../core/authz';
import { inTransaction, type RequestContext, type TransactionContext } from '../core/context';
import { toGlobalId } from '../core/global-id';
import { loadReadable } from '../lineage/lineage.service';
import { ModelVersion, ModelVersionStatus } from './model-version.entity';
import { challengeOf, type ModelVersionChallenge, type StoredChallenge } from './model-version-challenge';

/**
 * Stores `challenge` as the candidate's latest comparison (replacing any earlier one) and writes
 * one audit event `challengeModelVersion` on the candidate, with the decision, both versions and
 * the holdout. The candidate is locked and `update` on it is checked again under the lock.
 */
export async function recordModelVersionChallenge(ctx: RequestContext, challenge: ModelVersionChallenge): Promise<ModelVersionChallenge> {
  return inTransaction(ctx, async (em, ctx) => {
    const version = await loadReadable(ctx, em, ModelVersion, 'ModelVersion', challenge.candidate, 'candidate', 'update');
    assertCan(ctx, 'update', 'ModelVersion', version);
    const stored: StoredChallenge = { ...challenge, evaluatedAt: challenge.evaluatedAt.toISOString() };
    await em.update(ModelVersion, { id: version.id }, { challenge: stored as object });
    await audit(ctx, {
      action: 'challengeModelVersion',
      subjectType: 'ModelVersion',
      subjectId: toGlobalId('ModelVersion', version.id),
      reason: challenge.reasons.join('; '),
      before: { challenge: version.challenge ? { decision: version.challenge.decision, evaluatedAt: version.challenge.evaluatedAt } : null },
      after: {
        decision: challenge.decision,
        champion: challenge.champion,
        holdout: challenge.holdout,
        rows: challenge.rows,
        candidateAccuracy: challenge.candidateFigures.accuracy,
        championAccuracy: challenge.championFigures?.accuracy ?? null,
        mcnemar: challenge.mcnemar,
      },
    });
    return challengeOf(stored)!;
  });
}

/**
 * A candidate the champion/challenger gate rejected leaves the candidates: REGISTERED or CANDIDATE
 * becomes REJECTED in the caller's transaction, audited (`rejectModelVersion`) with the gate's
 * reasons. Not a review: no approval record, and no second person is needed to refuse a version
 * the evidence refused. False, with nothing changed, for a version in any other status.
 */
export async function rejectByGate(ctx: TransactionContext, versionId: string, reasons: string[]): Promise<boolean> {
  const version = await ctx.em.findOne(ModelVersion, { where: { id: versionId }, lock: { mode: 'pessimistic_write' } });
  if (!version || (version.status !== ModelVersionStatus.CANDIDATE && version.status !== ModelVersionStatus.REGISTERED)) return false;
  assertCan(ctx, 'update', 'ModelVersion', version);
  await ctx.em.update(ModelVersion, { id: version.id }, { status: ModelVersionStatus.REJECTED });
  await audit(ctx, {
    action: 'rejectModelVersion',
    subjectType: 'ModelVersion',
    subjectId: toGlobalId('ModelVersion', version.id),
    reason: `rejected by the champion/challenger gate: ${reasons.join('; ')}`,
    before: { status: version.status },
    after: { status: ModelVersionStatus.REJECTED, gate: true },
  });
  return true;
}
