import { randomUUID } from 'node:crypto';
import { audit } from '../core/audit/audit-chain';
import type { AppServices } from '../core/context';
import { inTransaction } from '../core/context';
import { toGlobalId } from '../core/global-id';
import type { BudgetTrip, InferenceEngine } from '../inference/inference.engine';
import { systemContext } from '../access/system-context';
import { Alert, AlertKind, AlertSeverity, AlertStatus } from './alert.entity';
import { openAlert, publishAlert } from './alerts';
import { notifyAlertChange } from './alert-notifications';

/** The principal that raises run budget alerts: the API process's inference engine. */
export const INFERENCE_PRINCIPAL = 'system:inference';

/** Raises a RUN_BUDGET alert each time the engine unloads a version for overrunning the run budget. */
export function followRunBudgets(app: AppServices, engine: InferenceEngine): void {
  engine.onBudgetTrip((trip) => {
    void raiseRunBudgetAlerts(app, trip).catch((e) => app.log.error({ err: (e as Error).message, modelVersion: trip.versionId }, 'run budget alert could not be raised'));
  });
}

/**
 * One CRITICAL RUN_BUDGET alert per deployment routing to the unloaded version, with one audit
 * event per deployment, in one transaction; then published to the alert subscriptions. An alert
 * already open (or acknowledged) for the same deployment and version is updated instead (another
 * instance tripped too, or the version tripped again after its cool-down). Monitor passes never
 * resolve it: a person does, once the version is fixed or withdrawn.
 */
export async function raiseRunBudgetAlerts(app: AppServices, trip: BudgetTrip): Promise<Alert[]> {
  if (!trip.deployments.length) return [];
  const ctx = systemContext(app, { id: INFERENCE_PRINCIPAL, kind: 'system', roles: ['admin'] }, `run-budget-${randomUUID()}`);
  const now = new Date();
  const details = { budgetMs: trip.budgetMs, overruns: trip.overruns, pool: trip.pool, stuck: trip.stuck, unloadedUntil: trip.unloadedUntil.toISOString(), reason: trip.reason };
  const changed = await inTransaction(ctx, async (em, ctx) => {
    const out: Alert[] = [];
    for (const d of trip.deployments) {
      // The lock monitor passes take: one writer of a deployment's alerts at a time.
      await em.query(`SELECT pg_advisory_xact_lock(hashtext('monitor:' || $1))`, [d.deploymentId]);
      const current = await em.getRepository(Alert).findOne({
        where: [
          { deploymentId: d.deploymentId, modelVersionId: trip.versionId, kind: AlertKind.RUN_BUDGET, feature: '', status: AlertStatus.OPEN },
          { deploymentId: d.deploymentId, modelVersionId: trip.versionId, kind: AlertKind.RUN_BUDGET, feature: '', status: AlertStatus.ACKNOWLEDGED },
        ],
      });
      let alert: Alert;
      if (current) {
        Object.assign(current, { lastSeenAt: now, windowEnd: now, occurrences: current.occurrences + 1, value: trip.overruns, details });
        alert = await em.save(Alert, current);
      } else {
        alert = openAlert(em, {
          teamId: d.teamId,
          createdBy: INFERENCE_PRINCIPAL,
          deploymentId: d.deploymentId,
          modelVersionId: trip.versionId,
          kind: AlertKind.RUN_BUDGET,
          severity: AlertSeverity.CRITICAL,
          feature: '',
          statistic: 'budgetOverruns',
          value: trip.overruns,
          threshold: trip.overruns,
          pValue: null,
          windowStart: trip.firstOverrunAt,
          windowEnd: now,
          lastSeenAt: now,
          details,
        });
        await em.insert(Alert, alert);
        await notifyAlertChange(em, alert, 'opened', ctx.requestId);
      }
      await audit(ctx, {
        action: 'unloadOverBudget',
        subjectType: 'Deployment',
        subjectId: toGlobalId('Deployment', d.deploymentId),
        after: { modelVersion: toGlobalId('ModelVersion', trip.versionId), alert: alert.nodeId, change: current ? 'seen again' : 'opened', ...details },
      });
      out.push(alert);
    }
    return out;
  });
  for (const a of changed) publishAlert(app, a);
  return changed;
}
