import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startTestServer, type TestServer } from '../support/harness';
import { PREDICT, fraudRow, registerOnnx, loggedPredictions, inParallel } from '../support/inference';
import { eventually } from '../support/processes';
import { buildFaultyOnnx } from '../support/onnx-models';
import { buildLogisticRegressionOnnx } from '../../src/registry/onnx-builders';

const uuidOf = (id: string) => Buffer.from(id, 'base64url').toString().split(':')[1];
const row = fraudRow;

describe('serving: routing, shadow and rollout health', () => {
  let t: TestServer;
  let engineer: string;
  let service: string;
  let fraudModel: string;
  let staging: string;
  let v1: string;
  let v2: string;

  const register = (bytes: Buffer) => registerOnnx(t, engineer, fraudModel, bytes);
  const served = () => t.server.app.inference!.reconcile();
  const logged = (where: string, params: unknown[]) => loggedPredictions(t, where, params);

  before(async () => {
    t = await startTestServer({
      demo: true,
      env: { INFERENCE_THREADS: '2', INFERENCE_RATE_LIMIT_PER_SECOND: '1000000', SERVING_WINDOW_SECONDS: '1' },
    });
    engineer = t.token(['ml-engineer'], ['fraud'], 'erin');
    service = t.token(['service'], ['fraud'], 'svc');
    const r = await t.gql(engineer, `{
      models(filter: { name: "fraud-detector" }) { nodes { id versions { id version } } }
      deployments(filter: { team: "fraud", environment: STAGING }) { nodes { id } }
    }`);
    fraudModel = r.data.models.nodes[0].id;
    v1 = r.data.models.nodes[0].versions.find((v: { version: number }) => v.version === 1).id;
    v2 = r.data.models.nodes[0].versions.find((v: { version: number }) => v.version === 2).id;
    staging = r.data.deployments.nodes[0].id;
  });
  after(async () => {
    await t?.stop();
  });

  it('lands 10 ± 1.5 % of 10,000 keyed requests on a 10 % canary, and a key always on the same version', async () => {
    // The demo's STAGING deployment splits 90 / 10 between v1 and v2.
    const answers = await inParallel(10_000, 32, async (i) => {
      const r = await t.gql(service, PREDICT, { d: staging, inputs: { features: [row(i)] }, key: `user-${i}` });
      assert.equal(r.errors, undefined, JSON.stringify(r.errors));
      return r.data.predict.modelVersionId as string;
    });
    const share = answers.filter((v) => v === v2).length / answers.length;
    assert.ok(share >= 0.085 && share <= 0.115, `canary share ${share}`);
    assert.equal(answers.filter((v) => v !== v1 && v !== v2).length, 0);
    const again = await inParallel(500, 16, async (i) => {
      const r = await t.gql(service, PREDICT, { d: staging, inputs: { features: [row(i + 1)] }, key: `user-${i}` });
      return r.data.predict.modelVersionId as string;
    });
    again.forEach((v, i) => assert.equal(v, answers[i], `user-${i} moved from ${answers[i]} to ${v}`));
    await t.server.app.inference!.log.flush();
    const counts = await t.sql(`SELECT model_version_id, count(*)::int AS n FROM prediction_log WHERE deployment_id = $1 AND NOT shadow GROUP BY 1`, [uuidOf(staging)]);
    const perVersion = Object.fromEntries(counts.map((c) => [c.model_version_id, c.n]));
    const answered = (v: string) => answers.filter((a) => a === v).length + again.filter((a) => a === v).length;
    assert.deepEqual(perVersion, { [uuidOf(v1)]: answered(v1), [uuidOf(v2)]: answered(v2) }, 'every answer of every version is in the prediction log, and nothing else');
  });

  it('mirrors requests to a SHADOW version: its outputs are logged, never returned', async () => {
    const shadow = await register(buildLogisticRegressionOnnx({ weights: [0.5, -0.25, 2, 0.001], bias: -1 }));
    const started = await t.gql(engineer, `mutation($d: ID!, $v: ID!) { startRollout(input: { deployment: $d, modelVersion: $v, strategy: SHADOW, bakeSeconds: 3600 }) { id status } }`, { d: staging, v: shadow });
    assert.equal(started.errors, undefined, JSON.stringify(started.errors));
    await served();
    const answers = await inParallel(40, 8, async (i) => {
      const r = await t.gql(service, PREDICT, { d: staging, inputs: { features: [row(i)] }, key: `shadow-${i}` });
      return r.data.predict.modelVersionId as string;
    });
    assert.ok(answers.every((v) => v === v1 || v === v2), 'the shadow version never answers');
    // Mirrored runs finish after the answers: wait for their records, then check there are no more.
    const mirrored = await eventually('the 40 mirrored runs logged', async () => {
      const rows = await logged('model_version_id = $1', [uuidOf(shadow)]);
      return rows.length >= 40 ? rows : undefined;
    }, 30_000);
    assert.equal(mirrored.length, 40);
    assert.ok(mirrored.every((m) => m.shadow === true && m.outputs.probability.length === 1 && m.principal_id === 'svc'));
    const served1 = await logged(`request_key = 'shadow-0' AND NOT shadow`, []);
    const shadow1 = mirrored.find((m) => m.request_key === 'shadow-0');
    assert.equal(served1.length, 1);
    assert.equal(shadow1.request_id, served1[0].request_id, 'the shadow record points at the request it mirrored');
    const x = row(0);
    const expected = 1 / (1 + Math.exp(-(0.5 * x[0] - 0.25 * x[1] + 2 * x[2] + 0.001 * x[3] - 1)));
    assert.ok(Math.abs(shadow1.outputs.probability[0][0] - expected) < 1e-5);
    const serving = async () => {
      const r = await t.gql(engineer, `query($d: ID!) { node(id: $d) { ... on Deployment { serving { modelVersionId role state } } } }`, { d: staging });
      return r.data.node.serving as Array<{ modelVersionId: string; role: string; state: string }>;
    };
    assert.deepEqual((await serving()).find((s) => s.modelVersionId === shadow), { modelVersionId: shadow, role: 'SHADOW', state: 'LOADED' });
    const aborted = await t.gql(engineer, `mutation($r: ID!) { abortRollout(input: { rollout: $r }) { status } }`, { r: started.data.startRollout.id });
    assert.equal(aborted.data.abortRollout.status, 'ABORTED');
    await served();
    assert.equal((await serving()).find((s) => s.modelVersionId === shadow), undefined, 'no longer routed: unloaded');
    const ready = (await fetch(`${t.url}/readyz`, { headers: { authorization: `Bearer ${t.token(['auditor'], [])}` } }).then((x) => x.json())) as { inference: { versions: Record<string, string> } };
    assert.equal(ready.inference.versions[shadow], undefined);
  });

  it('feeds the rollout health check: a canary whose version errors is rolled back automatically', async () => {
    const faulty = await register(buildFaultyOnnx());
    const created = await t.gql(engineer, `mutation($v: ID!) { createDeployment(input: { team: "fraud", name: "fraud-canary", environment: DEVELOPMENT, slos: { errorRate: 0.05 }, trafficSplit: [{ modelVersion: $v, weight: 100 }] }) { id } }`, { v: v1 });
    const d = created.data.createDeployment.id;
    const started = await t.gql(engineer, `mutation($d: ID!, $v: ID!) { startRollout(input: { deployment: $d, modelVersion: $v, strategy: CANARY, steps: [50, 100], bakeSeconds: 4 }) { id } }`, { d, v: faulty });
    assert.equal(started.errors, undefined, JSON.stringify(started.errors));
    await served();
    // Real traffic: half of it reaches the canary, which fails on these inputs (the fallback answers).
    const answers = await inParallel(60, 4, (i) => t.gql(service, PREDICT, { d, inputs: { features: [row(i + 7)] }, key: `c-${i}` }));
    assert.ok(answers.every((a) => a.errors === undefined));
    const rollout = await eventually('the canary rolled back', async () => {
      const r = await t.gql(engineer, `query($d: ID!) { rollouts(filter: { deployment: $d }) { nodes { status reason } } }`, { d });
      const x = r.data.rollouts.nodes[0];
      return x.status === 'ROLLED_BACK' ? x : undefined;
    }, 30_000);
    assert.match(rollout.reason, /error rate/);
    const windows = await t.sql(`SELECT sum(requests)::int AS requests, sum(errors)::int AS errors FROM prediction_rollup WHERE deployment_id = $1 AND model_version_id = $2`, [uuidOf(d), uuidOf(faulty)]);
    assert.ok(windows[0].errors > 0, JSON.stringify(windows));
  });
});
