// Team-owned notification channels: created, changed, removed and tested here, each change audited.
// A channel's secret is generated or taken here, sealed at once, and leaves this file only inside
// the create answer (a webhook's signing secret) or an outgoing request.
import { randomUUID } from 'node:crypto';
import type { NotifyConfig } from '../config';
import { audit } from '../core/audit/audit-chain';
import { assertCan, mapDbError } from '../core/authz';
import { inTransaction, type RequestContext } from '../core/context';
import { badInput, conflict } from '../core/errors';
import { listConnection, whereTeam } from '../core/list';
import type { PageArgs } from '../core/pagination';
import { resolveTeam } from '../access/team.service';
import { loadReadable } from '../lineage/lineage.service';
import { In } from 'typeorm';
import { Alert, AlertKind, AlertStatus } from './alert.entity';
import { notifyAlertChange } from './alert-notifications';
import { publishAlert } from './alerts';
import { MonitoringReason } from './monitoring.errors';
import { NotificationChannel, NotificationChannelKind } from './notification-channel.entity';
import {
  NotificationChannelConnection,
  type CreatedNotificationChannel,
  type CreateNotificationChannelInput,
  type NotificationTestResult,
  type UpdateNotificationChannelInput,
} from './notification-channel.inputs';
import { mailtoUri, parseRecipients, RefusedRecipients, sendEmail } from './notification-email';
import { emailMessage, pagerDutyRequest, slackRequest, webhookRequest, type NotificationEvent, type NotificationRequest } from './notification-payload';
import { newWebhookSecret, openChannelSecret, sealChannelSecret } from './notification-secret';
import { RefusedDestination, sendNotification, vetDestination } from './notification-sender';

const MAX_NAME = 100;
const MAX_URL = 2048;

/**
 * The URL as it may appear in audit events: scheme, host and port only (a Slack URL's path is its
 * credential); an EMAIL channel's `mailto:` recipients whole (addresses are no credential).
 */
function auditedUrl(url: string): string {
  return url.startsWith('mailto:') ? url : new URL(url).origin;
}

/** An EMAIL channel's destination: its recipients as a `mailto:` URI; refused when no SMTP server is configured. */
function checkedRecipients(ctx: RequestContext, given: string): string {
  if (!ctx.app.config.notify.smtp) {
    throw badInput('EMAIL channels cannot be created or changed: no SMTP server is configured on this server (SMTP_URL, SMTP_FROM)', {
      field: 'kind',
      reason: MonitoringReason.NOTIFICATION_EMAIL_NOT_CONFIGURED,
    });
  }
  if (given.length > MAX_URL) throw badInput(`url must be at most ${MAX_URL} characters`, { field: 'url', reason: MonitoringReason.NOTIFICATION_RECIPIENTS_REFUSED });
  try {
    return mailtoUri(parseRecipients(given));
  } catch (e) {
    if (e instanceof RefusedRecipients) throw badInput(`recipients refused: ${e.message}`, { field: 'url', reason: MonitoringReason.NOTIFICATION_RECIPIENTS_REFUSED });
    throw e;
  }
}

/** The destination as stored: recipients for EMAIL, a vetted URL for the rest. */
function checkedDestination(ctx: RequestContext, kind: NotificationChannelKind, given: string): Promise<string> | string {
  return kind === NotificationChannelKind.EMAIL ? checkedRecipients(ctx, given) : checkedUrl(ctx, given);
}

function checkedName(name: string): string {
  const n = name.trim();
  if (!n || n.length > MAX_NAME) throw badInput(`name must be 1 to ${MAX_NAME} characters`, { field: 'name' });
  return n;
}

/** A destination that is refusable now (scheme, IP literal, a name resolving only to refused addresses) is BAD_USER_INPUT. */
async function checkedUrl(ctx: RequestContext, url: string): Promise<string> {
  if (url.length > MAX_URL) throw badInput(`url must be at most ${MAX_URL} characters`, { field: 'url', reason: MonitoringReason.NOTIFICATION_URL_REFUSED });
  try {
    return (await vetDestination(ctx.app.config.notify, url)).url.toString();
  } catch (e) {
    if (e instanceof RefusedDestination) throw badInput(`url refused: ${e.message}`, { field: 'url', reason: MonitoringReason.NOTIFICATION_URL_REFUSED });
    throw e;
  }
}

