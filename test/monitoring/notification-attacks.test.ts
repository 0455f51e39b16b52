import assert from 'node:assert/strict';
import type http from 'node:http';
import { after, before, describe, it } from 'node:test';
import { expectId } from '../../src/core/global-id';
import { QUEUES } from '../../src/core/queue/queues';
import { attemptDelivery } from '../../src/monitoring/notification-delivery.service';
import { dataOf } from '../support/access';
import { startTestServer, type TestServer } from '../support/harness';
import { deployWithLatencySlo, openLatencyAlert, receiver, type Received } from '../support/notify';
import { eventually } from '../support/processes';

const CHANNEL = `mutation ($input: CreateNotificationChannelInput!) { createNotificationChannel(input: $input) { signingSecret channel { id } } }`;
const RULE = `mutation ($input: CreateNotificationRuleInput!) { createNotificationRule(input: $input) { id } }`;
const DELIVERIES = `query ($f: NotificationDeliveryFilter) { notificationDeliveries(filter: $f, first: 100) { nodes { id status attempts lastError } } }`;

const json = (r: Received) => JSON.parse(r.body);

describe('notifications under attack: other teams, racing workers', () => {
  let t: TestServer;
  let engineer: string;
  let visionEngineer: string;
  let v1: string;
  const closers: Array<() => Promise<void>> = [];

  const gql = (token: string, query: string, variables?: Record<string, unknown>) => t.gql(token, query, variables);
  const hook = async (answer?: (res: http.ServerResponse) => void) => {
    const r = await receiver(answer);
    closers.push(r.close);
    return r;
  };
  const channel = async (name: string, url: string) => dataOf(await gql(engineer, CHANNEL, { input: { team: 'fraud', name, kind: 'WEBHOOK', url } }), `channel ${name}`).createNotificationChannel.channel.id as string;
  const rule = async (input: Record<string, unknown>) => dataOf(await gql(engineer, RULE, { input: { team: 'fraud', ...input } }), `rule ${input.name}`).createNotificationRule;
  const deliveries = async (f: Record<string, unknown>) => dataOf(await gql(engineer, DELIVERIES, { f }), 'deliveries').notificationDeliveries.nodes;
  const deploy = (name: string) => deployWithLatencySlo(t, engineer, v1, name);
  /** A CRITICAL LATENCY alert on `d` (requests of 50 ms half an hour ago, then a monitor pass): its id. */
  const latencyAlert = (d: string) => openLatencyAlert(t, engineer, d, v1, 50);
  const about = (got: Received[], alert: string) => got.filter((r) => json(r).data?.alert === alert);

  before(async () => {
    t = await startTestServer({
      demo: true,
      env: { NOTIFY_ALLOWED_HOSTS: '127.0.0.1', NOTIFY_RETRY_BASE_MS: '200', NOTIFY_RETRY_MAX_MS: '1000', NOTIFY_MAX_ATTEMPTS: '3' },
    });
    engineer = t.token(['ml-engineer'], ['fraud'], 'fraud-oncall');
    visionEngineer = t.token(['ml-engineer'], ['vision'], 'vision-engineer');
    const models = dataOf(await gql(engineer, '{ models(filter: { name: "fraud-detector" }) { nodes { versions { id version } } } }'), 'models').models.nodes;
    v1 = models[0].versions.find((v: { version: number }) => v.version === 1).id;
  });
  after(async () => {
    for (const close of closers) await close();
    await t?.stop();
  });

  it("does not show another team's channel name or receiver errors through its NOTIFICATION_FAILED alert", async () => {
    const broken = await hook((res) => res.writeHead(404).end('no such hook'));
    const d = await deploy('fraud-attack-broken');
    const c = await channel('fraud war room at pager.internal.fraud.example', `${broken.url}/hooks/war-room`);
    await rule({ name: 'to the war room', channel: c, deployment: d, action: 'IMMEDIATE' });
    const alert = await latencyAlert(d);
    await eventually('dead-lettered', async () => ((await deliveries({ alert }))[0]?.status === 'DEAD' ? true : undefined), 30_000, 100);
    const ALERTS = '{ alerts(filter: { kinds: [NOTIFICATION_FAILED] }) { nodes { id feature details } } }';
    const own = dataOf(await gql(engineer, ALERTS), 'own').alerts.nodes;
    assert.equal(own.length, 1);
    assert.equal(own[0].details.lastError, 'HTTP 404', 'the team sees why its channel failed');
    assert.equal(own[0].details.channelName, 'fraud war room at pager.internal.fraud.example');

    const seen = dataOf(await gql(visionEngineer, ALERTS), 'other team').alerts.nodes;
    assert.equal(seen.length, 1, 'another ml-engineer still sees that the alert exists (alerts are readable across teams)');
    assert.equal(seen[0].details.channel, own[0].details.channel);
    const viaNode = dataOf(await gql(visionEngineer, `query($id: ID!) { node(id: $id) { ... on Alert { details } } }`, { id: own[0].id }), 'node').node;
    for (const details of [...seen.map((a: { details: object }) => a.details), viaNode?.details].filter(Boolean)) {
      const text = JSON.stringify(details);
      assert.ok(!text.includes('war room'), `channel name shown to another team: ${text}`);
      assert.ok(!text.includes('HTTP 404'), `receiver error shown to another team: ${text}`);
      assert.ok(!text.includes('lastSummary') && !text.includes('lastDelivery'), `the lost delivery shown to another team: ${text}`);
    }
  });

  it('keeps a delivery DELIVERED when a sender whose lease ran out fails after another sender succeeded', async () => {
    let calls = 0;
    let releaseFirst: () => void = () => undefined;
    const firstHeld = new Promise<void>((r) => (releaseFirst = r));
    const slow = await hook((res) => {
      calls += 1;
      if (calls === 1) void firstHeld.then(() => res.writeHead(500).end('late failure'));
      else res.end('ok');
    });
    const d = await deploy('fraud-attack-race');
    const c = await channel('race hook', `${slow.url}/race`);
    await rule({ name: 'race', channel: c, deployment: d, action: 'IMMEDIATE' });
    const alert = await latencyAlert(d);
    await eventually('the first sender is waiting on the receiver', async () => (about(slow.got, alert).length === 1 ? true : undefined), 30_000, 50);
    const [delivery] = await deliveries({ alert });
    assert.equal(delivery.status, 'SENDING');
    // The first sender stalls past its lease; a second worker takes the delivery over and succeeds.
    const id = expectId(delivery.id, 'NotificationDelivery');
    await t.sql(`UPDATE notification_delivery SET lease_until = now() - interval '1 second' WHERE id = $1`, [id]);
    await attemptDelivery(t.server.app, id);
    assert.equal((await deliveries({ alert }))[0].status, 'DELIVERED');
    // Then the first sender's answer comes back: a failure, for an attempt already superseded.
    // The first sender's job is still waiting on the receiver; it ends once it has dealt with the
    // answer, and then its outcome is in.
    const queue = t.server.app.queues!.get(QUEUES.notifications);
    assert.ok((await queue.getActiveCount()) >= 1, 'the first sender is still at work');
    releaseFirst();
    await eventually('the first sender to be done with its attempt', async () => ((await queue.getActiveCount()) === 0 ? true : undefined), 30_000, 50);
    const [after] = await deliveries({ alert });
    assert.deepEqual([after.status, after.lastError], ['DELIVERED', null], 'a superseded attempt does not undo the delivery');
    assert.equal(about(slow.got, alert).length, 2, 'no third send of a delivered notification');
    const failing = dataOf(await gql(engineer, '{ alerts(filter: { kinds: [NOTIFICATION_FAILED] }) { nodes { feature } } }'), 'alerts').alerts.nodes;
    assert.ok(!failing.some((a: { feature: string }) => a.feature === expectId(c, 'NotificationChannel')), 'no dead-letter alert for a delivered notification');
  });
});
