import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createLogger } from '../../src/core/logger';
import { mailtoUri, parseRecipients, RefusedRecipients } from '../../src/monitoring/notification-email';
import { emailMessage, type NotificationEvent } from '../../src/monitoring/notification-payload';
import { dataOf } from '../support/access';
import { codeOf, startTestServer, type TestServer } from '../support/harness';
import { smtpServer } from '../support/notify';

/** A header value with its RFC 2047 encoded words decoded. */
function decodeWords(value: string): string {
  return value
    .replace(/\?=\s+=\?/g, '?==?')
    .replace(/=\?([^?]+)\?([QqBb])\?([^?]*)\?=/g, (_, _charset, enc: string, text: string) =>
      enc.toUpperCase() === 'B'
        ? Buffer.from(text, 'base64').toString('utf8')
        : Buffer.from(text.replace(/_/g, ' ').replace(/=([0-9A-F]{2})/gi, (_m, h) => String.fromCharCode(parseInt(h, 16))), 'latin1').toString('utf8'),
    );
}

/** Headers (unfolded, lower-case names, encoded words decoded) and the decoded text parts of a MIME message. */
function parseMime(raw: string): { headers: Record<string, string>; parts: Record<string, string> } {
  const split = (s: string) => {
    const at = s.indexOf('\r\n\r\n');
    const head = s.slice(0, at).replace(/\r\n[ \t]+/g, ' ');
    const headers: Record<string, string> = {};
    for (const line of head.split('\r\n')) {
      const i = line.indexOf(':');
      headers[line.slice(0, i).toLowerCase()] = decodeWords(line.slice(i + 1).trim());
    }
    return { headers, body: s.slice(at + 4) };
  };
  const decode = (headers: Record<string, string>, body: string) => {
    const cte = (headers['content-transfer-encoding'] ?? '').toLowerCase();
    if (cte === 'base64') return Buffer.from(body.replace(/\s+/g, ''), 'base64').toString('utf8');
    if (cte === 'quoted-printable') {
      const bytes = body.replace(/=\r\n/g, '').replace(/=([0-9A-F]{2})/g, (_, h) => String.fromCharCode(parseInt(h, 16)));
      return Buffer.from(bytes, 'latin1').toString('utf8');
    }
    return body;
  };
  const top = split(raw);
  const parts: Record<string, string> = {};
  const walk = (headers: Record<string, string>, body: string) => {
    const type = headers['content-type'] ?? 'text/plain';
    const boundary = /boundary="?([^";]+)"?/.exec(type)?.[1];
    if (type.startsWith('multipart/') && boundary) {
      for (const chunk of body.split(`--${boundary}`).slice(1)) {
        if (chunk.startsWith('--')) break;
        const p = split(chunk.replace(/^\r\n/, ''));
        walk(p.headers, p.body);
      }
    } else parts[type.split(';')[0].trim()] = decode(headers, body);
  };
  walk(top.headers, top.body);
  return { headers: top.headers, parts };
}

const CREATE = `mutation ($input: CreateNotificationChannelInput!) {
  createNotificationChannel(input: $input) { signingSecret channel { id name kind url } }
}`;
const TEST = 'mutation ($id: ID!) { testNotificationChannel(id: $id) { eventId delivered status address error location } }';
const USER = 'alerts-mailer';
const PASSWORD = 'Sm7pP4ssw0rd-not-for-answers';

