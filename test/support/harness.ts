import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import Redis from 'ioredis';
import { Client } from 'pg';
import { signToken } from '../../src/access/authenticate';
import { loadConfig, type Config } from '../../src/config';
import { createLogger } from '../../src/core/logger';
import { withDefaultUser } from '../../src/core/database';
import { startServer, type RunningServer } from '../../src/server';
import { seedDemo } from '../../src/seed/demo';

export const JWT_SECRET = 'test-secret-that-is-long-enough-for-hs256-0123456789';
export const PG_BASE = process.env.TEST_DATABASE_URL ?? 'postgres://127.0.0.1:5432/postgres';

export interface GqlResult<T = any> {
  data?: T;
  errors?: Array<{ message: string; path?: string[]; extensions: { code: string; reason?: string; requestId?: string; [k: string]: unknown } }>;
  status: number;
}

export interface TestServer {
  server: RunningServer;
  url: string;
  databaseUrl: string;
  config: Config;
  token(roles: string[], teams: string[], sub?: string): string;
  gql<T = any>(token: string | null, query: string, variables?: Record<string, unknown>): Promise<GqlResult<T>>;
  sql<T = any>(text: string, params?: unknown[]): Promise<T[]>;
  stop(): Promise<void>;
}

export function databaseUrlFor(name: string): string {
  const u = new URL(withDefaultUser(PG_BASE));
  u.pathname = `/${name}`;
  return u.toString();
}

export async function dropDatabase(name: string): Promise<void> {
  const client = new Client({ connectionString: databaseUrlFor('postgres') });
  await client.connect();
  try {
    await client.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
  } finally {
    await client.end();
  }
}

/**
 * Starts the real server on a free port against its own new database (built by the migrations),
 * its own Redis key prefix and its own artifact directory; `stop` removes all three.
 */
export async function startTestServer(opts: { demo?: boolean; env?: Record<string, string> } = {}): Promise<TestServer> {
  const suffix = randomBytes(5).toString('hex');
  const dbName = `modelgov_test_${suffix}`;
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'modelgov-test-'));
  // Outside the data directory, as by default; never the developer's own config directory.
  const secretsDir = `${dataDir}-secrets`;
  const databaseUrl = databaseUrlFor(dbName);
  const config = loadConfig({
    NODE_ENV: 'test',
    PORT: '0',
    HOST: '127.0.0.1',
    DATABASE_URL: databaseUrl,
    REDIS_URL: process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379',
    REDIS_PREFIX: `modelgov-test:${suffix}:`,
    AUTH_JWT_SECRET: JWT_SECRET,
    DATA_DIR: dataDir,
    SECRETS_DIR: secretsDir,
    LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'silent',
    // One inference thread per pool unless a test asks for more: most files never predict.
    INFERENCE_THREADS: '1',
    INFERENCE_PRODUCTION_THREADS: '1',
    ...opts.env,
  });
  const server = await startServer(config, createLogger(config.logLevel));
  if (opts.demo) await seedDemo(server.app);
  // The demo's deployments are served once loaded: wait for that rather than race it.
  await server.app.inference?.reconcile();
  const url = server.url;
  return {
    server,
    url,
    databaseUrl,
    config,
    token: (roles, teams, sub = `test-${roles.join('+') || 'none'}-${teams.join('+')}`) => signToken(JWT_SECRET, { sub, roles, teams }),
    async gql(token, query, variables) {
      const res = await fetch(`${url}/graphql`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
        body: JSON.stringify({ query, variables }),
      });
      const body = (await res.json()) as GqlResult;
      return { ...body, status: res.status };
    },
    sql: (text, params) => server.app.db.query(text, params),
    async stop() {
      await server.stop();
      await removeRedisKeys(config.redisUrl, config.redisPrefix);
      // Says what keeps a test file's process alive if it does not exit (never fires otherwise).
      if (process.env.NODE_TEST_CONTEXT) setTimeout(() => {
        const handles = (process as unknown as { _getActiveHandles(): object[] })._getActiveHandles().map((h) => h.constructor.name);
        process.stderr.write(`test process still alive 30 s after stop; handles: ${handles.join(', ')}\n`);
      }, 30_000).unref();
      await dropDatabase(dbName);
      await rm(dataDir, { recursive: true, force: true });
      await rm(secretsDir, { recursive: true, force: true });
    },
  };
}

/** Deletes every key under `prefix` (queues, jobs) from a Redis the test shared with others. */
export async function removeRedisKeys(url: string, prefix: string): Promise<void> {
  const redis = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1, retryStrategy: () => null });
  redis.on('error', () => undefined);
  try {
    await redis.connect();
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
      if (keys.length) await redis.del(...keys);
      cursor = next;
    } while (cursor !== '0');
  } catch {
    // A Redis the test stopped on purpose has nothing left to clean.
  } finally {
    redis.disconnect();
  }
}

/** The first error's code, or 'none'. */
export const codeOf = (r: GqlResult) => r.errors?.[0]?.extensions.code ?? 'none';
