import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { createLogger, type Logger } from '../../src/core/logger';
import { rateLimitedLog } from '../../src/core/rate-limited-log';
import { JWT_SECRET, startTestServer, type TestServer } from '../support/harness';
import { freePort, request } from '../support/http';

const MAIN = path.resolve(__dirname, '../../src/main.js');

type Line = Record<string, any> & { level: number; msg: string };
const WARN = 40;

/** A logger at `level` whose lines are kept, parsed, in `lines`. */
function capturingLogger(level: string): { log: Logger; lines: Line[] } {
  const lines: Line[] = [];
  let partial = '';
  const sink = new Writable({
    write(chunk, _enc, done) {
      partial += chunk.toString();
      const parts = partial.split('\n');
      partial = parts.pop()!;
      for (const p of parts) if (p.trim()) lines.push(JSON.parse(p));
      done();
    },
  });
  return { log: createLogger(level, sink), lines };
}

describe('a condition that repeats is logged at a rate an operator can read', () => {
  it('logs the first warning, one summary per window with the count held back, and one line when it clears', () => {
    const { log, lines } = capturingLogger('info');
    let now = 0;
    const redis = rateLimitedLog(log, 'redis', { subject: 'Redis', windowMs: 60_000, fields: { setting: 'REDIS_URL' }, now: () => now });
    redis.warn('workers', { err: 'ECONNREFUSED' }, 'Redis connection error');
    for (let i = 0; i < 50; i++) {
      now += 1000;
      redis.warn(i % 2 ? 'workers' : 'event bus', { err: 'ECONNREFUSED' }, 'Redis connection error');
    }
    // 50 s in: still only the first line.
    assert.equal(lines.length, 1);
    assert.equal(lines[0].setting, 'REDIS_URL');
    now += 10_000;
    redis.warn('workers', { err: 'ECONNREFUSED' }, 'Redis connection error');
    assert.equal(lines.length, 2);
    assert.equal(lines[1].suppressed, 50);
    assert.match(lines[1].msg, /still failing after 60 s.*50 similar warnings suppressed/);
    redis.clear('workers');
    assert.equal(lines.length, 2, 'not cleared while another connection still fails');
    now += 5000;
    redis.clear('event bus');
    assert.equal(lines.length, 3);
    assert.equal(lines[2].msg, 'Redis reachable again after 65 s, 50 warnings suppressed');
    assert.equal(redis.failing, false);
    // A new outage starts a new first line.
    redis.warn('workers', { err: 'ECONNREFUSED' }, 'Redis connection error');
    assert.equal(lines.length, 4);
    assert.equal(lines[3].level, WARN);
  });
});

describe('the logs of a running server', () => {
  describe('access log', () => {
    let t: TestServer;
    const { log, lines } = capturingLogger('info');

    before(async () => {
      t = await startTestServer({ log });
    });
    after(async () => {
      await t?.stop();
    });

    const accessLines = (requestId: string) => lines.filter((l) => l.msg === 'request' && l.requestId === requestId);

    it('names the GraphQL operation, its type and the principal, never the token', async () => {
      const token = t.token(['viewer'], ['fraud'], 'log-reader');
      const res = await fetch(`${t.url}/graphql`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${token}`, 'x-request-id': 'named-op-1' },
        body: JSON.stringify({ query: 'query WhoAmI { viewer { id } }' }),
      });
      assert.equal(res.status, 200);
      await res.text();
      const [line] = accessLines('named-op-1');
      assert.ok(line, 'an access log line');
      assert.equal(line.path, '/graphql');
      assert.equal(line.operation, 'WhoAmI');
      assert.equal(line.operationType, 'query');
      assert.equal(line.principal, 'log-reader');
      assert.ok(!lines.some((l) => JSON.stringify(l).includes(token)), 'the token is never logged');
    });

    it('says anonymous for an unnamed operation, and null for an anonymous caller', async () => {
      const res = await fetch(`${t.url}/graphql`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-request-id': 'unnamed-op-1' },
        body: JSON.stringify({ query: 'mutation { __typename }' }),
      });
      await res.text();
      const [line] = accessLines('unnamed-op-1');
      assert.equal(line.operation, 'anonymous');
      assert.equal(line.operationType, 'mutation');
      assert.equal(line.principal, null);
    });

    it('carries the principal on REST lines', async () => {
      const token = t.token(['admin'], ['fraud'], 'log-admin');
      await request(`${t.url}/metrics`, { headers: { authorization: `Bearer ${token}`, 'x-request-id': 'rest-1' } });
      const [line] = accessLines('rest-1');
      assert.equal(line.path, '/metrics');
      assert.equal(line.principal, 'log-admin');
      assert.equal(line.operation, undefined);
    });
  });

  it('keeps Redis warnings few while Redis is down, and reports how many it held back', async () => {
    const { log, lines } = capturingLogger('info');
    const t = await startTestServer({ log, env: { REDIS_URL: `redis://127.0.0.1:${await freePort()}`, INFERENCE_ENABLED: 'false' } });
    try {
      await new Promise((r) => setTimeout(r, 3000));
    } finally {
      await t.stop();
    }
    const redis = lines.filter((l) => l.condition === 'redis' && l.level >= WARN);
    assert.ok(redis.length >= 1 && redis.length <= 3, `few Redis warnings, got ${redis.length}: ${redis.map((l) => l.msg).join(' | ')}`);
    assert.match(redis[0].msg, /REDIS_URL/, 'the first line names the setting');
    const last = redis.at(-1)!;
    assert.ok(last.suppressed > 0, `the held-back warnings are counted: ${last.msg}`);
    assert.match(last.msg, /\d+ warnings suppressed/);
    assert.ok(!lines.some((l) => l.level >= WARN && /redis/i.test(l.msg) && l.condition !== 'redis'), 'every Redis warning goes through the one rate-limited log');
  });

  it('names DATABASE_URL, without its password, in one line when the database cannot be reached at start', async () => {
    const cwd = await mkdtemp(path.join(os.tmpdir(), 'modelgov-logs-'));
    try {
      const port = await freePort();
      const child = spawn(process.execPath, [MAIN], {
        cwd,
        env: { PATH: process.env.PATH ?? '', HOME: cwd, NODE_ENV: 'test', PORT: '0', AUTH_JWT_SECRET: JWT_SECRET, DATA_DIR: cwd, LOG_LEVEL: 'info', DATABASE_URL: `postgres://modelgov:hunter2@127.0.0.1:${port}/modelgov_x` },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let out = '';
      let err = '';
      child.stdout.on('data', (d) => (out += d));
      child.stderr.on('data', (d) => (err += d));
      const code = await new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
      assert.notEqual(code, 0);
      const lines = err.trimEnd().split('\n');
      assert.equal(lines.length, 1, `one line, got: ${err}`);
      assert.match(lines[0], /DATABASE_URL/);
      assert.match(lines[0], new RegExp(`127\\.0\\.0\\.1:${port}`));
      assert.doesNotMatch(err + out, /hunter2/);
    } finally {
      await rm(cwd, { recursive: true, force: true });
    }
  });
});
