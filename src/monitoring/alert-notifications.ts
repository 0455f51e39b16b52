// An alert's changes told to its team's channels: each change raises one notification in the
// transaction that makes it (opened, escalated, acknowledged, resolved).
import type { EntityManager } from 'typeorm';
import { toGlobalId } from '../core/global-id';
import { NotificationKind } from '../core/notify/notification.entity';
import { raiseNotification } from '../core/notify/notify';
import { Deployment } from '../rollouts/deployment.entity';
import type { Alert } from './alert.entity';

/** What happened to an alert. */
export type AlertChange = 'opened' | 'escalated' | 'acknowledged' | 'resolved';

const KIND: Record<AlertChange, NotificationKind> = {
  opened: NotificationKind.ALERT_OPENED,
  escalated: NotificationKind.ALERT_ESCALATED,
  acknowledged: NotificationKind.ALERT_ACKNOWLEDGED,
  resolved: NotificationKind.ALERT_RESOLVED,
};
const ACTION = { opened: 'trigger', escalated: 'trigger', acknowledged: 'acknowledge', resolved: 'resolve' } as const;

/** `DRIFT merchant_risk (psi 0.42 > 0.2)` — what the alert found, in one phrase. */
export function alertPhrase(alert: Alert): string {
  const what = [alert.kind, alert.feature].filter(Boolean).join(' ');
  const round = (v: number) => (Number.isInteger(v) ? String(v) : v.toPrecision(3));
  return `${what} (${alert.statistic} ${round(alert.value)} vs ${round(alert.threshold)})`;
}

/**
 * Raises the notification of one change of `alert`, in `em`'s transaction: about the alert (its
 * global ID is the dedup key, so PagerDuty folds trigger, acknowledge and resolve into one
 * incident), its deployment (name and environment, for rules and silences) and its figures.
 */
export async function notifyAlertChange(em: EntityManager, alert: Alert, change: AlertChange, requestId: string | null = null): Promise<void> {
  const deployment = alert.deploymentId ? await em.findOne(Deployment, { where: { id: alert.deploymentId }, select: { id: true, name: true, environment: true } }) : null;
  const where = deployment ? ` on ${deployment.name} (${deployment.environment})` : (alert.details?.channel ? ` on channel ${String(alert.details.channelName ?? alert.details.channel)}` : '');
  const lead = { opened: `${alert.severity} alert`, escalated: `Escalated to ${alert.severity}`, acknowledged: `Acknowledged by ${alert.acknowledgedBy ?? 'someone'}`, resolved: 'Resolved' }[change];
  const tail = change === 'resolved' && alert.resolution ? `: ${alert.resolution}` : '';
  await raiseNotification(em, {
    teamId: alert.teamId,
    kind: KIND[change],
    severity: alert.severity,
    action: ACTION[change],
    subject: alert.nodeId,
    dedupKey: alert.nodeId,
    deploymentId: alert.deploymentId,
    environment: deployment?.environment ?? null,
    alertId: alert.id,
    alertKind: alert.kind,
    summary: `${lead}: ${alertPhrase(alert)}${where}${tail}`,
    data: {
      alert: alert.nodeId,
      alertKind: alert.kind,
      status: alert.status,
      feature: alert.feature,
      statistic: alert.statistic,
      value: alert.value,
      threshold: alert.threshold,
      occurrences: alert.occurrences,
      deployment: deployment ? { id: deployment.nodeId, name: deployment.name, environment: deployment.environment } : null,
      modelVersion: alert.modelVersionId ? toGlobalId('ModelVersion', alert.modelVersionId) : null,
      ...(change === 'acknowledged' ? { acknowledgedBy: alert.acknowledgedBy } : {}),
      ...(change === 'resolved' ? { resolvedBy: alert.resolvedBy, resolution: alert.resolution } : {}),
    },
    requestId,
    occurredAt: change === 'opened' ? alert.createdAt ?? new Date() : new Date(),
  });
}