/** A PagerDuty URL's `routing_key` parameter moves into the (sealed) secret, out of the stored URL. */
function splitRoutingKey(url: string, given: string | null | undefined): { url: string; routingKey: string } {
  const u = new URL(url);
  const fromUrl = u.searchParams.get('routing_key');
  u.searchParams.delete('routing_key');
  const routingKey = (given ?? fromUrl ?? '').trim();
  if (!routingKey) throw badInput('a PAGERDUTY channel needs a routing key (routingKey, or ?routing_key= in the URL)', { field: 'routingKey' });
  if (routingKey.length > 256) throw badInput('routingKey must be at most 256 characters', { field: 'routingKey' });
  return { url: u.toString(), routingKey };
}

/** A page of the channels the caller may read, newest first (optionally of one team). */
export function listNotificationChannels(ctx: RequestContext, page: PageArgs, team?: string | null) {
  return listConnection(ctx, NotificationChannelConnection, NotificationChannel, 'NotificationChannel', page, (qb) => whereTeam(qb, team));
}

/** Creates a channel; a WEBHOOK's signing secret is generated and returned this once. */
export async function createNotificationChannel(ctx: RequestContext, input: CreateNotificationChannelInput): Promise<CreatedNotificationChannel> {
  return inTransaction(ctx, async (em, ctx) => {
    const team = await resolveTeam(ctx, input.team);
    const id = randomUUID();
    const channel = em.create(NotificationChannel, { id, teamId: team.id, name: checkedName(input.name), kind: input.kind, url: '', secretCiphertext: null, createdBy: ctx.principal!.id });
    assertCan(ctx, 'create', 'NotificationChannel', channel);
    if (input.routingKey != null && input.kind !== NotificationChannelKind.PAGERDUTY) throw badInput('routingKey is for PAGERDUTY channels only', { field: 'routingKey' });
    let url = await checkedDestination(ctx, input.kind, input.url);
    let secret: string | null = null;
    if (input.kind === NotificationChannelKind.WEBHOOK) secret = newWebhookSecret();
    if (input.kind === NotificationChannelKind.PAGERDUTY) ({ url, routingKey: secret } = splitRoutingKey(url, input.routingKey));
    channel.url = url;
    channel.secretCiphertext = secret === null ? null : sealChannelSecret(ctx.app.config.notify.secretKey, id, secret);
    await em.insert(NotificationChannel, channel).catch((e) => mapDbError(e, `NotificationChannel "${channel.name}" in team ${team.name}`));
    await audit(ctx, {
      action: 'createNotificationChannel',
      subjectType: 'NotificationChannel',
      subjectId: channel.nodeId,
      after: { team: team.name, name: channel.name, kind: channel.kind, url: auditedUrl(url), hasSecret: secret !== null },
    });
    return { channel, signingSecret: input.kind === NotificationChannelKind.WEBHOOK ? secret : null };
  });
}

/** Renames a channel, points it elsewhere (checked like a new one) or replaces its routing key. */
export async function updateNotificationChannel(ctx: RequestContext, input: UpdateNotificationChannelInput): Promise<NotificationChannel> {
  return inTransaction(ctx, async (em, ctx) => {
    const channel = await loadReadable(ctx, em, NotificationChannel, 'NotificationChannel', input.id, 'id', 'update');
    assertCan(ctx, 'update', 'NotificationChannel', channel);
    const before = { name: channel.name, url: auditedUrl(channel.url) };
    if (input.routingKey != null && channel.kind !== NotificationChannelKind.PAGERDUTY) throw badInput('routingKey is for PAGERDUTY channels only', { field: 'routingKey' });
    if (input.name != null) channel.name = checkedName(input.name);
    let routingKey: string | null = null;
    if (input.url != null) {
      channel.url = await checkedDestination(ctx, channel.kind, input.url);
      if (channel.kind === NotificationChannelKind.PAGERDUTY && (input.routingKey != null || new URL(channel.url).searchParams.has('routing_key'))) {
        ({ url: channel.url, routingKey } = splitRoutingKey(channel.url, input.routingKey));
      }
    } else if (input.routingKey != null) {
      routingKey = splitRoutingKey(channel.url, input.routingKey).routingKey;
    }
    if (routingKey !== null) channel.secretCiphertext = sealChannelSecret(ctx.app.config.notify.secretKey, channel.id, routingKey);
    await em.save(NotificationChannel, channel).catch((e) => mapDbError(e, `NotificationChannel "${channel.name}"`));
    await audit(ctx, {
      action: 'updateNotificationChannel',
      subjectType: 'NotificationChannel',
      subjectId: channel.nodeId,
      before,
      after: { name: channel.name, url: auditedUrl(channel.url), routingKeyReplaced: routingKey !== null },
    });
    return channel;
  });
}

