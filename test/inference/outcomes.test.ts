import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { DEFAULT_ROLES } from '../../src/access/policy-rules';
import { seedBaseline } from '../../src/app/seed/baseline';
import { auditCount, withOneNewEvent } from '../support/audit';
import { startTestServer, type TestServer } from '../support/harness';
import { request } from '../support/http';
import { fraudRow, loggedPredictions } from '../support/inference';

const PREDICT = `mutation($d: ID!, $inputs: JSONObject!, $key: String) {
  predict(deployment: $d, inputs: $inputs, requestKey: $key) { id rows modelVersionId }
}`;
const RECORD = `mutation($input: RecordOutcomesInput!) {
  recordOutcomes(input: $input) { received recorded duplicate corrected rejected digest results { index status prediction row code reason message field } }
}`;
const keyOf = (id: string) => Buffer.from(id, 'base64url').toString().split(':');
const uuidOf = (id: string) => keyOf(id)[1];
const globalId = (type: string, key: string) => Buffer.from(`${type}:${key}`).toString('base64url');
const rows = (n: number, seed: number) => Array.from({ length: n }, (_, i) => fraudRow(seed * 100 + i));

describe('prediction ids and outcomes', () => {
  let t: TestServer;
  let service: string;
  let production: string;

  before(async () => {
    t = await startTestServer({ demo: true, env: { INFERENCE_THREADS: '1' } });
    service = t.token(['service'], ['fraud'], 'svc-fraud');
    const r = await t.gql(service, `{ deployments(filter: { team: "fraud", environment: PRODUCTION }) { nodes { id } } }`);
    production = r.data.deployments.nodes[0].id;
  });
  after(async () => {
    await t?.stop();
  });

  const predict = async (n: number, seed: number, key?: string) => {
    const r = await t.gql(service, PREDICT, { d: production, inputs: { features: rows(n, seed) }, key });
    assert.equal(r.errors, undefined, JSON.stringify(r.errors));
    return r.data.predict as { id: string; rows: number; modelVersionId: string };
  };
  const infer = (body: Record<string, unknown>) =>
    request(`${t.url}/v2/models/${production}/infer`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${service}` },
      body: JSON.stringify(body),
    });
  const record = (token: string, outcomes: unknown[], deployment = production) => t.gql(token, RECORD, { input: { deployment, outcomes } });
  const bulk = (token: string, body: string, deployment = production) =>
    request(`${t.url}/outcomes?deployment=${encodeURIComponent(deployment)}`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-ndjson', authorization: `Bearer ${token}` },
      body,
    });
  const stored = (predictionId: string) =>
    t.sql<{ row: number; label: unknown; model_version_id: string; deployment_id: string; corrections: number }>(
      `SELECT row, label, model_version_id, deployment_id, corrections FROM prediction_outcome WHERE prediction_id = $1 ORDER BY row`,
      [uuidOf(predictionId)],
    );

  it('answers every prediction with the id its log record gets, on GraphQL and the Open Inference Protocol', async () => {
    const p = await predict(3, 1, 'ids-graphql');
    assert.equal(keyOf(p.id)[0], 'Prediction');
    const oip = await infer({ inputs: [{ name: 'features', shape: [2, 4], datatype: 'FP32', data: rows(2, 2).flat() }], parameters: { request_key: 'ids-oip' } });
    assert.equal(oip.status, 200, oip.text);
    assert.equal(keyOf(oip.json.parameters.prediction_id)[0], 'Prediction');
    assert.equal(oip.json.id, oip.json.parameters.prediction_id, 'without a request id the response id is the prediction id');
    const named = await infer({ id: 'caller-7', inputs: [{ name: 'features', shape: [1, 4], datatype: 'FP32', data: rows(1, 3).flat() }] });
    assert.equal(named.json.id, 'caller-7', "the protocol returns the request's own id");
    assert.notEqual(named.json.parameters.prediction_id, oip.json.parameters.prediction_id);

    const logged = await loggedPredictions(t, 'id = ANY($1::uuid[])', [[p.id, oip.json.parameters.prediction_id, named.json.parameters.prediction_id].map(uuidOf)]);
    const byId = new Map(logged.map((r) => [r.id, r]));
    assert.deepEqual(
      [p.id, oip.json.parameters.prediction_id, named.json.parameters.prediction_id].map((id) => {
        const r = byId.get(uuidOf(id));
        return r && [r.source, r.rows, r.request_key, r.shadow];
      }),
      [
        ['graphql', 3, 'ids-graphql', false],
        ['open-inference', 2, 'ids-oip', false],
        ['open-inference', 1, null, false],
      ],
    );
  });

  it('joins outcomes by prediction id and row, and by request key, to the rows they name, with one audit event', async () => {
    const p = await predict(5, 10, 'join-by-id');
    const q = await predict(1, 11, 'join-by-key');
    const { value: r, event } = await withOneNewEvent(t, () =>
      record(service, [
        { prediction: p.id, row: 0, label: 1, observedAt: '2026-01-02T03:04:05.000Z' },
        { prediction: p.id, row: 4, label: { class: 'fraud' } },
        { requestKey: 'join-by-key', label: 0 },
      ]),
    );
    assert.equal(r.errors, undefined, JSON.stringify(r.errors));
    const out = r.data.recordOutcomes;
    assert.deepEqual([out.received, out.recorded, out.duplicate, out.corrected, out.rejected], [3, 3, 0, 0, 0]);
    assert.deepEqual(
      out.results.map((x: any) => [x.index, x.status, x.prediction, x.row]),
      [
        [0, 'RECORDED', p.id, 0],
        [1, 'RECORDED', p.id, 4],
        [2, 'RECORDED', q.id, 0],
      ],
    );
    const [logP] = await loggedPredictions(t, 'id = $1', [uuidOf(p.id)]);
    assert.deepEqual(
      (await stored(p.id)).map((s) => [s.row, s.label, s.model_version_id, s.deployment_id]),
      [
        [0, 1, logP.model_version_id, uuidOf(production)],
        [4, { class: 'fraud' }, logP.model_version_id, uuidOf(production)],
      ],
    );
    assert.deepEqual((await stored(q.id)).map((s) => [s.row, s.label]), [[0, 0]]);
    const [{ observed_at }] = await t.sql(`SELECT observed_at FROM prediction_outcome WHERE prediction_id = $1 AND row = 0`, [uuidOf(p.id)]);
    assert.equal(new Date(observed_at).toISOString(), '2026-01-02T03:04:05.000Z');

    assert.equal(event.action, 'recordOutcomes');
    assert.equal(event.subject_type, 'Deployment');
    assert.equal(event.subject_id, production);
    assert.equal(event.decision, 'ALLOWED');
    const [{ after: detail }] = await t.sql(`SELECT after FROM audit_event WHERE seq = $1`, [event.seq]);
    assert.deepEqual([detail.received, detail.recorded, detail.rejected, detail.digest], [3, 3, 0, out.digest]);
  });

  it('counts the same label twice once, refuses a different one as CONFLICT, and accepts and audits a correction', async () => {
    const p = await predict(2, 20);
    const first = await record(service, [{ prediction: p.id, row: 1, label: 'legit' }]);
    assert.equal(first.data.recordOutcomes.recorded, 1);
    const again = await record(service, [
      { prediction: p.id, row: 1, label: 'legit' },
      { prediction: p.id, row: 1, label: 'legit' },
    ]);
    assert.deepEqual(again.data.recordOutcomes.results.map((x: any) => x.status), ['DUPLICATE', 'DUPLICATE']);
    assert.equal((await stored(p.id)).length, 1);

    const conflict = await record(service, [{ prediction: p.id, row: 1, label: 'fraud' }]);
    const [c] = conflict.data.recordOutcomes.results;
    assert.deepEqual([c.status, c.code, c.reason, c.field], ['REJECTED', 'CONFLICT', 'OUTCOME_LABEL_CONFLICT', 'outcomes.0.label']);
    assert.deepEqual((await stored(p.id)).map((s) => s.label), ['legit'], 'a conflicting label changes nothing');

    const { value: corrected, event } = await withOneNewEvent(t, () => record(service, [{ prediction: p.id, row: 1, label: 'fraud', correct: true }]));
    assert.equal(corrected.data.recordOutcomes.results[0].status, 'CORRECTED');
    assert.deepEqual((await stored(p.id)).map((s) => [s.label, s.corrections]), [['fraud', 1]]);
    const [{ after: detail }] = await t.sql(`SELECT after FROM audit_event WHERE seq = $1`, [event.seq]);
    assert.equal(detail.corrected, 1);
    assert.deepEqual(detail.corrections, [{ index: 0, prediction: p.id, row: 1, before: 'legit', after: 'fraud' }]);
  });

  it('reports unknown predictions, ambiguous keys and bad rows per item, and keeps the rest', async () => {
    const p = await predict(2, 30, 'twice');
    await predict(1, 31, 'twice');
    const otherTeamsPrediction = globalId('Prediction', randomUUID());
    const r = await record(service, [
      { prediction: otherTeamsPrediction, row: 0, label: 1 },
      { requestKey: 'never-sent', label: 1 },
      { requestKey: 'twice', label: 1 },
      { prediction: p.id, label: 1 },
      { prediction: p.id, row: 2, label: 1 },
      { prediction: globalId('Deployment', randomUUID()), label: 1 },
      { prediction: p.id, row: 1, label: 0 },
    ]);
    assert.equal(r.errors, undefined, JSON.stringify(r.errors));
    assert.deepEqual(
      r.data.recordOutcomes.results.map((x: any) => [x.status, x.code, x.reason, x.field]),
      [
        ['REJECTED', 'NOT_FOUND', 'OUTCOME_UNKNOWN_PREDICTION', 'outcomes.0.prediction'],
        ['REJECTED', 'NOT_FOUND', 'OUTCOME_UNKNOWN_PREDICTION', 'outcomes.1.requestKey'],
        ['REJECTED', 'CONFLICT', 'OUTCOME_AMBIGUOUS_REQUEST_KEY', 'outcomes.2.requestKey'],
        ['REJECTED', 'BAD_USER_INPUT', 'OUTCOME_ROW', 'outcomes.3.row'],
        ['REJECTED', 'BAD_USER_INPUT', 'OUTCOME_ROW', 'outcomes.4.row'],
        ['REJECTED', 'BAD_USER_INPUT', 'WRONG_ID_TYPE', 'outcomes.5.prediction'],
        ['RECORDED', null, null, null],
      ],
    );
    assert.deepEqual((await stored(p.id)).map((s) => [s.row, s.label]), [[1, 0]]);

    const tooMany = await record(service, Array.from({ length: 1001 }, () => ({ prediction: p.id, row: 0, label: 1 })));
    assert.equal(tooMany.errors?.[0].extensions.code, 'BAD_USER_INPUT');
    assert.equal(tooMany.errors?.[0].extensions.reason, 'OUTCOME_TOO_MANY');
    assert.deepEqual((await stored(p.id)).map((s) => s.row), [1], 'nothing of a refused call is written');
  });

  it("refuses another team's outcomes on both transports, audited as DENIED, writing nothing", async () => {
    const p = await predict(1, 40);
    const visionEngineer = t.token(['ml-engineer'], ['vision'], 'eve-vision');
    const visionService = t.token(['service'], ['vision'], 'svc-vision');
    const denied = async () => (await t.sql(`SELECT count(*)::int AS n FROM audit_event WHERE decision = 'DENIED' AND action = 'recordOutcomes'`))[0].n as number;
    const before = await denied();

    const forbidden = await record(visionEngineer, [{ prediction: p.id, label: 1 }]);
    assert.equal(forbidden.errors?.[0].extensions.code, 'FORBIDDEN', 'a deployment the caller may read but not label');
    const hidden = await record(visionService, [{ prediction: p.id, label: 1 }]);
    assert.equal(hidden.errors?.[0].extensions.code, 'NOT_FOUND', 'a deployment the caller may not read is answered as missing');
    const line = JSON.stringify({ prediction: p.id, label: 1 });
    // Other principals on REST: identical refusals of one principal are folded into one event.
    const restForbidden = await bulk(t.token(['ml-engineer'], ['vision'], 'eve2-vision'), line);
    assert.equal(restForbidden.status, 403, restForbidden.text);
    const restHidden = await bulk(t.token(['service'], ['vision'], 'svc2-vision'), line);
    assert.equal(restHidden.status, 404, restHidden.text);
    const viewer = await bulk(t.token(['viewer'], ['fraud'], 'val-viewer'), line);
    assert.equal(viewer.status, 403, 'reading a deployment is not labelling it');

    assert.equal((await denied()) - before, 5);
    assert.deepEqual(await stored(p.id), []);
    const refusals = await t.sql(`SELECT actor_id, subject_id FROM audit_event WHERE decision = 'DENIED' AND action = 'recordOutcomes' ORDER BY seq`);
    assert.deepEqual(
      refusals.map((e) => [e.actor_id, e.subject_id]),
      [
        ['eve-vision', production],
        ['svc-vision', production],
        ['eve2-vision', production],
        ['svc2-vision', production],
        ['val-viewer', null], // refused by the declared policy, before any deployment is looked up
      ],
    );
  });

  it('takes NDJSON backfills in batches, one report and one audit event each, reporting bad lines and keeping the rest', async () => {
    const predictions = [];
    for (let i = 0; i < 21; i++) predictions.push(await predict(50, 100 + i));
    const lines: string[] = [];
    for (const p of predictions) for (let row = 0; row < 50; row++) lines.push(JSON.stringify({ prediction: p.id, row, label: row % 2 }));
    // 1,050 outcomes, and bad lines among them: not JSON, not an outcome, an unknown prediction, a blank line.
    lines.splice(3, 0, '{"prediction": ');
    lines.splice(10, 0, JSON.stringify({ prediction: predictions[0].id, row: 0, label: 1, lable: 2 }));
    lines.splice(1040, 0, JSON.stringify({ prediction: globalId('Prediction', randomUUID()), row: 0, label: 1 }));
    lines.splice(20, 0, '');
    const eventsBefore = await auditCount(t);
    // The last line gives a labelled row another label without `correct`: a conflict.
    const res = await bulk(service, `${lines.join('\n')}\n${JSON.stringify({ prediction: predictions[0].id, row: 0, label: 1 })}`);
    assert.equal(res.status, 200, res.text);
    assert.match(res.headers.get('content-type') ?? '', /application\/x-ndjson/);
    const reports = res.text.trim().split('\n').map((l) => JSON.parse(l));
    assert.equal(reports.length, 3, res.text.slice(0, 2000));
    const [b1, b2, done] = reports;
    assert.deepEqual([b1.batch, b1.firstLine, b1.lastLine, b1.received], [1, 1, 1001, 1000]);
    assert.deepEqual([b2.batch, b2.firstLine, b2.lastLine, b2.received], [2, 1002, 1055, 54]);
    assert.deepEqual(
      [...b1.errors, ...b2.errors].map((e: any) => [e.line, e.code, e.reason]),
      [
        [4, 'BAD_USER_INPUT', 'MALFORMED_JSON'],
        [11, 'BAD_USER_INPUT', 'OUTCOME_INVALID'],
        [1042, 'NOT_FOUND', 'OUTCOME_UNKNOWN_PREDICTION'],
        [1055, 'CONFLICT', 'OUTCOME_LABEL_CONFLICT'],
      ],
    );
    assert.equal(b1.errors[1].field, 'lable');
    assert.deepEqual([done.done, done.batches, done.received, done.recorded, done.duplicate, done.rejected], [true, 2, 1054, 1050, 0, 4]);
    assert.equal((await auditCount(t)) - eventsBefore, 2, 'one audit event per batch');
    const events = await t.sql(`SELECT after FROM audit_event WHERE action = 'recordOutcomes' ORDER BY seq DESC LIMIT 2`);
    assert.deepEqual(
      events.reverse().map((e) => [e.after.source, e.after.batch, e.after.recorded, e.after.digest]),
      [
        ['bulk', 1, b1.recorded, b1.digest],
        ['bulk', 2, b2.recorded, b2.digest],
      ],
    );
    const [{ n }] = await t.sql(`SELECT count(*)::int AS n FROM prediction_outcome WHERE prediction_id = ANY($1::uuid[])`, [predictions.map((p) => uuidOf(p.id))]);
    assert.equal(n, 1050);
    const [{ label }] = await t.sql(`SELECT label FROM prediction_outcome WHERE prediction_id = $1 AND row = 0`, [uuidOf(predictions[0].id)]);
    assert.equal(label, 0, 'the last line (another label without correct) was a conflict, not an overwrite');
  });

  it('reports a bulk line past the line limit without holding it, keeping the lines around it', async () => {
    const p = await predict(2, 60);
    const long = JSON.stringify({ prediction: p.id, row: 0, label: 'x'.repeat(30 * 1024) });
    const res = await bulk(service, [JSON.stringify({ prediction: p.id, row: 0, label: 1 }), long, JSON.stringify({ prediction: p.id, row: 1, label: 0 })].join('\r\n'));
    assert.equal(res.status, 200, res.text);
    const [report, done] = res.text.trim().split('\n').map((l) => JSON.parse(l));
    assert.deepEqual(report.errors.map((e: any) => [e.line, e.reason]), [[2, 'OUTCOME_INVALID']]);
    assert.match(report.errors[0].message, /longer than/);
    assert.deepEqual([done.done, done.recorded, done.rejected], [true, 2, 1]);
    assert.deepEqual((await stored(p.id)).map((s) => [s.row, s.label]), [
      [0, 1],
      [1, 0],
    ]);
  });

  it('moves a built-in service role still on the rules before outcomes to the new defaults at start', async () => {
    // The service role as released before outcomes existed.
    const previous = [
      { action: 'read', subject: 'Team', conditions: { id: { $in: '${user.teamIds}' } } },
      { action: 'read', subject: ['Deployment', 'Model', 'ModelVersion'], conditions: { teamId: { $in: '${user.teamIds}' } } },
      { action: 'predict', subject: 'Deployment', conditions: { teamId: { $in: '${user.teamIds}' } } },
    ];
    await t.sql(`UPDATE role SET rules = $1 WHERE name = 'service'`, [JSON.stringify(previous)]);
    const oldService = t.token(['service'], ['fraud'], 'svc-fraud-old');
    const p = await predict(1, 50);
    assert.equal((await record(oldService, [{ prediction: p.id, label: 1 }])).errors?.[0].extensions.code, 'FORBIDDEN');

    await seedBaseline(t.server.app);
    const [{ rules }] = await t.sql(`SELECT rules FROM role WHERE name = 'service'`);
    assert.deepEqual(rules, DEFAULT_ROLES.find((r) => r.name === 'service')!.rules);
    const [upgrade] = await t.sql(`SELECT action, subject_id FROM audit_event WHERE action = 'upgradeRole' ORDER BY seq DESC LIMIT 1`);
    assert.ok(upgrade, 'the upgrade is audited');
    const r = await record(t.token(['service'], ['fraud'], 'svc-fraud-new'), [{ prediction: p.id, label: 1 }]);
    assert.equal(r.data?.recordOutcomes.recorded, 1, JSON.stringify(r.errors));
  });

  it('refuses a bulk request without a valid deployment before reading it', async () => {
    const res = await request(`${t.url}/outcomes`, { method: 'POST', headers: { authorization: `Bearer ${service}` }, body: '{}' });
    assert.equal(res.status, 400, res.text);
    const anon = await request(`${t.url}/outcomes?deployment=${production}`, { method: 'POST', body: '{}' });
    assert.equal(anon.status, 401);
  });
});
