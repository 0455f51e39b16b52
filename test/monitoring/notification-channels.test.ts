import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, describe, it } from 'node:test';
import { dataOf } from '../support/access';
import { codeOf, startTestServer, type TestServer } from '../support/harness';
import { receiver, verifies } from '../support/notify';

const CREATE = `mutation ($input: CreateNotificationChannelInput!) {
  createNotificationChannel(input: $input) { signingSecret channel { id name kind url } }
}`;
const TEST = 'mutation ($id: ID!) { testNotificationChannel(id: $id) { eventId delivered status address error location } }';

describe('notification channels', () => {
  let t: TestServer;
  let fraudEngineer: string;
  let visionEngineer: string;
  const receivers: Array<{ close: () => Promise<void> }> = [];
  before(async () => {
    t = await startTestServer({ demo: true, env: { NOTIFY_ALLOWED_HOSTS: '127.0.0.1,localhost' } });
    fraudEngineer = t.token(['ml-engineer'], ['fraud'], 'fraud-engineer');
    visionEngineer = t.token(['ml-engineer'], ['vision'], 'vision-engineer');
  });
  after(async () => {
    for (const r of receivers) await r.close();
    await t?.stop();
  });
  const open = async (answer?: (res: http.ServerResponse) => void) => {
    const r = await receiver(answer);
    receivers.push(r);
    return r;
  };

  let webhookId = '';
  let secret = '';

  it('delivers a signed CloudEvent to a WEBHOOK channel, verifiable with the secret shown once', async () => {
    const hook = await open();
    const created = dataOf(await t.gql(fraudEngineer, CREATE, { input: { team: 'fraud', name: 'on-call hook', kind: 'WEBHOOK', url: `${hook.url}/hook` } }), 'create').createNotificationChannel;
    secret = created.signingSecret;
    webhookId = created.channel.id;
    assert.match(secret, /^whsec_[A-Za-z0-9+/]{43}=$/);
    const sent = dataOf(await t.gql(fraudEngineer, TEST, { id: webhookId }), 'test').testNotificationChannel;
    assert.equal(sent.delivered, true, JSON.stringify(sent));
    assert.equal(sent.status, 200);
    assert.equal(hook.got.length, 1);
    const { headers, body } = hook.got[0];
    assert.ok(verifies(secret, headers, body), 'the signature verifies with the secret');
    assert.ok(!verifies(secret, headers, body + ' '), 'and not for another body');
    assert.equal(headers['webhook-id'], sent.eventId);
    assert.equal(headers['idempotency-key'], sent.eventId);
    assert.match(String(headers['webhook-timestamp']), /^\d{10}$/);
    const event = JSON.parse(body);
    assert.equal(event.specversion, '1.0');
    assert.equal(event.id, sent.eventId);
    assert.equal(event.datacontenttype, 'application/json');
    assert.equal(event.type, 'io.modelgov.notification.test');
    for (const k of ['source', 'time', 'data']) assert.ok(event[k], k);
  });

  it('sends Slack and PagerDuty channels their own formats; the routing key is kept out of the URL', async () => {
    const slack = await open();
    const pd = await open((res) => res.writeHead(202).end('{"status":"success"}'));
    const s = dataOf(await t.gql(fraudEngineer, CREATE, { input: { team: 'fraud', name: 'slack', kind: 'SLACK', url: `${slack.url}/services/T000/B000/XXXX` } }), 'slack').createNotificationChannel;
    assert.equal(s.signingSecret, null);
    const p = dataOf(
      await t.gql(fraudEngineer, CREATE, { input: { team: 'fraud', name: 'pager', kind: 'PAGERDUTY', url: `${pd.url}/v2/enqueue?routing_key=R0UT1NGKEY0000000000000000000000` } }),
      'pagerduty',
    ).createNotificationChannel;
    assert.equal(p.signingSecret, null);
    assert.ok(!p.channel.url.includes('R0UT1NG'), p.channel.url);
    assert.equal(dataOf(await t.gql(fraudEngineer, TEST, { id: s.channel.id }), 'slack test').testNotificationChannel.delivered, true);
    const pdSent = dataOf(await t.gql(fraudEngineer, TEST, { id: p.channel.id }), 'pd test').testNotificationChannel;
    assert.deepEqual([pdSent.delivered, pdSent.status], [true, 202]);
    const message = JSON.parse(slack.got[0].body);
    assert.equal(typeof message.text, 'string');
    assert.ok(Array.isArray(message.blocks) && message.blocks.length > 0);
    const pdEvent = JSON.parse(pd.got[0].body);
    assert.equal(pdEvent.routing_key, 'R0UT1NGKEY0000000000000000000000');
    assert.equal(pdEvent.event_action, 'trigger');
    assert.ok(pdEvent.dedup_key);
    assert.equal(pdEvent.payload.severity, 'info');
    assert.ok(pdEvent.payload.summary && pdEvent.payload.source);
    const rows = await t.sql<{ secret_ciphertext: string }>(`SELECT secret_ciphertext FROM notification_channel WHERE name = 'pager'`);
    assert.ok(!rows[0].secret_ciphertext.includes('R0UT1NG'), 'the routing key is encrypted at rest');
  });

  it('never shows the secret again: not in later answers, not in the audit trail, not in the table', async () => {
    const list = await t.gql(fraudEngineer, '{ notificationChannels(team: "fraud") { totalCount nodes { id name kind url createdBy createdAt updatedAt } } }');
    assert.equal(dataOf(list, 'list').notificationChannels.totalCount, 3);
    // A Slack URL is the credential to post: answers show where it goes, not the path that grants it.
    const slackUrl = list.data.notificationChannels.nodes.find((c: { kind: string }) => c.kind === 'SLACK').url;
    assert.match(slackUrl, /^http:\/\/127\.0\.0\.1:\d+\/…$/);
    assert.ok(!JSON.stringify(list).includes('XXXX'), 'no answer carries the Slack path');
    const updated = await t.gql(fraudEngineer, 'mutation ($input: UpdateNotificationChannelInput!) { updateNotificationChannel(input: $input) { id name } }', {
      input: { id: webhookId, name: 'primary on-call hook' },
    });
    assert.equal(dataOf(updated, 'update').updateNotificationChannel.name, 'primary on-call hook');
    const key = secret.slice('whsec_'.length);
    for (const answer of [list, updated]) assert.ok(!JSON.stringify(answer).includes(key), 'no answer carries the secret');
    const audit = await t.sql<{ action: string; payload: string }>(
      `SELECT action, to_jsonb(a)::text AS payload FROM audit_event a WHERE subject_type = 'NotificationChannel' ORDER BY seq`,
    );
    assert.ok(audit.some((r) => r.action === 'createNotificationChannel') && audit.some((r) => r.action === 'testNotificationChannel') && audit.some((r) => r.action === 'updateNotificationChannel'));
    for (const r of audit) {
      assert.ok(!r.payload.includes(key), `${r.action}: no secret in the audit trail`);
      assert.ok(!r.payload.includes('R0UT1NG'), `${r.action}: no routing key in the audit trail`);
      assert.ok(!r.payload.includes('XXXX'), `${r.action}: no Slack URL path in the audit trail`);
    }
    const stored = await t.sql<{ secret_ciphertext: string }>(`SELECT secret_ciphertext FROM notification_channel WHERE name = 'primary on-call hook'`);
    assert.ok(!stored[0].secret_ciphertext.includes(key));
  });

  it('keeps another team out: a vision engineer cannot list, update, delete or test a fraud channel', async () => {
    const listed = dataOf(await t.gql(visionEngineer, '{ notificationChannels(team: "fraud") { totalCount nodes { id } } }'), 'vision list').notificationChannels;
    assert.equal(listed.totalCount, 0);
    const all = dataOf(await t.gql(visionEngineer, '{ notificationChannels { totalCount } }'), 'vision list all').notificationChannels;
    assert.equal(all.totalCount, 0);
    const attempts = [
      ['updateNotificationChannel', t.gql(visionEngineer, 'mutation ($input: UpdateNotificationChannelInput!) { updateNotificationChannel(input: $input) { id } }', { input: { id: webhookId, url: 'https://example.com/x' } })],
      ['deleteNotificationChannel', t.gql(visionEngineer, 'mutation ($id: ID!) { deleteNotificationChannel(id: $id) }', { id: webhookId })],
      ['testNotificationChannel', t.gql(visionEngineer, TEST, { id: webhookId })],
    ] as const;
    for (const [field, pending] of attempts) {
      const r = await pending;
      assert.ok(['NOT_FOUND', 'FORBIDDEN'].includes(codeOf(r)), `${field}: ${JSON.stringify(r)}`);
    }
    const viewer = t.token(['viewer'], ['fraud'], 'fraud-viewer');
    assert.equal(dataOf(await t.gql(viewer, '{ notificationChannels(team: "fraud") { totalCount } }'), 'viewer list').notificationChannels.totalCount, 3);
    assert.equal(codeOf(await t.gql(viewer, TEST, { id: webhookId })), 'FORBIDDEN');
    const refusals = await t.sql<{ action: string }>(`SELECT action FROM audit_event WHERE actor_id = 'vision-engineer' AND decision = 'DENIED' ORDER BY seq`);
    assert.deepEqual(refusals.map((r) => r.action).sort(), ['deleteNotificationChannel', 'testNotificationChannel', 'updateNotificationChannel']);
    assert.equal((await t.sql(`SELECT 1 FROM notification_channel WHERE name = 'primary on-call hook'`)).length, 1, 'still there');
  });

  it('refuses an EMAIL channel when no SMTP server is configured, with the reason', async () => {
    const r = await t.gql(fraudEngineer, CREATE, { input: { team: 'fraud', name: 'mail', kind: 'EMAIL', url: 'mailto:oncall@fraud.example' } });
    assert.equal(codeOf(r), 'BAD_USER_INPUT');
    assert.equal(r.errors![0].extensions.reason, 'NOTIFICATION_EMAIL_NOT_CONFIGURED');
    assert.match(r.errors![0].message, /SMTP_URL/);
    assert.equal((await t.sql(`SELECT 1 FROM notification_channel WHERE name = 'mail'`)).length, 0);
  });

  it('the owner can delete a channel', async () => {
    const hook = await open();
    const c = dataOf(await t.gql(fraudEngineer, CREATE, { input: { team: 'fraud', name: 'short-lived', kind: 'WEBHOOK', url: hook.url } }), 'create').createNotificationChannel;
    assert.equal(dataOf(await t.gql(fraudEngineer, 'mutation ($id: ID!) { deleteNotificationChannel(id: $id) }', { id: c.channel.id }), 'delete').deleteNotificationChannel, true);
    assert.equal(codeOf(await t.gql(fraudEngineer, TEST, { id: c.channel.id })), 'NOT_FOUND');
  });
});

