import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import jwt from 'jsonwebtoken';
import { Client } from 'pg';
import type { DataSource } from 'typeorm';
import { COMMANDS } from '../../src/cli';
import { openAppDatabase } from '../../src/app/database';
import { databaseUrlFor, dropDatabase, JWT_SECRET, testDatabaseName } from '../support/harness';

const CLI = path.resolve(__dirname, '../../src/cli.js');
const SCHEMA_FILE = path.resolve(__dirname, '../../../schema/schema.graphql');

interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
}

describe('the modelgov command line', () => {
  // Named but never created: a command that connected or migrated would make it exist.
  const absentDb = testDatabaseName('cli_absent');
  const migratedDb = testDatabaseName('cli');
  let dataDir: string;
  let db: DataSource;

  const cli = (args: string[], databaseUrl = databaseUrlFor(absentDb)): Promise<Result> =>
    new Promise((resolve, reject) => {
      const env = {
        ...process.env,
        NODE_ENV: 'test',
        DATABASE_URL: databaseUrl,
        AUTH_JWT_SECRET: JWT_SECRET,
        DATA_DIR: dataDir,
        SECRETS_DIR: `${dataDir}-secrets`,
        LOG_LEVEL: 'silent',
      };
      const child = spawn(process.execPath, [CLI, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d) => (stdout += d));
      child.stderr.on('data', (d) => (stderr += d));
      child.on('error', reject);
      child.on('close', (code) => resolve({ code, stdout, stderr }));
    });

  const databaseExists = async (name: string): Promise<boolean> => {
    const admin = new Client({ connectionString: databaseUrlFor('postgres') });
    await admin.connect();
    try {
      return (await admin.query('SELECT 1 FROM pg_database WHERE datname = $1', [name])).rowCount === 1;
    } finally {
      await admin.end();
    }
  };

  before(async () => {
    dataDir = await mkdtemp(path.join(os.tmpdir(), 'modelgov-cli-'));
    db = await openAppDatabase(databaseUrlFor(migratedDb));
    await db.query(`INSERT INTO team (name) VALUES ('fraud')`);
    await db.query(`INSERT INTO role (name, rules) VALUES ('fraud-analyst', '[]')`);
  });
  after(async () => {
    if (db?.isInitialized) await db.destroy();
    await dropDatabase(migratedDb);
    await dropDatabase(absentDb);
    await rm(dataDir, { recursive: true, force: true });
    await rm(`${dataDir}-secrets`, { recursive: true, force: true });
  });

  it('lists every command in its help', async () => {
    const r = await cli(['--help']);
    assert.equal(r.code, 0, r.stderr);
    for (const c of COMMANDS) assert.match(r.stdout, new RegExp(`^  ${c.name} `, 'm'), `${c.name} is listed`);
  });

  for (const command of COMMANDS) {
    for (const flag of ['--help', '-h']) {
      it(`answers "${command.name} ${flag}" with its own usage and does nothing else`, async () => {
        const schemaBefore = await stat(SCHEMA_FILE);
        const contentBefore = await readFile(SCHEMA_FILE, 'utf8');

        const r = await cli([...command.name.split(' '), flag]);

        assert.equal(r.code, 0, r.stderr);
        assert.equal(r.stderr, '');
        assert.ok(r.stdout.startsWith(`usage: modelgov ${command.name}`), r.stdout);
        assert.match(r.stdout, /options:\n/);
        assert.match(r.stdout, new RegExp(`examples?:\\n  modelgov ${command.name}`));
        assert.equal((await stat(SCHEMA_FILE)).mtimeMs, schemaBefore.mtimeMs, 'the schema file is not touched');
        assert.equal(await readFile(SCHEMA_FILE, 'utf8'), contentBefore);
        assert.equal(await databaseExists(absentDb), false, 'no database is created');
      });
    }
  }

  it('answers "audit --help" with the audit commands', async () => {
    const r = await cli(['audit', '--help']);
    assert.equal(r.code, 0, r.stderr);
    for (const c of COMMANDS.filter((c) => c.name.startsWith('audit '))) assert.ok(r.stdout.includes(c.name), c.name);
  });

  it('names an unknown command and the closest one, exit 2, on stderr', async () => {
    const r = await cli(['migrat']);
    assert.equal(r.code, 2);
    assert.equal(r.stdout, '');
    assert.match(r.stderr, /unknown command "migrat" \(did you mean "migrate"\?\)/);
    const sub = await cli(['audit', 'verfy']);
    assert.equal(sub.code, 2);
    assert.match(sub.stderr, /unknown command "audit verfy" \(did you mean "audit verify"\?\)/);
    assert.equal(await databaseExists(absentDb), false);
  });

  it('names an unknown option and the closest one, exit 2, on stderr, without running the command', async () => {
    const before = await stat(SCHEMA_FILE);
    const r = await cli(['schema', '--chek']);
    assert.equal(r.code, 2);
    assert.equal(r.stdout, '');
    assert.match(r.stderr, /unknown option --chek for "schema" \(did you mean --check\?\)/);
    assert.equal((await stat(SCHEMA_FILE)).mtimeMs, before.mtimeMs);
    const migrate = await cli(['migrate', '--force']);
    assert.equal(migrate.code, 2);
    assert.match(migrate.stderr, /unknown option --force for "migrate"/);
    assert.equal(await databaseExists(absentDb), false);
  });

  it('refuses an unknown role: exit 2, the role named, no token', async () => {
    const r = await cli(['token', '--role', 'nosuchrole']);
    assert.equal(r.code, 2);
    assert.equal(r.stdout, '');
    assert.match(r.stderr, /unknown role "nosuchrole"/);
    assert.equal(await databaseExists(absentDb), false, 'checking a role creates no database');
  });

  it('refuses a team the database does not hold: exit 2, the team named, no token', async () => {
    const r = await cli(['token', '--role', 'ml-engineer', '--team', 'fruad'], databaseUrlFor(migratedDb));
    assert.equal(r.code, 2);
    assert.equal(r.stdout, '');
    assert.match(r.stderr, /unknown team "fruad" \(did you mean "fraud"\?/);
  });

  it('issues a token for a built-in role without a database, and for stored roles and teams', async () => {
    const offline = await cli(['token', '--role', 'admin', '--sub', 'alice', '--hours', '1']);
    assert.equal(offline.code, 0, offline.stderr);
    const claims = jwt.verify(offline.stdout.trim(), JWT_SECRET) as jwt.JwtPayload;
    assert.equal(claims.sub, 'alice');
    assert.deepEqual(claims.roles, ['admin']);
    assert.equal(claims.exp! - claims.iat!, 3600);

    const stored = await cli(['token', '--role', 'fraud-analyst', '--team', 'fraud'], databaseUrlFor(migratedDb));
    assert.equal(stored.code, 0, stored.stderr);
    const storedClaims = jwt.verify(stored.stdout.trim(), JWT_SECRET) as jwt.JwtPayload;
    assert.deepEqual([storedClaims.roles, storedClaims.teams], [['fraud-analyst'], ['fraud']]);
  });
});
