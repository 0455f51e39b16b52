import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startTestServer, type TestServer } from '../support/harness';
import { registerOnnx } from '../support/inference';
import { buildLoopOnnx } from '../support/onnx-models';
import { eventually } from '../support/processes';

const PREDICT = `mutation($d: ID!, $inputs: JSONObject!) { predict(deployment: $d, inputs: $inputs) { id rows fallback modelVersionId } }`;
const SET_SPLIT = `mutation($d: ID!, $v: ID!) { setTrafficSplit(input: { deployment: $d, trafficSplit: [{ modelVersion: $v, weight: 100 }] }) { id } }`;
const SERVING = `query($d: ID!) { node(id: $d) { ... on Deployment { serving { modelVersionId role state } } } }`;

/**
 * A version that leaves a deployment's traffic split (a split set by hand, a rollout that
 * completed) while requests that picked it are still waiting for an inference thread: those
 * requests are answered by it, and it is unloaded after them, not before.
 */
describe('a version leaving the traffic split with requests still waiting for it', () => {
  let t: TestServer;
  let admin: string;
  let service: string;
  let slow: string;
  let moving: string;
  let v1: string;
  let v2: string;

  before(async () => {
    // One shared inference thread: a slow run holds it, so a request for another version waits in the queue.
    t = await startTestServer({
      demo: true,
      env: { INFERENCE_THREADS: '1', INFERENCE_TIMEOUT_MS: '60000', INFERENCE_RUN_BUDGET_MS: '60000', INFERENCE_RUN_STUCK_MS: '300000', INFERENCE_SPLIT_MIN_MS: '0' },
    });
    admin = t.token(['admin'], []);
    service = t.token(['service'], ['fraud'], 'svc-retire');
    const models = await t.gql(admin, `{ models(filter: { name: "fraud-detector" }) { nodes { id } } }`);
    const model = models.data.models.nodes[0].id;
    // Loop models: as slow as their inputs say (all-zero rows answer at once), each its own version.
    const slowVersion = await registerOnnx(t, admin, model, buildLoopOnnx(1000));
    v1 = await registerOnnx(t, admin, model, buildLoopOnnx(1));
    v2 = await registerOnnx(t, admin, model, buildLoopOnnx(2));
    const create = (name: string, version: string) => createDeployment(t, admin, name, version);
    slow = await create('slow-lane', slowVersion);
    moving = await create('moving', v1);
    // v2 already serves another deployment: moving the split to it loads nothing, so v1 leaves the
    // routes at once, while its request still waits.
    await create('already-on-v2', v2);
    await t.server.app.inference!.reconcile();
  });
  after(async () => {
    await t?.stop();
  });

  it('answers them with that version, then unloads it; the next requests go to the new version', async () => {
    const pool = t.server.app.inference!.pools.shared;
    // Holds the only thread for seconds (4 million trips of the loop).
    const before = await dispatchedRuns(t);
    const holding = t.gql(service, PREDICT, { d: slow, inputs: { features: [[1000, 1000, 1000, 1000]] } });
    await eventually('the slow run to hold the thread', async () => (pool.queued === 0 && (await dispatchedRuns(t)) > before ? true : undefined), 10_000, 20);
    const waiting = t.gql(service, PREDICT, { d: moving, inputs: { features: [[0, 0, 0, 0]] } });
    await eventually('the request for v1 to wait for the thread', async () => (pool.queued === 1 ? true : undefined), 10_000, 10);

    // The split moves to v2 (v2 becomes the last stable version: nothing keeps v1 loaded).
    const moved = await t.gql(admin, SET_SPLIT, { d: moving, v: v2 });
    assert.equal(moved.errors, undefined, JSON.stringify(moved.errors));
    await t.server.app.inference!.reconcile();
    // Still waiting behind the slow run, not failed (a version unloaded at once fails what waits for it).
    assert.equal(pool.queued, 1, 'the request for v1 still waits behind the slow run after v1 left the routes');

    const answered = await waiting;
    assert.equal(answered.errors, undefined, `the request that picked v1 is answered, not failed: ${JSON.stringify(answered.errors)}`);
    assert.equal(answered.data.predict.modelVersionId, v1);
    assert.equal(answered.data.predict.fallback, false);
    // Counted under v1's own label, although v1 had left the routes before its run ended.
    const counted = await predictionSeries(t, 'fraud:moving');
    assert.equal(counted.length, 1, JSON.stringify(counted));
    assert.match(counted[0].version, /^fraud-detector:v\d+$/, `the retiring version's answer is counted under its label: ${JSON.stringify(counted)}`);
    assert.deepEqual([counted[0].outcome, counted[0].count], ['ok', 1]);
    const held = await holding;
    assert.equal(held.errors, undefined, JSON.stringify(held.errors));

    // Once answered, v1 is dropped: the deployment serves v2 alone, and runs on v1 are refused.
    await eventually('v1 to be unloaded', async () => (pool.queued === 0 && (await runRefused(t, v1)) ? true : undefined), 10_000, 50);
    const serving = await t.gql(admin, SERVING, { d: moving });
    assert.deepEqual(
      serving.data.node.serving.map((s: { modelVersionId: string; state: string }) => [s.modelVersionId, s.state]),
      [[v2, 'LOADED']],
    );
    const next = await t.gql(service, PREDICT, { d: moving, inputs: { features: [[0, 0, 0, 0]] } });
    assert.equal(next.errors, undefined, JSON.stringify(next.errors));
    assert.equal(next.data.predict.modelVersionId, v2);
    const both = await predictionSeries(t, 'fraud:moving');
    assert.equal(both.length, 2, JSON.stringify(both));
    assert.equal(new Set(both.map((c) => c.version)).size, 2, `one series per version: ${JSON.stringify(both)}`);
    assert.ok(both.every((c) => c.version !== 'unknown' && c.outcome === 'ok' && c.count === 1), JSON.stringify(both));

    // Both answers are in the prediction log under the version that gave them.
    const logged = await eventually('the answers in the log', async () => {
      const rows = await t.sql<{ model_version_id: string; error: string | null }>(`SELECT model_version_id, error FROM prediction_log WHERE deployment_id = $1 ORDER BY occurred_at`, [fromGlobal(moving)]);
      return rows.length === 2 ? rows : undefined;
    });
    assert.deepEqual(
      logged.map((r) => [r.model_version_id, r.error]),
      [
        [fromGlobal(v1), null],
        [fromGlobal(v2), null],
      ],
    );
  });
});

