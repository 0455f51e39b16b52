// Sends one delivery: at least once, under its idempotency key, retried with exponential backoff and
// jitter (or the receiver's Retry-After), dead-lettered after the last attempt or a failure no retry
// fixes — which opens an alert on the channel. A later success resolves that alert.
import type { EntityManager } from 'typeorm';
import { In } from 'typeorm';
import type { NotifyConfig } from '../config';
import { audit } from '../core/audit/audit-chain';
import { inTransaction, type AppServices } from '../core/context';
import { Notification, NotificationKind } from '../core/notify/notification.entity';
import { systemContext } from '../access/system-context';
import { Alert, AlertKind, AlertSeverity, AlertStatus } from './alert.entity';
import { notifyAlertChange } from './alert-notifications';
import { openAlert, publishAlert } from './alerts';
import { NotificationChannel, NotificationChannelKind } from './notification-channel.entity';
import { deliver } from './notification-channel.service';
import { NotificationDelivery, NotificationDeliveryStatus } from './notification-delivery.entity';
import type { NotificationEvent } from './notification-payload';
import type { DeliveryOutcome } from './notification-sender';
import { entityFields, NOTIFIER_PRINCIPAL, queueAttempt } from './notification-routing.service';

/** CloudEvents `type` of each kind. */
const EVENT_TYPE: Record<NotificationKind, string> = {
  ALERT_OPENED: 'io.modelgov.alert.opened',
  ALERT_ESCALATED: 'io.modelgov.alert.escalated',
  ALERT_ACKNOWLEDGED: 'io.modelgov.alert.acknowledged',
  ALERT_RESOLVED: 'io.modelgov.alert.resolved',
  ALERT_UNACKNOWLEDGED: 'io.modelgov.alert.unacknowledged',
  VERSION_AWAITING_APPROVAL: 'io.modelgov.model_version.awaiting_approval',
  ROLLOUT_PAUSED: 'io.modelgov.rollout.paused',
  ROLLOUT_ROLLED_BACK: 'io.modelgov.rollout.rolled_back',
  TRAINING_RUN_FAILED: 'io.modelgov.training_run.failed',
  AUDIT_EXPORT_READY: 'io.modelgov.audit_export.ready',
  DIGEST: 'io.modelgov.digest',
};

/** The event a channel gets for a delivery: its id is the delivery's (the idempotency key, the same on every attempt). */
export function eventOf(delivery: NotificationDelivery, n: Notification): NotificationEvent {
  return {
    id: delivery.id,
    type: EVENT_TYPE[n.kind],
    source: `/modelgov/${n.subject}`,
    time: n.occurredAt,
    summary: n.summary,
    severity: n.severity,
    action: n.action,
    dedupKey: n.dedupKey,
    data: { ...n.data, kind: n.kind, notification: n.id, idempotencyKey: delivery.id },
  };
}

/** How long to wait before attempt `next` (2 or later): the receiver's Retry-After if it gave one, else exponential with full jitter (at least half). */
export function retryDelayMs(settings: Pick<NotifyConfig, 'retryBaseMs' | 'retryMaxMs'>, next: number, retryAfter: string | null | undefined, now = Date.now(), random = Math.random): number {
  if (retryAfter) {
    const seconds = /^\d+$/.test(retryAfter.trim()) ? Number(retryAfter) * 1000 : Date.parse(retryAfter) - now;
    if (Number.isFinite(seconds) && seconds >= 0) return Math.min(settings.retryMaxMs, Math.max(0, seconds));
  }
  const ceiling = Math.min(settings.retryMaxMs, settings.retryBaseMs * 2 ** Math.min(30, next - 2));
  return Math.round(ceiling / 2 + random() * (ceiling / 2));
}

/** A failure no retry can fix: a refused destination, a redirect, an HTTP 4xx other than 408, 425, 429; for EMAIL an SMTP 5xx. */
export function isPermanent(kind: NotificationChannelKind, outcome: DeliveryOutcome): boolean {
  if (outcome.error?.startsWith('refused')) return true;
  if (outcome.location !== null || (outcome.error ?? '').startsWith('redirect')) return true;
  const s = outcome.status;
  if (s === null) return false;
  if (kind === NotificationChannelKind.EMAIL) return s >= 500 && s < 600;
  return s >= 400 && s < 500 && ![408, 425, 429].includes(s);
}

