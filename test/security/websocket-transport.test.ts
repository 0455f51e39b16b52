import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import WebSocket from 'ws';
import { TOPICS } from '../../src/core/events';
import { fromGlobalId } from '../../src/core/global-id';
import { JWT_SECRET, startTestServer, type TestServer } from '../support/harness';
import { assertNoStackTrace, postGraphql } from '../support/http';
import { eventually } from '../support/processes';
import { answered, openSocket, wsUrl } from '../support/raw-socket';

const AUDIT_SIGNING_KEY = generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();

async function initAndLeave(url: string, authorization: string, how: 'close' | 'terminate'): Promise<void> {
  const ws = new WebSocket(wsUrl(url), 'graphql-transport-ws');
  ws.on('error', () => undefined);
  const gone = new Promise<void>((resolve) => ws.on('close', () => resolve()));
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  const init = JSON.stringify({ type: 'connection_init', payload: { authorization } });
  if (how === 'close') {
    ws.send(init);
    ws.close(1000);
  } else {
    // Cut once the message is on the wire, so that the server does receive it.
    ws.send(init, () => ws.terminate());
  }
  await gone;
}

/** Waits until the server answered `id` (a `complete` or an `error`). */
describe('WebSocket transport: sockets that go away are forgotten, and production rules hold', () => {
  let prod: TestServer;
  let dev: TestServer;
  let admin: string;
  let viewer: string;

  before(async () => {
    prod = await startTestServer({ env: { NODE_ENV: 'production', AUTH_JWT_SECRET: JWT_SECRET, AUDIT_SIGNING_KEY, NOTIFY_SECRET_KEY: 'ab'.repeat(32) } });
    dev = await startTestServer();
    admin = prod.token(['admin'], [], 'ada-admin');
    viewer = prod.token(['viewer'], [], 'vic-viewer');
  });
  after(async () => {
    await prod?.stop();
    await dev?.stop();
  });

  describe('a socket that closes while its credential is being checked', () => {
    it('is not followed once 100 sockets sent connection_init and closed at once', async () => {
      assert.equal(prod.server.followedSockets(), 0);
      const leaving: Array<Promise<void>> = [];
      for (let i = 0; i < 100; i++) leaving.push(initAndLeave(prod.url, `Bearer ${viewer}`, i % 2 ? 'close' : 'terminate'));
      await Promise.all(leaving);
      // A socket that stays, opened after all of them with the same credential: once it is
      // acknowledged and every other check has settled, it is the only one followed.
      const stays = await openSocket(prod.url, `Bearer ${viewer}`);
      await eventually('only the open socket to be followed', async () => (prod.server.followedSockets() === 1 ? true : undefined), 30_000, 100).catch(() => {
        throw new Error(`${prod.server.followedSockets()} sockets are followed; only the one still open should be`);
      });
      // It still works, and once it closes nothing is followed.
      stays.subscribe('who', '{ viewer { id } }');
      await answered(stays, 'who');
      assert.equal(stays.messages.find((m) => m.id === 'who' && m.type === 'next')?.payload.data.viewer.id, 'vic-viewer');
      await stays.close();
      await eventually('nothing to be followed', async () => (prod.server.followedSockets() === 0 ? true : undefined), 30_000, 100);
    });
  });

  describe('introspection is refused over WebSocket in production, as over HTTP', () => {
    const INTROSPECTION = [
      ['__schema', '{ __schema { types { name fields { name } } } }'],
      ['__type', '{ __type(name: "Query") { fields { name } } }'],
    ];

    for (const [what, query] of INTROSPECTION) {
      it(`refuses ${what} on a viewer's socket with BAD_USER_INPUT (GRAPHQL_VALIDATION_FAILED) and sends no schema`, async () => {
        const http = await postGraphql(prod.url, viewer, query);
        assert.equal(http.status, 400, http.text);
        assert.equal(http.json.errors[0].extensions.code, 'BAD_USER_INPUT', http.text);
        assert.equal(http.json.errors[0].extensions.reason, 'GRAPHQL_VALIDATION_FAILED', http.text);

        const s = await openSocket(prod.url, `Bearer ${viewer}`);
        try {
          s.subscribe('intro', query);
          await answered(s, 'intro');
          const answers = s.messages.filter((m) => m.id === 'intro');
          assert.deepEqual(
            answers.map((m) => m.type),
            ['error'],
            JSON.stringify(answers).slice(0, 500),
          );
          const [error] = answers[0].payload;
          assert.equal(error.extensions.code, 'BAD_USER_INPUT');
          assert.equal(error.extensions.reason, 'GRAPHQL_VALIDATION_FAILED');
          assert.ok(error.extensions.requestId);
          assert.match(error.message, /introspection/i);
          assert.equal(error.message, http.json.errors[0].message, 'the same rule refuses it on both transports');
          assertNoStackTrace(JSON.stringify(answers));
          assert.equal(s.closed, null, 'the socket stays usable');
        } finally {
          await s.close();
        }
      });
    }

    it('still answers __typename in production, and introspection in development', async () => {
      const s = await openSocket(prod.url, `Bearer ${admin}`);
      try {
        s.subscribe('typename', '{ __typename viewer { id } }');
        await answered(s, 'typename');
        const next = s.messages.find((m) => m.id === 'typename' && m.type === 'next');
        assert.equal(next?.payload.data.__typename, 'Query', JSON.stringify(s.messages).slice(0, 500));
      } finally {
        await s.close();
      }
      const d = await openSocket(dev.url, `Bearer ${dev.token(['viewer'], [], 'vic-viewer')}`);
      try {
        d.subscribe('intro', '{ __schema { queryType { name } } }');
        await answered(d, 'intro');
        const next = d.messages.find((m) => m.id === 'intro' && m.type === 'next');
        assert.equal(next?.payload.data.__schema.queryType.name, 'Query', JSON.stringify(d.messages).slice(0, 500));
      } finally {
        await d.close();
      }
    });
  });
});

