import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { Pool } from 'pg';
import { createLogger } from '../../src/core/logger';
import { PredictionLog } from '../../src/inference/prediction-log';
import { startTestServer, type TestServer } from '../support/harness';
import { predictionEntry as entry } from '../support/inference';

describe('prediction log: how a batch is encoded', () => {
  let t: TestServer;
  let db: Pool;
  /** Event-loop turns taken (counted by a setImmediate chain) when each statement was handed to the database. */
  const turnsAtStatement: number[] = [];
  let turns = 0;

  before(async () => {
    t = await startTestServer();
    db = new Pool({ connectionString: t.databaseUrl, max: 2 });
    // The log's own pool, watched: each statement is written to PostgreSQL as sent, after noting how
    // many turns of the event loop ran before it.
    const query = db.query.bind(db) as (...args: unknown[]) => unknown;
    (db as unknown as { query: (...args: unknown[]) => unknown }).query = (...args: unknown[]) => {
      turnsAtStatement.push(turns);
      return query(...args);
    };
  });
  after(async () => {
    await db?.end();
    await t?.stop();
  });

  const logOf = (batchSize: number) => new PredictionLog(db, { batchSize, flushIntervalMs: 60_000, maxBuffered: 100_000 }, createLogger('silent'));

  it('stores every text and JSON value exactly as given, quotes, backslashes, braces and the word NULL included', async () => {
    const log = logOf(100);
    const tag = randomUUID().slice(0, 8);
    const awkward = ['say "hi"', 'back\\slash', '{a,b}', 'NULL', 'comma, and space', 'tab\tnew\nline', 'emoji 🧪 and ü', '\\"', ''];
    const sent = awkward.map((text, i) =>
      entry(`${tag}-${i} ${text}`, {
        requestKey: text,
        error: text === '' ? null : `failed: ${text}`,
        failedVersionId: text === '' ? null : randomUUID(),
        inputs: { [text]: [[text, 1.5, -0, null, true]] },
        outputs: { label: [[text]] },
        latencyMs: 0.1 + i / 3,
        rows: i,
        fallback: i % 2 === 0,
        shadow: i % 3 === 0,
      }),
    );
    for (const e of sent) await log.append(e);
    await log.close();
    const stored = await t.sql(
      `SELECT id, request_id, request_key, error, failed_version_id, inputs, outputs, latency_ms, rows, fallback, shadow, occurred_at, principal_id, source
         FROM prediction_log WHERE request_id LIKE $1 ORDER BY request_id`,
      [`${tag}-%`],
    );
    assert.equal(stored.length, sent.length);
    for (const e of sent) {
      const row = stored.find((r) => r.id === e.id);
      assert.ok(row, `record ${e.requestId} stored`);
      assert.equal(row.request_id, e.requestId);
      assert.equal(row.request_key, e.requestKey, 'the text NULL stays text; only a missing value is NULL');
      assert.equal(row.error, e.error);
      assert.equal(row.failed_version_id, e.failedVersionId);
      assert.deepEqual(row.inputs, JSON.parse(JSON.stringify(e.inputs)));
      assert.deepEqual(row.outputs, e.outputs);
      assert.equal(row.latency_ms, e.latencyMs);
      assert.equal(row.rows, e.rows);
      assert.equal(row.fallback, e.fallback);
      assert.equal(row.shadow, e.shadow);
      assert.equal(new Date(row.occurred_at).getTime(), e.occurredAt.getTime());
      assert.equal(row.principal_id, 'svc-test');
      assert.equal(row.source, 'open-inference');
    }
  });

  it('lets the event loop serve other work while it encodes a large batch, and writes all of it', async () => {
    const log = logOf(1000);
    const tag = randomUUID().slice(0, 8);
    // 1,000 records of 256 × 16 inputs: megabytes of JSON, far more than one slice of encoding.
    const rows = Array.from({ length: 256 }, (_, r) => Array.from({ length: 16 }, (_, j) => r * 16 + j + 0.25));
    for (let i = 0; i < 1000; i++) await log.append(entry(`${tag}-${String(i).padStart(4, '0')}`, { rows: 256, inputs: { features: rows } }));
    turnsAtStatement.length = 0;
    turns = 0;
    let counting = true;
    const tick = () => {
      turns += 1;
      if (counting) setImmediate(tick);
    };
    setImmediate(tick);
    const startedAt = turns;
    await log.flush();
    counting = false;
    await log.close();
    assert.ok(turnsAtStatement.length >= 1, 'the batch was written');
    assert.ok(turnsAtStatement[0] - startedAt > 1, `other work ran while the batch was encoded (${turnsAtStatement[0] - startedAt} turns before its statement)`);
    const [{ n }] = await t.sql(`SELECT count(*)::int AS n FROM prediction_log WHERE request_id LIKE $1`, [`${tag}-%`]);
    assert.equal(n, 1000);
    const [first] = await t.sql(`SELECT inputs FROM prediction_log WHERE request_id = $1`, [`${tag}-0000`]);
    assert.deepEqual(first.inputs, { features: rows });
  });
});
