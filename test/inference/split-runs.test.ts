import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import * as ort from 'onnxruntime-node';
import { buildMlpOnnx } from '../../src/registry/onnx-builders';
import { startTestServer, type TestServer } from '../support/harness';
import { request } from '../support/http';
import { registerOnnx } from '../support/inference';
import { buildBatchMeanOnnx, buildLoopOnnx } from '../support/onnx-models';
import { eventually } from '../support/processes';

// Wide enough that 512 rows take several milliseconds on any machine this runs on (about 5 ms on
// the fastest so far), well over twice the 1 ms minimum part.
const LAYERS = [64, 2048, 448, 1];
const ROWS = 512;
const PREDICT = `mutation($d: ID!, $inputs: JSONObject!) { predict(deployment: $d, inputs: $inputs) { outputs rows fallback } }`;

const rowsOf = (n: number, seed: number) => Array.from({ length: n }, (_, r) => Array.from({ length: LAYERS[0] }, (_, j) => ((r * 31 + j * 17 + seed) % 997) / 997));

/** The value of `name`'s sample for `modelVersion` on /metrics, 0 when it has none. */
async function metric(t: TestServer, name: string, modelVersion: string): Promise<number> {
  const r = await request(`${t.url}/metrics`, { headers: { authorization: `Bearer ${t.token(['auditor'], [])}` } });
  assert.equal(r.status, 200);
  const line = r.text.split('\n').find((l) => l.startsWith(`${name}{`) && l.includes(`model_version="${modelVersion}"`));
  return line ? Number(line.split(' ').pop()) : 0;
}

