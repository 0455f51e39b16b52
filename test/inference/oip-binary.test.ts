import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startTestServer, type TestServer } from '../support/harness';
import { assertNoStackTrace, request, type RawResponse } from '../support/http';
import { buildLogisticRegressionOnnx } from '../../src/registry/onnx-builders';
import { fraudRow, loggedPredictions, registerOnnx } from '../support/inference';

const MODEL = 'fraud:fraud-detector-production';
const BODY_LIMIT = 65_536;

const float32Bytes = (values: number[]) => Buffer.from(Float32Array.from(values).buffer);

/** A body in the binary extension's form: the JSON header, then each tensor's bytes. */
function binaryBody(header: unknown, ...tensors: Buffer[]): { body: Buffer; headerLength: number } {
  const json = Buffer.from(JSON.stringify(header));
  return { body: Buffer.concat([json, ...tensors]), headerLength: json.length };
}

/** The fraud model's input as a binary tensor header entry of `rows` rows. */
const featuresHeader = (rows: number, bytes = rows * 16) => ({ name: 'features', shape: [rows, 4], datatype: 'FP32', parameters: { binary_data_size: bytes } });

/** A binary response split into its JSON header and each binary output's values, read as float32. */
async function readBinary(res: Response): Promise<{ header: any; floats: Record<string, number[]> }> {
  const bytes = Buffer.from(await res.arrayBuffer());
  const n = Number(res.headers.get('inference-header-content-length'));
  const header = JSON.parse(bytes.subarray(0, n).toString());
  const floats: Record<string, number[]> = {};
  let offset = n;
  for (const o of header.outputs) {
    if (o.parameters?.binary_data_size === undefined) continue;
    const slice = bytes.subarray(offset, offset + o.parameters.binary_data_size);
    floats[o.name] = Array.from(new Float32Array(slice.buffer.slice(slice.byteOffset, slice.byteOffset + slice.byteLength)));
    offset += o.parameters.binary_data_size;
  }
  assert.equal(offset, bytes.length, 'no bytes after the last binary output');
  return { header, floats };
}

