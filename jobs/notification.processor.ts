import type { Job } from 'bullmq';
import type { AppServices } from '../src/core/context';
import { attemptDelivery } from '../src/monitoring/notification-delivery.service';
import { escalateNotification, routeNotification, sendDigest, sweepNotifications, type NotificationJob } from '../src/monitoring/notification-routing.service';

/**
 * The notifier's jobs, all as the named system principal `system:notifier` (no person's rights are
 * involved: the team's own rules chose the channels): `route` a notification by its team's rules,
 * `deliver` one attempt of a delivery, send a channel's `digest`, `escalate` an unacknowledged
 * CRITICAL alert, and the periodic `sweep`. Each is idempotent; a failure (the database away) is
 * retried by the queue.
 */
export function notificationProcessor(app: AppServices) {
  return async (job: Job<NotificationJob>): Promise<void> => {
    const data = job.data;
    let now: string[] = [];
    if ('notificationId' in data) now = await routeNotification(app, data.notificationId);
    else if ('deliveryId' in data) await attemptDelivery(app, data.deliveryId);
    else if ('digestChannelId' in data) now = await sendDigest(app, data.digestChannelId);
    else if ('escalateNotificationId' in data) now = await escalateNotification(app, data.escalateNotificationId, data.ruleId);
    else if ('sweep' in data) await sweepNotifications(app);
    // A first attempt is made here, at once, rather than queued; retries are queued.
    await Promise.all(now.map((id) => attemptDelivery(app, id)));
  };
}
