// The registry's side of the champion/challenger gate: monitoring judges, the registry records the
// verdict on the candidate (its own table) with the audit event, in one transaction.
import { audit } from '../core/audit/audit-chain';
import { assertCan } from '../core/authz';
import { inTransaction, type RequestContext } from '../core/context';
import { toGlobalId } from '../core/global-id';
import { loadReadable } from '../lineage/lineage.service';
import { ModelVersion } from './model-version.entity';
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
