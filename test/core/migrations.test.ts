import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { DataSource } from 'typeorm';
import { MIGRATIONS } from '../../migrations';
import { openAppDatabase } from '../../src/app/database';
import { databaseUrlFor, dropDatabase, testDatabaseName } from '../support/harness';

describe('the schema comes only from the migrations', () => {
  const dbName = testDatabaseName('migrations');
  let db: DataSource;
  before(async () => {
    db = await openAppDatabase(databaseUrlFor(dbName));
  });
  after(async () => {
    if (db?.isInitialized) await db.destroy();
    await dropDatabase(dbName);
  });

  const pendingSchemaChanges = async () => (await db.driver.createSchemaBuilder().log()).upQueries.map((q) => q.query);
  const publicTables = async () =>
    (await db.query(`SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY table_name`)).map((r: { table_name: string }) => r.table_name);
  const appliedMigrations = async () => (await db.query('SELECT name FROM schema_migration ORDER BY id')).map((r: { name: string }) => r.name);

  it('builds, on a fresh database, exactly the schema the entities describe', async () => {
    assert.deepEqual(await appliedMigrations(), MIGRATIONS.map((m) => m.name));
    assert.deepEqual(await pendingSchemaChanges(), []);
    assert.ok((await publicTables()).includes('audit_event'));
  });

  it('undoes every migration, leaving only the migrations table, and applies them again to the same schema', async () => {
    for (let i = 0; i < MIGRATIONS.length; i++) await db.undoLastMigration();

    assert.deepEqual(await appliedMigrations(), []);
    assert.deepEqual(await publicTables(), ['schema_migration']);
    // Objects owned by an extension (pgcrypto, which the connection itself installs) are not the migrations'.
    const leftovers = await db.query(`
      SELECT t.typname AS name FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
       WHERE n.nspname = 'public' AND t.typtype = 'e'
      UNION ALL
      SELECT p.proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
       WHERE n.nspname = 'public' AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = p.oid AND d.deptype = 'e')`);
    assert.deepEqual(leftovers, [], 'enum types and functions are dropped too');

    await db.runMigrations();
    assert.deepEqual(await appliedMigrations(), MIGRATIONS.map((m) => m.name));
    assert.deepEqual(await pendingSchemaChanges(), []);
    const [{ count }] = await db.query(`SELECT count(*)::int AS count FROM pg_trigger WHERE tgrelid = 'audit_event'::regclass AND NOT tgisinternal`);
    assert.equal(count, 2, 'the append-only triggers are back');
  });
});
