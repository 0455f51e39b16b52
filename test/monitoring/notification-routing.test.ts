import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { syntheticCsv } from '../../jobs/trainers/synthetic-data';
import { createLogger } from '../../src/core/logger';
import { expectId } from '../../src/core/global-id';
import { dataOf } from '../support/access';
import { codeOf, startTestServer, type GqlResult, type TestServer } from '../support/harness';
import { deployWithLatencySlo, openLatencyAlert, receiver, smtpServer, verifies, type Received } from '../support/notify';
import { eventually } from '../support/processes';
import { tcpProxy } from '../support/tcp-proxy';

const CHANNEL = `mutation ($input: CreateNotificationChannelInput!) { createNotificationChannel(input: $input) { signingSecret channel { id } } }`;
const RULE = `mutation ($input: CreateNotificationRuleInput!) { createNotificationRule(input: $input) { id name action minSeverity } }`;
const DELIVERIES = `query ($f: NotificationDeliveryFilter) { notificationDeliveries(filter: $f, first: 100) { totalCount nodes {
  id idempotencyKey kind severity status attempts lastError lastStatus latencyMs escalation channelName summary
  silence { id comment } digest { id status } channel { id } alert { id }
} } }`;
const PREDICT = `mutation($d: ID!, $inputs: JSONObject!) { predict(deployment: $d, inputs: $inputs) { id } }`;
const PASSWORD = 'smtp-password-never-shown';
const ROUTING_KEY = 'R0UTINGKEY0123456789abcdef012345';

const json = (r: Received) => JSON.parse(r.body);

