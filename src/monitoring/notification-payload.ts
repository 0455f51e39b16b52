// The bodies and headers each kind of channel expects, built from one notification event. Pure
// functions: whatever sends them (now a test delivery, later routed and queued alerts) reuses them.
import { createHmac } from 'node:crypto';

/** One thing to tell a channel about. */
export interface NotificationEvent {
  /** Unique per event; the webhook id, the CloudEvent id and the idempotency key. */
  id: string;
  /** CloudEvents `type`, e.g. `io.modelgov.alert.opened`. */
  type: string;
  /** CloudEvents `source`: what the event is about, as a URI reference. */
  source: string;
  time: Date;
  /** One line a person reads first. */
  summary: string;
  severity: 'INFO' | 'WARNING' | 'CRITICAL';
  /** A condition starting (trigger), seen by someone (acknowledge) or ending (resolve). */
  action: 'trigger' | 'acknowledge' | 'resolve';
  /** Events with the same key are one incident (PagerDuty `dedup_key`). */
  dedupKey: string;
  data: Record<string, unknown>;
}

/** Headers and body of one request (the URL is the channel's). */
export interface NotificationRequest {
  headers: Record<string, string>;
  body: string;
}

/**
 * The Standard Webhooks signature: `v1,` and the base64 HMAC-SHA256, keyed with the secret's bytes
 * (after `whsec_`, base64), over `${id}.${timestamp}.${body}`.
 */
export function webhookSignature(secret: string, id: string, timestamp: number, body: string): string {
  const key = Buffer.from(secret.replace(/^whsec_/, ''), 'base64');
  return `v1,${createHmac('sha256', key).update(`${id}.${timestamp}.${body}`).digest('base64')}`;
}

/** A CloudEvents 1.0 structured JSON event, signed as Standard Webhooks. */
export function webhookRequest(event: NotificationEvent, secret: string, now = new Date()): NotificationRequest {
  const body = JSON.stringify({
    specversion: '1.0',
    id: event.id,
    source: event.source,
    type: event.type,
    time: event.time.toISOString(),
    datacontenttype: 'application/json',
    data: { summary: event.summary, severity: event.severity, action: event.action, dedupKey: event.dedupKey, ...event.data },
  });
  const timestamp = Math.floor(now.getTime() / 1000);
  return {
    headers: {
      'content-type': 'application/cloudevents+json',
      'webhook-id': event.id,
      'webhook-timestamp': String(timestamp),
      'webhook-signature': webhookSignature(secret, event.id, timestamp, body),
      'idempotency-key': event.id,
    },
    body,
  };
}

const ACTION_MARK = { trigger: '', acknowledge: '[acknowledged] ', resolve: '[resolved] ' } as const;
const SLACK_MARK = { INFO: ':information_source:', WARNING: ':warning:', CRITICAL: ':rotating_light:' } as const;

/** A Slack incoming-webhook message: `text` for notifications, `blocks` for the message itself. */
export function slackRequest(event: NotificationEvent): NotificationRequest {
  const text = `${SLACK_MARK[event.severity]} ${ACTION_MARK[event.action]}${event.summary}`;
  const fields = [
    { type: 'mrkdwn', text: `*Severity*\n${event.severity}` },
    { type: 'mrkdwn', text: `*Source*\n${event.source}` },
  ];
  return {
    headers: {},
    body: JSON.stringify({
      text,
      blocks: [
        { type: 'section', text: { type: 'mrkdwn', text } },
        { type: 'section', fields },
        { type: 'context', elements: [{ type: 'mrkdwn', text: `${event.type} · ${event.time.toISOString()} · ${event.id}` }] },
      ],
    }),
  };
}

const PAGERDUTY_SEVERITY = { INFO: 'info', WARNING: 'warning', CRITICAL: 'critical' } as const;

/** A PagerDuty Events API v2 event (trigger or resolve, deduplicated by the event's key). */
export function pagerDutyRequest(event: NotificationEvent, routingKey: string): NotificationRequest {
  return {
    headers: {},
    body: JSON.stringify({
      routing_key: routingKey,
      event_action: event.action,
      dedup_key: event.dedupKey,
      payload: {
        summary: event.summary.slice(0, 1024),
        severity: PAGERDUTY_SEVERITY[event.severity],
        source: event.source,
        timestamp: event.time.toISOString(),
        custom_details: event.data,
      },
    }),
  };
}

/** One email to submit: the envelope's sender and recipients, the headers and both bodies. */
export interface EmailMessage {
  from: string;
  to: string[];
  subject: string;
  /** `<event id@sender's domain>`: the same event is the same message. */
  messageId: string;
  headers: Record<string, string>;
  text: string;
  html: string;
}

function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

/** One line, at most `max` characters: a subject never carries a line break someone put in a summary. */
function oneLine(s: string, max: number): string {
  const line = s.replace(/[\r\n\t]+/g, ' ').trim();
  return line.length > max ? `${line.slice(0, max - 1)}…` : line;
}

/**
 * An email for an event: subject `[SEVERITY] summary` (`[RESOLVED]` after it for a resolve), a
 * plain-text and an HTML body listing the event's fields and data, a Message-ID made from the event
 * id (on the sender's domain), and `X-Modelgov-Event-Id` / `X-Modelgov-Dedup-Key` headers for
 * filters and deduplication.
 */
export function emailMessage(event: NotificationEvent, from: string, to: string[]): EmailMessage {
  const subject = `[${event.severity}]${{ trigger: '', acknowledge: ' [ACKNOWLEDGED]', resolve: ' [RESOLVED]' }[event.action]} ${oneLine(event.summary, 200)}`;
  const domain = /@([^\s<>@]+)>?\s*$/.exec(from)?.[1] ?? 'modelgov.invalid';
  const fields: Array<[string, string]> = [
    ['Summary', event.summary],
    ['Severity', event.severity],
    ['Action', event.action],
    ['Type', event.type],
    ['Source', event.source],
    ['Time', event.time.toISOString()],
    ['Event id', event.id],
    ['Dedup key', event.dedupKey],
    ...Object.entries(event.data).map(([k, v]): [string, string] => [k, typeof v === 'string' ? v : JSON.stringify(v)]),
  ];
  const text = fields.map(([k, v]) => `${k}: ${v}`).join('\n') + '\n';
  const rows = fields.map(([k, v]) => `<tr><th align="left" style="padding:2px 12px 2px 0">${escapeHtml(k)}</th><td>${escapeHtml(v)}</td></tr>`).join('');
  const html = `<!doctype html><html><body><p><strong>${escapeHtml(subject)}</strong></p><table>${rows}</table></body></html>`;
  return {
    from,
    to,
    subject,
    messageId: `<${event.id}@${domain}>`,
    headers: { 'X-Modelgov-Event-Id': event.id, 'X-Modelgov-Dedup-Key': event.dedupKey },
    text,
    html,
  };
}
