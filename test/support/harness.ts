import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { signToken } from '../../src/access/authenticate';
import { loadConfig, type Config } from '../../src/config';
import { createLogger, type Logger } from '../../src/core/logger';
import { startServer, type RunningServer } from '../../src/app/server';
import { seedDemo } from '../../src/app/seed/demo';
import { databaseUrlFor, dropDatabase, removeRedisKeys, TEST_REDIS_URL, testDatabaseName, testRedisPrefix } from './test-run';

export { createDatabase, databaseUrlFor, dropDatabase, PG_BASE, removeRedisKeys, TEST_REDIS_URL, testDatabaseName, testRedisPrefix } from './test-run';

export const JWT_SECRET = 'test-secret-that-is-long-enough-for-hs256-0123456789';

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

/**
 * Starts the real server on a free port against its own new database (built by the migrations),
 * its own Redis key prefix and its own artifact directory; `stop` removes all three. `log` replaces
 * its logger (to read what it logs).
 */
export async function startTestServer(opts: { demo?: boolean; env?: Record<string, string>; log?: Logger } = {}): Promise<TestServer> {
  const dbName = testDatabaseName();
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'modelgov-test-'));
  // Outside the data directory, as by default; never the developer's own config directory.
  const secretsDir = `${dataDir}-secrets`;
  const databaseUrl = databaseUrlFor(dbName);
  const config = loadConfig({
    NODE_ENV: 'test',
    PORT: '0',
    HOST: '127.0.0.1',
    DATABASE_URL: databaseUrl,
    REDIS_URL: TEST_REDIS_URL,
    REDIS_PREFIX: testRedisPrefix(dbName),
    AUTH_JWT_SECRET: JWT_SECRET,
    DATA_DIR: dataDir,
    SECRETS_DIR: secretsDir,
    LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'silent',
    // One inference thread per pool unless a test asks for more: most files never predict.
    INFERENCE_THREADS: '1',
    INFERENCE_PRODUCTION_THREADS: '1',
    ...opts.env,
  });
  const server = await startServer(config, opts.log ?? createLogger(config.logLevel));
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

/** The first error's code, or 'none'. */
export const codeOf = (r: GqlResult) => r.errors?.[0]?.extensions.code ?? 'none';

/**
 * The environment of a separate worker process (`jobs/worker.js`) for a test server: its database,
 * Redis prefix, data and secrets, warnings only; `extra` adds or overrides variables.
 */
export function workerEnv(t: TestServer, extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  return {
    PATH: process.env.PATH ?? '',
    NODE_ENV: 'test',
    DATABASE_URL: t.databaseUrl,
    REDIS_URL: t.config.redisUrl,
    REDIS_PREFIX: t.config.redisPrefix,
    AUTH_JWT_SECRET: JWT_SECRET,
    DATA_DIR: t.config.dataDir,
    SECRETS_DIR: t.config.secretsDir,
    LOG_LEVEL: 'warn',
    ...extra,
  };
}