describe('EMAIL notification channels: the message', () => {
  const event: NotificationEvent = {
    id: '7d4f3b9a-0c1e-4a43-9e53-3f1f0f2d8b11',
    type: 'io.modelgov.alert.opened',
    source: '/modelgov/deployments/abc',
    time: new Date('2030-01-02T03:04:05Z'),
    summary: 'Drift on <amount>\r\nBcc: someone@evil.example',
    severity: 'CRITICAL',
    action: 'trigger',
    dedupKey: 'drift-abc-amount',
    data: { feature: 'amount', pValue: 0.001 },
  };

  it('has the severity and summary on one line, both bodies, and ids from the event', () => {
    const m = emailMessage(event, 'Modelgov <alerts@modelgov.example>', ['a@example.com']);
    assert.equal(m.subject, '[CRITICAL] Drift on <amount> Bcc: someone@evil.example');
    assert.equal(m.messageId, `<${event.id}@modelgov.example>`);
    assert.equal(m.headers['X-Modelgov-Event-Id'], event.id);
    assert.match(m.text, /^Severity: CRITICAL$/m);
    assert.match(m.text, /^pValue: 0\.001$/m);
    assert.ok(m.html.includes('Drift on &lt;amount&gt;') && !m.html.includes('<amount>'), 'the HTML escapes the event');
    assert.equal(emailMessage({ ...event, action: 'resolve' }, 'alerts@x.example', []).subject.startsWith('[CRITICAL] [RESOLVED] '), true);
  });

  it('takes 1 to 20 distinct recipients, as a mailto: URI or bare', () => {
    assert.deepEqual(parseRecipients('mailto:a@Example.COM,b%2Bteam@example.com'), ['a@example.com', 'b+team@example.com']);
    assert.deepEqual(parseRecipients(' a@example.com , A@example.com,'), ['a@example.com']);
    assert.equal(mailtoUri(['a@example.com', 'b+team@example.com']), 'mailto:a@example.com,b%2Bteam@example.com');
    for (const bad of ['', 'mailto:', 'nobody', 'a@localhost', 'a@127.0.0.1', 'a@[10.0.0.1]', 'a..b@example.com', 'mailto:a@example.com?cc=b@example.com', 'a@exa mple.com']) {
      assert.throws(() => parseRecipients(bad), RefusedRecipients, bad);
    }
    assert.throws(() => parseRecipients(Array.from({ length: 21 }, (_, i) => `u${i}@example.com`).join(',')), /at most 20/);
  });
});

