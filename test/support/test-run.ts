import { randomBytes } from 'node:crypto';
import Redis from 'ioredis';
import { Client } from 'pg';
import { withDefaultUser } from '../../src/core/database';

/** The environment variable through which `npm test` tells every test file the run it belongs to. */
export const TEST_RUN_VARIABLE = 'MODELGOV_TEST_RUN';

/** Every test database's name starts with this. */
export const TEST_DATABASE_PREFIX = 'modelgov_test_';
/** Every test server's Redis keys start with this. */
export const TEST_REDIS_PREFIX = 'modelgov-test:';

const RUN_ID = /^r[0-9a-f]{8}$/;

/** A new run id, as `npm test` hands it to the files it runs. */
export const newTestRunId = (): string => `r${randomBytes(4).toString('hex')}`;

// A file run on its own (node --test dist/test/…) is a run of its own: whatever it leaves is never
// mistaken for the leftovers of a suite run beside it.
const inherited = process.env[TEST_RUN_VARIABLE];
/** The run this process belongs to. */
export const TEST_RUN = inherited && RUN_ID.test(inherited) ? inherited : newTestRunId();

/**
 * A new database name of this run (`modelgov_test_<run>_[<kind>_]<random>`); the run's final check
 * finds it by its run id if the test that created it does not drop it.
 */
export function testDatabaseName(kind?: string): string {
  return `${TEST_DATABASE_PREFIX}${TEST_RUN}_${kind ? `${kind}_` : ''}${randomBytes(5).toString('hex')}`;
}

/** The Redis key prefix of a server started for the test resource `name` (a database name of this run). */
export const testRedisPrefix = (name: string): string => `${TEST_REDIS_PREFIX}${name}:`;

/** The PostgreSQL server the tests create their databases in (its `postgres` database). */
export const PG_BASE = process.env.TEST_DATABASE_URL ?? 'postgres://127.0.0.1:5432/postgres';
/** The Redis the tests share, each under its own prefix. */
export const TEST_REDIS_URL = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';

/** The URL of database `name` on the tests' PostgreSQL server. */
export function databaseUrlFor(name: string): string {
  const u = new URL(withDefaultUser(PG_BASE));
  u.pathname = `/${name}`;
  return u.toString();
}

async function withAdmin<T>(work: (client: Client) => Promise<T>): Promise<T> {
  const client = new Client({ connectionString: databaseUrlFor('postgres') });
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end();
  }
}

/** Creates the empty database `name` (a {@link testDatabaseName}). */
export async function createDatabase(name: string): Promise<void> {
  await withAdmin((client) => client.query(`CREATE DATABASE "${name}"`));
}

/** Drops database `name` (and ends its connections) if it exists. */
export async function dropDatabase(name: string): Promise<void> {
  await withAdmin((client) => client.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`));
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

/** The test databases and the Redis key prefixes of test servers that exist now. */
export interface TestResources {
  databases: string[];
  /** The databases some process is connected to now. */
  connected: Set<string>;
  /** Each prefix (`modelgov-test:<name>:`) with the number of keys under it. */
  redisPrefixes: Map<string, number>;
}

/** Lists what tests have created and not yet removed, from every run. */
export async function listTestResources(redisUrl = TEST_REDIS_URL): Promise<TestResources> {
  const { databases, connected } = await withAdmin(async (client) => {
    const { rows } = await client.query<{ datname: string; connected: boolean }>(
      `SELECT d.datname, EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.datid = d.oid) AS connected FROM pg_database d WHERE starts_with(d.datname, $1)`,
      [TEST_DATABASE_PREFIX],
    );
    return { databases: rows.map((r) => r.datname), connected: new Set(rows.filter((r) => r.connected).map((r) => r.datname)) };
  });
  const redisPrefixes = new Map<string, number>();
  const redis = new Redis(redisUrl, { lazyConnect: true, maxRetriesPerRequest: 1 });
  try {
    await redis.connect();
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${TEST_REDIS_PREFIX}*`, 'COUNT', 1000);
      for (const key of keys) {
        const end = key.indexOf(':', TEST_REDIS_PREFIX.length);
        const prefix = end < 0 ? key : key.slice(0, end + 1);
        redisPrefixes.set(prefix, (redisPrefixes.get(prefix) ?? 0) + 1);
      }
      cursor = next;
    } while (cursor !== '0');
  } finally {
    redis.disconnect();
  }
  return { databases: databases.sort(), connected, redisPrefixes };
}

/** The databases whose server may use Redis prefix `prefix` (`modelgov-test:<name>:`, or `modelgov-test:<suffix>:` for `modelgov_test_<suffix>`). */
export function databasesOfPrefix(prefix: string): string[] {
  const name = prefix.slice(TEST_REDIS_PREFIX.length).replace(/:$/, '');
  return name.startsWith(TEST_DATABASE_PREFIX) ? [name] : [name, `${TEST_DATABASE_PREFIX}${name}`];
}

/**
 * The run a test database name or Redis prefix belongs to, or null for a name made without
 * `testDatabaseName` (which then belongs to whichever run saw it appear).
 */
export function runOf(name: string): string | null {
  const rest = name.startsWith(TEST_REDIS_PREFIX) ? name.slice(TEST_REDIS_PREFIX.length) : name;
  if (!rest.startsWith(TEST_DATABASE_PREFIX)) return null;
  const run = rest.slice(TEST_DATABASE_PREFIX.length).split('_')[0];
  return RUN_ID.test(run) ? run : null;
}
