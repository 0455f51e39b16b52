import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { onnx } from 'onnx-proto';
import { buildLogisticRegressionOnnx } from '../../src/registry/onnx-builders';
import { auditCount } from '../support/audit';
import { startTestServer, type TestServer } from '../support/harness';
import { assertNoStackTrace, request, uploadArtifact, type RawResponse } from '../support/http';
import { fraudRow, PREDICT } from '../support/inference';
import { eventually } from '../support/processes';

// Strings PostgreSQL cannot store, or longer than their field allows. JSON.stringify writes the
// lone surrogate as the escape "\ud800", which the server's JSON parser turns back into one.
const NUL = 'a\u0000b';
const LONE_SURROGATE = 'a\ud800b';
const TOO_LONG = 'k'.repeat(201);
const CASES = [
  { what: 'a NUL character', value: NUL, reason: 'MALFORMED_STRING' },
  { what: 'a lone surrogate', value: LONE_SURROGATE, reason: 'MALFORMED_STRING' },
  { what: 'an over-long string', value: TOO_LONG, reason: 'STRING_TOO_LONG' },
];

describe('storable input: one check on every transport', () => {
  let t: TestServer;
  let service: string;
  let auditor: string;
  let engineer: string;

  before(async () => {
    t = await startTestServer({ demo: true, env: { INFERENCE_RATE_LIMIT_PER_SECOND: '1000000' } });
    service = t.token(['service'], ['fraud'], 'svc-fraud');
    auditor = t.token(['auditor'], [], 'audrey-auditor');
    engineer = t.token(['ml-engineer'], ['fraud'], 'erin-engineer');
  });
  after(async () => {
    await t?.stop();
  });

  /** Rows of the prediction log and of its quarantine, once everything buffered is written. */
  const logRows = async () => {
    await t.server.app.inference!.log.flush();
    const [{ logged }] = await t.sql<{ logged: number }>('SELECT count(*)::int AS logged FROM prediction_log');
    return { logged, buffered: t.server.app.inference!.log.buffered };
  };

  const infer = (body: unknown) =>
    request(`${t.url}/v2/models/fraud:fraud-detector-production/infer`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${service}` },
      body: JSON.stringify(body),
    });
  const features = (extra: Record<string, unknown> = {}) => ({ inputs: [{ name: 'features', shape: [1, 4], datatype: 'FP32', data: fraudRow(3) }], ...extra });

  /** A REST refusal: HTTP 400, the code and reason in the body, no stack trace. */
  function assertRefused(r: RawResponse, reason: string, field?: string): void {
    assert.equal(r.status, 400, r.text);
    assert.equal(r.json.code, 'BAD_USER_INPUT', r.text);
    assert.equal(r.json.reason, reason, r.text);
    if (field) assert.equal(r.json.field, field, r.text);
    assert.ok(r.json.requestId, 'the answer carries a request id');
    assertNoStackTrace(r.text);
  }

  for (const c of CASES) {
    it(`refuses ${c.what} as an Open Inference Protocol request_key with 400 and logs nothing`, async () => {
      const before = await logRows();
      const r = await infer(features({ parameters: { request_key: c.value } }));
      assertRefused(r, c.reason, 'parameters.request_key');
      assert.deepEqual(await logRows(), before, 'no prediction record for a refused request');
    });

    it(`refuses ${c.what} as a GraphQL requestKey with BAD_USER_INPUT and the same reason`, async () => {
      const d = await t.gql(service, '{ deployments(filter: { team: "fraud", environment: PRODUCTION }) { nodes { id } } }');
      const before = await logRows();
      const r = await t.gql(service, PREDICT, { d: d.data.deployments.nodes[0].id, inputs: { features: [fraudRow(3)] }, key: c.value });
      assert.equal(r.errors?.[0].extensions.code, 'BAD_USER_INPUT', JSON.stringify(r));
      assert.equal(r.errors?.[0].extensions.reason, c.reason, JSON.stringify(r));
      assert.deepEqual(await logRows(), before, 'no prediction record for a refused request');
    });
  }

  it('refuses such strings anywhere else in an inference request: id, parameters, tensor names', async () => {
    const before = await logRows();
    assertRefused(await infer(features({ id: NUL })), 'MALFORMED_STRING', 'id');
    assertRefused(await infer(features({ id: TOO_LONG })), 'STRING_TOO_LONG', 'id');
    assertRefused(await infer(features({ parameters: { note: LONE_SURROGATE } })), 'MALFORMED_STRING', 'parameters.note');
    assertRefused(await infer(features({ parameters: { [NUL]: 1 } })), 'MALFORMED_STRING', 'parameters');
    assertRefused(await infer(features({ outputs: [{ name: NUL }] })), 'MALFORMED_STRING', 'outputs.0.name');
    assertRefused(await infer({ inputs: [{ name: NUL, shape: [1, 4], datatype: 'FP32', data: fraudRow(3) }] }), 'MALFORMED_STRING', 'inputs.0.name');
    assert.deepEqual(await logRows(), before, 'nothing logged');
  });

  it('refuses an inference request nested 200,000 levels deep in its parameters with 400 (JSON_TOO_DEEP)', async () => {
    const before = await logRows();
    const body = (deep: string) => JSON.stringify(features()).slice(0, -1) + `,"parameters":{"deep":${deep}}}`;
    const send = (deep: string) =>
      request(`${t.url}/v2/models/fraud:fraud-detector-production/infer`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${service}` }, body: body(deep) });
    assertRefused(await send('['.repeat(200_000) + '1' + ']'.repeat(200_000)), 'JSON_TOO_DEEP');
    assertRefused(await send('{"a":'.repeat(100) + '"x"' + '}'.repeat(100)), 'JSON_TOO_DEEP');
    // Within the bound, parameters are accepted as before.
    const within = await send('{"a":'.repeat(20) + '"x"' + '}'.repeat(20));
    assert.equal(within.status, 200, within.text);
    assert.equal((await logRows()).logged, before.logged + 1, 'only the request within the bound is logged');
  });

  it('does not refuse for depth a JSON argument as deep as its scalar allows', async () => {
    const deepest = JSON.parse('{"a":'.repeat(64) + '1' + '}'.repeat(64));
    const r = await t.gql(engineer, 'mutation($c: JSON!) { registerConfig(input: { content: $c }) { id } }', { c: deepest });
    // Configs have their own, smaller bound; the arguments' walk must not be what refuses it.
    assert.notEqual(r.errors?.[0]?.extensions.reason, 'JSON_TOO_DEEP', JSON.stringify(r).slice(0, 500));
    assert.notEqual(r.errors?.[0]?.extensions.code, 'INTERNAL', JSON.stringify(r).slice(0, 500));
  });

  it('keeps serving and logging everyone after such requests', async () => {
    const before = await logRows();
    const r = await infer(features({ parameters: { request_key: 'after-the-attack' } }));
    assert.equal(r.status, 200, r.text);
    const after = await logRows();
    assert.equal(after.logged, before.logged + 1, 'the next request is logged');
    assert.equal(after.buffered, 0, 'nothing is stuck in the buffer');
    const [row] = await t.sql(`SELECT source FROM prediction_log WHERE request_key = 'after-the-attack'`);
    assert.equal(row.source, 'open-inference');
  });

  it('refuses a model whose signature holds a NUL character with 400, and stores nothing', async () => {
    const model = onnx.ModelProto.decode(buildLogisticRegressionOnnx({ weights: [1, 2, 3, 4], bias: 0 }));
    model.producerName = `evil${NUL}`;
    const bytes = Buffer.from(onnx.ModelProto.encode(model).finish());
    const [{ before }] = await t.sql<{ before: number }>('SELECT count(*)::int AS before FROM artifact');
    const r = await uploadArtifact(t.url, engineer, bytes);
    assert.equal(r.status, 400, r.text);
    assert.equal(r.json.errors[0].extensions.code, 'BAD_USER_INPUT', r.text);
    assert.equal(r.json.errors[0].extensions.reason, 'MALFORMED_STRING', r.text);
    assertNoStackTrace(r.text);
    const [{ now }] = await t.sql<{ now: number }>('SELECT count(*)::int AS now FROM artifact');
    assert.equal(now, before, 'no artifact recorded');
  });

  describe('audit export query parameters', () => {
    const exportWith = (query: string) => request(`${t.url}/audit/export?${query}`, { headers: { authorization: `Bearer ${auditor}` } });
    const exportRows = async () => (await t.sql<{ n: number }>('SELECT count(*)::int AS n FROM audit_export'))[0].n;

    for (const [query, reason, field] of [
      ['from=0000-01-01', 'TIME_OUT_OF_RANGE', 'from'],
      ['to=0001-01-01T00:00:00%2B01:00', 'TIME_OUT_OF_RANGE', 'to'],
      ['from=yesterday', 'MALFORMED_TIME', 'from'],
      ['actor=a%00b', 'MALFORMED_STRING', 'actor'],
      [`action=${'x'.repeat(201)}`, 'STRING_TOO_LONG', 'action'],
    ] as const) {
      it(`refuses ${query.slice(0, 40)} with 400 and ${reason}, audited as a refused request, with no export recorded`, async () => {
        const exportsBefore = await exportRows();
        const eventsBefore = await auditCount(t);
        const r = await exportWith(query);
        assert.equal(r.status, 400, r.text);
        assert.equal(r.json.errors[0].extensions.code, 'BAD_USER_INPUT', r.text);
        assert.equal(r.json.errors[0].extensions.reason, reason, r.text);
        assertNoStackTrace(r.text);
        assert.equal(await exportRows(), exportsBefore, 'no export recorded (so none recorded as a client disconnect)');
        assert.equal(await auditCount(t), eventsBefore + 1, 'one audit event');
        const [event] = await t.sql(`SELECT action, actor_id, decision::text AS decision, reason, after FROM audit_event ORDER BY seq DESC LIMIT 1`);
        assert.equal(event.action, 'exportAuditEvents');
        assert.equal(event.actor_id, 'audrey-auditor');
        assert.equal(event.decision, 'DENIED');
        assert.deepEqual(event.after, { refused: reason, field });
      });
    }

    it('still exports from the first day PostgreSQL knows', async () => {
      const r = await exportWith('from=0001-01-01&to=9999-12-31');
      assert.equal(r.status, 200, r.text);
      const id = r.headers.get('x-audit-export-id');
      // The export's end is recorded once the response has gone out.
      await eventually('the export to be recorded as complete', async () => {
        const [row] = await t.sql(`SELECT status::text AS status FROM audit_export ORDER BY created_at DESC LIMIT 1`);
        return row.status === 'RUNNING' ? undefined : row.status;
      }).then((status) => assert.equal(status, 'SUCCEEDED', `export ${id}`));
    });
  });
});
