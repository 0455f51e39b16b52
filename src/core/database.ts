import { userInfo } from 'node:os';
import { Client } from 'pg';
import { DataSource, type DataSourceOptions, type Logger as TypeOrmLogger } from 'typeorm';
import { endpointOf, errorText } from './logger';
import { SnakeNamingStrategy } from './naming-strategy';

/** Counts SQL statements, for tests and benchmarks that hold the statement budget. */
export class StatementCounter implements TypeOrmLogger {
  count = 0;
  logQuery(): void {
    this.count += 1;
  }
  logQueryError(): void {}
  logQuerySlow(): void {}
  logSchemaBuild(): void {}
  logMigration(): void {}
  log(): void {}
}

/**
 * libpq's rule, which node-postgres lacks where $USER is unset: no user in the URL means the OS user
 * (the configuration has already applied $PGUSER to the URL it gives).
 */
export function withDefaultUser(url: string): string {
  const u = new URL(url);
  if (!u.username) u.username = encodeURIComponent(userInfo().username);
  return u.toString();
}

/** What the database holds: the entities and the migrations that build their tables (given by the assembly). */
export interface DatabaseSchema {
  entities: NonNullable<DataSourceOptions['entities']>;
  migrations: NonNullable<DataSourceOptions['migrations']>;
}

export function createDataSource(url: string, schema: DatabaseSchema, counter = new StatementCounter()): DataSource {
  return new DataSource({
    type: 'postgres',
    url: withDefaultUser(url),
    entities: schema.entities,
    migrations: schema.migrations,
    migrationsTableName: 'schema_migration',
    migrationsTransactionMode: 'each',
    namingStrategy: new SnakeNamingStrategy(),
    synchronize: false,
    uuidExtension: 'pgcrypto',
    logging: ['query'],
    logger: counter,
    extra: { max: 20, application_name: 'modelgov' },
  });
}

/** Creates the database named in `url` when it does not exist yet. */
export async function ensureDatabase(url: string): Promise<void> {
  const target = new URL(url);
  const name = decodeURIComponent(target.pathname.replace(/^\//, ''));
  if (!name) throw new Error('DATABASE_URL names no database');
  const admin = new URL(withDefaultUser(url));
  admin.pathname = '/postgres';
  const client = new Client({ connectionString: admin.toString() });
  await client.connect();
  try {
    const { rowCount } = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [name]);
    if (!rowCount) {
      await client.query(`CREATE DATABASE "${name.replace(/"/g, '""')}"`).catch((e: { code?: string }) => {
        if (e.code !== '42P04') throw e; // created meanwhile by another process
      });
    }
  } finally {
    await client.end();
  }
}

/** PostgreSQL could not be reached (or refused the connection) at DATABASE_URL; the message names where, never the password. */
export class DatabaseUnreachableError extends Error {
  constructor(url: string, cause: unknown) {
    super(`cannot connect to PostgreSQL at DATABASE_URL (${endpointOf(url)}): ${errorText(cause)}`);
    this.name = 'DatabaseUnreachableError';
  }
}

/** Connects and applies pending migrations (each in its own transaction). */
export async function openDatabase(url: string, schema: DatabaseSchema, counter?: StatementCounter): Promise<DataSource> {
  const db = createDataSource(url, schema, counter);
  await ensureDatabase(url).catch((e) => {
    throw new DatabaseUnreachableError(withDefaultUser(url), e);
  });
  await db.initialize().catch((e: { code?: unknown }) => {
    // Refused or lost connections (a socket error, classes 08, 28, 3D, 57P); anything else is no fault of the setting.
    throw typeof e.code === 'string' && /^(E[A-Z]+$|08|28|3D|57P)/.test(e.code) ? new DatabaseUnreachableError(withDefaultUser(url), e) : e;
  });
  await db.runMigrations();
  return db;
}

/**
 * Runs `work` on a client of `pool` and gives the client back. A connection that drops meanwhile
 * reports it as the client's 'error' event, which a checked-out client has no other listener for
 * (the pool's is off while it is out; unheard, the event would end the process): it is heard here
 * until the release, and such a client is not given back to others — nor, with
 * `discardOnFailure`, one whose work failed in any way (a COPY cut short).
 */
export async function withPoolClient<T>(pool: import('pg').Pool, work: (client: import('pg').PoolClient) => Promise<T>, opts: { discardOnFailure?: boolean } = {}): Promise<T> {
  const client = await pool.connect();
  let broken: Error | undefined;
  let failed: Error | undefined;
  const onError = (e: Error) => void (broken ??= e);
  client.on('error', onError);
  try {
    return await work(client);
  } catch (e) {
    failed = e as Error;
    throw e;
  } finally {
    client.release(broken ?? (opts.discardOnFailure ? failed : undefined));
    // Released, the client is heard by the pool again.
    client.removeListener('error', onError);
  }
}

/** Runs `work` in one transaction on a client of `pool` (committed when it resolves, rolled back when it throws). */
export async function inPoolTransaction<T>(pool: import('pg').Pool, work: (client: import('pg').PoolClient) => Promise<T>): Promise<T> {
  return withPoolClient(pool, async (client) => {
    await client.query('BEGIN');
    try {
      const out = await work(client);
      await client.query('COMMIT');
      return out;
    } catch (e) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw e;
    }
  });
}