describe('EMAIL notification channels: sent by SMTP', () => {
  let t: TestServer;
  let smtp: Awaited<ReturnType<typeof smtpServer>>;
  let fraudEngineer: string;
  let visionEngineer: string;
  const logLines: string[] = [];
  const answers: unknown[] = [];
  let channelId = '';

  before(async () => {
    smtp = await smtpServer({ user: USER, pass: PASSWORD });
    t = await startTestServer({
      demo: true,
      env: { SMTP_URL: `smtp://${USER}:${PASSWORD}@127.0.0.1:${smtp.port}`, SMTP_FROM: 'Modelgov alerts <alerts@modelgov.example>', SMTP_INSECURE_LOCALHOST: 'true' },
      log: createLogger('debug', { write: (line: string) => void logLines.push(line) }),
    });
    fraudEngineer = t.token(['ml-engineer'], ['fraud'], 'fraud-engineer');
    visionEngineer = t.token(['ml-engineer'], ['vision'], 'vision-engineer');
  });
  after(async () => {
    await t?.stop();
    await smtp?.close().catch(() => undefined);
  });
  const gql = async (token: string, query: string, variables?: Record<string, unknown>) => {
    const r = await t.gql(token, query, variables);
    answers.push(r);
    return r;
  };

  it('creates an EMAIL channel whose recipients readers of the channel see', async () => {
    const created = dataOf(
      await gql(fraudEngineer, CREATE, { input: { team: 'fraud', name: 'on-call mail', kind: 'EMAIL', url: 'mailto:oncall@fraud.example,Lead@Fraud.Example' } }),
      'create',
    ).createNotificationChannel;
    channelId = created.channel.id;
    assert.equal(created.signingSecret, null);
    assert.equal(created.channel.kind, 'EMAIL');
    assert.equal(created.channel.url, 'mailto:oncall@fraud.example,Lead@fraud.example');
    const viewer = t.token(['viewer'], ['fraud'], 'fraud-viewer');
    const listed = dataOf(await gql(viewer, '{ notificationChannels(team: "fraud") { nodes { kind url } } }'), 'list').notificationChannels.nodes;
    assert.deepEqual(listed, [{ kind: 'EMAIL', url: 'mailto:oncall@fraud.example,Lead@fraud.example' }]);
  });

  it('sends the test event by SMTP: from, to, subject, both bodies and the event id', async () => {
    const sent = dataOf(await gql(fraudEngineer, TEST, { id: channelId }), 'test').testNotificationChannel;
    assert.equal(sent.delivered, true, JSON.stringify(sent));
    assert.equal(sent.status, 250);
    assert.equal(sent.address, `127.0.0.1:${smtp.port}`);
    assert.equal(sent.error, null);
    assert.equal(smtp.got.length, 1);
    const mail = smtp.got[0];
    assert.equal(mail.user, USER, 'submitted with the credentials of SMTP_URL');
    assert.equal(mail.from, 'alerts@modelgov.example');
    assert.deepEqual(mail.to, ['oncall@fraud.example', 'Lead@fraud.example']);
    const { headers, parts } = parseMime(mail.raw);
    assert.equal(headers.from, 'Modelgov alerts <alerts@modelgov.example>');
    assert.equal(headers.to, 'oncall@fraud.example, Lead@fraud.example');
    assert.equal(headers.subject, '[INFO] Test notification for channel "on-call mail"');
    assert.equal(headers['x-modelgov-event-id'], sent.eventId);
    assert.equal(headers['message-id'], `<${sent.eventId}@modelgov.example>`);
    assert.match(parts['text/plain'], new RegExp(`^Event id: ${sent.eventId}$`, 'm'));
    assert.match(parts['text/plain'], /^Type: io\.modelgov\.notification\.test$/m);
    assert.ok(parts['text/html'].includes(`<td>${sent.eventId}</td>`), parts['text/html']);
    assert.ok(parts['text/html'].includes('Test notification for channel &quot;on-call mail&quot;'));
  });

  it('refuses bad recipients, with the reason', async () => {
    for (const url of ['not-an-address', 'mailto:a@example.com?subject=hi', 'a@10.0.0.1', Array.from({ length: 21 }, (_, i) => `u${i}@example.com`).join(',')]) {
      const r = await gql(fraudEngineer, CREATE, { input: { team: 'fraud', name: `bad ${url.length}`, kind: 'EMAIL', url } });
      assert.equal(codeOf(r), 'BAD_USER_INPUT', url);
      assert.equal(r.errors![0].extensions.reason, 'NOTIFICATION_RECIPIENTS_REFUSED', url);
    }
    const r = await gql(fraudEngineer, 'mutation ($input: UpdateNotificationChannelInput!) { updateNotificationChannel(input: $input) { id } }', { input: { id: channelId, url: 'mailto:' } });
    assert.equal(r.errors?.[0]?.extensions.reason, 'NOTIFICATION_RECIPIENTS_REFUSED');
  });

  it('keeps another team out: a vision engineer cannot create, list or test a fraud EMAIL channel', async () => {
    assert.equal(codeOf(await gql(visionEngineer, CREATE, { input: { team: 'fraud', name: 'intruder', kind: 'EMAIL', url: 'x@vision.example' } })), 'FORBIDDEN');
    assert.equal(dataOf(await gql(visionEngineer, '{ notificationChannels { totalCount } }'), 'vision list').notificationChannels.totalCount, 0);
    const tested = await gql(visionEngineer, TEST, { id: channelId });
    assert.ok(['NOT_FOUND', 'FORBIDDEN'].includes(codeOf(tested)), JSON.stringify(tested));
    assert.equal(smtp.got.length, 1, 'nothing more was sent');
  });

  it('reports an SMTP server that is down on the delivery, and keeps serving', async () => {
    await smtp.close();
    const sent = dataOf(await gql(fraudEngineer, TEST, { id: channelId }), 'test while down').testNotificationChannel;
    assert.equal(sent.delivered, false);
    assert.equal(sent.address, `127.0.0.1:${smtp.port}`);
    assert.match(sent.error, /ECONNECTION|ECONNREFUSED/, sent.error);
    assert.equal(dataOf(await gql(fraudEngineer, '{ notificationChannels(team: "fraud") { totalCount } }'), 'still serving').notificationChannels.totalCount, 1);
    const audited = await t.sql<{ after: { delivered: boolean; error: string } }>(
      `SELECT after FROM audit_event WHERE action = 'testNotificationChannel' AND decision = 'ALLOWED' ORDER BY seq`,
    );
    assert.deepEqual(audited.map((a) => a.after.delivered), [true, false]);
  });

  it('never lets the SMTP credentials into an answer, a log line or an audit event', async () => {
    assert.ok(smtp.logins.some((l) => l.pass === PASSWORD), 'the password was used');
    for (const a of answers) assert.ok(!JSON.stringify(a).includes(PASSWORD), JSON.stringify(a));
    assert.ok(logLines.length > 0, 'the server logged');
    for (const line of logLines) assert.ok(!line.includes(PASSWORD) && !line.includes(`${USER}:`), line);
    const audit = await t.sql<{ payload: string }>(`SELECT to_jsonb(a)::text AS payload FROM audit_event a`);
    for (const r of audit) assert.ok(!r.payload.includes(PASSWORD), r.payload);
  });
});
