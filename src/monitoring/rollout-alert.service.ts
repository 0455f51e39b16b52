import type { EntityManager } from 'typeorm';
import type { AppServices } from '../core/context';
import { toGlobalId } from '../core/global-id';
import type { StalledRollout } from '../rollouts/rollout-health';
import { Alert, AlertKind, AlertSeverity, AlertStatus } from './alert.entity';
import { openAlert, publishAlert } from './alerts';
import { notifyAlertChange } from './alert-notifications';

/**
 * The WARNING alert of a rollout paused because a step never had its evidence (minimum sample), opened in
 * the rollout's own transaction (so the pause and its alert commit together). One already open (or
 * acknowledged) for the same deployment and version is renewed instead. Monitor passes never
 * resolve it while the version serves: a person does, once the traffic question is answered.
 */
export async function raiseRolloutStalledAlert(app: AppServices, em: EntityManager, stall: StalledRollout): Promise<{ id: string; announce(): void }> {
  // The lock monitor passes take: one writer of a deployment's alerts at a time.
  await em.query(`SELECT pg_advisory_xact_lock(hashtext('monitor:' || $1))`, [stall.deploymentId]);
  const now = new Date();
  const details = { rollout: toGlobalId('Rollout', stall.rolloutId), verdict: stall.verdict };
  const current = await em.getRepository(Alert).findOne({
    where: [AlertStatus.OPEN, AlertStatus.ACKNOWLEDGED].map((status) => ({ deploymentId: stall.deploymentId, modelVersionId: stall.modelVersionId, kind: AlertKind.ROLLOUT_STALLED, feature: '', status })),
  });
  let alert: Alert;
  if (current) {
    Object.assign(current, { lastSeenAt: now, windowStart: stall.stepStartedAt, windowEnd: now, occurrences: current.occurrences + 1, value: stall.requests, threshold: stall.minRequests, details });
    alert = await em.save(Alert, current);
  } else {
    alert = openAlert(em, {
      teamId: stall.teamId,
      createdBy: stall.pausedBy,
      deploymentId: stall.deploymentId,
      modelVersionId: stall.modelVersionId,
      kind: AlertKind.ROLLOUT_STALLED,
      severity: AlertSeverity.WARNING,
      feature: '',
      statistic: 'requests',
      value: stall.requests,
      threshold: stall.minRequests,
      pValue: null,
      windowStart: stall.stepStartedAt,
      windowEnd: now,
      lastSeenAt: now,
      details,
    });
    await em.insert(Alert, alert);
    await notifyAlertChange(em, alert, 'opened');
  }
  return { id: alert.nodeId, announce: () => publishAlert(app, alert) };
}
