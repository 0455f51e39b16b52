import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import * as ort from 'onnxruntime-node';
import { startTestServer, type TestServer } from '../support/harness';
import { assertNoStackTrace, postGraphql, request } from '../support/http';

const PREDICT = `mutation($d: ID!, $inputs: JSONObject!, $key: String) {
  predict(deployment: $d, inputs: $inputs, requestKey: $key) { outputs modelVersionId rows latencyMs fallback deployment modelVersion { version } }
}`;
const uuidOf = (id: string) => Buffer.from(id, 'base64url').toString().split(':')[1];

/**
 * Whether this host can run the CUDA execution provider: onnxruntime-node's CUDA provider library is
 * installed beside its binding (`ONNXRUNTIME_NODE_INSTALL=cuda12`) and an NVIDIA device is present.
 */
function hostHasCuda(): boolean {
  const bin = path.join(path.dirname(require.resolve('onnxruntime-node/package.json')), 'bin');
  const providerLibs = readdirSync(bin)
    .filter((napi) => napi.startsWith('napi-v'))
    .map((napi) => path.join(bin, napi, process.platform, process.arch, 'libonnxruntime_providers_cuda.so'));
  return providerLibs.some((lib) => existsSync(lib)) && existsSync('/dev/nvidiactl');
}

/** Rows of 4 features, the fraud model's input. */
const rowsOf = (n: number, seed = 1) => Array.from({ length: n }, (_, i) => [((i + seed) * 37) % 500, (i * 7 + seed) % 24, ((i * 13) % 100) / 100, ((i + 3) * 11) % 300]);

