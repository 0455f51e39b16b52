// EMAIL channels: who a channel writes to (kept as a `mailto:` URI in the channel's `url`), and the
// submission of one message to the SMTP server of the configuration. The SMTP server is the
// operator's, not the tenant's, so it is not vetted like a webhook's host; its URL (which may carry
// the submission credentials) never reaches an answer, a log line or an audit event.
import nodemailer from 'nodemailer';
import { isLoopbackHost, type NotifyConfig, type SmtpConfig } from '../config';
import type { EmailMessage } from './notification-payload';
import type { DeliveryOutcome } from './notification-sender';

/** The most recipients one EMAIL channel may have. */
export const MAX_RECIPIENTS = 20;
const MAX_ADDRESS = 254;

const LOCAL = /^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}$/;
const DOMAIN = /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.[A-Za-z]{2,63}$/;

/** Why recipients cannot be accepted, raised by {@link parseRecipients}. */
export class RefusedRecipients extends Error {}

/** One address checked: `local@domain`, a domain name with a top-level label (no IP literal), the domain lower-cased. */
function checkedAddress(raw: string): string {
  const a = raw.trim();
  const at = a.lastIndexOf('@');
  if (at <= 0 || a.length > MAX_ADDRESS) throw new RefusedRecipients(`"${a.slice(0, 80)}" is not an email address`);
  const local = a.slice(0, at);
  const domain = a.slice(at + 1).toLowerCase();
  if (!LOCAL.test(local) || local.startsWith('.') || local.endsWith('.') || local.includes('..') || !DOMAIN.test(domain)) {
    throw new RefusedRecipients(`"${a.slice(0, 80)}" is not an email address`);
  }
  return `${local}@${domain}`;
}

/**
 * The recipients of an EMAIL channel from what was given as its `url`: a `mailto:` URI (RFC 6068,
 * addresses separated by commas, no `?` header fields) or the bare comma-separated addresses. 1 to
 * {@link MAX_RECIPIENTS} distinct addresses; throws {@link RefusedRecipients} with the reason.
 */
export function parseRecipients(given: string): string[] {
  let list = given.trim();
  if (/^mailto:/i.test(list)) {
    list = list.slice('mailto:'.length);
    if (list.includes('?')) throw new RefusedRecipients('a mailto: URI with header fields (?subject=, ?cc=, …) is refused: list the addresses only');
    try {
      list = decodeURIComponent(list);
    } catch {
      throw new RefusedRecipients('the mailto: URI is not well percent-encoded');
    }
  }
  const seen = new Set<string>();
  const addresses: string[] = [];
  for (const part of list.split(',')) {
    if (!part.trim()) continue;
    const a = checkedAddress(part);
    if (!seen.has(a.toLowerCase())) {
      seen.add(a.toLowerCase());
      addresses.push(a);
    }
  }
  if (!addresses.length) throw new RefusedRecipients('no recipient address');
  if (addresses.length > MAX_RECIPIENTS) throw new RefusedRecipients(`at most ${MAX_RECIPIENTS} recipients (got ${addresses.length})`);
  return addresses;
}

/** The `mailto:` URI an EMAIL channel's recipients are stored as. */
export function mailtoUri(addresses: string[]): string {
  return `mailto:${addresses.map((a) => encodeURIComponent(a).replace(/%40/g, '@')).join(',')}`;
}

/** The SMTP server as it may be shown: host and port, never the credentials. */
export function smtpEndpoint(smtp: SmtpConfig): string {
  const u = new URL(smtp.url);
  return `${u.hostname}:${u.port || (u.protocol === 'smtps:' ? 465 : 587)}`;
}

/** The words of an SMTP failure, with the credentials (should a library ever echo them) cut out. */
function failureText(e: unknown, smtp: SmtpConfig): string {
  const err = e as { code?: string; responseCode?: number; message?: string };
  let text = `${err.code ? `${err.code}: ` : ''}${err.message ?? String(e)}`;
  const u = new URL(smtp.url);
  for (const secret of [u.password, decodeURIComponent(u.password), u.username, decodeURIComponent(u.username), smtp.url]) {
    if (secret) text = text.split(secret).join('…');
  }
  return text.slice(0, 500);
}

/**
 * Submits one message to the configured SMTP server: TLS from the start (`smtps://`) or STARTTLS
 * required (`smtp://`), certificates verified, unless SMTP_INSECURE_LOCALHOST allows otherwise
 * for a loopback server. The connect and greeting waits are bounded by NOTIFY_CONNECT_TIMEOUT_MS,
 * each socket wait and the whole submission by NOTIFY_TIMEOUT_MS. Never throws: the outcome
 * carries the SMTP reply code as `status`, the server's host and port as `address`.
 */
export async function sendEmail(settings: Pick<NotifyConfig, 'smtp' | 'connectTimeoutMs' | 'timeoutMs'>, message: EmailMessage): Promise<DeliveryOutcome> {
  const smtp = settings.smtp;
  const failed = (error: string, address: string | null = null, status: number | null = null): DeliveryOutcome => ({ delivered: false, status, address, error, location: null, responseBody: null });
  if (!smtp) return failed('refused: no SMTP server is configured (SMTP_URL)');
  const u = new URL(smtp.url);
  const address = smtpEndpoint(smtp);
  const secure = u.protocol === 'smtps:';
  const insecure = smtp.insecureLocalhost && isLoopbackHost(u.hostname);
  const transport = nodemailer.createTransport({
    host: u.hostname.replace(/^\[(.*)\]$/, '$1'),
    port: Number(u.port) || (secure ? 465 : 587),
    secure,
    requireTLS: !secure && !insecure,
    auth: u.username ? { user: decodeURIComponent(u.username), pass: decodeURIComponent(u.password) } : undefined,
    tls: { rejectUnauthorized: !insecure, servername: u.hostname },
    connectionTimeout: settings.connectTimeoutMs,
    greetingTimeout: settings.connectTimeoutMs,
    socketTimeout: settings.timeoutMs,
    logger: false,
    debug: false,
  });
  let timer: NodeJS.Timeout | undefined;
  try {
    const info = await Promise.race([
      transport.sendMail({
        from: message.from,
        to: message.to,
        subject: message.subject,
        messageId: message.messageId,
        headers: message.headers,
        text: message.text,
        html: message.html,
      }),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(Object.assign(new Error(`timed out after ${settings.timeoutMs} ms`), { code: 'ETIMEDOUT' })), settings.timeoutMs);
        timer.unref();
      }),
    ]);
    const status = Number(/^(\d{3})/.exec(String(info.response ?? ''))?.[1]) || null;
    const rejected = (info.rejected ?? []).map(String);
    if (rejected.length) return failed(`rejected recipients: ${rejected.join(', ')}`, address, status);
    return { delivered: true, status, address, error: null, location: null, responseBody: String(info.response ?? '').slice(0, 1000) || null };
  } catch (e) {
    return failed(failureText(e, smtp), address, (e as { responseCode?: number }).responseCode ?? null);
  } finally {
    clearTimeout(timer);
    transport.close();
  }
}