describe('Open Inference Protocol binary tensors', () => {
  let t: TestServer;
  let service: string;

  before(async () => {
    t = await startTestServer({ demo: true, env: { BODY_LIMIT_BYTES: String(BODY_LIMIT) } });
    service = t.token(['service'], ['fraud'], 'svc-fraud-binary');
  });
  after(async () => {
    await t?.stop();
  });

  const infer = (body: Buffer | string, headers: Record<string, string>, token: string | null = service) =>
    fetch(`${t.url}/v2/models/${MODEL}/infer`, { method: 'POST', headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...headers }, body });
  const inferJson = (body: unknown): Promise<RawResponse> =>
    request(`${t.url}/v2/models/${MODEL}/infer`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${service}` }, body: JSON.stringify(body) });
  const inferBinary = ({ body, headerLength }: { body: Buffer; headerLength: number | string }) =>
    infer(body, { 'content-type': 'application/octet-stream', 'inference-header-content-length': String(headerLength) });
  const answersAfterwards = async () => {
    const r = await inferJson({ inputs: [{ name: 'features', shape: [1, 4], datatype: 'FP32', data: fraudRow(1) }] });
    assert.equal(r.status, 200, r.text);
  };

  for (const rows of [1, 256]) {
    it(`answers ${rows} FP32 row(s) sent as raw bytes exactly as the same rows sent as JSON, and logs the same inputs`, async () => {
      const values = Array.from({ length: rows }, (_, i) => fraudRow(i)).flat();
      const viaJson = await inferJson({ id: `json-${rows}`, inputs: [{ name: 'features', shape: [rows, 4], datatype: 'FP32', data: values }] });
      assert.equal(viaJson.status, 200, viaJson.text);

      const res = await inferBinary(binaryBody({ id: `binary-${rows}`, inputs: [featuresHeader(rows)] }, float32Bytes(values)));
      assert.equal(res.status, 200);
      assert.equal(res.headers.get('inference-header-content-length'), null, 'outputs are JSON unless asked for');
      const viaBinary: any = await res.json();
      assert.deepEqual(viaBinary.outputs, viaJson.json.outputs);
      assert.equal(viaBinary.model_version, viaJson.json.model_version);

      const [a, b] = [viaJson.json.parameters.prediction_id, viaBinary.parameters.prediction_id].map((id: string) => Buffer.from(id, 'base64url').toString().split(':')[1]);
      const logged = await loggedPredictions(t, 'id = ANY($1)', [[a, b]]);
      assert.equal(logged.length, 2);
      // The demo's training data is CONFIDENTIAL: its inputs are logged as sent, in nested rows.
      const sent = Array.from({ length: rows }, (_, i) => values.slice(i * 4, i * 4 + 4).map((v) => Math.fround(v)));
      assert.deepEqual(logged[0].inputs, { features: sent });
      assert.deepEqual(logged[1].inputs, { features: sent });
      assert.equal(logged[0].inputs_sha256, logged[1].inputs_sha256);
      assert.deepEqual(logged[0].outputs, logged[1].outputs);
      assert.equal(logged.find((r) => r.id === b).source, 'open-inference');
    });
  }

  it('returns outputs as raw bytes when asked, request-wide or per output, with the same values as JSON', async () => {
    const values = Array.from({ length: 8 }, (_, i) => fraudRow(i + 40)).flat();
    const viaJson = await inferJson({ inputs: [{ name: 'features', shape: [8, 4], datatype: 'FP32', data: values }] });
    assert.equal(viaJson.status, 200, viaJson.text);
    const expected = Object.fromEntries(viaJson.json.outputs.map((o: any) => [o.name, o]));

    const requestWide = await inferBinary(binaryBody({ inputs: [featuresHeader(8)], parameters: { binary_data_output: true } }, float32Bytes(values)));
    assert.equal(requestWide.status, 200);
    assert.equal(requestWide.headers.get('content-type'), 'application/octet-stream');
    const wide = await readBinary(requestWide);
    for (const o of wide.header.outputs) {
      assert.equal(o.data, undefined);
      assert.deepEqual(o.shape, expected[o.name].shape);
      assert.equal(o.datatype, expected[o.name].datatype);
      assert.equal(o.parameters.binary_data_size, expected[o.name].data.length * 4);
      assert.deepEqual(wide.floats[o.name], expected[o.name].data);
    }

    // A JSON request may ask for one output in binary form.
    const first = viaJson.json.outputs[0].name;
    const perOutput = await infer(JSON.stringify({ inputs: [{ name: 'features', shape: [8, 4], datatype: 'FP32', data: values }], outputs: [{ name: first, parameters: { binary_data: true } }] }), {
      'content-type': 'application/json',
    });
    assert.equal(perOutput.status, 200);
    const one = await readBinary(perOutput);
    assert.deepEqual(
      one.header.outputs.map((o: any) => o.name),
      [first],
    );
    assert.deepEqual(one.floats[first], expected[first].data);
  });

  const row = float32Bytes(fraudRow(3));
  const refusals: Array<{ what: string; body: () => { body: Buffer; headerLength: number | string }; status?: number; reason: string }> = [
    { what: 'a header length that is not a number', body: () => ({ ...binaryBody({ inputs: [featuresHeader(1)] }, row), headerLength: 'abc' }), reason: 'INFERENCE_BINARY_HEADER' },
    { what: 'a header length that is not an integer', body: () => ({ ...binaryBody({ inputs: [featuresHeader(1)] }, row), headerLength: '12.5' }), reason: 'INFERENCE_BINARY_HEADER' },
    { what: 'a negative header length', body: () => ({ ...binaryBody({ inputs: [featuresHeader(1)] }, row), headerLength: '-4' }), reason: 'INFERENCE_BINARY_HEADER' },
    { what: 'a header length larger than the body', body: () => ({ ...binaryBody({ inputs: [featuresHeader(1)] }, row), headerLength: 100_000 }), reason: 'INFERENCE_BINARY_HEADER' },
    {
      what: 'a header length that cuts the JSON header short',
      body: () => {
        const b = binaryBody({ inputs: [featuresHeader(1)] }, row);
        return { ...b, headerLength: b.headerLength - 3 };
      },
      reason: 'INFERENCE_BINARY_HEADER',
    },
    { what: 'a header that is a JSON array', body: () => binaryBody([{ inputs: [featuresHeader(1)] }], row), reason: 'INFERENCE_BINARY_HEADER' },
    { what: 'a binary_data_size smaller than shape × FP32', body: () => binaryBody({ inputs: [featuresHeader(1, 12)] }, row.subarray(0, 12)), reason: 'INFERENCE_BINARY_SIZE' },
    { what: 'a binary_data_size larger than shape × FP32', body: () => binaryBody({ inputs: [featuresHeader(1, 20)] }, row, Buffer.alloc(4)), reason: 'INFERENCE_BINARY_SIZE' },
    { what: 'a negative binary_data_size', body: () => binaryBody({ inputs: [featuresHeader(1, -16)] }, row), reason: 'INFERENCE_BINARY_SIZE' },
    { what: 'an input with both data and binary_data_size', body: () => binaryBody({ inputs: [{ ...featuresHeader(1), data: fraudRow(3) }] }, row), reason: 'INFERENCE_BINARY_SIZE' },
    { what: 'fewer bytes than binary_data_size', body: () => binaryBody({ inputs: [featuresHeader(1)] }, row.subarray(0, 10)), reason: 'INFERENCE_BINARY_LENGTH' },
    { what: 'trailing bytes after the last input', body: () => binaryBody({ inputs: [featuresHeader(1)] }, row, Buffer.from([1, 2, 3])), reason: 'INFERENCE_BINARY_LENGTH' },
    { what: 'a datatype the model does not take', body: () => binaryBody({ inputs: [{ ...featuresHeader(1, 32), datatype: 'FP64' }] }, Buffer.alloc(32)), reason: 'INFERENCE_INPUT_TYPE' },
    {
      what: 'a BYTES tensor',
      body: () => binaryBody({ inputs: [{ name: 'features', shape: [1, 4], datatype: 'BYTES', parameters: { binary_data_size: 8 } }] }, Buffer.from([1, 0, 0, 0, 65, 0, 0, 0])),
      reason: 'INFERENCE_INPUT_TYPE',
    },
    { what: 'a NaN among the raw floats', body: () => binaryBody({ inputs: [featuresHeader(1)] }, float32Bytes([1, Number.NaN, 2, 3])), reason: 'INFERENCE_NON_FINITE' },
    { what: 'a shape the model does not take', body: () => binaryBody({ inputs: [{ ...featuresHeader(1), shape: [2, 2] }] }, row), reason: 'INFERENCE_INPUT_SHAPE' },
    { what: 'a body over the size limit', body: () => binaryBody({ inputs: [featuresHeader(5000)] }, Buffer.alloc(5000 * 16)), status: 413, reason: 'BODY_TOO_LARGE' },
  ];

  it('refuses each malformed binary request with its reason, logs nothing for it, and keeps answering', async () => {
    await t.server.app.inference!.log.flush();
    const [{ n: before }] = await t.sql(`SELECT count(*)::int AS n FROM prediction_log`);
    for (const c of refusals) {
      const res = await inferBinary(c.body());
      const text = await res.text();
      assert.equal(res.status, c.status ?? 400, `${c.what}: ${text}`);
      const json = JSON.parse(text);
      assert.equal(json.code, 'BAD_USER_INPUT', c.what);
      assert.equal(json.reason, c.reason, `${c.what}: ${text}`);
      assert.equal(typeof json.error, 'string');
      assert.equal(typeof json.requestId, 'string');
      assertNoStackTrace(text, c.what);
      await answersAfterwards();
    }
    await t.server.app.inference!.log.flush();
    const [{ n: afterwards }] = await t.sql(`SELECT count(*)::int AS n FROM prediction_log`);
    assert.equal(afterwards, before + refusals.length, 'only the requests that were answered are logged');
  });

  it('refuses an output the model does not give, and answers unknown protocol paths in JSON', async () => {
    const before = (await loggedPredictions(t, `request_id LIKE '%'`, [])).length;
    const r = await inferJson({ inputs: [{ name: 'features', shape: [1, 4], datatype: 'FP32', data: fraudRow(1) }], outputs: [{ name: 'no-such-output' }] });
    assert.equal(r.status, 400);
    const body = JSON.parse(r.text);
    assert.deepEqual([body.code, body.reason, body.field], ['BAD_USER_INPUT', 'INFERENCE_UNKNOWN_OUTPUT', 'outputs.0.name']);
    assert.match(body.error, /no output "no-such-output"/);
    await t.server.app.inference!.log.flush(true);
    assert.equal((await loggedPredictions(t, `request_id LIKE '%'`, [])).length, before, 'nothing ran, nothing was logged');
    for (const [method, path] of [['GET', '/v2/no-such-path'], ['POST', `/v2/models/${MODEL}/explain`], ['DELETE', `/v2/models/${MODEL}`]]) {
      const res = await fetch(`${t.url}${path}`, { method, headers: { authorization: `Bearer ${service}` } });
      assert.equal(res.status, 404, `${method} ${path}`);
      assert.match(res.headers.get('content-type') ?? '', /application\/json/);
      const err = (await res.json()) as { code: string; reason: string; requestId: string };
      assert.deepEqual([err.code, err.reason], ['NOT_FOUND', 'INFERENCE_NO_ROUTE'], `${method} ${path}`);
      assert.ok(err.requestId);
    }
  });

  it('asks for credentials before reading a binary body', async () => {
    const res = await infer(binaryBody({ inputs: [featuresHeader(1)] }, row).body, { 'inference-header-content-length': 'abc' }, null);
    assert.equal(res.status, 401);
  });

  it('logs only the hash of the inputs, on both forms, for a version whose training data is not on record', async () => {
    const admin = t.token(['admin'], [], 'admin-binary');
    const models = await t.gql(admin, '{ models(filter: { name: "fraud-detector" }) { nodes { id } } }');
    // Registered without a training run: its data's classification is unknown, so taken as RESTRICTED.
    const bare = await registerOnnx(t, admin, models.data.models.nodes[0].id, buildLogisticRegressionOnnx({ weights: [0.01, -0.2, 1.5, 0.003], bias: -1 }));
    const dep = await t.gql(admin, 'mutation($v: ID!) { createDeployment(input: { team: "fraud", name: "binary-restricted", environment: DEVELOPMENT, trafficSplit: [{ modelVersion: $v, weight: 100 }] }) { id } }', { v: bare });
    assert.equal(dep.errors, undefined, JSON.stringify(dep.errors));
    await t.server.app.inference!.reconcile();
    const values = [fraudRow(5), fraudRow(6)].flat();
    const url = `${t.url}/v2/models/fraud:binary-restricted/infer`;
    const json = await request(url, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${service}` }, body: JSON.stringify({ inputs: [{ name: 'features', shape: [2, 4], datatype: 'FP32', data: values }] }) });
    assert.equal(json.status, 200, json.text);
    const { body, headerLength } = binaryBody({ inputs: [featuresHeader(2)] }, float32Bytes(values));
    const res = await fetch(url, { method: 'POST', headers: { authorization: `Bearer ${service}`, 'content-type': 'application/octet-stream', 'inference-header-content-length': String(headerLength) }, body });
    const binary: any = await res.json();
    assert.equal(res.status, 200, JSON.stringify(binary));
    const ids = [json.json.parameters.prediction_id, binary.parameters.prediction_id].map((id: string) => Buffer.from(id, 'base64url').toString().split(':')[1]);
    const logged = await loggedPredictions(t, 'id = ANY($1)', [ids]);
    assert.equal(logged.length, 2);
    for (const r of logged) {
      assert.equal(r.inputs, null, 'inputs of RESTRICTED data are not kept');
      assert.match(r.inputs_sha256, /^[0-9a-f]{64}$/);
      assert.equal(r.rows, 2);
    }
    assert.equal(logged[0].inputs_sha256, logged[1].inputs_sha256);
  });
});
