import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startTestServer, type TestServer } from '../support/harness';
import { PREDICT, fraudRow, registerOnnx, loggedPredictions } from '../support/inference';
import { buildFaultyOnnx, buildSlowOnnx } from '../support/onnx-models';

const uuidOf = (id: string) => Buffer.from(id, 'base64url').toString().split(':')[1];
const row = fraudRow;

describe('serving: fallback and circuit breaker', () => {
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
      env: { INFERENCE_THREADS: '2', INFERENCE_TIMEOUT_MS: '100', INFERENCE_BREAKER_FAILURES: '1', INFERENCE_BREAKER_COOLDOWN_MS: '3600000' },
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

  it('answers from the fallback version, flagged, when the routed version times out or throws', async () => {
    const slow = await register(buildSlowOnnx(4000));
    const faulty = await register(buildFaultyOnnx());
    const created = await t.gql(engineer, `mutation($v: ID!) { createDeployment(input: { team: "fraud", name: "fraud-fallback", environment: DEVELOPMENT, trafficSplit: [{ modelVersion: $v, weight: 100 }] }) { id } }`, { v: v1 });
    const d = created.data.createDeployment.id;
    // v1 held 100 %: it is the fallback once the split moves to the misbehaving versions.
    const split = await t.gql(engineer, `mutation($d: ID!, $s: ID!, $f: ID!) { setTrafficSplit(input: { deployment: $d, trafficSplit: [{ modelVersion: $s, weight: 50 }, { modelVersion: $f, weight: 50 }] }) { lastStableVersion { id } } }`, { d, s: slow, f: faulty });
    assert.equal(split.data.setTrafficSplit.lastStableVersion.id, v1);
    await served();
    const serving = await t.gql(engineer, `query($d: ID!) { node(id: $d) { ... on Deployment { serving { modelVersionId role state } } } }`, { d });
    assert.deepEqual(serving.data.node.serving.map((s: { role: string; state: string }) => `${s.role}:${s.state}`).sort(), ['FALLBACK:LOADED', 'TRAFFIC:LOADED', 'TRAFFIC:LOADED']);

    // Request keys chosen by where they route: one that STAGING serves from v1 (the answer the
    // fallback must give), and six for each misbehaving version, taken in turn.
    const keyTo = (deployment: string, version: string, taken: string[] = []) => {
      const route = t.server.app.inference!.route(uuidOf(deployment))!;
      for (let i = 0; ; i++) {
        const key = `key-${i}`;
        if (!taken.includes(key) && t.server.app.inference!.pick(route, key) === uuidOf(version)) return key;
      }
    };
    // The reference answer: v1's outputs for a row on which v2 answers otherwise (many rows drive
    // both to a probability of exactly 1), so that an answer from the wrong version cannot match it.
    const onStaging = async (features: number[], version: string) => {
      const r = await t.gql(service, PREDICT, { d: staging, inputs: { features: [features] }, key: keyTo(staging, version) });
      assert.equal(r.data.predict.modelVersionId, version, 'the key routes where it was chosen to');
      return r.data.predict.outputs;
    };
    let features: number[] | undefined;
    let expected: unknown;
    for (const candidate of [[2, 0, 0, 0], [2, 1, 0.5, 2], [3, 12, 0.25, 5], ...Array.from({ length: 20 }, (_, i) => row(i))]) {
      const [fromV1, fromV2] = [await onStaging(candidate, v1), await onStaging(candidate, v2)];
      if (JSON.stringify(fromV1) !== JSON.stringify(fromV2)) {
        [features, expected] = [candidate, fromV1];
        break;
      }
    }
    assert.ok(features && features.some((x) => x >= 2), 'a row that tells v1 from v2, and that the faulty version fails on');
    const inputs = { features: [features] };
    const keys: string[] = [];
    for (let i = 0; i < 6; i++) keys.push(keyTo(d, slow, keys), keyTo(d, faulty, keys));
    for (const key of keys) {
      const r = await t.gql(service, PREDICT, { d, inputs, key });
      assert.equal(r.errors, undefined, JSON.stringify(r.errors));
      assert.equal(r.data.predict.fallback, true);
      assert.equal(r.data.predict.modelVersionId, v1);
      assert.deepEqual(r.data.predict.outputs, expected);
    }
    const rows = await logged('deployment_id = $1', [uuidOf(d)]);
    assert.equal(rows.length, 12);
    assert.ok(rows.every((r) => r.fallback && r.model_version_id === uuidOf(v1) && [uuidOf(slow), uuidOf(faulty)].includes(r.failed_version_id)));
    assert.deepEqual(
      rows.map((r) => [r.request_key, r.failed_version_id]),
      keys.map((key, i) => [key, uuidOf(i % 2 === 0 ? slow : faulty)]),
      'each request failed on the version its key routes to',
    );
    const errors = rows.map((r) => r.error as string);
    assert.ok(errors.some((e) => /did not finish within 100 ms/.test(e)), 'the slow version timed out');
    assert.ok(errors.some((e) => /out of data bounds/.test(e)), 'the faulty version threw');
    assert.ok(errors.some((e) => /skipped during its cool-down/.test(e)), 'repeated failures open the breaker');
    const metrics = await fetch(`${t.url}/metrics`, { headers: { authorization: `Bearer ${t.token(['admin'], [])}` } }).then((x) => x.text());
    // Labelled by names an operator knows: `team:deployment` and `model:vN`.
    const [{ version }] = await t.sql(`SELECT version FROM model_version WHERE id = $1`, [uuidOf(faulty)]);
    assert.match(metrics, new RegExp(`modelgov_prediction_fallbacks_total\\{deployment="fraud:fraud-fallback",model_version="fraud-detector:v${version}"\\} \\d+`));
  });

  it('answers UNAVAILABLE when the routed version fails and there is no other version to fall back to', async () => {
    const faulty = await register(buildFaultyOnnx());
    const created = await t.gql(engineer, `mutation($v: ID!) { createDeployment(input: { team: "fraud", name: "fraud-alone", environment: DEVELOPMENT, trafficSplit: [{ modelVersion: $v, weight: 100 }] }) { id } }`, { v: faulty });
    const d = created.data.createDeployment.id;
    await served();
    const zeros = await t.gql(service, PREDICT, { d, inputs: { features: [[0, 1, 0, 1]] } });
    assert.equal(zeros.errors, undefined, 'inputs the model can take are answered');
    const r = await t.gql(service, PREDICT, { d, inputs: { features: [row(5)] } });
    assert.equal(r.errors?.[0].extensions.code, 'UNAVAILABLE');
    assert.equal(r.errors?.[0].extensions.reason, 'INFERENCE_FAILED');
    const rows = await logged('deployment_id = $1', [uuidOf(d)]);
    assert.equal(rows.length, 2);
    assert.equal(rows[1].outputs, null);
    assert.equal(rows[1].failed_version_id, uuidOf(faulty));
    assert.match(rows[1].error, /out of data bounds/);
  });

  it('runs a version named on the Open Inference Protocol\'s versioned path alone: its failure is the answer, not the fallback\'s', async () => {
    const faulty = await register(buildFaultyOnnx());
    const created = await t.gql(engineer, `mutation($v: ID!) { createDeployment(input: { team: "fraud", name: "fraud-named", environment: DEVELOPMENT, trafficSplit: [{ modelVersion: $v, weight: 100 }] }) { id } }`, { v: v1 });
    const d = created.data.createDeployment.id;
    // v1 held 100 %: it stays the fallback while the split is shared.
    const split = await t.gql(engineer, `mutation($d: ID!, $f: ID!, $v: ID!) { setTrafficSplit(input: { deployment: $d, trafficSplit: [{ modelVersion: $f, weight: 50 }, { modelVersion: $v, weight: 50 }] }) { lastStableVersion { id } } }`, { d, f: faulty, v: v2 });
    assert.equal(split.data.setTrafficSplit.lastStableVersion.id, v1);
    await served();
    // A request key the split sends to the faulty version.
    const route = t.server.app.inference!.route(uuidOf(d))!;
    let key = 0;
    while (t.server.app.inference!.pick(route, `named-${key}`) !== uuidOf(faulty)) key += 1;
    const infer = async (path: string) => {
      const res = await fetch(`${t.url}/v2/models/fraud:fraud-named${path}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${service}` },
        body: JSON.stringify({ inputs: [{ name: 'features', shape: [1, 4], datatype: 'FP32', data: row(5) }], parameters: { request_key: `named-${key}` } }),
      });
      return { status: res.status, body: (await res.json()) as any };
    };
    const named = await infer(`/versions/${faulty}/infer`);
    assert.equal(named.status, 503, JSON.stringify(named.body));
    assert.deepEqual([named.body.code, named.body.reason], ['UNAVAILABLE', 'INFERENCE_FAILED']);
    const plain = await infer('/infer');
    assert.equal(plain.status, 200, JSON.stringify(plain.body));
    assert.deepEqual([plain.body.model_version, plain.body.parameters.fallback], [v1, true], 'the split\'s request is answered by the fallback');
    const rows = await logged('deployment_id = $1', [uuidOf(d)]);
    assert.deepEqual(
      rows.map((r) => [r.model_version_id, r.fallback, r.failed_version_id, r.outputs === null]),
      [
        [uuidOf(faulty), false, uuidOf(faulty), true],
        [uuidOf(v1), true, uuidOf(faulty), false],
      ],
    );
  });

});
