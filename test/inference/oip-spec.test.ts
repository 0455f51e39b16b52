import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import Ajv, { type ValidateFunction } from 'ajv';
import addFormats from 'ajv-formats';
import YAML from 'yaml';
import { startTestServer, type TestServer } from '../support/harness';
import { request, type RawResponse } from '../support/http';
import { fraudRow, loggedPredictions } from '../support/inference';
import { repoRoot } from '../support/repo';

/** The published OpenAPI file (spec/README.md says where it comes from). */
const SPEC = YAML.parse(readFileSync(path.join(repoRoot(), 'spec/open_inference_rest.yaml'), 'utf8')) as {
  paths: Record<string, Record<string, { responses?: Record<string, { content?: Record<string, { schema?: { $ref?: string } }> }> }>>;
  components: { schemas: Record<string, unknown> };
};

const ajv = new Ajv({ strict: false, allErrors: true });
addFormats(ajv);
// The components as one document, so that '#/components/schemas/…' resolves as in the spec.
ajv.addSchema({ $id: 'oip', components: SPEC.components });
const schemaOf = (name: string): ValidateFunction => {
  const v = ajv.getSchema(`oip#/components/schemas/${name}`);
  assert.ok(v, `the spec defines ${name}`);
  return v;
};

/**
 * The spec's operations, by the path template it lists them under. It lists the model paths with a
 * version only; its text makes the version optional ("the model name and (optionally) version must
 * be available in the URL"), so the unversioned paths are held to the same operations. For a failed
 * request the text asks for "an HTTP error status (typically 400)" and an error object: where the
 * operation lists no such status, an error answer is held to the operation's error schema.
 */
const OPS = {
  live: { path: '/v2/health/live', method: 'get', error: null },
  ready: { path: '/v2/health/ready', method: 'get', error: null },
  server: { path: '/v2/', method: 'get', error: 'metadata_server_error_response' },
  model: { path: '/v2/models/${MODEL_NAME}/versions/${MODEL_VERSION}', method: 'get', error: 'metadata_model_error_response' },
  modelReady: { path: '/v2/models/${MODEL_NAME}/versions/${MODEL_VERSION}/ready', method: 'get', error: 'metadata_model_error_response' },
  infer: { path: '/v2/models/${MODEL_NAME}/versions/${MODEL_VERSION}/infer', method: 'post', error: 'inference_error_response' },
} as const;

/**
 * Holds an answer to the spec: JSON; the expected status; a status the operation lists validated
 * against that response's schema (when it gives one); any other status an error status whose body
 * is the operation's error object.
 */
function conforms(op: keyof typeof OPS, res: RawResponse, status: number): any {
  const { path: p, method, error } = OPS[op];
  const responses = SPEC.paths[p]?.[method]?.responses;
  assert.ok(responses, `the spec lists ${method.toUpperCase()} ${p}`);
  assert.equal(res.status, status, `${op}: ${res.text}`);
  assert.match(res.headers.get('content-type') ?? '', /^application\/json/, `${op} answers JSON`);
  assert.notEqual(res.json, undefined, `${op}: the body parses as JSON`);
  const listed = responses[String(status)];
  const ref = listed?.content?.['application/json']?.schema?.$ref;
  let schema: string | null = null;
  if (listed) {
    schema = ref ? ref.replace('#/components/schemas/', '') : null;
  } else {
    assert.ok(status >= 400, `${op}: ${status} is not a status the spec lists (${Object.keys(responses).join(', ')}) nor an error status`);
    assert.ok(error, `${op}: the spec defines no error object for this operation`);
    schema = error;
  }
  if (schema) {
    const validate = schemaOf(schema);
    assert.ok(validate(res.json), `${op} ${status} is a valid ${schema}: ${ajv.errorsText(validate.errors)}\n${res.text}`);
  }
  // Every error object of the spec is { "error": string } (inference_error_response does not mark it required).
  if (status >= 400) assert.equal(typeof res.json.error, 'string', `${op} ${status}: "error" is the message`);
  return res.json;
}

const uuidOf = (id: string) => Buffer.from(id, 'base64url').toString().split(':')[1];