/**
 * One attempt of a delivery: claimed (PENDING or RETRYING and due, or SENDING whose sender died),
 * sent, and recorded; a failure is retried later or dead-lettered. Idempotent: a delivery finished
 * or being sent elsewhere is left alone.
 */
export async function attemptDelivery(app: AppServices, deliveryId: string): Promise<void> {
  const notify = app.config.notify;
  const leaseMs = notify.timeoutMs + 30_000;
  const claimed: NotificationDelivery[] = await app.db
    .getRepository(NotificationDelivery)
    .createQueryBuilder()
    .update()
    .set({ status: NotificationDeliveryStatus.SENDING, attempts: () => 'attempts + 1', leaseUntil: () => `now() + interval '${leaseMs} milliseconds'`, nextAttemptAt: null })
    .where(
      `id = :id AND ((status IN ('PENDING', 'RETRYING') AND (next_attempt_at IS NULL OR next_attempt_at <= now() + interval '1 second')) OR (status = 'SENDING' AND lease_until < now()))`,
      { id: deliveryId },
    )
    .returning('*')
    .execute()
    .then((r) => r.raw.map((row: Record<string, unknown>) => app.db.getRepository(NotificationDelivery).create(entityFields(row))));
  const delivery = claimed[0];
  if (!delivery) return;
  const [channel, n] = await Promise.all([
    delivery.channelId ? app.db.getRepository(NotificationChannel).findOneBy({ id: delivery.channelId }) : null,
    app.db.getRepository(Notification).findOneByOrFail({ id: delivery.notificationId }),
  ]);
  if (!channel) {
    await app.db.getRepository(NotificationDelivery).update({ id: delivery.id }, { status: NotificationDeliveryStatus.DROPPED, lastError: 'the channel was deleted', leaseUntil: null });
    return;
  }
  const outcome = await deliver(notify, channel, eventOf(delivery, n));
  const now = new Date();
  const notifier = () => systemContext(app, { id: NOTIFIER_PRINCIPAL, kind: 'system' }, `notify:${delivery.id}`);
  // This attempt's claim: once its lease ran out another sender may have taken the delivery over
  // (a later attempt), and what this one learned is no longer the delivery's to record.
  const mine = { id: delivery.id, status: NotificationDeliveryStatus.SENDING, attempts: delivery.attempts };
  if (outcome.delivered) {
    await app.db.getRepository(NotificationDelivery).update(mine, {
      status: NotificationDeliveryStatus.DELIVERED,
      deliveredAt: now,
      latencyMs: Math.max(0, now.getTime() - delivery.occurredAt.getTime()),
      lastStatus: outcome.status,
      lastError: null,
      leaseUntil: null,
    });
    // A channel that was failing works again: its alert is resolved.
    if (channel.failingSince) {
      const healed = await inTransaction(notifier(), (em, ctx) => resolveChannelAlert(em, channel, ctx.requestId));
      if (healed) publishAlert(app, healed);
    }
    return;
  }
  const error = (outcome.error ?? 'failed').slice(0, 500);
  const dead = isPermanent(channel.kind, outcome) || delivery.attempts >= notify.maxAttempts;
  const announce: Alert[] = [];
  await inTransaction(notifier(), async (em, ctx) => {
    if (!dead) {
      const delay = retryDelayMs(notify, delivery.attempts + 1, outcome.retryAfter);
      const retried = await em.update(NotificationDelivery, mine, { status: NotificationDeliveryStatus.RETRYING, lastError: error, lastStatus: outcome.status, nextAttemptAt: new Date(now.getTime() + delay), leaseUntil: null });
      if (retried.affected) await queueAttempt(em, delivery.id, delivery.attempts + 1, delay);
      return;
    }
    const dropped = await em.update(NotificationDelivery, mine, { status: NotificationDeliveryStatus.DEAD, lastError: error, lastStatus: outcome.status, leaseUntil: null });
    if (!dropped.affected) return;
    const alert = await openChannelAlert(em, channel, delivery, error);
    await audit(ctx, {
      action: 'deadLetterNotification',
      subjectType: 'NotificationChannel',
      subjectId: channel.nodeId,
      reason: error,
      after: { delivery: delivery.nodeId, kind: delivery.kind, attempts: delivery.attempts, lastStatus: outcome.status, alert: alert.nodeId },
    });
    announce.push(alert);
  });
  for (const a of announce) publishAlert(app, a);
}

