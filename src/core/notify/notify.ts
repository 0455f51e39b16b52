// Every domain tells its teams about a change through here, in the change's own transaction: the
// notification row and the job that routes it commit with the change, or neither does.
import { randomUUID } from 'node:crypto';
import type { EntityManager } from 'typeorm';
import { enqueue } from '../queue/outbox';
import { QUEUES } from '../queue/queues';
import { Notification, type NotificationKind, type NotificationSeverity } from './notification.entity';

/** A notification as its domain states it; the rest (id, time) is filled in here. */
export interface NotificationRequest {
  teamId: string;
  kind: NotificationKind;
  severity: NotificationSeverity;
  action?: 'trigger' | 'acknowledge' | 'resolve';
  subject: string;
  dedupKey?: string;
  deploymentId?: string | null;
  environment?: string | null;
  alertId?: string | null;
  alertKind?: string | null;
  summary: string;
  data?: Record<string, unknown>;
  requestId?: string | null;
  occurredAt?: Date;
}

/** The job that routes one notification (`notify-route-<id>`). */
export interface RouteNotificationJob {
  notificationId: string;
}

/**
 * Records a notification in `em`'s transaction and queues its routing (through the outbox: it is
 * routed only if the transaction commits, then at least once).
 */
export async function raiseNotification(em: EntityManager, request: NotificationRequest): Promise<Notification> {
  const row = em.create(Notification, {
    id: randomUUID(),
    teamId: request.teamId,
    kind: request.kind,
    severity: request.severity,
    action: request.action ?? 'trigger',
    subject: request.subject,
    dedupKey: request.dedupKey ?? request.subject,
    deploymentId: request.deploymentId ?? null,
    environment: request.environment ?? null,
    alertId: request.alertId ?? null,
    alertKind: request.alertKind ?? null,
    summary: request.summary,
    data: request.data ?? {},
    requestId: request.requestId ?? null,
    occurredAt: request.occurredAt ?? new Date(),
    routedAt: null,
  });
  await em.insert(Notification, row as object);
  await enqueue(em, { queue: QUEUES.notifications, name: 'route', jobId: `notify-route-${row.id}`, payload: { notificationId: row.id } satisfies RouteNotificationJob });
  return row;
}
