import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { startTestServer, type TestServer } from '../support/harness';
import { predictionEntry as entry } from '../support/inference';
import { request, type RawResponse } from '../support/http';
import { eventually } from '../support/processes';

const BATCH = 8;
const MAX_BUFFERED = 40;

describe('prediction log: a bad record is quarantined, and readiness says when the log cannot write', () => {
  let t: TestServer;
  let auditor: string;
  let service: string;

  before(async () => {
    t = await startTestServer({
      demo: true,
      env: { PREDICTION_LOG_BATCH: String(BATCH), PREDICTION_LOG_FLUSH_MS: '50', PREDICTION_LOG_MAX_BUFFERED: String(MAX_BUFFERED) },
    });
    auditor = t.token(['auditor'], [], 'audrey-auditor');
    service = t.token(['service'], ['fraud'], 'svc-fraud');
  });
  after(async () => {
    // Whatever a failed assertion left behind, the table is back before the server writes its last records.
    await t?.sql('ALTER TABLE IF EXISTS prediction_log_moved RENAME TO prediction_log').catch(() => undefined);
    await t?.stop();
  });

  const log = () => t.server.app.inference!.log;
  const written = async (ids: string[]) =>
    (await t.sql<{ request_id: string }>('SELECT request_id FROM prediction_log WHERE request_id = ANY($1) ORDER BY request_id', [ids])).map((r) => r.request_id);
  const probe = (path: string, token?: string) => request(`${t.url}${path}`, token ? { headers: { authorization: `Bearer ${token}` } } : {});
  /** /readyz and /v2/health/ready, anonymous and authenticated: four answers that must agree. */
  const readiness = async () => {
    const [anonymous, detailed, oip, oipDetailed] = await Promise.all([probe('/readyz'), probe('/readyz', auditor), probe('/v2/health/ready'), probe('/v2/health/ready', auditor)]);
    return { anonymous, detailed, oip, oipDetailed };
  };
  const assertAgree = (r: Record<string, RawResponse>, ready: boolean) => {
    for (const [name, answer] of Object.entries(r)) assert.equal(answer.status, ready ? 200 : 503, `${name}: ${answer.text}`);
    assert.deepEqual(r.anonymous.json, { status: ready ? 'ready' : 'not ready' }, 'anonymous callers get the status alone');
    assert.deepEqual(r.oip.json, { ready }, 'anonymous callers get the status alone');
    assert.equal(r.detailed.json.status, ready ? 'ready' : 'not ready');
    assert.equal(r.oipDetailed.json.ready, ready);
  };

  it('quarantines a poisoned record and writes every other record of its batch and of later batches', async () => {
    const tag = randomUUID().slice(0, 8);
    const first = Array.from({ length: BATCH }, (_, i) => `${tag}-a${i}`);
    const later = Array.from({ length: BATCH }, (_, i) => `${tag}-b${i}`);
    // Straight into the running server's buffer, as if a transport had let them through: a NUL in
    // a text column, and an unpaired surrogate as a JSON key.
    for (const [i, id] of first.entries()) {
      const over = i === 2 ? { requestKey: 'a\u0000b' } : i === 5 ? { inputs: { ['x\ud800']: [[1]] } } : {};
      await log().append(entry(id, over));
    }
    for (const id of later) await log().append(entry(id));
    const expected = [...first.filter((_, i) => i !== 2 && i !== 5), ...later].sort();
    await eventually('every good record to be written', async () => ((await written(expected)).length === expected.length ? true : undefined), 30_000);
    assert.deepEqual(await written([first[2], first[5]]), [], 'the poisoned records are not in the log');

    const quarantined = await t.sql<{ request_id: string; error: string; record: string }>(
      'SELECT request_id, error, record FROM prediction_log_quarantine WHERE request_id = ANY($1) ORDER BY request_id',
      [[first[2], first[5]]],
    );
    assert.deepEqual(quarantined.map((q) => q.request_id), [first[2], first[5]]);
    assert.match(quarantined[0].error, /0x00|invalid byte sequence/);
    assert.equal(JSON.parse(quarantined[0].record).requestKey, 'a\u0000b', 'the record is kept whole, safely encoded');
    assert.deepEqual(Object.keys(JSON.parse(quarantined[1].record).inputs), ['x\ud800']);

    const metrics = await probe('/metrics', auditor);
    assert.match(metrics.text, /^modelgov_prediction_log_quarantined_total 2$/m);
    assert.equal(log().buffered, 0, 'nothing left behind in the buffer');

    // And the log goes on: a real prediction is written.
    const r = await request(`${t.url}/v2/models/fraud:fraud-detector-production/infer`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${service}` },
      body: JSON.stringify({ inputs: [{ name: 'features', shape: [1, 4], datatype: 'FP32', data: [1, 2, 3, 4] }], parameters: { request_key: `${tag}-real` } }),
    });
    assert.equal(r.status, 200, r.text);
    await eventually('the real prediction to be written', async () => ((await t.sql(`SELECT 1 FROM prediction_log WHERE request_key = $1`, [`${tag}-real`])).length ? true : undefined), 30_000);
  });

  it('shows served version ids and the log state to authenticated operators only; both probes agree', async () => {
    const r = await readiness();
    assertAgree(r, true);
    assert.doesNotMatch(r.anonymous.text, /versions|providers|TW9kZWxWZXJzaW9u/, 'no version ids for anonymous callers');
    const versions = Object.keys(r.detailed.json.inference.versions);
    assert.ok(versions.length > 0, r.detailed.text);
    assert.deepEqual(Object.keys(r.oipDetailed.json.inference.versions), versions);
    assert.equal(r.detailed.json.predictionLog.writable, true);
    assert.deepEqual(r.detailed.json.reasons, []);
    // A credential without the right to read metrics sees no more than an anonymous caller.
    const viewer = await probe('/readyz', service);
    assert.deepEqual(viewer.json, { status: 'ready' });
  });

  it('turns not ready while writes keep failing, keeps the records, and recovers on its own', async () => {
    const tag = randomUUID().slice(0, 8);
    await t.sql('ALTER TABLE prediction_log RENAME TO prediction_log_moved');
    await log().append(entry(`${tag}-kept`));
    const down = await eventually('readiness to turn not ready', async () => {
      const r = await readiness();
      return r.anonymous.status === 503 ? r : undefined;
    }, 60_000);
    assertAgree(down, false);
    assert.match(down.detailed.json.reasons.join('\n'), /prediction log: writes have failed for \d+ s/);
    assert.equal(down.detailed.json.predictionLog.writable, false);
    assert.equal(down.detailed.json.postgres, 'ok');

    await t.sql('ALTER TABLE prediction_log_moved RENAME TO prediction_log');
    const up = await eventually('readiness to recover', async () => {
      const r = await readiness();
      return r.anonymous.status === 200 ? r : undefined;
    }, 60_000);
    assertAgree(up, true);
    assert.deepEqual(await written([`${tag}-kept`]), [`${tag}-kept`], 'the record kept through the outage is written');
    assert.equal((await t.sql(`SELECT 1 FROM prediction_log_quarantine WHERE request_id = $1`, [`${tag}-kept`])).length, 0, 'an outage quarantines nothing');
  });

  it('turns not ready at once when the buffer is full, and ready again once it drains', async () => {
    const tag = randomUUID().slice(0, 8);
    await t.sql('ALTER TABLE prediction_log RENAME TO prediction_log_moved');
    const ids = Array.from({ length: MAX_BUFFERED }, (_, i) => `${tag}-${i}`);
    for (const id of ids) await log().append(entry(id));
    const full = await readiness();
    assertAgree(full, false);
    assert.match(full.detailed.json.reasons.join('\n'), /prediction log: the buffer is full/);
    assert.equal(full.detailed.json.predictionLog.buffered, MAX_BUFFERED);

    await t.sql('ALTER TABLE prediction_log_moved RENAME TO prediction_log');
    const up = await eventually('readiness to recover', async () => {
      const r = await readiness();
      return r.anonymous.status === 200 ? r : undefined;
    }, 60_000);
    assertAgree(up, true);
    // Ready means the log takes records again: the buffer drains batch by batch right after.
    await eventually('every buffered record to be written', async () => ((await written(ids)).length === MAX_BUFFERED ? true : undefined), 30_000);
  });

  it('holds predictions back while the buffer is full (nothing dropped, memory bounded), and answers them once it drains', async () => {
    const tag = randomUUID().slice(0, 8);
    await t.sql('ALTER TABLE prediction_log RENAME TO prediction_log_moved');
    const ids = Array.from({ length: MAX_BUFFERED }, (_, i) => `${tag}-${i}`);
    for (const id of ids) await log().append(entry(id));
    assert.equal(log().buffered, MAX_BUFFERED);
    const predict = (key: string) =>
      request(`${t.url}/v2/models/fraud:fraud-detector-production/infer`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${service}` },
        body: JSON.stringify({ inputs: [{ name: 'features', shape: [1, 4], datatype: 'FP32', data: [1, 2, 3, 4] }], parameters: { request_key: key } }),
      });
    const keys = Array.from({ length: 5 }, (_, i) => `${tag}-held-${i}`);
    let answered = 0;
    const held = keys.map((k) => predict(k).then((r) => ((answered += 1), r)));
    // A prediction is answered in milliseconds when the log has room; a second without an answer is the log holding it.
    await new Promise((resolve) => setTimeout(resolve, 1000));
    assert.equal(answered, 0, 'no prediction is answered while its record has no room');
    assert.equal(log().buffered, MAX_BUFFERED, 'the buffer does not grow past its limit');

    await t.sql('ALTER TABLE prediction_log_moved RENAME TO prediction_log');
    for (const r of await Promise.all(held)) assert.equal(r.status, 200, r.text);
    await eventually('the held predictions to be written', async () => {
      const rows = await t.sql<{ request_key: string }>(`SELECT request_key FROM prediction_log WHERE request_key = ANY($1)`, [keys]);
      return rows.length === keys.length ? true : undefined;
    }, 30_000);
    await eventually('every buffered record to be written', async () => ((await written(ids)).length === MAX_BUFFERED ? true : undefined), 30_000);
  });
});
