import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createClient, type Client } from 'graphql-ws';
import { Client as PgClient } from 'pg';
import WebSocket from 'ws';
import { signToken } from '../../src/access/authenticate';
import { databaseUrlFor, dropDatabase, JWT_SECRET, removeRedisKeys, startTestServer, TEST_REDIS_URL, testDatabaseName, testRedisPrefix, type TestServer } from '../support/harness';
import { assertNoStackTrace, freePort, postGraphql, request, waitUntil } from '../support/http';

const MAIN = path.resolve(__dirname, '../../src/main.js');

interface Exited {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

function spawnMain(env: Record<string, string>, cwd: string): { child: ChildProcess; exited: Promise<Exited> } {
  const child = spawn(process.execPath, [MAIN], { cwd, env: { PATH: process.env.PATH ?? '', HOME: cwd, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d) => (stdout += d));
  child.stderr!.on('data', (d) => (stderr += d));
  const exited = new Promise<Exited>((resolve) => child.on('exit', (code, signal) => resolve({ code, signal, stdout, stderr })));
  return { child, exited };
}

async function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([p, new Promise<T>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what} did not happen within ${ms} ms`)), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}

function wsClient(url: string, token: string | null, extra: Partial<Parameters<typeof createClient>[0]> = {}): Client {
  return createClient({
    url: url.replace(/^http/, 'ws') + '/graphql',
    webSocketImpl: WebSocket,
    connectionParams: token ? { authorization: `Bearer ${token}` } : {},
    retryAttempts: 0,
    ...extra,
  });
}

function runOnce(client: Client, query: string): Promise<{ data?: any; errors?: any[] }> {
  return new Promise((resolve, reject) => {
    let result: { data?: any; errors?: any[] } = {};
    client.subscribe({ query }, { next: (r) => (result = r as typeof result), error: reject, complete: () => resolve(result) });
  });
}

describe('the running server', () => {
  let t: TestServer;
  let noRedis: TestServer;
  let admin: string;
  const children: ChildProcess[] = [];
  const databases: string[] = [];
  const dirs: string[] = [];

  before(async () => {
    t = await startTestServer();
    noRedis = await startTestServer({ env: { REDIS_URL: 'redis://127.0.0.1:1' } });
    admin = t.token(['admin'], [], 'ada-admin');
  });
  after(async () => {
    const running = children.filter((c) => c.exitCode === null && c.signalCode === null);
    await Promise.all(running.map((c) => new Promise((resolve) => (c.once('exit', resolve), c.kill('SIGKILL')))));
    await t?.stop();
    await noRedis?.stop();
    // Every spawned server has exited: nothing writes under their names any more.
    for (const db of databases) {
      await removeRedisKeys(TEST_REDIS_URL, testRedisPrefix(db));
      await dropDatabase(db);
    }
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });

  async function scratchDir(): Promise<string> {
    const d = await mkdtemp(path.join(os.tmpdir(), 'modelgov-main-'));
    dirs.push(d);
    return d;
  }

  describe('health', () => {
    it('answers /healthz with 200', async () => {
      const r = await request(`${t.url}/healthz`);
      assert.equal(r.status, 200);
      assert.deepEqual(r.json, { status: 'ok' });
    });

    it('answers /readyz with 200 when PostgreSQL and Redis answer: the status alone, the details for an operator', async () => {
      const r = await request(`${t.url}/readyz`);
      assert.equal(r.status, 200, r.text);
      assert.deepEqual(r.json, { status: 'ready' });
      const detailed = await request(`${t.url}/readyz`, { headers: { authorization: `Bearer ${admin}` } });
      assert.equal(detailed.status, 200, detailed.text);
      const { predictionLog, ...rest } = detailed.json;
      assert.deepEqual(rest, {
        status: 'ready',
        reasons: [],
        postgres: 'ok',
        redis: 'ok',
        inference: {
          ready: true,
          threads: 2,
          pools: { production: { threads: 1, running: 1, live: 1, stuck: 0, replaced: 0 }, shared: { threads: 1, running: 1, live: 1, stuck: 0, replaced: 0 } },
          stuckPools: [],
          providers: [],
          versions: {},
          failed: {},
          unloaded: {},
        },
      });
      assert.equal(predictionLog.writable, true);
    });

    it('answers /readyz with 503 naming Redis when Redis is down, and still serves GraphQL', async () => {
      const anonymous = await request(`${noRedis.url}/readyz`);
      assert.equal(anonymous.status, 503, anonymous.text);
      assert.deepEqual(anonymous.json, { status: 'not ready' });
      const r = await request(`${noRedis.url}/readyz`, { headers: { authorization: `Bearer ${noRedis.token(['admin'], [], 'ada-admin')}` } });
      assert.equal(r.status, 503, r.text);
      assert.equal(r.json.status, 'not ready');
      assert.equal(r.json.postgres, 'ok');
      assert.match(r.json.redis, /^down/);
      assertNoStackTrace(r.text);
      const health = await request(`${noRedis.url}/healthz`);
      assert.equal(health.status, 200, 'alive, only not ready');
      const g = await noRedis.gql(noRedis.token(['viewer'], ['fraud'], 'vic'), '{ viewer { id roles } }');
      assert.equal(g.errors, undefined, JSON.stringify(g.errors));
      assert.deepEqual(g.data.viewer, { id: 'vic', roles: ['viewer'] });
    });
  });

  describe('request ids', () => {
    it('echoes a client x-request-id in the header and in error extensions', async () => {
      const r = await postGraphql(t.url, null, '{ teams { totalCount } }', undefined, { 'x-request-id': 'client-req-42' });
      assert.equal(r.headers.get('x-request-id'), 'client-req-42');
      assert.equal(r.json.errors[0].extensions.code, 'UNAUTHENTICATED');
      assert.equal(r.json.errors[0].extensions.requestId, 'client-req-42');
    });

    it('echoes it on success and outside GraphQL too', async () => {
      const ok = await postGraphql(t.url, admin, '{ viewer { id } }', undefined, { 'x-request-id': 'client-req-43' });
      assert.equal(ok.status, 200);
      assert.equal(ok.headers.get('x-request-id'), 'client-req-43');
      const bad = await request(`${t.url}/graphql`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-request-id': 'client-req-44' }, body: '{' });
      assert.equal(bad.status, 400);
      assert.equal(bad.headers.get('x-request-id'), 'client-req-44');
      assert.equal(bad.json.errors[0].extensions.requestId, 'client-req-44');
    });

    it('replaces a request id it cannot log safely with its own, and reports that one', async () => {
      const r = await postGraphql(t.url, null, '{ teams { totalCount } }', undefined, { 'x-request-id': 'two words\tand a tab' });
      const id = r.headers.get('x-request-id');
      assert.ok(id && id !== 'two words\tand a tab');
      assert.equal(r.json.errors[0].extensions.requestId, id);
      const other = await postGraphql(t.url, null, '{ teams { totalCount } }');
      assert.notEqual(other.headers.get('x-request-id'), id, 'each request gets its own id');
    });
  });

  describe('GraphQL over WebSocket', () => {
    it('runs a query for an authenticated client', async () => {
      const client = wsClient(t.url, admin);
      try {
        const r = await runOnce(client, '{ viewer { id roles } }');
        assert.equal(r.errors, undefined, JSON.stringify(r.errors));
        assert.deepEqual(r.data, { viewer: { id: 'ada-admin', roles: ['admin'] } });
        const refused = await runOnce(client, 'mutation { createTeam(input: { name: "Not A Valid Name" }) { id } }');
        assert.equal(refused.errors?.[0].extensions.code, 'BAD_USER_INPUT', JSON.stringify(refused));
        const [{ n }] = await t.sql(`SELECT count(*)::int AS n FROM team WHERE name = 'Not A Valid Name'`);
        assert.equal(n, 0);
      } finally {
        await client.dispose();
      }
    });

    it('closes the socket with 4403 when there is no token', async () => {
      let closeCode: number | undefined;
      const client = wsClient(t.url, null, { on: { closed: (e) => (closeCode = (e as { code: number }).code) } });
      try {
        await assert.rejects(runOnce(client, '{ viewer { id } }'), (e: { code?: number }) => {
          assert.equal(e.code, 4403);
          return true;
        });
        assert.equal(closeCode, 4403);
      } finally {
        await client.dispose();
      }
    });

    it('holds every operation to the HTTP rules: limits, validation, clean errors', async () => {
      const client = wsClient(t.url, admin);
      try {
        const deep = "{ models { nodes { versions { model { versions { model { versions { model { versions { model { versions { model { id } } } } } } } } } } } } }";
        const tooDeep = await runOnce(client, deep).then(
          () => assert.fail('a too deep query ran over WebSocket'),
          (errors: Array<{ extensions: { code: string; reason: string; requestId: string } }>) => errors,
        );
        assert.equal(tooDeep[0].extensions.code, 'BAD_USER_INPUT');
        assert.equal(tooDeep[0].extensions.reason, 'QUERY_TOO_DEEP');
        assert.ok(tooDeep[0].extensions.requestId);
        const unknown = await runOnce(client, '{ nope }').then(
          () => assert.fail('an invalid query ran'),
          (errors: Array<{ extensions: { code: string; reason: string } }>) => errors,
        );
        assert.equal(unknown[0].extensions.reason, 'GRAPHQL_VALIDATION_FAILED');
        const nul = await runOnce(client, 'mutation { createTeam(input: { name: "nul-team", description: "a\\u0000b" }) { id } }');
        assert.equal(nul.errors?.[0].extensions.code, 'BAD_USER_INPUT', JSON.stringify(nul));
        assertNoStackTrace(JSON.stringify(nul));
      } finally {
        await client.dispose();
      }
    });

    it('ends a socket whose key is revoked (4401); the key can neither reconnect nor run anything', async () => {
      const created = await t.gql(admin, 'mutation { createApiKey(input: { name: "ws", roles: ["admin"], teams: [] }) { key apiKey { id } } }');
      assert.equal(created.errors, undefined, JSON.stringify(created.errors));
      const { key, apiKey } = created.data.createApiKey;
      const closes: number[] = [];
      const client = createClient({
        url: t.url.replace(/^http/, 'ws') + '/graphql',
        webSocketImpl: WebSocket,
        connectionParams: { authorization: `ApiKey ${key}` },
        retryAttempts: 0,
        lazy: false,
        on: { closed: (e) => closes.push((e as { code: number }).code) },
      });
      try {
        const before = await runOnce(client, '{ viewer { kind } }');
        assert.deepEqual(before.data, { viewer: { kind: 'service' } });
        await t.gql(admin, 'mutation($id: ID!) { revokeApiKey(input: { apiKey: $id }) { revokedAt } }', { id: apiKey.id });
        await waitUntil(async () => closes.length > 0, 15_000, 'the server to close the socket');
        assert.equal(closes[0], 4401);
        // The client connects again for the next operation: the revoked key is refused at connection_init.
        const afterRevoke = await runOnce(client, 'mutation { createTeam(input: { name: "after-revoke" }) { id } }').then(
          () => assert.fail('a revoked key still ran a mutation'),
          (e: { code?: number }) => e,
        );
        assert.equal(afterRevoke.code, 4403);
        const [{ n }] = await t.sql(`SELECT count(*)::int AS n FROM team WHERE name = 'after-revoke'`);
        assert.equal(n, 0);
      } finally {
        await client.dispose();
      }
    });

    it('closes the socket with 4403 for a forged token', async () => {
      const client = wsClient(t.url, admin.slice(0, -3) + 'abc');
      try {
        await assert.rejects(runOnce(client, '{ viewer { id } }'), (e: { code?: number }) => e.code === 4403);
      } finally {
        await client.dispose();
      }
    });
  });

  describe('configuration errors stop the start with one line naming the variable', () => {
    // A database nobody listens on: should a configuration ever pass by mistake, the start still fails here.
    const unreachableDb = 'postgres://127.0.0.1:1/modelgov_never';

    async function failedStart(env: Record<string, string>): Promise<string> {
      const cwd = await scratchDir();
      const { child, exited } = spawnMain({ DATA_DIR: cwd, LOG_LEVEL: 'silent', DATABASE_URL: unreachableDb, ...env }, cwd);
      children.push(child);
      const r = await within(exited, 30_000, 'exit');
      assert.equal(r.code, 1, `exit code; stderr: ${r.stderr}`);
      const lines = r.stderr.trimEnd().split('\n');
      assert.equal(lines.length, 1, `one line on stderr, got: ${r.stderr}`);
      assertNoStackTrace(r.stderr, 'stderr');
      return lines[0];
    }

    it('names PORT when it is not a number', async () => {
      const line = await failedStart({ NODE_ENV: 'test', PORT: 'abc', AUTH_JWT_SECRET: JWT_SECRET });
      assert.match(line, /\bPORT\b/);
      assert.match(line, /abc/, 'a non-secret value is shown');
    });

    it('names AUTH_JWT_SECRET when production has none', async () => {
      const line = await failedStart({ NODE_ENV: 'production', PORT: '0' });
      assert.match(line, /\bAUTH_JWT_SECRET\b/);
    });

    it('names DATABASE_URL without echoing its value', async () => {
      const line = await failedStart({ NODE_ENV: 'test', PORT: '0', AUTH_JWT_SECRET: JWT_SECRET, DATABASE_URL: 'mysql://admin:hunter2@db/x' });
      assert.match(line, /\bDATABASE_URL\b/);
      assert.doesNotMatch(line, /hunter2/);
    });
  });

  describe('graceful shutdown', () => {
    it('drains and exits 0 on SIGTERM, completing a request in flight, with a WebSocket client still connected', async () => {
      const dbName = testDatabaseName('main');
      databases.push(dbName);
      const cwd = await scratchDir();
      const port = await freePort();
      const url = `http://127.0.0.1:${port}`;
      const { child, exited } = spawnMain(
        {
          NODE_ENV: 'test',
          PORT: String(port),
          HOST: '127.0.0.1',
          DATABASE_URL: databaseUrlFor(dbName),
          REDIS_URL: TEST_REDIS_URL,
          REDIS_PREFIX: testRedisPrefix(dbName),
          AUTH_JWT_SECRET: JWT_SECRET,
          SEED_DEMO: 'false',
          DATA_DIR: cwd,
          LOG_LEVEL: 'info',
        },
        cwd,
      );
      children.push(child);
      const early = exited.then((r) => {
        throw new Error(`main.js exited early with ${r.code}: ${r.stderr}${r.stdout.slice(-2000)}`);
      });
      early.catch(() => {});
      await Promise.race([waitUntil(async () => (await request(`${url}/healthz`)).status === 200, 60_000, 'the spawned server to answer /healthz'), early]);

      const token = signToken(JWT_SECRET, { sub: 'ada-admin', roles: ['admin'], teams: [] });
      const g = await postGraphql(url, token, '{ viewer { id } teams { totalCount } }');
      assert.deepEqual(g.json.data, { viewer: { id: 'ada-admin' }, teams: { totalCount: 0 } }, 'serves, and SEED_DEMO=false seeded no teams');

      let closed = false;
      // onNonLazyError: the close at shutdown is expected here, not an error to print.
      const client = wsClient(url, token, { lazy: false, onNonLazyError: () => {}, on: { closed: () => (closed = true) } });
      let stdout = '';
      child.stdout!.on('data', (d) => (stdout += d));
      // The test's own transaction holds the team table: a createTeam sent now stays in flight
      // (waiting for the lock) until the test lets it go, after the drain has begun.
      const holder = new PgClient({ connectionString: databaseUrlFor(dbName) });
      await holder.connect();
      try {
        assert.deepEqual((await runOnce(client, '{ viewer { id } }')).data, { viewer: { id: 'ada-admin' } });
        // The access log names the path as requested, and keeps passing probes out of the info log.
        assert.equal((await request(`${url}/healthz`)).status, 200);
        await postGraphql(url, token, 'query Who { viewer { id } }');
        await waitUntil(async () => stdout.includes('"path":"/graphql"'), 10_000, 'the GraphQL request in the access log');
        const logged = stdout.trim().split('\n').map((l) => JSON.parse(l) as { level: number; msg: string; path?: string });
        assert.ok(logged.some((l) => l.msg === 'request' && l.path === '/graphql' && l.level === 30), 'a GraphQL request is logged under /graphql');
        assert.ok(!logged.some((l) => l.msg === 'request' && l.path === '/healthz' && l.level >= 30), 'a passing probe is not in the info log');
        await holder.query('BEGIN');
        await holder.query('LOCK TABLE team IN SHARE ROW EXCLUSIVE MODE');
        // Its failure is an outcome to report, not an unhandled rejection while the test waits.
        const inFlight = postGraphql(url, token, 'mutation { createTeam(input: { name: "in-flight" }) { name } }').catch((e: Error) => e);
        await waitUntil(
          async () => (await holder.query(`SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()`)).rowCount === 1,
          30_000,
          'the createTeam to wait for the held table',
        );
        child.kill('SIGTERM');
        await waitUntil(async () => stdout.includes('"draining"'), 20_000, 'the server to start draining');
        await waitUntil(() => fetch(`${url}/healthz`).then(() => false, () => true), 20_000, 'the server to stop accepting connections');
        await holder.query('COMMIT');
        const answered = await within(inFlight, 20_000, 'the answer to the request in flight');
        if (answered instanceof Error) assert.fail(`the request in flight failed during the drain: ${answered.message}`);
        assert.equal(answered.status, 200);
        assert.deepEqual(answered.json, { data: { createTeam: { name: 'in-flight' } } }, 'the request in flight when the drain began completed');
        const r = await within(exited, 20_000, 'exit after SIGTERM');
        assert.equal(r.code, 0, `exit code after SIGTERM; stderr: ${r.stderr}`);
        assert.equal(r.signal, null, 'exited by itself, not killed by the signal');
        assert.equal(r.stderr, '');
        assert.deepEqual((await holder.query(`SELECT name FROM team`)).rows, [{ name: 'in-flight' }], 'and its change committed');
        await waitUntil(async () => closed, 10_000, 'the WebSocket client to see its socket closed');
        await assert.rejects(fetch(`${url}/healthz`), 'nothing listens after the exit');
      } finally {
        await client.dispose();
        await holder.end();
      }
    });
  });
});