describe('notification channels on a server that allows no internal host', () => {
  let t: TestServer;
  let engineer: string;
  const closers: Array<() => Promise<void>> = [];
  before(async () => {
    t = await startTestServer({ demo: true });
    engineer = t.token(['ml-engineer'], ['fraud'], 'fraud-engineer');
  });
  after(async () => {
    for (const c of closers) await c();
    await t?.stop();
  });

  it('refuses internal destinations at creation, with the reason', async () => {
    for (const [url, why] of [
      ['http://127.0.0.1:9/hook', /loopback/],
      ['http://10.0.0.1/hook', /private/],
      ['http://169.254.169.254/latest/meta-data/', /link-local/],
      ['http://[::1]:9/hook', /loopback/],
      ['http://localhost:9/hook', /resolves only to refused addresses/],
      ['http://[::ffff:127.0.0.1]/', /IPv4-mapped loopback/],
      ['gopher://example.com/', /scheme/],
    ] as const) {
      const r = await t.gql(engineer, CREATE, { input: { team: 'fraud', name: `x-${url}`, kind: 'WEBHOOK', url } });
      assert.equal(codeOf(r), 'BAD_USER_INPUT', url);
      assert.equal(r.errors![0].extensions.reason, 'NOTIFICATION_URL_REFUSED', url);
      assert.equal(r.errors![0].extensions.field, 'url', url);
      assert.match(r.errors![0].message, why, url);
    }
    assert.equal((await t.sql('SELECT 1 FROM notification_channel')).length, 0);
  });

  it('refuses at send time a destination that became internal, and never follows a redirect', async () => {
    // A second server that allows 127.0.0.1 makes the channel; its row is then planted on this one,
    // as if the allow-list had shrunk since the channel was made.
    const target = await receiver();
    closers.push(target.close);
    const redirector = await receiver((res) => res.writeHead(302, { location: `${target.url}/stolen` }).end());
    closers.push(redirector.close);
    const allowing = await startTestServer({ demo: true, env: { NOTIFY_ALLOWED_HOSTS: '127.0.0.1' } });
    closers.push(() => allowing.stop());
    const owner = allowing.token(['ml-engineer'], ['fraud'], 'fraud-engineer');
    const c = dataOf(await allowing.gql(owner, CREATE, { input: { team: 'fraud', name: 'redirects', kind: 'SLACK', url: redirector.url } }), 'create').createNotificationChannel;
    const sent = dataOf(await allowing.gql(owner, TEST, { id: c.channel.id }), 'test').testNotificationChannel;
    assert.equal(sent.delivered, false);
    assert.equal(sent.status, 302);
    assert.equal(sent.location, `${target.url}/stolen`);
    assert.match(sent.error, /redirect/);
    assert.equal(redirector.got.length, 1);
    assert.equal(target.got.length, 0, 'nothing reaches the redirect target');

    // The same row on this server (no allow-list) is refused when sent, and nothing leaves.
    const [row] = await allowing.sql(`SELECT id FROM notification_channel WHERE name = 'redirects'`);
    const [team] = await t.sql(`SELECT id FROM team WHERE name = 'fraud'`);
    await t.sql(`INSERT INTO notification_channel (id, team_id, created_by, name, kind, url) VALUES ($1, $2, 'fraud-engineer', 'planted', 'SLACK', $3)`, [row.id, team.id, redirector.url]);
    const refused = dataOf(await t.gql(engineer, TEST, { id: c.channel.id }), 'refused test').testNotificationChannel;
    assert.equal(refused.delivered, false);
    assert.match(refused.error, /refused: 127\.0\.0\.1 is a loopback address/);
    assert.equal(redirector.got.length, 1, 'nothing was sent');
  });
});
