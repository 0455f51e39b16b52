import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import WebSocket from 'ws';
import { Alert as AlertEntity, AlertKind, AlertSeverity, AlertStatus } from '../../src/monitoring/alert.entity';
import { publishAlert } from '../../src/monitoring/alerts';
import { startTestServer, type TestServer } from '../support/harness';
import { eventually } from '../support/processes';

const ALERTS = 'subscription { alerts { id feature } }';

/** A graphql-ws socket spoken to by hand: every frame the server sent, as received. */
interface RawSocket {
  ws: WebSocket;
  frames: string[];
  /** The `next` frames of subscription `id`, parsed. */
  next(id: string): Array<{ id: string; payload: { data?: { alerts?: { feature: string } }; errors?: unknown[] } }>;
}

describe('alert subscriptions: one execution per operation and access class, sent to every subscriber of it', () => {
  let t: TestServer;
  const teams = new Map<string, string>();
  const sockets: RawSocket[] = [];

  const alert = (team: string, feature: string) => {
    const now = new Date();
    return Object.assign(new AlertEntity(), {
      id: randomUUID(), teamId: teams.get(team)!, createdBy: 'test', createdAt: now, deploymentId: '00000000-0000-4000-8000-000000000000',
      modelVersionId: '00000000-0000-4000-8000-000000000000', kind: AlertKind.DRIFT, severity: AlertSeverity.WARNING, status: AlertStatus.OPEN,
      feature, statistic: 'psi', value: 1, threshold: 0.1, pValue: null, windowStart: now, windowEnd: now, lastSeenAt: now, occurrences: 1, details: {},
    });
  };
  const executions = async () => (await t.server.subscriptionMetrics.getSingleMetric('modelgov_subscription_executions_total')!.get()).values[0]?.value ?? 0;

  const open = async (token: string): Promise<RawSocket> => {
    const ws = new WebSocket(t.url.replace(/^http/, 'ws') + '/graphql', 'graphql-transport-ws');
    const frames: string[] = [];
    ws.on('message', (m) => frames.push(m.toString()));
    await new Promise<void>((resolve) => ws.on('open', () => resolve()));
    ws.send(JSON.stringify({ type: 'connection_init', payload: { authorization: `Bearer ${token}` } }));
    await eventually('the socket is acknowledged', async () => (frames.some((f) => JSON.parse(f).type === 'connection_ack') ? true : undefined), 5000, 20);
    const socket: RawSocket = {
      ws,
      frames,
      next: (id) => frames.map((f) => JSON.parse(f)).filter((m) => m.type === 'next' && m.id === id),
    };
    sockets.push(socket);
    return socket;
  };
  const subscribe = (socket: RawSocket, id: string, query = ALERTS) => socket.ws.send(JSON.stringify({ id, type: 'subscribe', payload: { query } }));
  const features = (socket: RawSocket, id: string) => socket.next(id).map((m) => m.payload.data?.alerts?.feature);
  /**
   * Publishes alerts of `team` until each of `watchers` has received one, then one more, once: when
   * that one arrived, every copy published before it has been executed and sent (events reach a
   * subscriber in the order they were published).
   */
  const live = async (team: string, watchers: Array<[RawSocket, string]>) => {
    const feature = `probe-${randomUUID()}`;
    await eventually(`the ${team} subscribers are live`, async () => {
      if (watchers.every(([s, id]) => features(s, id).includes(feature))) return true;
      publishAlert(t.server.app, alert(team, feature));
      return undefined;
    }, 20_000, 200);
    await deliver(team, `probe-${randomUUID()}`, watchers);
  };
  /** Publishes one alert of `team` and waits until each of `watchers` has it. */
  const deliver = async (team: string, feature: string, watchers: Array<[RawSocket, string]>) => {
    publishAlert(t.server.app, alert(team, feature));
    await eventually(`${feature} reached the ${team} subscribers`, async () => (watchers.every(([s, id]) => features(s, id).includes(feature)) ? true : undefined), 20_000, 20);
  };

  before(async () => {
    t = await startTestServer({ env: { INFERENCE_ENABLED: 'false' } });
    const admin = t.token(['admin'], [], 'root');
    for (const name of ['red', 'blue', 'green']) {
      const r = await t.gql(admin, 'mutation($n: String!) { createTeam(input: { name: $n }) { id } }', { n: name });
      assert.equal(r.errors, undefined, JSON.stringify(r.errors));
    }
    for (const team of await t.sql(`SELECT id, name FROM team`)) teams.set(team.name, team.id);
  });

  after(async () => {
    for (const s of sockets) s.ws.terminate();
    await t?.stop();
  });

  it('executes an event once per access class, and never sends a team another team\'s alerts', async () => {
    const ann = t.token(['viewer'], ['red'], 'ann');
    const bob = t.token(['viewer'], ['red'], 'bob');
    const carl = t.token(['viewer'], ['blue'], 'carl');
    const anns = [await open(ann), await open(ann), await open(ann)];
    const bobs = await open(bob);
    const carls = await open(carl);
    for (const s of [...anns, bobs, carls]) subscribe(s, 'alerts');
    const red: Array<[RawSocket, string]> = [...anns, bobs].map((s) => [s, 'alerts']);
    const blue: Array<[RawSocket, string]> = [[carls, 'alerts']];
    await live('red', red);
    await live('blue', blue);

    const before = await executions();
    await deliver('red', 'red-1', red);
    await deliver('blue', 'blue-1', blue);
    // Published after blue-1: once it arrived, every red subscriber has judged blue-1 too.
    await deliver('red', 'red-2', red);
    // red-1 and red-2: once for ann's three subscriptions and once for bob's (another principal); blue-1: once, for carl.
    assert.equal((await executions()) - before, 5, 'executions per event are per access class (5), not per subscriber (9)');

    for (const [s, id] of red) {
      const got = features(s, id).filter((f) => !f?.startsWith('probe-'));
      assert.deepEqual(got, ['red-1', 'red-2'], 'a red subscriber gets the red alerts only');
      assert.deepEqual(s.next(id).flatMap((m) => m.payload.errors ?? []), []);
    }
    assert.deepEqual(features(carls, 'alerts').filter((f) => !f?.startsWith('probe-')), ['blue-1'], 'the blue subscriber gets the blue alert only');
    for (const s of [...anns, bobs, carls]) s.ws.terminate();
  });

  it('shares an execution only between subscribers whose rights are the same: a role that may not read the deployment gets its own, and never its name', async () => {
    const admin = t.token(['admin'], [], 'root');
    const role = await t.gql(admin, 'mutation($i: UpsertRoleInput!) { upsertRole(input: $i) { name } }', {
      i: { name: 'alert-reader', rules: [{ action: 'read', subject: 'Alert', conditions: { teamId: { $in: '${user.teamIds}' } } }] },
    });
    assert.equal(role.errors, undefined, JSON.stringify(role.errors));
    const [deployment] = await t.sql(`INSERT INTO deployment (team_id, name, environment, created_by) VALUES ($1, 'red-prod', 'PRODUCTION', 'root') RETURNING id`, [teams.get('red')]);
    // One person, one team, one operation: only the roles differ between the first two tokens.
    const asViewer = t.token(['viewer'], ['red'], 'gus');
    const asReader = t.token(['alert-reader'], ['red'], 'gus');
    const blueViewer = t.token(['viewer'], ['blue'], 'hal');
    const viewers = [await open(asViewer), await open(asViewer)];
    const reader = await open(asReader);
    const blue = await open(blueViewer);
    const query = 'subscription { alerts { feature deployment { name } } }';
    for (const s of [...viewers, reader, blue]) subscribe(s, 'named', query);
    const red: Array<[RawSocket, string]> = [...viewers, reader].map((s) => [s, 'named']);
    await live('red', red);
    await live('blue', [[blue, 'named']]);

    const named = (s: RawSocket, feature: string) =>
      s.next('named').map((m) => m.payload).filter((p) => (p.data?.alerts as { feature?: string } | undefined)?.feature === feature);
    const before = await executions();
    const red1 = Object.assign(alert('red', 'red-named-1'), { deploymentId: deployment.id });
    publishAlert(t.server.app, red1);
    await eventually('red-named-1 reached the red subscribers', async () => (red.every(([s]) => named(s, 'red-named-1').length === 1) ? true : undefined), 20_000, 20);
    await deliver('blue', 'blue-named-1', [[blue, 'named']]);
    // Published after the red alert: once it arrived, the blue subscriber has judged red-named-1 too.
    assert.equal((await executions()) - before, 3, "red-named-1: once for gus as a viewer (both sockets), once for gus as an alert reader; blue-named-1: once, for hal");

    for (const s of viewers) {
      assert.deepEqual(named(s, 'red-named-1'), [{ data: { alerts: { feature: 'red-named-1', deployment: { name: 'red-prod' } } } }], 'each viewer socket gets the shared result');
    }
    assert.deepEqual(named(reader, 'red-named-1'), [{ data: { alerts: { feature: 'red-named-1', deployment: null } } }], 'the alert reader may not read the deployment: its name never reaches it');
    const seenByBlue = blue.next('named').map((m) => (m.payload.data?.alerts as { feature?: string } | undefined)?.feature).filter((f) => !f?.startsWith('probe-'));
    assert.deepEqual(seenByBlue, ['blue-named-1'], 'the blue subscriber never gets the red alert');
    for (const s of [...viewers, reader, blue]) s.ws.terminate();
  });

  it('sends the subscribers of one class the same bytes, each under its own subscription id', async () => {
    const dora = t.token(['viewer'], ['green'], 'dora');
    const first = await open(dora);
    const second = await open(dora);
    // The same operation, spelt differently.
    subscribe(first, 'one', ALERTS);
    subscribe(second, 'two-7', 'subscription {\n  alerts {\n    id,\n    feature # which one\n  }\n}');
    await live('green', [[first, 'one'], [second, 'two-7']]);

    const before = await executions();
    await deliver('green', 'green-1', [[first, 'one'], [second, 'two-7']]);
    assert.equal((await executions()) - before, 1, 'one execution for both subscribers');

    const frame = (s: RawSocket, id: string) => s.frames.find((f) => JSON.parse(f).id === id && f.includes('"green-1"'))!;
    const [a, b] = [frame(first, 'one'), frame(second, 'two-7')];
    assert.equal(JSON.parse(a).id, 'one');
    assert.equal(JSON.parse(b).id, 'two-7');
    const payload = (f: string) => f.slice(f.indexOf('"payload":'));
    assert.equal(payload(a), payload(b), 'byte-identical payloads');
    assert.equal(JSON.parse(a).payload.data.alerts.feature, 'green-1');
  });
});