/** A DEVELOPMENT deployment of team fraud serving `version` alone; its global id. */
async function createDeployment(t: TestServer, admin: string, name: string, version: string): Promise<string> {
  const r = await t.gql(admin, `mutation($v: ID!, $n: String!) { createDeployment(input: { team: "fraud", name: $n, environment: DEVELOPMENT, trafficSplit: [{ modelVersion: $v, weight: 100 }] }) { id } }`, { v: version, n: name });
  assert.equal(r.errors, undefined, JSON.stringify(r.errors));
  return r.data.createDeployment.id as string;
}

const fromGlobal = (id: string) => Buffer.from(id, 'base64').toString('utf8').split(':')[1];

/** Runs handed to inference threads so far, over every version (the runtime calls the batch histogram counts). */
async function dispatchedRuns(t: TestServer): Promise<number> {
  const r = await fetch(`${t.url}/metrics`, { headers: { authorization: `Bearer ${t.token(['auditor'], [])}` } });
  assert.equal(r.status, 200);
  return (await r.text())
    .split('\n')
    .filter((l) => l.startsWith('modelgov_inference_batch_requests_count{'))
    .reduce((n, l) => n + Number(l.split(' ').pop()), 0);
}

/** The served-prediction series of a deployment (`team:name`) on GET /metrics: model version label, outcome, count. */
async function predictionSeries(t: TestServer, deployment: string): Promise<Array<{ version: string; outcome: string; count: number }>> {
  const r = await fetch(`${t.url}/metrics`, { headers: { authorization: `Bearer ${t.token(['auditor'], [])}` } });
  assert.equal(r.status, 200);
  return (await r.text())
    .split('\n')
    .filter((l) => l.startsWith('modelgov_predictions_total{') && l.includes(`deployment="${deployment}"`) && l.includes('role="served"'))
    .map((l) => ({ version: /model_version="([^"]*)"/.exec(l)![1], outcome: /outcome="([^"]*)"/.exec(l)![1], count: Number(l.split(' ').pop()) }));
}

