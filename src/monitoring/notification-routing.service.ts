// From a notification to deliveries: the team's rules choose the channels and what to do (at once,
// in a digest, or nothing), an active silence holds it back, and a CRITICAL alert a rule sent is
// escalated if nobody acknowledges it. Every step is one transaction that records the deliveries and
// queues their jobs through the outbox, so a crash or a Redis outage loses nothing.
import { createHash } from 'node:crypto';
import { In, IsNull, LessThanOrEqual, MoreThan, type EntityManager } from 'typeorm';
import type { AppServices } from '../core/context';
import { toGlobalId } from '../core/global-id';
import { Notification, NotificationKind, NOTIFICATION_SEVERITY_RANK } from '../core/notify/notification.entity';
import { enqueue } from '../core/queue/outbox';
import { QUEUES } from '../core/queue/queues';
import { Alert, AlertKind, AlertSeverity, AlertStatus } from './alert.entity';
import { NotificationChannel } from './notification-channel.entity';
import { NotificationDelivery, NotificationDeliveryStatus } from './notification-delivery.entity';
import type { NotificationMatcher } from './notification-matcher.entity';
import { DEFAULT_ACTION, NotificationAction, NotificationRule } from './notification-rule.entity';
import { NotificationSilence } from './notification-silence.entity';

/** The named principal the notifier acts as (it reads rules and channels of every team). */
export const NOTIFIER_PRINCIPAL = 'system:notifier';

/** Jobs of the notifications queue. */
export type NotificationJob =
  | { notificationId: string }
  | { deliveryId: string }
  | { digestChannelId: string }
  | { escalateNotificationId: string; ruleId: string }
  | { sweep: true };

function matches(m: NotificationMatcher, n: Notification): boolean {
  if (m.deploymentId && m.deploymentId !== n.deploymentId) return false;
  if (m.environment && m.environment !== n.environment) return false;
  if (m.kinds.length && !m.kinds.includes(n.kind)) return false;
  // Alert kinds, when given, match alert notifications of those kinds and nothing else.
  if (m.alertKinds.length && !(n.alertKind && m.alertKinds.includes(n.alertKind as AlertKind))) return false;
  return true;
}

/** A row as `RETURNING *` answers it (column names, timestamps as text or Date) → entity fields. */
export function entityFields(row: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(row)) out[k.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase())] = v;
  for (const k of ['occurredAt', 'createdAt', 'routedAt', 'nextAttemptAt', 'deliveredAt', 'digestDueAt', 'leaseUntil']) if (out[k] && !(out[k] instanceof Date)) out[k] = new Date(out[k] as string);
  return out;
}

/** Whether a rule takes a notification: enabled, matching, and the notification at least as severe as its minimum. */
export function ruleMatches(rule: NotificationRule, n: Notification): boolean {
  return rule.enabled && matches(rule, n) && NOTIFICATION_SEVERITY_RANK[n.severity] >= NOTIFICATION_SEVERITY_RANK[rule.minSeverity];
}

/** Whether a silence holds a notification back at `at`. */
export function silenceHolds(s: NotificationSilence, n: Notification, at: Date): boolean {
  const end = s.expiredAt && s.expiredAt < s.endsAt ? s.expiredAt : s.endsAt;
  if (at < s.startsAt || at >= end) return false;
  return matches(s, n) && (!s.severities.length || s.severities.includes(n.severity as AlertSeverity));
}

/** The action a rule takes for a notification: its own, or the default for the notification's severity. */
export const actionOf = (rule: NotificationRule, n: Notification): NotificationAction => rule.action ?? DEFAULT_ACTION[n.severity as AlertSeverity];

/** The end of the digest period of `seconds` that `at` falls in (periods aligned on the epoch). */
export function digestDue(at: Date, seconds: number): Date {
  const period = seconds * 1000;
  return new Date((Math.floor(at.getTime() / period) + 1) * period);
}