describe('Open Inference Protocol answers conform to the published spec', () => {
  let t: TestServer;
  let service: string;
  let otherTeam: string;
  let v1: string;
  let v2: string;
  const STAGING = 'fraud:fraud-detector-staging';
  const PRODUCTION = 'fraud:fraud-detector-production';

  before(async () => {
    t = await startTestServer({ demo: true, env: { INFERENCE_RATE_LIMIT_PER_SECOND: '1000000' } });
    service = t.token(['service'], ['fraud'], 'svc-oip-spec');
    otherTeam = t.token(['service'], ['vision'], 'svc-oip-spec-vision');
    const r = await t.gql(service, `{ models(filter: { name: "fraud-detector" }) { nodes { versions { id version } } } }`);
    const versions = r.data.models.nodes[0].versions as Array<{ id: string; version: number }>;
    v1 = versions.find((v) => v.version === 1)!.id;
    v2 = versions.find((v) => v.version === 2)!.id;
  });
  after(async () => {
    await t?.stop();
  });

  const get = (p: string, token: string | null = service) => request(`${t.url}${p}`, { headers: token ? { authorization: `Bearer ${token}` } : {} });
  const post = (p: string, body: unknown, token: string | null = service) =>
    request(`${t.url}${p}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
      body: typeof body === 'string' ? body : JSON.stringify(body),
    });
  const rows = (n: number, from = 0) => ({ inputs: [{ name: 'features', shape: [n, 4], datatype: 'FP32', data: Array.from({ length: n }, (_, i) => fraudRow(from + i)).flat() }] });

  it('server metadata, live and ready', async () => {
    const meta = conforms('server', await get('/v2/', null), 200);
    assert.equal(meta.name, 'modelgov');
    conforms('server', await get('/v2', null), 200);
    conforms('live', await get('/v2/health/live', null), 200);
    conforms('ready', await get('/v2/health/ready', null), 200);
  });

  it('model metadata and readiness, unversioned and for each version the metadata lists', async () => {
    const meta = conforms('model', await get(`/v2/models/${STAGING}`), 200);
    assert.deepEqual([...meta.versions].sort(), [v1, v2].sort(), 'the versions are those of the split, by global id');
    assert.deepEqual(meta.inputs, [{ name: 'features', datatype: 'FP32', shape: [-1, 4] }]);
    conforms('modelReady', await get(`/v2/models/${STAGING}/ready`), 200);
    for (const v of meta.versions as string[]) {
      const one = conforms('model', await get(`/v2/models/${STAGING}/versions/${v}`), 200);
      assert.deepEqual([one.name, one.versions, one.inputs], [STAGING, [v], meta.inputs]);
      const ready = conforms('modelReady', await get(`/v2/models/${STAGING}/versions/${v}/ready`), 200);
      assert.equal(ready.ready, true);
    }
  });

  it('unversioned inference answers from the split; versioned inference runs the named version, logged under the answer\'s prediction id', async () => {
    const plain = conforms('infer', await post(`/v2/models/${STAGING}/infer`, { id: 'spec-1', ...rows(2) }), 200);
    assert.equal(plain.id, 'spec-1');
    assert.ok([v1, v2].includes(plain.model_version));

    // The split sends 10 % to v2: 20 requests naming it all run on it, and 20 naming v1 on v1.
    for (const [version, from] of [[v2, 100], [v1, 200]] as const) {
      const answers = [];
      for (let i = 0; i < 20; i++) {
        const r = conforms('infer', await post(`/v2/models/${STAGING}/versions/${version}/infer`, { ...rows(1, from + i), parameters: { request_key: `spec-${from}-${i}` } }), 200);
        assert.equal(r.model_name, STAGING);
        assert.equal(r.model_version, version);
        assert.equal(r.id, r.parameters.prediction_id, 'without a request id the answer carries the prediction id');
        assert.equal(r.parameters.fallback, false);
        answers.push(r);
      }
      const logged = await loggedPredictions(t, `id = ANY($1::uuid[])`, [answers.map((a) => uuidOf(a.parameters.prediction_id))]);
      assert.equal(logged.length, 20, 'every answer is logged under its prediction id');
      for (const row of logged) {
        assert.deepEqual([row.model_version_id, row.source, row.shadow, row.fallback], [uuidOf(version), 'open-inference', false, false]);
      }
    }
  });

  it('the binary extension on a versioned path', async () => {
    const header = Buffer.from(JSON.stringify({ inputs: [{ name: 'features', shape: [1, 4], datatype: 'FP32', parameters: { binary_data_size: 16 } }] }));
    const res = await fetch(`${t.url}/v2/models/${STAGING}/versions/${v2}/infer`, {
      method: 'POST',
      headers: { authorization: `Bearer ${service}`, 'content-type': 'application/octet-stream', 'inference-header-content-length': String(header.length) },
      body: Buffer.concat([header, Buffer.from(Float32Array.from(fraudRow(7)).buffer)]),
    });
    const text = await res.text();
    const answer = conforms('infer', { status: res.status, headers: res.headers, text, json: JSON.parse(text) }, 200);
    assert.equal(answer.model_version, v2);
  });

  it('errors: unknown model, unserved version, bad input, malformed JSON, another team, anonymous', async () => {
    const before = (await loggedPredictions(t, 'true', [])).length;
    const deniedBefore = await t.sql(`SELECT count(*)::int AS n FROM audit_event WHERE decision = 'DENIED' AND action = 'predict'`);

    const missing = conforms('model', await get('/v2/models/fraud:no-such-model'), 404);
    assert.equal(missing.code, 'NOT_FOUND');
    // v2 is in the staging split only: production does not serve it.
    for (const [op, res] of [
      ['model', await get(`/v2/models/${PRODUCTION}/versions/${v2}`)],
      ['modelReady', await get(`/v2/models/${PRODUCTION}/versions/${v2}/ready`)],
      ['infer', await post(`/v2/models/${PRODUCTION}/versions/${v2}/infer`, rows(1))],
      ['infer', await post(`/v2/models/${PRODUCTION}/versions/7/infer`, rows(1))],
      ['model', await get(`/v2/models/${PRODUCTION}/versions/${encodeURIComponent('not a version')}`)],
    ] as const) {
      const err = conforms(op, res, 404);
      assert.deepEqual([err.code, err.reason], ['NOT_FOUND', 'INFERENCE_UNKNOWN_VERSION'], res.text);
    }

    const bad = conforms('infer', await post(`/v2/models/${STAGING}/versions/${v1}/infer`, { inputs: [{ name: 'features', shape: [1, 4], datatype: 'FP64', data: [1, 2, 3, 4] }] }), 400);
    assert.equal(bad.reason, 'INFERENCE_INPUT_TYPE');
    conforms('infer', await post(`/v2/models/${STAGING}/infer`, { inputs: 'nope' }), 400);
    conforms('infer', await post(`/v2/models/${STAGING}/versions/${v1}/infer`, '{"inputs": ['), 400);
    conforms('infer', await post(`/v2/models/${STAGING}/versions/${v1}/infer`, { ...rows(1), outputs: [{ name: 'no-such-output' }] }), 400);

    // Another team's deployment is answered like a missing one, on either path, and both refusals
    // are audited (by two principals: identical refusals of one principal are folded into one event).
    for (const [p, who] of [[`/v2/models/${STAGING}/infer`, otherTeam], [`/v2/models/${STAGING}/versions/${v1}/infer`, t.token(['service'], ['vision'], 'svc-oip-spec-vision-2')]]) {
      const hidden = conforms('infer', await post(p, rows(1), who), 404);
      assert.equal(hidden.code, 'NOT_FOUND');
      assert.equal(hidden.reason, undefined, 'the version is not looked at before the policy answers');
    }
    conforms('infer', await post(`/v2/models/${STAGING}/versions/${v1}/infer`, rows(1), null), 401);
    conforms('model', await get(`/v2/models/${STAGING}/versions/${v1}`, null), 401);

    const deniedAfter = await t.sql(`SELECT count(*)::int AS n FROM audit_event WHERE decision = 'DENIED' AND action = 'predict'`);
    assert.equal(deniedAfter[0].n - deniedBefore[0].n, 2);
    assert.equal((await loggedPredictions(t, 'true', [])).length, before, 'nothing refused ran or was logged');
  });

  it('every /v2 path answers JSON, whatever the method', async () => {
    const auth = { authorization: `Bearer ${service}` };
    const cases: Array<[string, string]> = [
      ['GET', `/v2/models/${STAGING}/infer`],
      ['GET', `/v2/models/${STAGING}/versions/${v1}/infer`],
      ['PUT', `/v2/models/${STAGING}/versions/${v1}`],
      ['DELETE', `/v2/models/${STAGING}/versions/${v1}/ready`],
      ['POST', '/v2/health/live'],
      ['PATCH', '/v2/'],
      ['OPTIONS', `/v2/models/${STAGING}/infer`],
      ['GET', '/v2/models'],
      ['GET', `/v2/models/${STAGING}/versions`],
      ['GET', `/v2/models/${STAGING}/versions/${v1}/explain`],
    ];
    for (const [method, p] of cases) {
      const res = await fetch(`${t.url}${p}`, { method, headers: auth });
      assert.equal(res.status, 404, `${method} ${p}`);
      assert.match(res.headers.get('content-type') ?? '', /^application\/json/, `${method} ${p}`);
      const body = (await res.json()) as { error: string; reason: string };
      assert.equal(typeof body.error, 'string');
      assert.equal(body.reason, 'INFERENCE_NO_ROUTE', `${method} ${p}`);
    }
    // A path that is not valid percent-encoding is the client's error, in the same shape.
    const malformed = await get(`/v2/models/${STAGING}/versions/%E0%A4%A/ready`);
    assert.equal(malformed.status, 400, malformed.text);
    assert.equal(typeof malformed.json?.error, 'string');
  });
});
