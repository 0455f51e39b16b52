import assert from 'node:assert/strict';
import { after, afterEach, before, describe, it } from 'node:test';
import { createClient, type Client } from 'graphql-ws';
import { Client as PgClient } from 'pg';
import WebSocket from 'ws';
import { verifyExport } from '../../src/audit/audit-export.verify';
import { downloadSignature } from '../../src/audit/audit-export.http';
import { TOPICS } from '../../src/core/events';
import { fromGlobalId } from '../../src/core/global-id';
import { QUEUES } from '../../src/core/queue/queues';
import { appendGeneratedEvents } from '../support/audit-chain';
import { codeOf, JWT_SECRET, startTestServer, type TestServer } from '../support/harness';
import { eventually } from '../support/processes';

const REQUEST = `mutation($f: AuditExportFilterInput, $format: AuditExportFormat) { requestAuditExport(filter: $f, format: $format) { id status progress } }`;
const STATUS = `query($id: ID!) { auditExport(id: $id) { id status progress processed format asFile sizeBytes manifest download { url manifestUrl expiresAt } } }`;

describe('exports written to a file by a job', () => {
  let t: TestServer;
  let auditor: string;
  const sockets: Client[] = [];

  before(async () => {
    t = await startTestServer({ env: { AUDIT_EXPORT_PAGE_ROWS: '500' } });
    auditor = t.token(['auditor'], [], 'audrey-auditor');
    await appendGeneratedEvents(t.server.app.db, 5000);
  });
  // A test that stopped half way leaves neither the queue paused nor the export row locked.
  afterEach(async () => {
    for (const c of lockers.splice(0)) await c.end().catch(() => undefined);
    await t.server.app.queues?.get(QUEUES.auditExports).resume();
  });
  after(async () => {
    for (const s of sockets) await s.dispose();
    await t?.stop();
  });

  const lockers: PgClient[] = [];
  interface RowLock {
    release(): Promise<void>;
  }

  /**
   * Takes the export row's lock (FOR UPDATE) in a transaction of its own. With `after`, the lock is
   * first queued behind the job's waiting write and `after` is then released: the job's write goes
   * through, and its next write waits for this lock.
   */
  async function lockRow(key: string, opts: { after?: RowLock } = {}): Promise<RowLock> {
    const c = new PgClient({ connectionString: t.databaseUrl });
    lockers.push(c);
    await c.connect();
    const { rows } = await c.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
    await c.query('BEGIN');
    const locked = c.query('SELECT 1 FROM audit_export WHERE id = $1 FOR UPDATE', [key]);
    locked.catch(() => undefined); // awaited below
    if (opts.after) {
      await eventually('the next lock to queue behind the job', async () => ((await t.sql(`SELECT 1 FROM pg_stat_activity WHERE pid = $1 AND wait_event_type = 'Lock'`, [rows[0].pid])).length ? true : undefined), 60_000, 20);
      await opts.after.release();
    }
    await locked;
    return {
      async release() {
        await c.query('COMMIT');
        await c.end();
      },
    };
  }

  /** Whether a write to an export row waits for a lock (the job's, since nothing else writes it). */
  const jobWaitingForRow = async () =>
    (await t.sql<{ n: number }>(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' AND query ILIKE 'UPDATE%audit_export%'`))[0].n > 0;

  it('queues the export, reports progress live, and offers an expiring link to a file that verifies', async () => {
    const client = createClient({ url: t.url.replace(/^http/, 'ws') + '/graphql', webSocketImpl: WebSocket, connectionParams: { authorization: `Bearer ${auditor}` }, retryAttempts: 0, lazy: false });
    sockets.push(client);
    // The queue holds the job until the subscription is known to be live.
    const queue = t.server.app.queues!.get(QUEUES.auditExports);
    await queue.pause();
    const requested = await t.gql(auditor, REQUEST, { f: { actor: 'bench:fraud-engineer' }, format: 'NDJSON' });
    assert.equal(requested.errors, undefined, JSON.stringify(requested.errors));
    const id = requested.data.requestAuditExport.id;
    assert.equal(requested.data.requestAuditExport.status, 'QUEUED');
    const key = fromGlobalId(id).key;
    const seen: Array<{ status: string; progress: number }> = [];
    const done = new Promise<void>((resolve, reject) => {
      client.subscribe(
        { query: `subscription($id: ID!) { auditExportUpdated(id: $id) { status progress } }`, variables: { id } },
        {
          next: (m) => {
            if (m.errors) return reject(new Error(JSON.stringify(m.errors)));
            const e = m.data!.auditExportUpdated as { status: string; progress: number };
            seen.push(e);
            if (e.status === 'SUCCEEDED' || e.status === 'FAILED') resolve();
          },
          error: reject,
          complete: () => reject(new Error('the subscription ended before the export did')),
        },
      );
    });
    done.catch(() => undefined); // awaited below, once the job runs
    // The subscription is live once an event about this export reaches it; the job has not begun.
    await eventually('the subscription to be live', async () => {
      t.server.app.events!.publish(TOPICS.auditExportUpdated, { id: key });
      return seen.length ? true : undefined;
    });
    assert.deepEqual(seen[0], { status: 'QUEUED', progress: 0 });
    // Each write of the job to its row waits for the row lock held here, so the state a published
    // event is read in is known: the lock passes to the job one write at a time, until an event
    // has shown the export part done.
    const locker = await lockRow(key);
    await queue.resume();
    let holder = locker;
    let partial: number | undefined;
    while (partial === undefined) {
      await eventually('the job to wait for its next write', async () => ((await jobWaitingForRow()) ? true : undefined), 60_000, 20);
      const [row] = await t.sql<{ status: string; progress: number }>('SELECT status::text AS status, progress FROM audit_export WHERE id = $1', [key]);
      if (row.status === 'RUNNING' && row.progress > 0 && row.progress < 1) {
        partial = row.progress;
        break;
      }
      holder = await lockRow(key, { after: holder });
    }
    // Published before the job reached the write it waits on: the subscriber reads exactly that state.
    await eventually('the part-done progress to be heard', async () => (seen.some((e) => e.status === 'RUNNING' && e.progress === partial) ? true : undefined));
    await holder.release();
    await Promise.race([done, eventually('the finished state to be heard', async () => (seen.some((e) => e.status === 'SUCCEEDED' || e.status === 'FAILED') ? true : undefined))]);
    // Events in order: queued, running with progress that never goes back, then finished at 1.
    const rank = { QUEUED: 0, RUNNING: 1, SUCCEEDED: 2 } as Record<string, number>;
    for (let i = 1; i < seen.length; i++) {
      assert.ok(seen[i].status in rank, `unexpected status ${seen[i].status}`);
      assert.ok(rank[seen[i].status] >= rank[seen[i - 1].status], `status went back: ${JSON.stringify(seen)}`);
      assert.ok(seen[i].progress >= seen[i - 1].progress, `progress went back: ${JSON.stringify(seen)}`);
    }
    assert.ok(seen.some((e) => e.status === 'RUNNING'));
    assert.deepEqual(seen[seen.length - 1], { status: 'SUCCEEDED', progress: 1 });
    const r = await t.gql(auditor, STATUS, { id });
    const exp = r.data.auditExport;
    assert.equal(exp.status, 'SUCCEEDED');
    assert.equal(exp.progress, 1);
    assert.equal(exp.asFile, true);
    assert.ok(exp.download.url.startsWith(`/audit/exports/${id}/file?expires=`));
    assert.ok(new Date(exp.download.expiresAt).getTime() > Date.now());
    // The link works without a credential: it is the credential.
    const file = await fetch(`${t.url}${exp.download.url}`);
    assert.equal(file.status, 200);
    const text = await file.text();
    assert.equal(Buffer.byteLength(text), exp.sizeBytes);
    const v = verifyExport(text, { publicKeyPem: await (await fetch(`${t.url}/audit/export/public-key`)).text() });
    assert.equal(v.ok, true, v.problem ?? '');
    assert.equal(v.events, exp.manifest.events);
    assert.ok(v.events >= 2400 && v.omitted >= 2400);
    const manifest = await fetch(`${t.url}${exp.download.manifestUrl}`);
    assert.deepEqual(await manifest.json(), exp.manifest);
    // A link past its time, or with a forged signature, is refused.
    const past = Math.floor(Date.now() / 1000) - 10;
    const expired = await fetch(`${t.url}/audit/exports/${id}/file?expires=${past}&signature=${downloadSignature(JWT_SECRET, key, past)}`);
    assert.equal(expired.status, 403);
    assert.equal(((await expired.json()) as any).errors[0].extensions.reason, 'LINK_EXPIRED');
    const forged = await fetch(`${t.url}${exp.download.url.replace(/expires=\d+/, `expires=${past + 100000}`)}`);
    assert.equal(forged.status, 403);
    const [events] = await t.sql(`SELECT count(*)::int AS n FROM audit_event WHERE subject_id = $1`, [id]);
    assert.equal(events.n, 2, 'requested and finished, each audited');
  });

  it('a CSV file comes with its manifest; a viewer may neither request nor read exports; bad filters are refused', async () => {
    const requested = await t.gql(auditor, REQUEST, { f: { from: '2000-01-01T00:00:00Z' }, format: 'CSV' });
    const id = requested.data.requestAuditExport.id;
    const exp = await eventually('the CSV export to finish', async () => {
      const r = await t.gql(auditor, STATUS, { id });
      return r.data.auditExport.status === 'SUCCEEDED' ? r.data.auditExport : undefined;
    });
    const csv = await (await fetch(`${t.url}${exp.download.url}`)).text();
    const manifest = await (await fetch(`${t.url}${exp.download.manifestUrl}`)).text();
    const v = verifyExport(csv, { manifest });
    assert.equal(v.ok, true, v.problem ?? '');
    const viewer = t.token(['viewer'], [], 'vera-viewer');
    assert.equal(codeOf(await t.gql(viewer, REQUEST, {})), 'FORBIDDEN');
    assert.equal(codeOf(await t.gql(viewer, STATUS, { id })), 'FORBIDDEN');
    assert.equal(codeOf(await t.gql(null, STATUS, { id })), 'UNAUTHENTICATED');
    const bad = await t.gql(auditor, REQUEST, { f: { from: '2026-02-01T00:00:00Z', to: '2026-01-01T00:00:00Z' } });
    assert.equal(codeOf(bad), 'BAD_USER_INPUT');
    const wrongScope = await t.gql(auditor, REQUEST, { f: { scope: id } });
    assert.equal(codeOf(wrongScope), 'BAD_USER_INPUT');
  });
});