describe('a large request split across idle inference threads', () => {
  const servers: TestServer[] = [];
  let bytes: Buffer;
  let direct: ort.InferenceSession;

  /** A server whose development deployment serves `model` (the MLP by default) on two shared threads; its id and the version's metric label. */
  async function serving(env: Record<string, string>, model?: Buffer): Promise<{ t: TestServer; deployment: string; label: string; service: string }> {
    const t = await startTestServer({ demo: true, env: { INFERENCE_THREADS: '2', INFERENCE_MAX_ROWS: '1024', ...env } });
    servers.push(t);
    const admin = t.token(['admin'], []);
    const models = await t.gql(admin, `{ models(filter: { name: "fraud-detector" }) { nodes { id } } }`);
    const version = await registerOnnx(t, admin, models.data.models.nodes[0].id, model ?? bytes);
    const v = await t.gql(admin, `query($v: ID!) { node(id: $v) { ... on ModelVersion { version } } }`, { v: version });
    const dep = await t.gql(admin, `mutation($v: ID!) { createDeployment(input: { team: "fraud", name: "wide", environment: DEVELOPMENT, trafficSplit: [{ modelVersion: $v, weight: 100 }] }) { id } }`, { v: version });
    assert.equal(dep.errors, undefined, JSON.stringify(dep.errors));
    await t.server.app.inference!.reconcile();
    return { t, deployment: dep.data.createDeployment.id, label: `fraud-detector:v${v.data.node.version}`, service: t.token(['service'], ['fraud'], 'svc-wide') };
  }

  before(async () => {
    bytes = buildMlpOnnx({ layers: LAYERS, seed: 11 });
    direct = await ort.InferenceSession.create(bytes, { executionProviders: ['cpu'] });
  });
  after(async () => {
    await direct?.release();
    for (const t of servers) await t.stop();
  });

  const expected = async (rows: number[][]) => {
    const out = await direct.run({ [direct.inputNames[0]]: new ort.Tensor('float32', Float32Array.from(rows.flat()), [rows.length, LAYERS[0]]) });
    return Array.from(out[direct.outputNames[0]].data as Float32Array);
  };

  it('answers with the outputs of one direct run of all the rows, in order, and counts the split', async () => {
    const { t, deployment, label, service } = await serving({ INFERENCE_SPLIT_MIN_MS: '1' });
    // The first large request teaches the pool how long a row takes; the next ones are split.
    for (let seed = 0; seed < 4; seed++) {
      const rows = rowsOf(ROWS, seed);
      const r = await t.gql(service, PREDICT, { d: deployment, inputs: { features: rows } });
      assert.equal(r.errors, undefined, JSON.stringify(r.errors));
      assert.equal(r.data.predict.rows, ROWS);
      assert.equal(r.data.predict.fallback, false);
      const got = (r.data.predict.outputs[direct.outputNames[0]] as number[][]).flat();
      const want = await expected(rows);
      assert.equal(got.length, ROWS);
      got.forEach((x, i) => assert.ok(Math.abs(x - want[i]) <= 1e-5 * Math.max(1, Math.abs(want[i])), `row ${i}: ${x} vs ${want[i]}`));
    }
    assert.ok((await metric(t, 'modelgov_inference_split_runs_total', label)) >= 1, 'a request was split');
    // Each part is one run of the runtime: more runs than requests.
    const runs = await metric(t, 'modelgov_inference_batch_requests_count', label);
    assert.ok(runs > 4, `runs: ${runs}`);
  });

  it('never splits with INFERENCE_SPLIT_MIN_MS=0, nor a run expected to take less than twice the minimum', async () => {
    const { t, deployment, label, service } = await serving({ INFERENCE_SPLIT_MIN_MS: '0' });
    for (let seed = 0; seed < 3; seed++) {
      const r = await t.gql(service, PREDICT, { d: deployment, inputs: { features: rowsOf(ROWS, seed) } });
      assert.equal(r.errors, undefined, JSON.stringify(r.errors));
    }
    assert.equal(await metric(t, 'modelgov_inference_split_runs_total', label), 0);
    assert.equal(await metric(t, 'modelgov_inference_batch_requests_count', label), 3);

    const other = await serving({ INFERENCE_SPLIT_MIN_MS: '60000' });
    for (let seed = 0; seed < 3; seed++) {
      const r = await other.t.gql(other.service, PREDICT, { d: other.deployment, inputs: { features: rowsOf(ROWS, seed) } });
      assert.equal(r.errors, undefined, JSON.stringify(r.errors));
    }
    assert.equal(await metric(other.t, 'modelgov_inference_split_runs_total', other.label), 0, 'runs expected to be shorter than twice the minimum stay whole');
  });

  it('runs a request whole, with the whole run\'s answer, when its parts give outputs that do not join by rows, and stops splitting that version', async () => {
    // One value for the whole batch, declared as one per row: parts would each give their own.
    // 1536 wide: about 1.2 G multiply-adds for 512 rows, several milliseconds anywhere.
    const model = buildBatchMeanOnnx(1536);
    const { t, deployment, label, service } = await serving({ INFERENCE_SPLIT_MIN_MS: '1' }, model);
    const session = await ort.InferenceSession.create(model, { executionProviders: ['cpu'] });
    try {
      const rows = (seed: number) => Array.from({ length: ROWS }, (_, r) => Array.from({ length: 4 }, (_, j) => ((r * 7 + j * 3 + seed) % 50) / 50));
      const answers: number[][] = [];
      for (let seed = 0; seed < 3; seed++) {
        const r = await t.gql(service, PREDICT, { d: deployment, inputs: { features: rows(seed) } });
        assert.equal(r.errors, undefined, JSON.stringify(r.errors));
        answers.push((r.data.predict.outputs.probability as number[][]).flat());
        const whole = await session.run({ features: new ort.Tensor('float32', Float32Array.from(rows(seed).flat()), [ROWS, 4]) });
        const want = Array.from(whole.probability.data as Float32Array);
        assert.equal(answers[seed].length, want.length, `request ${seed}: the whole run's one value`);
        answers[seed].forEach((x, i) => assert.ok(Math.abs(x - want[i]) <= 1e-5, `request ${seed}: ${x} vs ${want[i]}`));
      }
      // The second request was split, its parts did not join, and it ran whole; the third was not split.
      assert.equal(await metric(t, 'modelgov_inference_split_runs_total', label), 1);
    } finally {
      await session.release();
    }
  });

  it('counts a split run whose parts all overrun as one run over budget, and never splits that version again', async () => {
    // Trips of a loop: the sum of the run's features times this. Small features run in a few
    // milliseconds (what the pool learns from); features of 3 keep each part busy for over a second.
    const model = buildLoopOnnx(1000);
    const { t, deployment, label, service } = await serving(
      {
        INFERENCE_SPLIT_MIN_MS: '1',
        INFERENCE_RUN_BUDGET_MS: '300',
        INFERENCE_RUN_BUDGET_PER_ROW_US: '0',
        INFERENCE_BUDGET_OVERRUNS: '2',
        INFERENCE_BUDGET_COOLDOWN_MS: '600000',
        INFERENCE_RUN_STUCK_MS: '300000',
        INFERENCE_TIMEOUT_MS: '60000',
      },
      model,
    );
    const admin = t.token(['admin'], []);
    const state = async () => {
      const r = await t.gql(admin, `query($d: ID!) { node(id: $d) { ... on Deployment { serving { state error } } } }`, { d: deployment });
      return r.data.node.serving[0] as { state: string; error: string | null };
    };
    const features = (value: number) => Array.from({ length: 256 }, () => [value, value, value, value]);
    for (let i = 0; i < 2; i++) {
      const r = await t.gql(service, PREDICT, { d: deployment, inputs: { features: features(0.01) } });
      assert.equal(r.errors, undefined, JSON.stringify(r.errors));
    }
    assert.equal(await metric(t, 'modelgov_inference_split_runs_total', label), 1, 'the second quick request was split');

    const slow = await t.gql(service, PREDICT, { d: deployment, inputs: { features: features(3) } });
    assert.equal(slow.errors?.[0]?.extensions?.code, 'UNAVAILABLE', JSON.stringify(slow.errors));
    assert.equal(await metric(t, 'modelgov_inference_split_runs_total', label), 2, 'the slow request was split');
    // Both parts overran, counted once: one of the two overruns the breaker allows.
    assert.deepEqual(await state(), { state: 'LOADED', error: null });

    const again = await t.gql(service, PREDICT, { d: deployment, inputs: { features: features(3) } });
    assert.equal(again.errors?.[0]?.extensions?.code, 'UNAVAILABLE', JSON.stringify(again.errors));
    assert.equal(await metric(t, 'modelgov_inference_split_runs_total', label), 2, 'not split again');
    const unloaded = await eventually('the breaker to unload the version', async () => {
      const s = await state();
      return s.state === 'UNLOADED' ? s : undefined;
    }, 10_000, 100);
    assert.match(unloaded.error!, /^2 runs within 10 min took longer than the run budget/);
  });

  it('answers each request with its own run when requests stacked into one run get outputs without one row per input row, and stops batching that version', async () => {
    const model = buildBatchMeanOnnx(64);
    // One thread, and a free thread waits for others to join a request: four requests sent together run as one batch.
    const { t, deployment, label, service } = await serving({ INFERENCE_THREADS: '1', INFERENCE_BATCH_WAIT_US: '300000', INFERENCE_SPLIT_MIN_MS: '0' }, model);
    const session = await ort.InferenceSession.create(model, { executionProviders: ['cpu'] });
    try {
      const row = (i: number) => [i / 10, 1 - i / 10, 0.5, (i % 3) / 3];
      const answers = await Promise.all([1, 2, 3, 4].map((i) => t.gql(service, PREDICT, { d: deployment, inputs: { features: [row(i)] } })));
      for (const [k, r] of answers.entries()) {
        assert.equal(r.errors, undefined, JSON.stringify(r.errors));
        const alone = await session.run({ features: new ort.Tensor('float32', Float32Array.from(row(k + 1)), [1, 4]) });
        assert.deepEqual(
          (r.data.predict.outputs.probability as number[][]).flat().map((x) => x.toFixed(6)),
          Array.from(alone.probability.data as Float32Array).map((x) => x.toFixed(6)),
          `request ${k + 1} is answered by a run of its own row`,
        );
      }
      // One batched run of the four, then one run each; the next requests are not batched either.
      assert.equal(await metric(t, 'modelgov_inference_batch_requests_sum', label), 4 + 4);
      await Promise.all([5, 6].map((i) => t.gql(service, PREDICT, { d: deployment, inputs: { features: [row(i)] } })));
      assert.equal(await metric(t, 'modelgov_inference_batch_requests_count', label), 1 + 4 + 2);
    } finally {
      await session.release();
    }
  });
});