describe('WebSocket transport: a subscription whose object goes out of sight ends once', () => {
  let t: TestServer;
  let admin: string;

  before(async () => {
    t = await startTestServer({ demo: true });
    admin = t.token(['admin'], [], 'ada-admin');
  });
  after(async () => {
    await t?.stop();
  });

  const upsertRole = async (rules: unknown[]) => {
    const r = await t.gql(admin, 'mutation($r: JSON!) { upsertRole(input: { name: "run-watcher", rules: $r }) { name } }', { r: rules });
    assert.equal(r.errors, undefined, JSON.stringify(r.errors));
  };

  it('ends trainingRunUpdated with one error (FORBIDDEN, SUBSCRIPTION_RIGHT_LOST) when the run is no longer readable, and audits it', async () => {
    const runs = await t.gql(admin, '{ trainingRuns(filter: { team: "fraud" }) { nodes { id } } }');
    const runId: string = runs.data.trainingRuns.nodes[0].id;
    const publish = () => t.server.app.events!.publish(TOPICS.trainingRunUpdated, { id: fromGlobalId(runId).key });
    await upsertRole([{ action: 'read', subject: 'TrainingRun' }]);
    const s = await openSocket(t.url, `Bearer ${t.token(['run-watcher'], ['fraud'], 'rita-watcher')}`);
    try {
      s.subscribe('run', 'subscription($id: ID!) { trainingRunUpdated(id: $id) { id } }', { id: runId });
      s.subscribe('probe', '{ viewer { id } }');
      await answered(s, 'probe');
      // Published until one arrives: the subscription listens only once the server has subscribed to Redis.
      await eventually('the first event', async () => (s.messages.some((m) => m.id === 'run') ? true : (publish(), undefined)), 30_000, 200);
      assert.equal(s.messages.find((m) => m.id === 'run')?.payload.data.trainingRunUpdated.id, runId, JSON.stringify(s.messages).slice(0, 500));

      // The role keeps `read TrainingRun` (the field's policy) but no longer covers this run.
      await upsertRole([{ action: 'read', subject: 'TrainingRun', conditions: { createdBy: 'someone-else' } }]);
      publish();
      publish();
      await eventually('the subscription to end', async () => (s.messages.some((m) => m.id === 'run' && m.type !== 'next') ? true : undefined), 30_000, 20);
      // Once more after the end, then a query: nothing more arrives for the ended subscription.
      publish();
      s.subscribe('after', '{ viewer { id } }');
      await answered(s, 'after');
      const answers = s.messages.filter((m) => m.id === 'run');
      const ended = answers[answers.length - 1];
      assert.equal(ended.type, 'error', JSON.stringify(answers).slice(0, 800));
      for (const m of answers.slice(0, -1)) {
        assert.equal(m.type, 'next');
        assert.equal(m.payload.errors, undefined, `no event answered with an error: ${JSON.stringify(m)}`);
        assert.equal(m.payload.data.trainingRunUpdated.id, runId);
      }
      assert.equal(ended.payload[0].extensions.code, 'FORBIDDEN');
      assert.equal(ended.payload[0].extensions.reason, 'SUBSCRIPTION_RIGHT_LOST');
      assertNoStackTrace(JSON.stringify(answers));
      assert.equal(s.closed, null, 'the credential still holds: the socket stays open');
      assert.equal(s.messages.find((m) => m.id === 'after' && m.type === 'next')?.payload.data.viewer.id, 'rita-watcher');
      // The denial is written as the subscription ends, not necessarily before the client hears of it.
      const audited = async () => (await t.sql(`SELECT count(*)::int AS n FROM audit_event WHERE action = 'subscriptionEnded' AND actor_id = 'rita-watcher' AND decision = 'DENIED'`))[0].n as number;
      await eventually('the ended subscription to be audited as a denial', async () => ((await audited()) > 0 ? true : undefined), 30_000, 100);
      assert.equal(await audited(), 1, 'audited once');
    } finally {
      await s.close();
    }
  });

  it('ends rolloutUpdated with one error (FORBIDDEN, SUBSCRIPTION_RIGHT_LOST) when the deployment is no longer readable', async () => {
    const d = await t.gql(admin, '{ deployments(filter: { team: "fraud" }) { nodes { id } } }');
    const deploymentId: string = d.data.deployments.nodes[0].id;
    const publish = () => t.server.app.events!.publish(TOPICS.rolloutUpdated, { id: fromGlobalId(deploymentId).key });
    await upsertRole([{ action: 'read', subject: ['Rollout', 'Deployment'] }]);
    const s = await openSocket(t.url, `Bearer ${t.token(['run-watcher'], ['fraud'], 'rory-watcher')}`);
    try {
      s.subscribe('rollout', 'subscription($d: ID!) { rolloutUpdated(deployment: $d) { id } }', { d: deploymentId });
      s.subscribe('probe', '{ viewer { id } }');
      await answered(s, 'probe');
      assert.deepEqual(s.messages.filter((m) => m.id === 'rollout'), [], 'the subscription started');
      // Rollouts stay readable (the field's policy); the deployment they belong to no longer is.
      await upsertRole([{ action: 'read', subject: 'Rollout' }, { action: 'read', subject: 'Deployment', conditions: { createdBy: 'someone-else' } }]);
      await eventually('the subscription to end', async () => (s.messages.some((m) => m.id === 'rollout') ? true : (publish(), undefined)), 30_000, 200);
      publish();
      s.subscribe('after', '{ viewer { id } }');
      await answered(s, 'after');
      const answers = s.messages.filter((m) => m.id === 'rollout');
      assert.deepEqual(
        answers.map((m) => m.type),
        ['error'],
        JSON.stringify(answers).slice(0, 800),
      );
      assert.equal(answers[0].payload[0].extensions.code, 'FORBIDDEN');
      assert.equal(answers[0].payload[0].extensions.reason, 'SUBSCRIPTION_RIGHT_LOST');
      assertNoStackTrace(JSON.stringify(answers));
      assert.equal(s.closed, null);
    } finally {
      await s.close();
    }
  });
});
