import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { Client, Pool } from 'pg';
import { to as copyTo } from 'pg-copy-streams';
import { copyOut, CopyOutFrames } from '../../src/core/copy-out';
import { inPoolTransaction, withPoolClient } from '../../src/core/database';
import { createDatabase, databaseUrlFor, dropDatabase, testDatabaseName } from '../support/harness';

/** A backend message: type byte, length word (itself included), body. */
const message = (type: string, body: Buffer = Buffer.alloc(0)) => {
  const head = Buffer.alloc(5);
  head[0] = type.charCodeAt(0);
  head.writeUInt32BE(body.length + 4, 1);
  return Buffer.concat([head, body]);
};

describe('COPY TO read straight off the connection', () => {
  const name = testDatabaseName('copy');
  let pool: Pool;

  before(async () => {
    await createDatabase(name);
    pool = new Pool({ connectionString: databaseUrlFor(name), max: 3 });
  });
  after(async () => {
    await pool?.end();
    await dropDatabase(name);
  });

  /** What `copyOut` delivers for `sql`, joined, and the rows it reports. */
  const viaCopyOut = async (client: Client | import('pg').PoolClient, sql: string) => {
    const parts: Buffer[] = [];
    const rows = await copyOut(client, sql, (d) => parts.push(d));
    return { bytes: Buffer.concat(parts), rows };
  };
  const viaStream = async (client: import('pg').PoolClient, sql: string) => {
    const parts: Buffer[] = [];
    for await (const chunk of client.query(copyTo(sql))) parts.push(chunk as Buffer);
    return Buffer.concat(parts);
  };

  it('takes the CopyData payloads out of any cut of the message stream, skips notices, and hands back what follows CopyDone', () => {
    const payloads = [Buffer.from('PGCOPY\n\xff\r\n\0header', 'latin1'), Buffer.alloc(0), Buffer.from('row one'), Buffer.from('a longer row, ü and 🦜'), Buffer.from([0, 1, 2, 0x64, 0x63, 0x45])];
    const stream = Buffer.concat([
      message('H', Buffer.from([1, 0, 1, 0, 1])),
      message('d', payloads[0]),
      message('N', Buffer.from('Snotice\0\0')),
      message('d', payloads[1]),
      message('S', Buffer.from('TimeZone\0UTC\0')),
      message('d', payloads[2]),
      message('A', Buffer.from('\0\0\0\x01chan\0x\0')),
      message('d', payloads[3]),
      message('d', payloads[4]),
      message('c'),
    ]);
    const after = Buffer.concat([message('C', Buffer.from('COPY 3\0')), message('Z', Buffer.from('I'))]);
    const whole = Buffer.concat([stream, after]);
    const expected = Buffer.concat(payloads);
    // Every chunk size, and every single cut point into two chunks.
    const cuts: number[][] = [];
    for (let size = 1; size <= whole.length; size++) cuts.push(Array.from({ length: Math.ceil(whole.length / size) }, (_, i) => i * size).slice(1));
    for (let at = 1; at < whole.length; at++) cuts.push([at]);
    for (const points of cuts) {
      const frames = new CopyOutFrames();
      const got: Buffer[] = [];
      let rest: Buffer | null = null;
      const bounds = [0, ...points, whole.length];
      for (let i = 0; i + 1 < bounds.length && !rest; i++) {
        // A copy of the chunk, as the socket would deliver: the reader moves bytes within it.
        rest = frames.feed(Buffer.from(whole.subarray(bounds[i], bounds[i + 1])), (d) => got.push(Buffer.from(d)));
        if (rest) rest = Buffer.concat([rest, whole.subarray(bounds[i + 1])]);
      }
      assert.ok(frames.done && !frames.interrupted, `CopyDone seen with cuts at ${points.join(',')}`);
      assert.deepEqual(Buffer.concat(got), expected, `payloads with cuts at ${points.join(',')}`);
      assert.deepEqual(rest, after, `the bytes after CopyDone with cuts at ${points.join(',')}`);
    }
  });

  it('stops at an ErrorResponse in the middle of the data and hands it back from its first byte', () => {
    const error = Buffer.concat([message('E', Buffer.from('SERROR\0C22012\0Mdivision by zero\0\0')), message('Z', Buffer.from('I'))]);
    const whole = Buffer.concat([message('H', Buffer.from([1, 0, 0])), message('d', Buffer.from('first')), error]);
    for (let at = 1; at < whole.length; at++) {
      const frames = new CopyOutFrames();
      const got: Buffer[] = [];
      let rest = frames.feed(Buffer.from(whole.subarray(0, at)), (d) => got.push(Buffer.from(d)));
      if (rest) rest = Buffer.concat([rest, whole.subarray(at)]);
      else rest = frames.feed(Buffer.from(whole.subarray(at)), (d) => got.push(Buffer.from(d)));
      assert.ok(frames.interrupted && !frames.done);
      assert.equal(Buffer.concat(got).toString(), 'first');
      assert.deepEqual(rest, error, `cut at ${at}`);
    }
  });

  it('reads a large binary COPY byte for byte as pg-copy-streams does, and leaves the connection ready for the next statement', async () => {
    const sql = `COPY (SELECT g, repeat(md5(g::text), 1 + g % 40), g % 3 = 0 FROM generate_series(1, 60000) g) TO STDOUT (FORMAT binary)`;
    const client = await pool.connect();
    try {
      const reference = await viaStream(client, sql);
      const { bytes, rows } = await viaCopyOut(client, sql);
      assert.equal(rows, 60_000);
      assert.ok(bytes.length > 10 * 1024 * 1024, `many socket chunks (${bytes.length} bytes)`);
      assert.ok(bytes.equals(reference), 'the same bytes');
      const [{ n }] = (await client.query('SELECT 41 + 1 AS n')).rows;
      assert.equal(n, 42);
      const text = await viaCopyOut(client, `COPY (SELECT g, 'tab\there' FROM generate_series(1, 3) g) TO STDOUT`);
      assert.equal(text.bytes.toString(), '1\ttab\\there\n2\ttab\\there\n3\ttab\\there\n');
      assert.equal(text.rows, 3);
    } finally {
      client.release();
    }
  });

  it('skips the notices a COPY sends between its rows', async () => {
    const client = await pool.connect();
    try {
      await client.query(`CREATE FUNCTION pg_temp.noisy(i int) RETURNS int LANGUAGE plpgsql AS $$ BEGIN RAISE NOTICE 'row %', i; RETURN i; END $$`);
      const { bytes, rows } = await viaCopyOut(client, `COPY (SELECT pg_temp.noisy(g) FROM generate_series(1, 500) g) TO STDOUT`);
      assert.equal(rows, 500);
      assert.equal(bytes.toString(), Array.from({ length: 500 }, (_, i) => `${i + 1}\n`).join(''));
      assert.equal((await client.query('SELECT 1 AS one')).rows[0].one, 1);
    } finally {
      client.release(true);
    }
  });

  it("rejects with PostgreSQL's error when the COPY fails midway, and the connection goes on", async () => {
    const client = await pool.connect();
    try {
      const got: Buffer[] = [];
      await assert.rejects(
        copyOut(client, `COPY (SELECT 1 / (3000 - g) FROM generate_series(1, 5000) g) TO STDOUT`, (d) => got.push(d)),
        (e: Error & { code?: string }) => e.code === '22012' && /division by zero/.test(e.message),
      );
      assert.ok(Buffer.concat(got).length > 0, 'rows before the error arrived');
      assert.equal((await client.query('SELECT 2 AS two')).rows[0].two, 2);
    } finally {
      client.release();
    }
  });

  it('rejects a statement that is not a COPY TO, and one whose reader throws, each after reading it to its end', async () => {
    const client = await pool.connect();
    try {
      await assert.rejects(copyOut(client, 'SELECT 1', () => undefined), /not a COPY/);
      assert.equal((await client.query('SELECT 3 AS three')).rows[0].three, 3);
      let calls = 0;
      await assert.rejects(
        copyOut(client, `COPY (SELECT g FROM generate_series(1, 200000) g) TO STDOUT`, () => {
          calls += 1;
          throw new Error('the reader gave up');
        }),
        /the reader gave up/,
      );
      assert.equal(calls, 1, 'nothing more is delivered once the reader threw');
      assert.equal((await client.query('SELECT 4 AS four')).rows[0].four, 4);
    } finally {
      client.release();
    }
  });

  it('refuses to read a connection whose socket someone else also reads, and leaves it working', async () => {
    const client = await pool.connect();
    const stream = (client as unknown as { connection: { stream: import('node:events').EventEmitter } }).connection.stream;
    const other = () => undefined;
    try {
      stream.on('data', other);
      await assert.rejects(copyOut(client, 'COPY (SELECT 1) TO STDOUT', () => undefined), /2 data listeners, expected 1/);
      stream.removeListener('data', other);
      assert.equal((await client.query('SELECT 6 AS six')).rows[0].six, 6);
    } finally {
      client.release();
    }
  });

  it('after a query_timeout in the middle of a COPY, delivers nothing more and leaves the connection in step for the next statement', async () => {
    const client = new Client({ connectionString: databaseUrlFor(name), query_timeout: 400 });
    await client.connect();
    try {
      let afterTimeout = 0;
      let timedOut = false;
      await assert.rejects(
        copyOut(client, `COPY (SELECT g, repeat('x', 300000), pg_sleep(0.01) FROM generate_series(1, 60) g) TO STDOUT`, () => {
          if (timedOut) afterTimeout += 1;
        }).finally(() => (timedOut = true)),
        /Query read timeout/,
      );
      // The next statement waits for the COPY's end (within its own timeout), then runs as usual.
      assert.equal((await client.query({ text: 'SELECT 7 AS seven', query_timeout: 30_000 } as import('pg').QueryConfig)).rows[0].seven, 7);
      assert.equal(afterTimeout, 0, 'no data after the timeout');
      // A COPY that ends in time leaves no timer behind (it would wake the client's queue again).
      let drains = 0;
      client.on('drain', () => (drains += 1));
      const ok = await viaCopyOut(client, `COPY (SELECT 1) TO STDOUT`);
      assert.equal(ok.bytes.toString(), '1\n');
      const drained = drains;
      await new Promise((r) => setTimeout(r, 500));
      assert.equal(drains, drained, 'no timeout fired after the COPY ended');
      assert.equal((await client.query('SELECT 8 AS eight')).rows[0].eight, 8);
    } finally {
      await client.end();
    }
  });

  it('rejects a text of more than the one COPY statement instead of dropping the rest', async () => {
    const client = await pool.connect();
    try {
      await assert.rejects(copyOut(client, `COPY (SELECT 1) TO STDOUT; COPY (SELECT 2) TO STDOUT`, () => undefined), /one COPY … TO STDOUT statement expected/);
      await assert.rejects(copyOut(client, `COPY (SELECT 1) TO STDOUT; SELECT 2`, () => undefined), /one COPY … TO STDOUT statement expected/);
      assert.equal((await client.query('SELECT 9 AS nine')).rows[0].nine, 9);
    } finally {
      client.release();
    }
  });

  it('gives up a connection whose COPY framing makes no sense, with an error and without hanging', async () => {
    // A server that speaks just enough of the protocol: trust, ready, then a COPY whose second
    // message has a length shorter than its own length word.
    const server = net.createServer((socket) => {
      socket.on('error', () => undefined);
      let started = false;
      socket.on('data', () => {
        if (!started) {
          started = true;
          socket.write(Buffer.concat([message('R', Buffer.from([0, 0, 0, 0])), message('Z', Buffer.from('I'))]));
          return;
        }
        const bad = Buffer.from([0x64, 0, 0, 0, 2]);
        socket.write(Buffer.concat([message('H', Buffer.from([0, 0, 1, 0, 0])), message('d', Buffer.from('1\n')), bad]));
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    const client = new Client({ host: '127.0.0.1', port: (server.address() as net.AddressInfo).port, user: 'x', database: 'x' });
    const clientErrors: Error[] = [];
    client.on('error', (e) => clientErrors.push(e));
    try {
      await client.connect();
      await assert.rejects(copyOut(client, 'COPY (SELECT 1) TO STDOUT', () => undefined), /a protocol message of length 2 during COPY/);
      await new Promise((r) => setImmediate(r));
      assert.ok(clientErrors.length >= 1, 'the connection reports itself broken');
    } finally {
      await client.end().catch(() => undefined);
      await new Promise<void>((r) => server.close(() => r()));
    }
  });

  it('fails the work of a pool connection that drops midway, keeps it out of the pool, and the process goes on', async () => {
    const pool2 = new Pool({ connectionString: databaseUrlFor(name), max: 1 });
    try {
      let pid = 0;
      await assert.rejects(
        inPoolTransaction(pool2, async (client) => {
          pid = (await client.query('SELECT pg_backend_pid() AS pid')).rows[0].pid;
          // Cut without a word from the database, as a network drop cuts it.
          (client as unknown as { connection: { stream: { destroy(): void } } }).connection.stream.destroy();
          await client.query('SELECT pg_sleep(0.2)');
        }),
        /Connection terminated/,
      );
      await new Promise((r) => setTimeout(r, 50));
      const again = await withPoolClient(pool2, async (client) => (await client.query('SELECT pg_backend_pid() AS pid')).rows[0].pid);
      assert.notEqual(again, pid, 'a new connection, not the dropped one');
    } finally {
      await pool2.end();
    }
  });

  it('rejects, and does not hang, when the backend dies in the middle of a COPY', async () => {
    const client = await pool.connect();
    client.on('error', () => undefined);
    const [{ pid }] = (await client.query('SELECT pg_backend_pid() AS pid')).rows;
    let killed: Promise<unknown> | undefined;
    try {
      await assert.rejects(
        copyOut(client, `COPY (SELECT g, pg_sleep(0.005) FROM generate_series(1, 100000) g) TO STDOUT`, () => {
          killed ??= pool.query('SELECT pg_terminate_backend($1)', [pid]);
        }),
      );
    } finally {
      await killed;
      client.release(true);
    }
    assert.equal((await pool.query('SELECT 5 AS five')).rows[0].five, 5);
  });
});
