import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { Pool } from 'pg';
import { createLogger } from '../../src/core/logger';
import { ColumnEncoder, PredictionLog } from '../../src/inference/prediction-log';
import { startTestServer, type TestServer } from '../support/harness';
import { predictionEntry as entry } from '../support/inference';

// node-postgres' own conversion of a parameter (an array becomes its array literal), to compare with.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { prepareValue } = require('pg/lib/utils') as { prepareValue(value: unknown): unknown };

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

  const logOf = (batchSize: number, maxBuffered = 100_000) => new PredictionLog(db, { batchSize, flushIntervalMs: 60_000, maxBuffered }, createLogger('silent'));
  const stored = async (ids: string[]) => (await t.sql<{ request_id: string }>(`SELECT request_id FROM prediction_log WHERE request_id = ANY($1) ORDER BY request_id`, [ids])).map((r) => r.request_id);

  it('writes each column exactly as node-postgres writes an array of the same values', () => {
    const values = ['plain', 'say "hi"', 'back\\slash', 'nul \u0000 inside', 'lone \ud800 surrogate', '{a,b}', 'NULL', ''];
    const entries = values.map((v, i) =>
      entry(v, {
        requestKey: i % 2 ? v : null,
        error: i % 3 ? v : null,
        inputs: i === 0 ? null : { [v]: [[v, i, -0, null, true]] },
        outputs: { label: [[v]] },
        latencyMs: [0.1, Number.NaN, Number.POSITIVE_INFINITY, -0, 1e-300, 123456789.125, 2 ** 53, -1][i],
        rows: i,
        fallback: i % 2 === 0,
        shadow: i % 3 === 0,
      }),
    );
    const encoder = new ColumnEncoder();
    for (const e of entries) encoder.add(e);
    const json = (v: unknown) => (v === null ? null : JSON.stringify(v));
    const columns: unknown[][] = [
      entries.map((e) => e.id),
      entries.map((e) => e.occurredAt.toISOString()),
      entries.map((e) => e.deploymentId),
      entries.map((e) => e.teamId),
      entries.map((e) => e.modelVersionId),
      entries.map((e) => e.requestId),
      entries.map((e) => e.requestKey),
      entries.map((e) => e.principalId),
      entries.map((e) => e.principalKind),
      entries.map((e) => e.source),
      entries.map((e) => e.rows),
      entries.map((e) => json(e.inputs)),
      entries.map((e) => e.inputsSha256),
      entries.map((e) => json(e.outputs)),
      entries.map((e) => e.latencyMs),
      entries.map((e) => e.fallback),
      entries.map((e) => e.shadow),
      entries.map((e) => e.failedVersionId),
      entries.map((e) => e.error),
    ];
    assert.deepEqual(encoder.params(), columns.map((c) => prepareValue(c)));
  });

  it('splits out records the database refuses or that cannot be encoded, in batches encoded ahead, and writes every other one', async () => {
    const log = logOf(8);
    const tag = randomUUID().slice(0, 8);
    const ids = Array.from({ length: 30 }, (_, i) => `${tag}-${String(i).padStart(2, '0')}`);
    // Record 10 (second batch): a NUL the database refuses in text; record 20 (third batch): a date that cannot be written.
    for (const [i, id] of ids.entries()) {
      await log.append(entry(i === 10 ? `${id}\u0000` : id, i === 20 ? { occurredAt: new Date(Number.NaN) } : {}));
    }
    await log.close();
    const good = ids.filter((_, i) => i !== 10 && i !== 20);
    assert.deepEqual(await stored(ids), good);
    const quarantined = await t.sql<{ request_id: string }>(`SELECT request_id FROM prediction_log_quarantine WHERE request_id LIKE $1 ORDER BY request_id`, [`${tag}-%`]);
    assert.deepEqual(quarantined.map((r) => r.request_id), [`${ids[10]}\\u0000`, ids[20]]);
  });

  it('counts records still to be built against the buffer limit: a prediction past it waits for a write', async () => {
    const log = logOf(100, 3);
    const tag = randomUUID().slice(0, 8);
    const ids = [0, 1, 2, 3].map((i) => `${tag}-${i}`);
    for (const id of ids.slice(0, 3)) await log.appendSoon(() => entry(id));
    assert.equal(log.state().writable, false, 'three records still to be built fill a buffer of three');
    await log.appendSoon(() => entry(ids[3]));
    // Whether the fourth itself is written yet depends on the writer's timing; the first three must be.
    assert.deepEqual((await stored(ids)).slice(0, 3), ids.slice(0, 3), 'the fourth got room only once the first three were written');
    await log.close();
    assert.deepEqual(await stored(ids), ids);
  });


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