describe('notifications: routed by rules, delivered at least once, escalated, silenced, dead-lettered', () => {
  let t: TestServer;
  let engineer: string;
  let visionEngineer: string;
  let service: string;
  let v1: string;
  const logLines: string[] = [];
  const answers: GqlResult[] = [];
  const secrets: string[] = [PASSWORD, ROUTING_KEY];
  const closers: Array<() => Promise<void>> = [];
  let redis: Awaited<ReturnType<typeof tcpProxy>>;
  let smtp: Awaited<ReturnType<typeof smtpServer>>;

  const gql = async (token: string, query: string, variables?: Record<string, unknown>) => {
    const r = await t.gql(token, query, variables);
    answers.push(r);
    return r;
  };
  const hook = async (answer?: Parameters<typeof receiver>[0]) => {
    const r = await receiver(answer);
    closers.push(r.close);
    return r;
  };
  const channel = async (name: string, kind: string, url: string, extra: Record<string, unknown> = {}, token = engineer, team = 'fraud') => {
    const created = dataOf(await gql(token, CHANNEL, { input: { team, name, kind, url, ...extra } }), `channel ${name}`).createNotificationChannel;
    if (created.signingSecret) secrets.push(created.signingSecret);
    return { id: created.channel.id as string, secret: created.signingSecret as string | null };
  };
  const rule = async (input: Record<string, unknown>) => dataOf(await gql(engineer, RULE, { input: { team: 'fraud', ...input } }), `rule ${input.name}`).createNotificationRule;
  const deliveries = async (f: Record<string, unknown>) => dataOf(await gql(engineer, DELIVERIES, { f }), 'deliveries').notificationDeliveries;
  const deploy = (name: string) => deployWithLatencySlo(t, engineer, v1, name);
  const latencyAlert = (d: string, ms: number) => openLatencyAlert(t, engineer, d, v1, ms);
  const about = (got: Received[], alert: string) => got.filter((r) => json(r).data?.alert === alert);

  before(async () => {
    redis = await tcpProxy(6379);
    smtp = await smtpServer({ user: 'alerts', pass: PASSWORD });
    t = await startTestServer({
      demo: true,
      env: {
        REDIS_URL: `redis://127.0.0.1:${redis.port}`,
        NOTIFY_ALLOWED_HOSTS: '127.0.0.1',
        NOTIFY_RETRY_BASE_MS: '200',
        NOTIFY_RETRY_MAX_MS: '1000',
        NOTIFY_MAX_ATTEMPTS: '4',
        SMTP_URL: `smtp://alerts:${PASSWORD}@127.0.0.1:${smtp.port}`,
        SMTP_FROM: 'Modelgov <alerts@modelgov.example>',
        SMTP_INSECURE_LOCALHOST: 'true',
      },
      log: createLogger('debug', { write: (line: string) => void logLines.push(line) }),
    });
    engineer = t.token(['ml-engineer'], ['fraud'], 'fraud-oncall');
    visionEngineer = t.token(['ml-engineer'], ['vision'], 'vision-engineer');
    service = t.token(['service'], ['fraud'], 'svc');
    const models = dataOf(await gql(engineer, '{ models(filter: { name: "fraud-detector" }) { nodes { versions { id version } } } }'), 'models').models.nodes;
    v1 = models[0].versions.find((v: { version: number }) => v.version === 1).id;
  });
  after(async () => {
    if (process.env.DEBUG_NOTIFY) process.stderr.write(logLines.filter((l) => /"level":(40|50)|notif/i.test(l)).join('\n'));
    for (const close of closers) await close();
    await smtp?.close();
    await t?.stop();
    await redis?.close();
  });

  it('tells a CRITICAL drift alert on the demo to a signed webhook, Slack, PagerDuty and email, and its resolution too', async () => {
    const webhook = await hook();
    const slack = await hook();
    const pagerduty = await hook((res) => res.writeHead(202, { 'content-type': 'application/json' }).end('{"status":"success"}'));
    const hookChannel = await channel('drift webhook', 'WEBHOOK', `${webhook.url}/hooks/modelgov`);
    const slackChannel = await channel('drift slack', 'SLACK', `${slack.url}/services/T000/B000/XXXX`);
    const pdChannel = await channel('drift pagerduty', 'PAGERDUTY', `${pagerduty.url}/v2/enqueue`, { routingKey: ROUTING_KEY });
    const mailChannel = await channel('drift email', 'EMAIL', 'oncall@fraud.example');
    for (const c of [hookChannel, slackChannel, pdChannel, mailChannel]) {
      const r = await rule({ name: `drift to ${c.id}`, channel: c.id, environment: 'PRODUCTION', kinds: ['ALERT_OPENED', 'ALERT_RESOLVED'], alertKinds: ['DRIFT'], minSeverity: 'CRITICAL' });
      assert.equal(r.action, null, 'no action given: by severity (CRITICAL is sent at once)');
    }

    const prod = dataOf(await gql(engineer, '{ deployments(filter: { team: "fraud", environment: PRODUCTION }) { nodes { id } } }'), 'prod').deployments.nodes[0].id;
    const columns = ['amount', 'hour', 'merchant_risk', 'distance_km'];
    const rows = syntheticCsv({ rows: 1000, seed: 4242, features: columns }).trim().split('\n').slice(1)
      .map((line) => line.split(',').slice(0, 4).map(Number))
      .map(([a, h, m, d]) => [a, h, m + 1.5, d]);
    for (let i = 0; i < rows.length; i += 50) dataOf(await gql(service, PREDICT, { d: prod, inputs: { features: rows.slice(i, i + 50) } }), 'predict');
    await t.server.app.inference!.log.flush();
    dataOf(await gql(engineer, `mutation($d: ID!) { runMonitor(deployment: $d, windowSeconds: 120) { alertsRaised } }`, { d: prod }), 'runMonitor');
    const drift = dataOf(await gql(engineer, `query($d: ID!) { alerts(filter: { deployment: $d, kinds: [DRIFT], minSeverity: CRITICAL }) { nodes { id feature severity } } }`, { d: prod }), 'alerts').alerts.nodes;
    const alert = drift.find((a: { feature: string }) => a.feature === 'merchant_risk');
    assert.ok(alert, JSON.stringify(drift));

    const [opened] = await eventually('the webhook receives the alert', async () => (about(webhook.got, alert.id).length ? about(webhook.got, alert.id) : undefined), 30_000, 50);
    const event = json(opened);
    assert.equal(event.specversion, '1.0');
    assert.equal(event.type, 'io.modelgov.alert.opened');
    assert.equal(opened.headers['content-type'], 'application/cloudevents+json');
    assert.equal(event.data.severity, 'CRITICAL');
    assert.equal(event.data.feature, 'merchant_risk');
    assert.equal(event.data.deployment.environment, 'PRODUCTION');
    assert.ok(verifies(hookChannel.secret!, opened.headers, opened.body), 'signed with the channel secret (Standard Webhooks)');
    assert.equal(opened.headers['idempotency-key'], event.id, 'the idempotency key is in the headers and is the event id');
    assert.equal(opened.headers['webhook-id'], event.id);
    assert.equal(event.data.idempotencyKey, event.id, 'and in the payload');
    assert.ok(Math.abs(Number(opened.headers['webhook-timestamp']) - Date.now() / 1000) < 60, 'a current timestamp, for the receiver\'s replay check');

    const slackMessage = await eventually('Slack receives its message', async () => slack.got.map(json).find((m) => m.text.includes('merchant_risk')), 30_000, 50);
    assert.match(slackMessage.text, /^:rotating_light: CRITICAL alert: DRIFT merchant_risk/);
    assert.ok(Array.isArray(slackMessage.blocks));
    const pdTrigger = await eventually('PagerDuty receives a trigger', async () => pagerduty.got.map(json).find((e) => e.dedup_key === alert.id), 30_000, 50);
    assert.deepEqual([pdTrigger.event_action, pdTrigger.routing_key, pdTrigger.payload.severity], ['trigger', ROUTING_KEY, 'critical']);
    const mail = await eventually('the email arrives', async () => smtp.got.find((m) => m.raw.includes(alert.id)), 30_000, 50);
    assert.deepEqual(mail.to, ['oncall@fraud.example']);
    assert.match(mail.raw, /Subject: \[CRITICAL\] CRITICAL alert: DRIFT merchant_risk/);

    dataOf(await gql(engineer, `mutation($id: ID!) { resolveAlert(id: $id, reason: "reference data refreshed") { status } }`, { id: alert.id }), 'resolve');
    const resolved = await eventually('the webhook receives the resolution', async () => about(webhook.got, alert.id).map(json).find((e) => e.type === 'io.modelgov.alert.resolved'), 30_000, 50);
    assert.equal(resolved.data.action, 'resolve');
    assert.match(resolved.data.summary, /reference data refreshed/);
    const pdResolve = await eventually('PagerDuty receives a resolve for the same incident', async () => pagerduty.got.map(json).find((e) => e.dedup_key === alert.id && e.event_action === 'resolve'), 30_000, 50);
    assert.equal(pdResolve.routing_key, ROUTING_KEY);
    await eventually('Slack hears of the resolution', async () => slack.got.map(json).find((m) => m.text.startsWith(':rotating_light: [resolved] Resolved')), 30_000, 50);
    await eventually('and email', async () => smtp.got.find((m) => m.raw.includes(alert.id) && m.raw.includes('[RESOLVED]')), 30_000, 50);

    const listed = await eventually('every delivery DELIVERED once', async () => {
      const l = await deliveries({ alert: alert.id });
      return l.nodes.length === 8 && l.nodes.every((d: { status: string }) => d.status === 'DELIVERED') ? l : undefined;
    }, 30_000, 100);
    for (const d of listed.nodes) {
      assert.equal(d.attempts, 1);
      assert.ok(d.latencyMs >= 0);
      assert.equal(d.alert.id, alert.id);
    }
    assert.deepEqual(new Set(listed.nodes.map((d: { kind: string }) => d.kind)), new Set(['ALERT_OPENED', 'ALERT_RESOLVED']));
    assert.equal(about(webhook.got, alert.id).length, 2, 'one opening and one resolution, nothing twice');
  });

  it('sends WARNINGs as one digest per period, and INFO nothing unless a rule asks for it', async () => {
    const digestHook = await hook();
    const infoHook = await hook();
    const d = await deploy('fraud-digest');
    const c = await channel('digest hook', 'WEBHOOK', `${digestHook.url}/digest`);
    await rule({ name: 'everything of fraud-digest', channel: c.id, deployment: d, digestSeconds: 10 });
    const alert = await latencyAlert(d, 30);
    dataOf(await gql(engineer, `mutation($id: ID!) { acknowledgeAlert(id: $id) { status } }`, { id: alert }), 'ack');
    const held = await eventually('both notifications are held for the digest', async () => {
      const l = await deliveries({ alert });
      return l.nodes.length === 2 && l.nodes.every((x: { status: string }) => x.status === 'HELD_FOR_DIGEST') ? l : undefined;
    }, 20_000, 100);
    assert.deepEqual(new Set(held.nodes.map((x: { kind: string }) => x.kind)), new Set(['ALERT_OPENED', 'ALERT_ACKNOWLEDGED']));
    assert.equal(digestHook.got.length, 0, 'nothing is sent before the period ends');
    const digest = await eventually('one digest arrives', async () => digestHook.got.map(json).find((e) => e.type === 'io.modelgov.digest'), 30_000, 100);
    assert.equal(digest.data.count, 2);
    assert.deepEqual(digest.data.items.map((i: { kind: string }) => i.kind).sort(), ['ALERT_ACKNOWLEDGED', 'ALERT_OPENED']);
    assert.ok(digest.data.items.every((i: { alert: string; severity: string }) => i.alert === alert && i.severity === 'WARNING'));
    assert.equal(digestHook.got.length, 1, 'two notifications, one message');
    const after = await eventually('the items name the digest that carried them', async () => {
      const l = await deliveries({ alert });
      return l.nodes.every((x: { status: string; digest: { status: string } | null }) => x.status === 'DIGESTED' && x.digest?.status === 'DELIVERED') ? l : undefined;
    }, 20_000, 100);
    assert.equal(new Set(after.nodes.map((x: { digest: { id: string } }) => x.digest.id)).size, 1);

    // INFO (an audit export ready): nothing by default; a rule that asks for it gets it.
    const infoChannel = await channel('info hook', 'WEBHOOK', `${infoHook.url}/info`);
    await rule({ name: 'exports, by default', channel: c.id, kinds: ['AUDIT_EXPORT_READY'] });
    await rule({ name: 'exports, asked for', channel: infoChannel.id, kinds: ['AUDIT_EXPORT_READY'], action: 'IMMEDIATE' });
    const auditor = t.token(['auditor'], ['fraud'], 'fraud-auditor');
    const exp = dataOf(await gql(auditor, 'mutation { requestAuditExport { id } }'), 'export').requestAuditExport;
    const ready = await eventually('the rule that asks for INFO gets the export', async () => infoHook.got.map(json).find((e) => e.type === 'io.modelgov.audit_export.ready'), 60_000, 200);
    assert.equal(ready.data.auditExport, exp.id);
    assert.equal(ready.data.severity, 'INFO');
    const exportDeliveries = await deliveries({ kinds: ['AUDIT_EXPORT_READY'] });
    assert.deepEqual(exportDeliveries.nodes.map((x: { channelName: string }) => x.channelName), ['info hook'], 'the default rule sent nothing and held nothing');
    assert.ok(!digestHook.got.map(json).some((e) => e.type === 'io.modelgov.audit_export.ready'));
  });

  it('escalates an unacknowledged CRITICAL alert to the escalation channel, and not one that was acknowledged', async () => {
    const page = await hook();
    const escalation = await hook();
    const pageChannel = await channel('primary page', 'WEBHOOK', `${page.url}/page`);
    const escalationChannel = await channel('secondary page', 'WEBHOOK', `${escalation.url}/escalate`);
    const ignored = await deploy('fraud-ignored');
    const handled = await deploy('fraud-handled');
    for (const d of [ignored, handled]) {
      await rule({ name: `page for ${d}`, channel: pageChannel.id, deployment: d, minSeverity: 'CRITICAL', escalationChannel: escalationChannel.id, escalateAfterSeconds: 10 });
    }
    const unacknowledged = await latencyAlert(ignored, 50);
    const acknowledged = await latencyAlert(handled, 50);
    await eventually('both pages arrive', async () => (about(page.got, unacknowledged).length && about(page.got, acknowledged).length ? true : undefined), 30_000, 50);
    dataOf(await gql(engineer, `mutation($id: ID!) { acknowledgeAlert(id: $id) { status } }`, { id: acknowledged }), 'ack');
    const escalated = await eventually('the unacknowledged alert escalates', async () => about(escalation.got, unacknowledged)[0], 60_000, 200);
    const event = json(escalated);
    assert.equal(event.type, 'io.modelgov.alert.unacknowledged');
    assert.match(event.data.summary, /^Unacknowledged for 0\.2 min: CRITICAL alert: LATENCY/);
    assert.ok(verifies(escalationChannel.secret!, escalated.headers, escalated.body));
    // Both escalations were due together; give the acknowledged one's job time to run.
    await eventually('the acknowledged alert\'s escalation job has run', async () => {
      const [row] = await t.sql(`SELECT count(*)::int AS n FROM outbox_entry WHERE job_id LIKE 'notify-escalate-%' AND dispatched_at IS NULL`);
      return row.n === 0 ? true : undefined;
    }, 30_000, 200);
    await new Promise((r) => setTimeout(r, 2000));
    assert.deepEqual(about(escalation.got, acknowledged), [], 'an acknowledged alert is not escalated');
    const list = await deliveries({ alert: unacknowledged });
    assert.ok(list.nodes.some((x: { escalation: boolean; channelName: string; status: string }) => x.escalation && x.channelName === 'secondary page' && x.status === 'DELIVERED'));
    assert.ok(!(await deliveries({ alert: acknowledged })).nodes.some((x: { escalation: boolean }) => x.escalation));
  });

  it('holds an alert back while a silence matches it, audited, and shows which silence did', async () => {
    const silenced = await hook();
    const d = await deploy('fraud-maintenance');
    const c = await channel('maintenance page', 'WEBHOOK', `${silenced.url}/page`);
    await rule({ name: 'maintenance page', channel: c.id, deployment: d, action: 'IMMEDIATE' });
    const bad = await gql(engineer, `mutation($d: ID!) { silenceAlerts(input: { team: "fraud", deployment: $d, durationSeconds: 600, comment: "   " }) { id } }`, { d });
    assert.equal(bad.errors?.[0].extensions.reason, 'NOTIFICATION_SILENCE');
    const silence = dataOf(
      await gql(engineer, `mutation($d: ID!) { silenceAlerts(input: { team: "fraud", deployment: $d, durationSeconds: 600, comment: "planned maintenance" }) { id active comment endsAt } }`, { d }),
      'silence',
    ).silenceAlerts;
    assert.equal(silence.active, true);
    const alert = await latencyAlert(d, 50);
    const held = await eventually('the delivery is recorded as SILENCED', async () => (await deliveries({ alert })).nodes[0], 20_000, 100);
    assert.equal(held.status, 'SILENCED');
    assert.deepEqual(held.silence, { id: silence.id, comment: 'planned maintenance' });
    const shown = dataOf(await gql(engineer, `query($id: ID!) { node(id: $id) { ... on Alert { silencedBy { id comment } notifications { status } } } }`, { id: alert }), 'alert').node;
    assert.deepEqual(shown.silencedBy, [{ id: silence.id, comment: 'planned maintenance' }]);
    assert.deepEqual(shown.notifications, [{ status: 'SILENCED' }]);
    assert.equal(silenced.got.length, 0, 'nothing reached the channel');
    const audited = await t.sql(`SELECT action FROM audit_event WHERE subject_id = $1 ORDER BY seq`, [silence.id]);
    assert.deepEqual(audited.map((a: { action: string }) => a.action), ['silenceAlerts']);
    const expired = dataOf(await gql(engineer, `mutation($id: ID!) { expireSilence(id: $id) { active expiredBy } }`, { id: silence.id }), 'expire').expireSilence;
    assert.deepEqual(expired, { active: false, expiredBy: 'fraud-oncall' });
  });

  it('refuses to delete a channel that rules send to, naming them, and takes it once they are gone', async () => {
    const c = await channel('soon gone', 'WEBHOOK', 'https://203.0.113.20/hook');
    const r = await rule({ name: 'uses soon gone', channel: c.id });
    const refused = await gql(engineer, `mutation($id: ID!) { deleteNotificationChannel(id: $id) }`, { id: c.id });
    assert.equal(codeOf(refused), 'CONFLICT');
    assert.equal(refused.errors?.[0].extensions.reason, 'NOTIFICATION_CHANNEL_IN_USE');
    assert.match(refused.errors![0].message, /"uses soon gone"/);
    const bad = await gql(engineer, RULE, { input: { team: 'fraud', name: 'uses soon gone', channel: c.id } });
    assert.equal(codeOf(bad), 'CONFLICT', 'a rule name is unique within its team');
    const tooShort = await gql(engineer, RULE, { input: { team: 'fraud', name: 'fast digest', channel: c.id, digestSeconds: 1 } });
    assert.deepEqual([codeOf(tooShort), tooShort.errors?.[0].extensions.reason, tooShort.errors?.[0].extensions.field], ['BAD_USER_INPUT', 'NOTIFICATION_RULE', 'digestSeconds']);
    dataOf(await gql(engineer, `mutation($id: ID!) { deleteNotificationRule(id: $id) }`, { id: r.id }), 'delete rule');
    assert.equal(dataOf(await gql(engineer, `mutation($id: ID!) { deleteNotificationChannel(id: $id) }`, { id: c.id }), 'delete').deleteNotificationChannel, true);
    const audited = await t.sql(`SELECT action FROM audit_event WHERE subject_id = $1 ORDER BY seq`, [r.id]);
    assert.deepEqual(audited.map((a: { action: string }) => a.action), ['createNotificationRule', 'deleteNotificationRule']);
  });

  it('retries a failing receiver with backoff and Retry-After until it accepts, under one idempotency key', async () => {
    let calls = 0;
    const flaky = await hook((res) => {
      calls += 1;
      if (calls === 1) res.writeHead(500).end('boom');
      else if (calls === 2) res.writeHead(429, { 'retry-after': '1' }).end('slow down');
      else if (calls === 3) res.writeHead(503).end('unavailable');
      else res.end('ok');
    });
    const d = await deploy('fraud-flaky');
    const c = await channel('flaky hook', 'WEBHOOK', `${flaky.url}/flaky`);
    await rule({ name: 'flaky', channel: c.id, deployment: d });
    const alert = await latencyAlert(d, 50);
    const done = await eventually('delivered on the fourth attempt', async () => {
      const [x] = (await deliveries({ alert })).nodes;
      return x?.status === 'DELIVERED' ? x : undefined;
    }, 60_000, 100);
    assert.equal(done.attempts, 4);
    assert.equal(done.lastError, null);
    const got = about(flaky.got, alert);
    assert.equal(got.length, 4, 'four attempts reached the receiver');
    const keys = new Set(got.map((r) => r.headers['idempotency-key']));
    assert.deepEqual([...keys], [done.idempotencyKey], 'one idempotency key: a receiver dropping repeats keeps exactly one');
    assert.ok(got.every((r) => verifies(c.secret!, r.headers, r.body)));
  });

  it('dead-letters a delivery that always fails and opens an alert about the channel, told to the team\'s other channels', async () => {
    const broken = await hook((res) => res.writeHead(500).end('down'));
    const watcher = await hook();
    const d = await deploy('fraud-broken');
    const c = await channel('broken hook', 'WEBHOOK', `${broken.url}/broken`);
    const w = await channel('channel watcher', 'WEBHOOK', `${watcher.url}/watch`);
    await rule({ name: 'broken', channel: c.id, deployment: d });
    await rule({ name: 'failing channels', channel: w.id, alertKinds: ['NOTIFICATION_FAILED'], kinds: ['ALERT_OPENED'], action: 'IMMEDIATE' });
    const alert = await latencyAlert(d, 50);
    const dead = await eventually('dead-lettered after four attempts', async () => {
      const [x] = (await deliveries({ alert })).nodes;
      return x?.status === 'DEAD' ? x : undefined;
    }, 60_000, 100);
    assert.equal(dead.attempts, 4);
    assert.equal(dead.lastError, 'HTTP 500');
    assert.equal(about(broken.got, alert).length, 4);
    const failing = dataOf(await gql(engineer, '{ alerts(filter: { kinds: [NOTIFICATION_FAILED] }) { nodes { id status severity feature details deployment { id } } } }'), 'alerts').alerts.nodes;
    assert.equal(failing.length, 1);
    assert.deepEqual([failing[0].status, failing[0].severity, failing[0].deployment], ['OPEN', 'CRITICAL', null]);
    assert.equal(failing[0].details.channel, c.id);
    assert.equal(failing[0].details.lastError, 'HTTP 500');
    const told = await eventually('the other channel hears of it', async () => watcher.got.map(json).find((e) => e.data.alert === failing[0].id), 30_000, 100);
    assert.equal(told.data.alertKind, 'NOTIFICATION_FAILED');
    assert.equal(about(broken.got, failing[0].id).length, 0, 'not sent to the failing channel itself');
    const [audited] = await t.sql(`SELECT after FROM audit_event WHERE action = 'deadLetterNotification' AND subject_id = $1`, [c.id]);
    assert.equal(audited.after.alert, failing[0].id);
    // Deleting the channel (once no rule sends to it) closes its alert: no delivery could any more.
    const rules = dataOf(await gql(engineer, '{ notificationRules(team: "fraud", first: 100) { nodes { id name } } }'), 'rules').notificationRules.nodes;
    dataOf(await gql(engineer, `mutation($id: ID!) { deleteNotificationRule(id: $id) }`, { id: rules.find((r: { name: string }) => r.name === 'broken').id }), 'delete rule');
    dataOf(await gql(engineer, `mutation($id: ID!) { deleteNotificationChannel(id: $id) }`, { id: c.id }), 'delete channel');
    const closed = dataOf(await gql(engineer, `query($id: ID!) { node(id: $id) { ... on Alert { status resolution } } }`, { id: failing[0].id }), 'alert').node;
    assert.deepEqual(closed, { status: 'RESOLVED', resolution: 'the channel was deleted' });
  });

  it('keeps what opens while Redis is away and delivers it once Redis is back', async () => {
    const later = await hook();
    const d = await deploy('fraud-redis-outage');
    const c = await channel('outage hook', 'WEBHOOK', `${later.url}/later`);
    await rule({ name: 'outage', channel: c.id, deployment: d });
    await redis.cut();
    let alert: string;
    try {
      alert = await latencyAlert(d, 50);
      const [kept] = await t.sql(`SELECT count(*)::int AS n FROM notification WHERE alert_id = $1 AND routed_at IS NULL`, [expectId(alert, 'Alert')]);
      assert.equal(kept.n, 1, 'the notification is recorded, waiting');
      await new Promise((r) => setTimeout(r, 1500));
      assert.equal(later.got.length, 0);
    } finally {
      await redis.restore();
    }
    const got = await eventually('delivered after Redis returns', async () => about(later.got, alert)[0], 60_000, 200);
    assert.equal(json(got).type, 'io.modelgov.alert.opened');
    const [x] = (await deliveries({ alert })).nodes;
    assert.equal(x.status, 'DELIVERED');
  });

  it('keeps a fraud engineer away from vision\'s channels, rules and deliveries', async () => {
    const vision = await hook();
    const visionChannel = await channel('vision page', 'WEBHOOK', `${vision.url}/vision`, {}, visionEngineer, 'vision');
    const listed = dataOf(await gql(engineer, '{ notificationChannels(team: "vision") { totalCount } notificationRules(team: "vision") { totalCount } notificationDeliveries(filter: { team: "vision" }) { totalCount } }'), 'lists');
    assert.deepEqual([listed.notificationChannels.totalCount, listed.notificationRules.totalCount, listed.notificationDeliveries.totalCount], [0, 0, 0]);
    const update = await gql(engineer, `mutation($id: ID!) { updateNotificationChannel(input: { id: $id, name: "mine now" }) { id } }`, { id: visionChannel.id });
    assert.equal(codeOf(update), 'NOT_FOUND');
    const test = await gql(engineer, `mutation($id: ID!) { testNotificationChannel(id: $id) { delivered } }`, { id: visionChannel.id });
    assert.equal(codeOf(test), 'NOT_FOUND');
    const route = await gql(engineer, RULE, { input: { team: 'fraud', name: 'steal', channel: visionChannel.id } });
    assert.equal(codeOf(route), 'NOT_FOUND', 'routing to a channel one cannot read is refused');
    const foreign = await gql(engineer, RULE, { input: { team: 'vision', name: 'steal', channel: visionChannel.id } });
    assert.ok(['FORBIDDEN', 'NOT_FOUND'].includes(codeOf(foreign)), JSON.stringify(foreign.errors));
    const silence = await gql(engineer, `mutation { silenceAlerts(input: { team: "vision", durationSeconds: 60, comment: "quiet" }) { id } }`);
    assert.equal(codeOf(silence), 'FORBIDDEN');
    assert.equal(vision.got.length, 0);
  });

  it('shows no secret in any answer, log line or audit event', async () => {
    const audit = JSON.stringify(await t.sql(`SELECT * FROM audit_event`));
    const notifications = JSON.stringify(await t.sql(`SELECT * FROM notification`));
    const everything = [JSON.stringify(answers.filter((a) => !a.data?.createNotificationChannel)), logLines.join('\n'), audit, notifications];
    for (const secret of secrets) for (const text of everything) assert.ok(!text.includes(secret), `a secret ${secret.slice(0, 6)}… leaked`);
    assert.ok(secrets.length >= 6, 'the secrets checked include every webhook secret shown');
  });
});