describe('predict', () => {
  let t: TestServer;
  let service: string;
  let visionService: string;
  let production: string;
  let v1: { id: string; sha: string };

  before(async () => {
    t = await startTestServer({ demo: true, env: { INFERENCE_THREADS: '2', INFERENCE_MAX_ROWS: '50' } });
    service = t.token(['service'], ['fraud'], 'svc-fraud');
    visionService = t.token(['service'], ['vision'], 'svc-vision');
    const r = await t.gql(service, `{ deployments(filter: { team: "fraud", environment: PRODUCTION }) { nodes { id trafficSplit { weight modelVersion { id artifactSha256 } } } } }`);
    const d = r.data.deployments.nodes[0];
    production = d.id;
    v1 = { id: d.trafficSplit[0].modelVersion.id, sha: d.trafficSplit[0].modelVersion.artifactSha256 };
  });
  after(async () => {
    await t?.stop();
  });

  const logged = async () => {
    await t.server.app.inference!.log.flush();
    return t.sql(`SELECT * FROM prediction_log ORDER BY id`);
  };

  it('answers a service token of the owning team with the outputs of a direct onnxruntime run of the same version', async () => {
    const inputs = { features: rowsOf(5) };
    const r = await t.gql(service, PREDICT, { d: production, inputs, key: 'customer-17' });
    assert.equal(r.errors, undefined, JSON.stringify(r.errors));
    const p = r.data.predict;
    assert.equal(p.modelVersionId, v1.id);
    assert.equal(p.modelVersion.version, 1);
    assert.equal(p.rows, 5);
    assert.equal(p.fallback, false);
    assert.equal(p.deployment, production);
    assert.ok(p.latencyMs > 0);

    const session = await ort.InferenceSession.create(t.server.app.artifacts.pathFor(v1.sha), { executionProviders: ['cpu'] });
    const direct = await session.run({ features: new ort.Tensor('float32', Float32Array.from(inputs.features.flat()), [5, 4]) });
    const expected = Array.from(direct[session.outputNames[0]].data as Float32Array);
    const got = (p.outputs[session.outputNames[0]] as number[][]).flat();
    assert.equal(got.length, 5);
    got.forEach((v, i) => assert.ok(Math.abs(v - expected[i]) <= 1e-6, `row ${i}: ${v} vs ${expected[i]}`));
    await session.release();
  });

  it('serves the same through the Open Inference Protocol', async () => {
    const rows = rowsOf(3, 5);
    const body = { id: 'req-1', inputs: [{ name: 'features', shape: [3, 4], datatype: 'FP32', data: rows.flat() }], parameters: { request_key: 'k1' } };
    const res = await request(`${t.url}/v2/models/fraud:fraud-detector-production/infer`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${service}` },
      body: JSON.stringify(body),
    });
    assert.equal(res.status, 200, res.text);
    assert.equal(res.json.id, 'req-1');
    assert.equal(res.json.model_version, v1.id);
    const out = res.json.outputs[0];
    assert.equal(out.datatype, 'FP32');
    assert.deepEqual(out.shape, [3, 1]);
    const viaGraphql = await t.gql(service, PREDICT, { d: production, inputs: { features: rows } });
    assert.deepEqual(out.data, (viaGraphql.data.predict.outputs[out.name] as number[][]).flat());

    const meta = await request(`${t.url}/v2/models/${production}`, { headers: { authorization: `Bearer ${service}` } });
    assert.equal(meta.status, 200);
    assert.deepEqual(meta.json.inputs, [{ name: 'features', datatype: 'FP32', shape: [-1, 4] }]);
    const ready = await request(`${t.url}/v2/models/${production}/ready`, { headers: { authorization: `Bearer ${service}` } });
    assert.equal(ready.status, 200);
  });

  it('refuses another team as if the deployment did not exist (NOT_FOUND, audited) and anonymous callers', async () => {
    const before = await t.sql(`SELECT count(*)::int AS n FROM audit_event WHERE decision = 'DENIED' AND action = 'predict'`);
    const r = await t.gql(visionService, PREDICT, { d: production, inputs: { features: rowsOf(1) } });
    assert.equal(r.errors?.[0].extensions.code, 'NOT_FOUND');
    assert.deepEqual(r.data, { predict: null });
    const oip = await request(`${t.url}/v2/models/${production}/infer`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${visionService}` },
      body: JSON.stringify({ inputs: [{ name: 'features', shape: [1, 4], datatype: 'FP32', data: [1, 2, 3, 4] }] }),
    });
    assert.equal(oip.status, 404);
    assert.equal(oip.json.code, 'NOT_FOUND');
    const afterCount = await t.sql(`SELECT count(*)::int AS n FROM audit_event WHERE decision = 'DENIED' AND action = 'predict'`);
    assert.equal(afterCount[0].n - before[0].n, 2);
    const anon = await t.gql(null, PREDICT, { d: production, inputs: { features: rowsOf(1) } });
    assert.equal(anon.errors?.[0].extensions.code, 'UNAUTHENTICATED');
    const viewer = await t.gql(t.token(['viewer'], ['fraud']), PREDICT, { d: production, inputs: { features: rowsOf(1) } });
    assert.equal(viewer.errors?.[0].extensions.code, 'FORBIDDEN', 'reading a deployment is not predicting on it');
  });

  it('refuses bad input with BAD_USER_INPUT, stays up, and logs nothing', async () => {
    const before = (await logged()).length;
    const cases: Array<[string, unknown, string]> = [
      ['wrong width', { features: [[1, 2, 3]] }, 'INFERENCE_INPUT_SHAPE'],
      ['wrong rank', { features: [1, 2, 3, 4] }, 'INFERENCE_INPUT_SHAPE'],
      ['ragged rows', { features: [[1, 2, 3, 4], [1, 2, 3]] }, 'INFERENCE_INPUT_SHAPE'],
      ['wrong type', { features: [[1, 'two', 3, 4]] }, 'INFERENCE_INPUT_TYPE'],
      ['NaN', { features: [[1, 'NaN', 3, 4]] }, 'INFERENCE_NON_FINITE'],
      ['Infinity', { features: [['Infinity', 2, 3, 4]] }, 'INFERENCE_NON_FINITE'],
      ['float32 overflow', { features: [[1e300, 2, 3, 4]] }, 'INFERENCE_INPUT_TYPE'],
      ['too many rows', { features: rowsOf(51) }, 'INFERENCE_TOO_MANY_ROWS'],
      ['unknown input', { features: rowsOf(1), extra: [[1]] }, 'INFERENCE_UNKNOWN_INPUT'],
      ['missing input', {}, 'INFERENCE_MISSING_INPUT'],
      ['empty', { features: [] }, 'INFERENCE_INPUT_SHAPE'],
    ];
    for (const [name, inputs, reason] of cases) {
      const res = await postGraphql(t.url, service, PREDICT, { d: production, inputs });
      assert.equal(res.json.errors?.[0].extensions.code, 'BAD_USER_INPUT', `${name}: ${res.text}`);
      assert.equal(res.json.errors[0].extensions.reason, reason, name);
      assertNoStackTrace(res.text);
    }
    const notAnObject = await postGraphql(t.url, service, PREDICT, { d: production, inputs: [[1, 2, 3, 4]] });
    assert.equal(notAnObject.json.errors?.[0].extensions.code, 'BAD_USER_INPUT');
    const badId = await postGraphql(t.url, service, PREDICT, { d: 'nope', inputs: { features: rowsOf(1) } });
    assert.equal(badId.json.errors?.[0].extensions.code, 'BAD_USER_INPUT');
    const big = await postGraphql(t.url, service, PREDICT, { d: production, inputs: { features: Array.from({ length: 40_000 }, () => [1.2345678, 2.3456789, 3.4567891, 4.5678912]) } });
    assert.equal(big.status, 413);
    assert.equal(big.json.errors[0].extensions.code, 'BAD_USER_INPUT');
    const oip = await request(`${t.url}/v2/models/${production}/infer`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${service}` },
      body: JSON.stringify({ inputs: [{ name: 'features', shape: [1, 4], datatype: 'FP64', data: [1, 2, 3, 4] }] }),
    });
    assert.equal(oip.status, 400);
    assert.equal(oip.json.reason, 'INFERENCE_INPUT_TYPE');
    assert.ok(typeof oip.json.error === 'string');

    const alive = await t.gql(service, PREDICT, { d: production, inputs: { features: rowsOf(1) } });
    assert.equal(alive.errors, undefined);
    assert.equal((await logged()).length, before + 1, 'only the good request was logged');
  });

  it('logs each prediction with its principal, request key, version, inputs and outputs, in batches', async () => {
    const rows = await logged();
    const first = rows.find((r) => r.request_key === 'customer-17');
    assert.ok(first);
    assert.equal(first.principal_id, 'svc-fraud');
    assert.equal(first.model_version_id, uuidOf(v1.id));
    assert.equal(first.deployment_id, uuidOf(production));
    assert.equal(first.rows, 5);
    assert.deepEqual(first.inputs, { features: rowsOf(5) }, 'CONFIDENTIAL training data: inputs kept (default INFERENCE_LOG_INPUTS_UP_TO)');
    // sha256 over each input's name, NUL, its shape (comma-separated), NUL and its elements' bytes (little-endian float32).
    const expectedSha = createHash('sha256')
      .update(Buffer.concat([Buffer.from('features\u00005,4\u0000'), Buffer.from(Float32Array.from(rowsOf(5).flat()).buffer)]))
      .digest('hex');
    assert.equal(first.inputs_sha256, expectedSha);
    assert.equal(first.outputs.probability.length, 5);
    assert.equal(first.source, 'graphql');
    assert.ok(rows.some((r) => r.source === 'open-inference' && r.request_key === 'k1'));
    assert.ok(rows.every((r) => r.shadow === false && r.fallback === false));
  });

  it('reports the execution provider per served version and in /readyz (cuda on a CUDA host, cpu when CUDA is missing)', async () => {
    assert.deepEqual(t.config.inference.providers, ['cuda', 'cpu']);
    const expected = hostHasCuda() ? 'cuda' : 'cpu';
    const r = await t.gql(service, `query($d: ID!) { node(id: $d) { ... on Deployment { serving { modelVersionId role weight state provider providerFallbacks loadedAt } } } }`, { d: production });
    const serving = r.data.node.serving;
    assert.equal(serving.length, 1);
    assert.equal(serving[0].modelVersionId, v1.id);
    assert.equal(serving[0].role, 'TRAFFIC');
    assert.equal(serving[0].state, 'LOADED');
    assert.equal(serving[0].provider, expected, `providers tried first: ${JSON.stringify(serving[0].providerFallbacks)}`);
    if (expected === 'cuda') assert.deepEqual(serving[0].providerFallbacks, []);
    else {
      assert.equal(serving[0].providerFallbacks.length, 1);
      assert.match(serving[0].providerFallbacks[0], /^cuda: /);
    }
    const ready = await request(`${t.url}/readyz`, { headers: { authorization: `Bearer ${t.token(['auditor'], [])}` } });
    assert.equal(ready.status, 200);
    assert.deepEqual(ready.json.inference.providers, [expected]);
    assert.equal(ready.json.inference.versions[v1.id], expected);
  });

  it('exposes Prometheus metrics to principals allowed to read Metrics', async () => {
    const auditor = await request(`${t.url}/metrics`, { headers: { authorization: `Bearer ${t.token(['auditor'], [])}` } });
    assert.equal(auditor.status, 200);
    // The demo's production deployment and its version 1, by the names an operator knows.
    assert.match(auditor.text, /modelgov_predictions_total\{deployment="fraud:fraud-detector-production",model_version="fraud-detector:v1",role="served",outcome="ok"\} \d+/);
    assert.match(auditor.text, /modelgov_prediction_latency_seconds_bucket/);
    assert.match(auditor.text, /modelgov_nodejs_eventloop_lag_seconds/);
    assert.equal((await request(`${t.url}/metrics`, { headers: { authorization: `Bearer ${service}` } })).status, 403);
    assert.equal((await request(`${t.url}/metrics`)).status, 401);
  });

  it('limits predictions per principal', async () => {
    const limited = await startTestServer({ demo: false, env: { INFERENCE_RATE_LIMIT_PER_SECOND: '1', INFERENCE_RATE_LIMIT_BURST: '2' } });
    try {
      const admin = limited.token(['admin'], []);
      // No deployment serves on this server: requests within the rate are refused for that, the rest
      // for the rate. However slow the host, no more than the burst plus one per second elapsed
      // (counted from before the first request) gets past the limiter, and a refusal comes once the
      // requests outrun the refill.
      const codes: string[] = [];
      const started = performance.now();
      while (!codes.includes('RATE_LIMITED')) {
        const r = await limited.gql(admin, PREDICT, { d: production, inputs: { features: rowsOf(1) } });
        codes.push(r.errors?.[0].extensions.code as string);
        assert.ok(codes.length <= 1000, 'the limit is reached');
      }
      const elapsedSeconds = (performance.now() - started) / 1000;
      const admitted = codes.filter((c) => c === 'NOT_FOUND').length;
      assert.deepEqual(codes, [...Array(admitted).fill('NOT_FOUND'), 'RATE_LIMITED'], 'refused for the rate only after the admitted ones');
      assert.ok(admitted >= 2, `the burst of two is admitted (${admitted})`);
      assert.ok(admitted <= 2 + elapsedSeconds * 1, `${admitted} admitted in ${elapsedSeconds.toFixed(2)} s: more than the burst plus the rate`);
      const other = await limited.gql(limited.token(['admin'], [], 'another-admin'), PREDICT, { d: production, inputs: { features: rowsOf(1) } });
      assert.equal(other.errors?.[0].extensions.code, 'NOT_FOUND', 'another principal has a bucket of its own');
    } finally {
      await limited.stop();
    }
  });
});
