import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, describe, it } from 'node:test';
import type { Pool } from 'pg';
import { verifyExport } from '../../src/audit/audit-export.verify';
import { fromGlobalId } from '../../src/core/global-id';
import { appendGeneratedEvents } from '../support/audit-chain';
import { startTestServer, type TestServer } from '../support/harness';
import { eventually } from '../support/processes';

describe('a client that leaves in the middle of an export', () => {
  let t: TestServer;
  let auditor: string;

  before(async () => {
    t = await startTestServer({ env: { AUDIT_EXPORT_PAGE_ROWS: '1000' } });
    auditor = t.token(['auditor'], [], 'audrey-auditor');
    await appendGeneratedEvents(t.server.app.db, 60_000);
  });
  after(async () => t?.stop());

  const pool = () => (t.server.app.db.driver as unknown as { master: Pool }).master;
  const busyBackends = async () =>
    (
      await t.sql<{ n: number }>(
        `SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() AND state NOT IN ('idle')`,
      )
    )[0].n;

  it('leaves no connection checked out, no query running, and the export recorded as ABORTED', async () => {
    const idleBefore = pool().idleCount;
    const totalBefore = pool().totalCount;
    let received = 0;
    const exportId = await new Promise<string>((resolve, reject) => {
      const req = http.get(`${t.url}/audit/export?format=ndjson`, { headers: { authorization: `Bearer ${auditor}` } }, (res) => {
        assert.equal(res.statusCode, 200);
        res.on('data', (chunk: Buffer) => {
          received += chunk.length;
          // Read a little, then go away without a word, the way a crashed client does.
          if (received > 256 * 1024) {
            req.destroy();
            const id = res.headers['x-audit-export-id'];
            if (typeof id === 'string' && id !== '') resolve(id);
            else reject(new Error('the response does not name its export (X-Audit-Export-Id)'));
          }
        });
        res.on('error', () => undefined);
      });
      req.on('error', () => undefined);
      setTimeout(() => reject(new Error('no data')), 30_000).unref();
    });
    // This export's own row, by the id the response gave: not whichever export is newest.
    const { type, key } = fromGlobalId(exportId);
    assert.equal(type, 'AuditExport');
    const [row] = await eventually('the export to be recorded as aborted', async () => {
      const rows = await t.sql<{ status: string; error: string }>(`SELECT status::text AS status, error FROM audit_export WHERE id = $1`, [key]);
      return rows[0]?.status === 'ABORTED' ? rows : undefined;
    });
    assert.match(row.error, /client closed the connection/);
    // Every connection the export used is back in the pool, idle; nothing runs in the database.
    await eventually('the pool to be idle again', async () => (pool().idleCount === pool().totalCount ? true : undefined));
    assert.ok(pool().totalCount <= Math.max(totalBefore, 10), `pool grew to ${pool().totalCount}`);
    assert.ok(pool().idleCount >= idleBefore || pool().idleCount === pool().totalCount);
    assert.equal(await busyBackends(), 0);
    // The server carries on: a whole export right after is complete and verifies.
    const res = await fetch(`${t.url}/audit/export?format=ndjson&from=2000-01-01`, { headers: { authorization: `Bearer ${auditor}` } });
    const text = await res.text();
    const r = verifyExport(text);
    assert.equal(r.ok, true, r.problem ?? '');
    assert.ok(r.events > 60_000);
  });
  it('fails the export, and not the server, when its database connection drops in the middle of a COPY', async () => {
    type Client = { _activeQuery?: { constructor: { name: string } }; connection: { stream: { destroy(): void } } };
    let dropped = false;
    let received = '';
    const exportId = await new Promise<string>((resolve, reject) => {
      const req = http.get(`${t.url}/audit/export?format=ndjson`, { headers: { authorization: `Bearer ${auditor}` } }, (res) => {
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          received += chunk;
          if (dropped) return;
          // The connection a page's COPY is being read on, cut the way a network drop cuts it: no word from the database.
          const reading = (pool() as unknown as { _clients: Client[] })._clients.find((c) => c._activeQuery?.constructor.name === 'CopyOutQuery');
          if (reading) {
            dropped = true;
            reading.connection.stream.destroy();
          }
        });
        const done = () => resolve(String(res.headers['x-audit-export-id']));
        res.on('end', done);
        res.on('error', done);
        res.on('close', done);
      });
      req.on('error', reject);
      setTimeout(() => reject(new Error('the export did not end')), 60_000).unref();
    });
    assert.ok(dropped, 'a page was being read while the response arrived');
    assert.doesNotMatch(received, /"type":"manifest"/, 'a cut export has no manifest: nobody can take it for a whole one');
    const { key } = fromGlobalId(exportId);
    const [row] = await eventually('the export to be recorded as failed', async () => {
      const rows = await t.sql<{ status: string; error: string }>(`SELECT status::text AS status, error FROM audit_export WHERE id = $1`, [key]);
      return rows[0]?.status === 'FAILED' ? rows : undefined;
    });
    assert.match(row.error, /failed on the server/);
    await eventually('the pool to be idle again', async () => (pool().idleCount === pool().totalCount ? true : undefined));
    // The server is still there, and the next export is whole.
    const res = await fetch(`${t.url}/audit/export?format=ndjson&from=2000-01-01`, { headers: { authorization: `Bearer ${auditor}` } });
    const r = verifyExport(await res.text());
    assert.equal(r.ok, true, r.problem ?? '');
    assert.ok(r.events > 60_000);
  });
});