/**
 * The channel's NOTIFICATION_FAILED alert: one open per channel (renewed by later dead letters), as
 * severe as the most severe delivery it lost; its opening is notified (to the team's other channels).
 */
async function openChannelAlert(em: EntityManager, channel: NotificationChannel, delivery: NotificationDelivery, error: string): Promise<Alert> {
  await em.query(`SELECT pg_advisory_xact_lock(hashtext('notify-dead:' || $1))`, [channel.id]);
  await em.query(`UPDATE notification_channel SET failing_since = coalesce(failing_since, now()) WHERE id = $1`, [channel.id]);
  const now = new Date();
  const severity = delivery.severity === AlertSeverity.CRITICAL ? AlertSeverity.CRITICAL : AlertSeverity.WARNING;
  const details = { channel: channel.nodeId, channelName: channel.name, kind: channel.kind, lastError: error, lastDelivery: delivery.nodeId, lastSummary: delivery.summary };
  const current = await em.findOne(Alert, { where: { teamId: channel.teamId, kind: AlertKind.NOTIFICATION_FAILED, feature: channel.id, status: In([AlertStatus.OPEN, AlertStatus.ACKNOWLEDGED]) } });
  if (current) {
    const escalated = severity === AlertSeverity.CRITICAL && current.severity !== AlertSeverity.CRITICAL;
    Object.assign(current, { lastSeenAt: now, windowEnd: now, occurrences: current.occurrences + 1, value: current.value + 1, details, ...(escalated ? { severity, status: AlertStatus.OPEN } : {}) });
    await em.save(Alert, current);
    if (escalated) await notifyAlertChange(em, current, 'escalated');
    return current;
  }
  const alert = openAlert(em, {
    teamId: channel.teamId,
    createdBy: NOTIFIER_PRINCIPAL,
    deploymentId: null,
    modelVersionId: null,
    kind: AlertKind.NOTIFICATION_FAILED,
    severity,
    feature: channel.id,
    statistic: 'deadLetters',
    value: 1,
    threshold: 1,
    pValue: null,
    windowStart: delivery.occurredAt,
    windowEnd: now,
    lastSeenAt: now,
    details,
  });
  await em.insert(Alert, alert);
  await notifyAlertChange(em, alert, 'opened');
  return alert;
}

/** A delivery to the channel succeeded: its NOTIFICATION_FAILED alert (if any) is resolved. */
async function resolveChannelAlert(em: EntityManager, channel: NotificationChannel, requestId: string): Promise<Alert | null> {
  await em.query(`SELECT pg_advisory_xact_lock(hashtext('notify-dead:' || $1))`, [channel.id]);
  await em.query(`UPDATE notification_channel SET failing_since = NULL WHERE id = $1`, [channel.id]);
  const open = await em.findOne(Alert, { where: { teamId: channel.teamId, kind: AlertKind.NOTIFICATION_FAILED, feature: channel.id, status: In([AlertStatus.OPEN, AlertStatus.ACKNOWLEDGED]) } });
  if (!open) return null;
  Object.assign(open, { status: AlertStatus.RESOLVED, resolvedBy: NOTIFIER_PRINCIPAL, resolvedAt: new Date(), resolution: 'a delivery to the channel succeeded again' });
  await em.save(Alert, open);
  await notifyAlertChange(em, open, 'resolved', requestId);
  return open;
}