/** Removes a channel (and its sealed secret). */
export async function deleteNotificationChannel(ctx: RequestContext, id: string): Promise<boolean> {
  const closed = await inTransaction(ctx, async (em, ctx) => {
    const channel = await loadReadable(ctx, em, NotificationChannel, 'NotificationChannel', id, 'id', 'update');
    assertCan(ctx, 'delete', 'NotificationChannel', channel);
    // A rule left pointing at nothing would drop its notifications without a word.
    const using: Array<{ name: string }> = await em.query(`SELECT name FROM notification_rule WHERE channel_id = $1 OR escalation_channel_id = $1 ORDER BY name LIMIT 10`, [channel.id]);
    if (using.length) {
      throw conflict(`the channel is used by routing rules (${using.map((r) => `"${r.name}"`).join(', ')}): delete them or send them elsewhere first`, { reason: MonitoringReason.NOTIFICATION_CHANNEL_IN_USE });
    }
    await em.delete(NotificationChannel, { id: channel.id });
    // Its failure alert can no longer be cleared by a delivery that works: it closes with it.
    const failing = await em.findOne(Alert, { where: { teamId: channel.teamId, kind: AlertKind.NOTIFICATION_FAILED, feature: channel.id, status: In([AlertStatus.OPEN, AlertStatus.ACKNOWLEDGED]) } });
    if (failing) {
      Object.assign(failing, { status: AlertStatus.RESOLVED, resolvedBy: ctx.principal!.id, resolvedAt: new Date(), resolution: 'the channel was deleted' });
      await em.save(Alert, failing);
      await notifyAlertChange(em, failing, 'resolved', ctx.requestId);
    }
    await audit(ctx, {
      action: 'deleteNotificationChannel',
      subjectType: 'NotificationChannel',
      subjectId: channel.nodeId,
      before: { name: channel.name, kind: channel.kind, url: auditedUrl(channel.url) },
      after: failing ? { alertResolved: failing.nodeId } : null,
    });
    return failing;
  });
  if (closed) publishAlert(ctx.app, closed);
  return true;
}

/** The request an HTTP channel gets for an event, in its kind's format (the secret opened only here). */
export function channelRequest(key: Buffer, channel: NotificationChannel, event: NotificationEvent): NotificationRequest {
  const secret = () => openChannelSecret(key, channel.id, channel.secretCiphertext!);
  switch (channel.kind) {
    case NotificationChannelKind.WEBHOOK:
      return webhookRequest(event, secret());
    case NotificationChannelKind.SLACK:
      return slackRequest(event);
    case NotificationChannelKind.PAGERDUTY:
      return pagerDutyRequest(event, secret());
    case NotificationChannelKind.EMAIL:
      throw new Error('an EMAIL channel is sent by SMTP, not by an HTTP request');
  }
}

/** Delivers an event to a channel now: by SMTP for EMAIL, by an HTTP POST for the other kinds. */
export function deliver(notify: NotifyConfig, channel: NotificationChannel, event: NotificationEvent) {
  // Without SMTP (configuration removed since the channel was made) sendEmail reports the refusal.
  if (channel.kind === NotificationChannelKind.EMAIL) return sendEmail(notify, emailMessage(event, notify.smtp?.from ?? '', parseRecipients(channel.url)));
  return sendNotification(notify, { url: channel.url, ...channelRequest(notify.secretKey, channel, event) });
}

/** Sends a test event to a channel now and answers what became of it; audited with its outcome. */
export async function testNotificationChannel(ctx: RequestContext, id: string): Promise<NotificationTestResult> {
  const channel = await inTransaction(ctx, async (em, ctx) => {
    const c = await loadReadable(ctx, em, NotificationChannel, 'NotificationChannel', id, 'id');
    assertCan(ctx, 'update', 'NotificationChannel', c);
    return c;
  });
  const event: NotificationEvent = {
    id: randomUUID(),
    type: 'io.modelgov.notification.test',
    source: `/modelgov/notification-channels/${channel.nodeId}`,
    time: new Date(),
    summary: `Test notification for channel "${channel.name}"`,
    severity: 'INFO',
    action: 'trigger',
    dedupKey: `test-${channel.nodeId}`,
    data: { channel: channel.nodeId, requestedBy: ctx.principal!.id },
  };
  const outcome = await deliver(ctx.app.config.notify, channel, event);
  await inTransaction(ctx, async (_em, ctx) => {
    await audit(ctx, {
      action: 'testNotificationChannel',
      subjectType: 'NotificationChannel',
      subjectId: channel.nodeId,
      after: { eventId: event.id, delivered: outcome.delivered, status: outcome.status, address: outcome.address, error: outcome.error, location: outcome.location },
    });
  });
  return { eventId: event.id, ...outcome };
}