/** A uuid derived from `parts` (an escalation is one notification however often its job runs). */
function derivedUuid(...parts: string[]): string {
  const h = createHash('sha256').update(parts.join('\u0000')).digest('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-a${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

/** Queues the (next) attempt of a delivery. */
export function queueAttempt(em: EntityManager, deliveryId: string, attempt: number, delayMs = 0, tag = ''): Promise<void> {
  return enqueue(em, { queue: QUEUES.notifications, name: 'deliver', jobId: `notify-deliver-${deliveryId}-${attempt}${tag}`, payload: { deliveryId }, delayMs, ifAbsent: true });
}

async function activeSilences(em: EntityManager, teamId: string, at: Date): Promise<NotificationSilence[]> {
  return em.find(NotificationSilence, { where: { teamId, startsAt: LessThanOrEqual(at), endsAt: MoreThan(at), expiredAt: IsNull() }, order: { createdAt: 'ASC' } });
}

/** A delivery row for `n` to `channel`, as its rule (or an escalation, or a digest) made it. */
function deliveryOf(em: EntityManager, n: Notification, channel: NotificationChannel, fields: Partial<NotificationDelivery>): NotificationDelivery {
  return em.create(NotificationDelivery, {
    teamId: channel.teamId,
    createdBy: NOTIFIER_PRINCIPAL,
    notificationId: n.id,
    channelId: channel.id,
    channelName: channel.name,
    ruleId: null,
    escalation: false,
    kind: n.kind,
    severity: n.severity as AlertSeverity,
    summary: n.summary,
    alertId: n.alertId,
    attempts: 0,
    lastError: null,
    lastStatus: null,
    nextAttemptAt: null,
    deliveredAt: null,
    latencyMs: null,
    occurredAt: n.occurredAt,
    digestDueAt: null,
    digestDeliveryId: null,
    silenceId: null,
    leaseUntil: null,
    ...fields,
  });
}

/** Inserts a delivery unless one for the same notification, channel and purpose exists; true when inserted. */
async function insertDelivery(em: EntityManager, d: NotificationDelivery): Promise<boolean> {
  const r = await em.createQueryBuilder().insert().into(NotificationDelivery).values(d as object).orIgnore().returning(['id']).execute();
  if (!r.raw.length) return false;
  d.id = r.raw[0].id;
  return true;
}

/**
 * Routes one notification by its team's rules: per channel the strongest action of the rules that
 * match (IMMEDIATE over DIGEST; NONE sends nothing), held back (SILENCED) when an active silence
 * matches, queued at once or held for the channel's digest; an escalation is scheduled for a
 * CRITICAL alert opening or escalating when its rule names an escalation channel. Idempotent: a
 * notification is routed once. Answers the deliveries to attempt now (after the commit), by whoever
 * routed it: a route job run again after its worker died answers those still not tried, and the
 * sweep catches any left behind.
 */
export async function routeNotification(app: AppServices, notificationId: string): Promise<string[]> {
  return app.db.transaction(async (em) => {
    // Claimed by marking it routed: a second route job (a retry, another worker) finds it taken.
    const claimed = await em
      .createQueryBuilder()
      .update(Notification)
      .set({ routedAt: () => 'now()' })
      .where('id = :id AND routed_at IS NULL', { id: notificationId })
      .returning('*')
      .execute();
    if (!claimed.raw.length) return untried(em, notificationId);
    const n = em.create(Notification, entityFields(claimed.raw[0]));
    const toAttempt: string[] = [];
    const now = new Date();
    const rules = await em.find(NotificationRule, { where: { teamId: n.teamId, enabled: true }, order: { createdAt: 'ASC' } });
    // A failing channel's own alert is not sent to it (it would only fail again).
    const failing = n.alertKind === AlertKind.NOTIFICATION_FAILED ? String(n.data.feature ?? '') : null;
    const chosen = new Map<string, { rule: NotificationRule; action: NotificationAction }>();
    for (const rule of rules) {
      if (!ruleMatches(rule, n)) continue;
      const action = actionOf(rule, n);
      if (action === NotificationAction.NONE || rule.channelId === failing) continue;
      const prev = chosen.get(rule.channelId);
      if (!prev || (prev.action === NotificationAction.DIGEST && action === NotificationAction.IMMEDIATE)) chosen.set(rule.channelId, { rule, action });
    }
    const channels = chosen.size ? await em.find(NotificationChannel, { where: { id: In([...chosen.keys()]), teamId: n.teamId } }) : [];
    const silence = channels.length ? (await activeSilences(em, n.teamId, now)).find((s) => silenceHolds(s, n, now)) ?? null : null;
    const planned = channels.map((channel) => {
      const { rule, action } = chosen.get(channel.id)!;
      const status = silence ? NotificationDeliveryStatus.SILENCED : action === NotificationAction.IMMEDIATE ? NotificationDeliveryStatus.PENDING : NotificationDeliveryStatus.HELD_FOR_DIGEST;
      const due = status === NotificationDeliveryStatus.HELD_FOR_DIGEST ? digestDue(now, rule.digestSeconds) : null;
      return { channel, rule, status, due, d: deliveryOf(em, n, channel, { ruleId: rule.id, status, digestDueAt: due, silenceId: silence?.id ?? null }) };
    });
    // One statement for every channel's delivery.
    const inserted = planned.length
      ? await em.createQueryBuilder().insert().into(NotificationDelivery).values(planned.map((p) => p.d as object)).orIgnore().returning(['id', 'channelId']).execute()
      : { raw: [] };
    const idOf = new Map<string, string>(inserted.raw.map((r: { id: string; channel_id: string }) => [r.channel_id, r.id]));
    for (const { channel, rule, status, due, d } of planned) {
      if (!idOf.has(channel.id)) continue;
      d.id = idOf.get(channel.id)!;
      if (status === NotificationDeliveryStatus.PENDING) toAttempt.push(d.id);
      if (due) {
        await enqueue(em, { queue: QUEUES.notifications, name: 'digest', jobId: `notify-digest-${channel.id}-${due.getTime()}`, payload: { digestChannelId: channel.id }, delayMs: due.getTime() - now.getTime(), ifAbsent: true });
      }
      const escalates = !silence && rule.escalationChannelId && rule.escalateAfterSeconds && n.severity === 'CRITICAL' && n.alertId && (n.kind === NotificationKind.ALERT_OPENED || n.kind === NotificationKind.ALERT_ESCALATED);
      if (escalates) {
        await enqueue(em, {
          queue: QUEUES.notifications,
          name: 'escalate',
          jobId: `notify-escalate-${n.id}-${rule.id}`,
          payload: { escalateNotificationId: n.id, ruleId: rule.id },
          delayMs: rule.escalateAfterSeconds! * 1000,
          ifAbsent: true,
        });
      }
    }
    return toAttempt;
  });
}

/** Deliveries of a notification never tried yet. */
async function untried(em: EntityManager, notificationId: string): Promise<string[]> {
  const rows: Array<{ id: string }> = await em.query(`SELECT id FROM notification_delivery WHERE notification_id = $1 AND status = 'PENDING' AND attempts = 0`, [notificationId]);
  return rows.map((r) => r.id);
}

const MAX_DIGEST_ITEMS = 1000;
const LISTED_DIGEST_ITEMS = 100;

/**
 * Sends what is held for a channel's digest and due: one DIGEST notification listing them (the
 * first 100, with the count of all), delivered like any other; the items become DIGESTED, naming
 * it. Nothing due: nothing sent. Answers the delivery to attempt now.
 */
export async function sendDigest(app: AppServices, channelId: string): Promise<string[]> {
  return app.db.transaction(async (em) => {
    const items: NotificationDelivery[] = await em
      .getRepository(NotificationDelivery)
      .createQueryBuilder('d')
      .where('d.channel_id = :channelId AND d.status = :held AND d.digest_due_at <= now()', { channelId, held: NotificationDeliveryStatus.HELD_FOR_DIGEST })
      .orderBy('d.occurred_at', 'ASC')
      .limit(MAX_DIGEST_ITEMS)
      .setLock('pessimistic_write')
      .setOnLocked('skip_locked')
      .getMany();
    if (!items.length) return [];
    const channel = await em.findOne(NotificationChannel, { where: { id: channelId } });
    if (!channel) {
      await em.update(NotificationDelivery, { id: In(items.map((i) => i.id)) }, { status: NotificationDeliveryStatus.DROPPED, lastError: 'the channel was deleted' });
      return [];
    }
    const severity = items.reduce((top, i) => (NOTIFICATION_SEVERITY_RANK[i.severity] > NOTIFICATION_SEVERITY_RANK[top] ? i.severity : top), AlertSeverity.INFO);
    const counts = new Map<string, number>();
    for (const i of items) counts.set(i.kind, (counts.get(i.kind) ?? 0) + 1);
    const tally = [...counts].map(([k, c]) => `${c} ${k.toLowerCase().replace(/_/g, ' ')}`).join(', ');
    const now = new Date();
    const digest = em.create(Notification, {
      id: derivedUuid('digest', channelId, ...items.map((i) => i.id)),
      teamId: channel.teamId,
      kind: NotificationKind.DIGEST,
      severity,
      action: 'trigger',
      subject: channel.nodeId,
      dedupKey: `digest:${channel.nodeId}:${now.getTime()}`,
      deploymentId: null,
      environment: null,
      alertId: null,
      alertKind: null,
      summary: `Digest for ${channel.name}: ${items.length} notification${items.length === 1 ? '' : 's'} (${tally})`,
      data: {
        channel: channel.nodeId,
        count: items.length,
        items: items.slice(0, LISTED_DIGEST_ITEMS).map((i) => ({
          kind: i.kind,
          severity: i.severity,
          summary: i.summary,
          occurredAt: i.occurredAt.toISOString(),
          alert: i.alertId ? toGlobalId('Alert', i.alertId) : null,
          delivery: i.nodeId,
        })),
      },
      requestId: null,
      occurredAt: now,
      routedAt: now,
    });
    await em.insert(Notification, digest as object);
    const d = deliveryOf(em, digest, channel, { status: NotificationDeliveryStatus.PENDING });
    await insertDelivery(em, d);
    await em.update(NotificationDelivery, { id: In(items.map((i) => i.id)) }, { status: NotificationDeliveryStatus.DIGESTED, digestDeliveryId: d.id });
    return [d.id];
  });
}

/**
 * A CRITICAL alert a rule sent, still OPEN (nobody acknowledged or resolved it) after the rule's
 * escalation delay: sent to the rule's escalation channel as ALERT_UNACKNOWLEDGED (unless a silence
 * now holds it). Once per notification and rule. Answers the delivery to attempt now.
 */
export async function escalateNotification(app: AppServices, notificationId: string, ruleId: string): Promise<string[]> {
  return app.db.transaction(async (em) => {
    const n = await em.findOne(Notification, { where: { id: notificationId } });
    const rule = await em.findOne(NotificationRule, { where: { id: ruleId } });
    if (!n?.alertId || !rule?.enabled || !rule.escalationChannelId || !rule.escalateAfterSeconds) return [];
    // Shared lock: an acknowledgement being committed is waited for, and seen.
    const alert = await em.findOne(Alert, { where: { id: n.alertId }, lock: { mode: 'pessimistic_read' } });
    if (!alert || alert.status !== AlertStatus.OPEN) return [];
    const channel = await em.findOne(NotificationChannel, { where: { id: rule.escalationChannelId, teamId: n.teamId } });
    if (!channel) return [];
    const now = new Date();
    const minutes = Math.round(rule.escalateAfterSeconds / 6) / 10;
    const escalation = em.create(Notification, {
      ...n,
      id: derivedUuid('escalation', n.id, rule.id),
      kind: NotificationKind.ALERT_UNACKNOWLEDGED,
      severity: 'CRITICAL',
      action: 'trigger',
      summary: `Unacknowledged for ${minutes} min: ${n.summary}`,
      data: { ...n.data, escalatedBy: rule.nodeId, unacknowledgedSeconds: rule.escalateAfterSeconds, status: alert.status },
      occurredAt: now,
      routedAt: now,
      createdAt: undefined,
    });
    const inserted = await em.createQueryBuilder().insert().into(Notification).values(escalation as object).orIgnore().returning(['id']).execute();
    if (!inserted.raw.length) return untried(em, escalation.id);
    const silence = (await activeSilences(em, n.teamId, now)).find((s) => silenceHolds(s, escalation, now)) ?? null;
    const d = deliveryOf(em, escalation, channel, {
      ruleId: rule.id,
      escalation: true,
      status: silence ? NotificationDeliveryStatus.SILENCED : NotificationDeliveryStatus.PENDING,
      silenceId: silence?.id ?? null,
    });
    return (await insertDelivery(em, d)) && !silence ? [d.id] : [];
  });
}

/**
 * The safety net, run every NOTIFY_SWEEP_SECONDS by one worker: notifications never routed,
 * deliveries whose attempt is long overdue or whose sender died (lease run out), and digests past
 * due get their job again (under a new job id: the old one may be gone with Redis' data). A job
 * that was only late finds its work taken and does nothing. Finished deliveries and their
 * notifications older than NOTIFY_RETENTION_DAYS are removed, a batch at a time.
 */
export async function sweepNotifications(app: AppServices): Promise<void> {
  const grace = `${Math.max(60, app.config.notify.sweepSeconds * 2)} seconds`;
  const tag = `-sweep-${Math.floor(Date.now() / 1000)}`;
  await app.db.transaction(async (em) => {
    const unrouted: Array<{ id: string }> = await em.query(`SELECT id FROM notification WHERE routed_at IS NULL AND created_at < now() - $1::interval LIMIT 500`, [grace]);
    for (const r of unrouted) await enqueue(em, { queue: QUEUES.notifications, name: 'route', jobId: `notify-route-${r.id}${tag}`, payload: { notificationId: r.id }, ifAbsent: true });
    const stuck: Array<{ id: string; attempts: number }> = await em.query(
      `SELECT id, attempts FROM notification_delivery
        WHERE (status IN ('PENDING', 'RETRYING') AND coalesce(next_attempt_at, created_at) < now() - $1::interval)
           OR (status = 'SENDING' AND lease_until < now())
        LIMIT 500`,
      [grace],
    );
    for (const d of stuck) await queueAttempt(em, d.id, d.attempts + 1, 0, tag);
    const digests: Array<{ channel_id: string }> = await em.query(
      `SELECT DISTINCT channel_id FROM notification_delivery WHERE status = 'HELD_FOR_DIGEST' AND digest_due_at < now() - $1::interval AND channel_id IS NOT NULL LIMIT 500`,
      [grace],
    );
    for (const c of digests) await enqueue(em, { queue: QUEUES.notifications, name: 'digest', jobId: `notify-digest-${c.channel_id}${tag}`, payload: { digestChannelId: c.channel_id }, ifAbsent: true });
  });
  const kept = `${app.config.notify.retentionDays} days`;
  await app.db.query(
    `DELETE FROM notification_delivery WHERE id IN (
       SELECT id FROM notification_delivery WHERE created_at < now() - $1::interval AND status IN ('DELIVERED', 'DEAD', 'DIGESTED', 'SILENCED', 'DROPPED') LIMIT 5000)`,
    [kept],
  );
  await app.db.query(
    `DELETE FROM notification WHERE id IN (
       SELECT n.id FROM notification n WHERE n.created_at < now() - $1::interval AND n.routed_at IS NOT NULL
          AND NOT EXISTS (SELECT 1 FROM notification_delivery d WHERE d.notification_id = n.id) LIMIT 5000)`,
    [kept],
  );
}

/** Keeps the sweep scheduled (idempotent across processes). */
export async function reconcileNotificationSchedules(app: AppServices): Promise<void> {
  try {
    const queue = app.queues?.get(QUEUES.notifications);
    if (!queue) return;
    await queue.upsertJobScheduler('notify-sweep', { every: app.config.notify.sweepSeconds * 1000 }, { name: 'sweep', data: { sweep: true }, opts: { removeOnComplete: 10, removeOnFail: 10 } });
  } catch (e) {
    app.log.warn({ err: (e as Error).message }, 'notification sweep not scheduled (Redis unavailable?)');
  }
}