/** Whether the shared pool refuses a run of `version` because it is no longer loaded. */
async function runRefused(t: TestServer, version: string): Promise<boolean> {
  const id = fromGlobal(version);
  try {
    await t.server.app.inference!.pools.shared.run(id, [{ name: 'features', type: 'float32', dims: [1, 4], data: new Float32Array(4) }], 1, 5_000);
    return false;
  } catch (e) {
    return /is not loaded/.test((e as Error).message);
  }
}

/**
 * The run budget's breaker drops a version from a pool at once, including a version that has left
 * the routes and is only finishing the requests that picked it: those requests are not run on a
 * version whose runs overrun the budget.
 */
describe('a retiring version whose run overruns the run budget', () => {
  let t: TestServer;
  let admin: string;
  let service: string;
  let moving: string;
  let v1: string;
  let v2: string;

  before(async () => {
    t = await startTestServer({
      demo: true,
      env: {
        INFERENCE_THREADS: '1',
        INFERENCE_TIMEOUT_MS: '60000',
        // One run over 1 s unloads the version; a run stuck for good would take 300 s.
        INFERENCE_RUN_BUDGET_MS: '1000',
        INFERENCE_RUN_BUDGET_PER_ROW_US: '0',
        INFERENCE_BUDGET_OVERRUNS: '1',
        INFERENCE_BUDGET_COOLDOWN_MS: '600000',
        INFERENCE_RUN_STUCK_MS: '300000',
        INFERENCE_SPLIT_MIN_MS: '0',
      },
    });
    admin = t.token(['admin'], []);
    service = t.token(['service'], ['fraud'], 'svc-overrun');
    const models = await t.gql(admin, `{ models(filter: { name: "fraud-detector" }) { nodes { id } } }`);
    const model = models.data.models.nodes[0].id;
    // A feature of 8 makes v1 run 8 million trips of its loop: seconds on any machine this runs on.
    v1 = await registerOnnx(t, admin, model, buildLoopOnnx(1_000_000));
    v2 = await registerOnnx(t, admin, model, buildLoopOnnx(2));
    const create = (name: string, version: string) => createDeployment(t, admin, name, version);
    moving = await create('overrunning', v1);
    await create('already-on-v2', v2);
    await t.server.app.inference!.reconcile();
  });
  after(async () => {
    await t?.stop();
  });

  it('unloads it when the run overruns, failing what still waits for it instead of running it there', async () => {
    const pool = t.server.app.inference!.pools.shared;
    const id1 = fromGlobal(v1);
    const before = await dispatchedRuns(t);
    const slow = t.gql(service, PREDICT, { d: moving, inputs: { features: [[8, 0, 0, 0]] } });
    await eventually('the slow run to hold the thread', async () => (pool.queued === 0 && (await dispatchedRuns(t)) > before ? true : undefined), 10_000, 10);
    const waiting = t.gql(service, PREDICT, { d: moving, inputs: { features: [[0, 0, 0, 0]] } });
    await eventually('the second request to wait for the thread', async () => (pool.queued === 1 ? true : undefined), 10_000, 10);

    const moved = await t.gql(admin, SET_SPLIT, { d: moving, v: v2 });
    assert.equal(moved.errors, undefined, JSON.stringify(moved.errors));
    await t.server.app.inference!.reconcile();
    assert.equal(pool.queued, 1, 'the request that picked v1 still waits');
    assert.ok(pool.holds(id1), 'v1 is retiring, still held for the request that waits for it');

    // The slow run passes the budget: the breaker drops v1 although no route leads to it any more.
    const [first, second] = await Promise.all([slow, waiting]);
    for (const r of [first, second]) {
      assert.equal(r.errors?.[0]?.extensions?.code, 'UNAVAILABLE', JSON.stringify(r));
      assert.equal(r.errors?.[0]?.extensions?.reason, 'INFERENCE_FAILED', JSON.stringify(r));
    }
    assert.equal(pool.holds(id1), false, 'v1 is unloaded from the pool');
    assert.equal(await runRefused(t, v1), true, 'runs on v1 are refused');

    // The deployment serves v2, which answers.
    const next = await t.gql(service, PREDICT, { d: moving, inputs: { features: [[0, 0, 0, 0]] } });
    assert.equal(next.errors, undefined, JSON.stringify(next.errors));
    assert.equal(next.data.predict.modelVersionId, v2);
  });
});
