import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { JWT_SECRET, type TestServer } from './harness';

/** An audit_event row as stored (the columns the tests look at). */
export interface AuditRow {
  seq: number;
  action: string;
  actor_id: string;
  subject_type: string;
  subject_id: string | null;
  decision: 'ALLOWED' | 'DENIED';
  reason: string | null;
}

const AUDIT_COLUMNS = 'seq::int AS seq, action, actor_id, subject_type, subject_id, decision::text AS decision, reason';

export async function auditCount(t: TestServer): Promise<number> {
  const [{ n }] = await t.sql<{ n: number }>('SELECT count(*)::int AS n FROM audit_event');
  return n;
}

/** Runs `work` and asserts it appended exactly one audit event; returns its result and that event. */
export async function withOneNewEvent<T>(t: TestServer, work: () => Promise<T>): Promise<{ value: T; event: AuditRow }> {
  const before = await auditCount(t);
  const value = await work();
  assert.equal(await auditCount(t), before + 1, 'exactly one audit event is written');
  const [event] = await t.sql<AuditRow>(`SELECT ${AUDIT_COLUMNS} FROM audit_event ORDER BY seq DESC LIMIT 1`);
  return { value, event };
}

/** Number of rows in every table of the public schema, migrations table aside. */
export async function rowCounts(t: TestServer): Promise<Record<string, number>> {
  const tables = await t.sql<{ name: string }>(
    `SELECT table_name AS name FROM information_schema.tables WHERE table_schema = 'public' AND table_type = 'BASE TABLE' AND table_name <> 'schema_migration' ORDER BY 1`,
  );
  const out: Record<string, number> = {};
  for (const { name } of tables) out[name] = (await t.sql<{ n: number }>(`SELECT count(*)::int AS n FROM "${name}"`))[0].n;
  return out;
}

/**
 * Checks the links of the chain in SQL, independently of the server's verifier: seq runs 1..n
 * without gaps, each prev_hash is the previous row's hash, and the chain head names the last row.
 * Returns the problems found (none when intact).
 */
export async function chainProblems(t: Pick<TestServer, 'sql'>): Promise<string[]> {
  const rows = await t.sql<{ seq: number; prev_hash: string; hash: string }>('SELECT seq::int AS seq, prev_hash, hash FROM audit_event ORDER BY seq');
  const problems: string[] = [];
  let prevHash = '0'.repeat(64);
  rows.forEach((row, i) => {
    if (row.seq !== i + 1) problems.push(`row ${i + 1} has seq ${row.seq}`);
    if (row.prev_hash !== prevHash) problems.push(`seq ${row.seq} does not link to the row before it`);
    prevHash = row.hash;
  });
  const [head] = await t.sql<{ seq: number; hash: string }>('SELECT seq::int AS seq, hash FROM audit_head WHERE id = 1');
  if (rows.length && (head?.seq !== rows.length || head.hash !== prevHash)) problems.push(`the chain head (${JSON.stringify(head)}) is not the last row`);
  return problems;
}

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs the compiled CLI (`audit verify`, `audit anchor`, …) against the test server's database
 * with its keys, as an operator would; `env` adds or overrides variables (AUDIT_ANCHOR_FILE).
 */
export function runAuditCli(t: Pick<TestServer, 'databaseUrl' | 'config'>, args: string[], env: Record<string, string> = {}): Promise<CliResult> {
  const cli = path.resolve(__dirname, '../../src/cli.js');
  const childEnv = {
    ...process.env,
    NODE_ENV: 'test',
    DATABASE_URL: t.databaseUrl,
    AUTH_JWT_SECRET: JWT_SECRET,
    DATA_DIR: t.config.dataDir,
    SECRETS_DIR: t.config.secretsDir,
    LOG_LEVEL: 'silent',
    ...env,
  };
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [cli, ...args], { env: childEnv, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** Runs the compiled `audit verify` command against the test server's database, as an operator would. */
export function runAuditVerify(t: Pick<TestServer, 'databaseUrl' | 'config'>): Promise<CliResult> {
  return runAuditCli(t, ['audit', 'verify']);
}

/** Uploads artifact bytes through POST /artifacts, as a client would; returns the server's answer. */
export async function uploadArtifact(t: TestServer, token: string, bytes: Buffer): Promise<{ status: number; body: { sha256: string; created: boolean } }> {
  const res = await fetch(`${t.url}/artifacts`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/octet-stream' },
    body: bytes,
  });
  return { status: res.status, body: (await res.json()) as { sha256: string; created: boolean } };
}
