import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Pool } from 'pg';
import { to as copyTo } from 'pg-copy-streams';
import { verifyExport } from '../../src/audit/audit-export.verify';
import { Col, COLUMN_COUNT, CopyRows } from '../../src/audit/audit-export.render';
import { appendAudit } from '../../src/core/audit/audit-chain';
import { startTestServer, type TestServer } from '../support/harness';

// How PostgreSQL rendered event lines before the server did: the exported bytes must stay the same.
const ISO = `to_char(a.occurred_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')`;
const j = (expr: string) => `COALESCE(to_json(${expr})::text, 'null')`;
const q = (expr: string) => `COALESCE('"' || replace(${expr}, '"', '""') || '"', '')`;
const PG_LINE = {
  ndjson: `'{"type":"event","seq":' || a.seq || ',"occurredAt":"' || ${ISO} || '","actorId":' || ${j('a.actor_id')} || ',"actorKind":' || ${j('a.actor_kind')} ||
    ',"action":' || ${j('a.action')} || ',"subjectType":' || ${j('a.subject_type')} || ',"subjectId":' || ${j('a.subject_id')} || ',"decision":"' || a.decision ||
    '","reason":' || ${j('a.reason')} || ',"before":' || COALESCE(a.before::text, 'null') || ',"after":' || COALESCE(a.after::text, 'null') ||
    ',"requestId":' || ${j('a.request_id')} || COALESCE(',"via":' || a.via::text, '') || ',"prevHash":"' || a.prev_hash || '","hash":"' || a.hash || '"}'`,
  csv: `'event,' || a.seq || ',,' || ${q(ISO)} || ',' || ${q('a.actor_id')} || ',' || ${q('a.actor_kind')} || ',' || ${q('a.action')} || ',' ||
    ${q('a.subject_type')} || ',' || ${q('a.subject_id')} || ',' || ${q('a.decision::text')} || ',' || ${q('a.reason')} || ',' || ${q('a.before::text')} || ',' ||
    ${q('a.after::text')} || ',' || ${q('a.request_id')} || ',' || ${q('a.via::text')} || ',' || ${q('a.prev_hash')} || ',' || ${q('a.hash')} || ','`,
};

// Text that needs escaping in JSON or quoting in CSV, and text outside ASCII.
const AWKWARD = ['o"brien', 'back\\slash', 'two\nlines', 'tab\there', 'bell\u0007 and \u001f', 'café ünïcode', 'emoji 🦜 and \u2028 separator', '', 'comma, "quoted", \r\n crlf', "it's E'\\\\' -- quoted"];

describe('export lines rendered by the server', () => {
  let t: TestServer;
  let auditor: string;

  before(async () => {
    // Small pages: the export below spans many of them.
    t = await startTestServer({ env: { AUDIT_EXPORT_PAGE_ROWS: '100' } });
    auditor = t.token(['auditor'], [], 'audrey-auditor');
    const db = t.server.app.db;
    for (let i = 0; i < 240; i++) {
      const s = AWKWARD[i % AWKWARD.length];
      const principal = { id: `${s}-${i}`, kind: 'user' as const, roles: [], teams: [], teamIds: [] };
      await db.transaction((em) =>
        appendAudit(em, { principal, requestId: i % 5 === 0 ? `req ${s}` : `req-${i}`, via: i % 4 === 1 ? { jobs: [`training/${s}-${i}`], onBehalfOf: i % 8 === 1 ? [s] : [] } : undefined }, {
          action: i % 3 === 0 ? `act ${s}` : 'registerConfig',
          subjectType: 'Config',
          subjectId: i % 4 === 0 ? null : `Q29uZmln:${s}`,
          reason: i % 2 === 0 ? s : null,
          before: i % 6 === 0 ? null : { text: s, n: i, nested: { list: [s, null, 1.5, true] } },
          // Now and then an event larger than the chunks a COPY arrives in.
          after: { text: s, big: i % 50 === 7 ? 'x"\\'.repeat(100_000) : 'small' },
        }),
      );
    }
  });
  after(async () => t?.stop());

  const exportText = async (query: string) => {
    const res = await fetch(`${t.url}/audit/export?${query}`, { headers: { authorization: `Bearer ${auditor}` } });
    assert.equal(res.status, 200);
    return { text: await res.text(), exportId: res.headers.get('x-audit-export-id')! };
  };

  for (const format of ['ndjson', 'csv'] as const) {
    it(`${format}: every event line is byte for byte what PostgreSQL rendered, and the export verifies`, async () => {
      const { text, exportId } = await exportText(`format=${format}`);
      const opts = format === 'csv' ? { manifest: await (await fetch(`${t.url}/audit/exports/${exportId}/manifest`, { headers: { authorization: `Bearer ${auditor}` } })).text() } : {};
      const r = verifyExport(text, opts);
      assert.equal(r.ok, true, r.problem ?? '');
      const expected = await t.sql<{ line: string }>(`SELECT ${PG_LINE[format]} AS line FROM audit_event a WHERE a.seq <= $1 ORDER BY a.seq`, [r.lastSeq]);
      assert.equal(r.events, expected.length);
      const body = format === 'csv' ? text.slice(text.indexOf('\n') + 1) : text.slice(0, text.lastIndexOf('{"type":"manifest"'));
      assert.equal(body, expected.map((e) => e.line + '\n').join(''));
    });
  }

  it('a filtered export of the same rows still verifies, its hash-only runs spanning pages; quotes in a filter are only text', async () => {
    for (const action of ['act o"brien', "act it's E'\\\\' -- quoted"]) {
      const { text } = await exportText(`format=ndjson&action=${encodeURIComponent(action)}`);
      const r = verifyExport(text);
      assert.equal(r.ok, true, r.problem ?? '');
      const events = text.trimEnd().split('\n').map((l) => JSON.parse(l)).filter((l) => l.type === 'event');
      assert.ok(events.length >= 7 && events.every((e) => e.action === action), `${events.length} events of ${action}`);
      assert.ok(r.omitted > 150, `${r.omitted} by hash`);
    }
  });

  it('rows of a binary COPY read the same however its bytes are cut into chunks', async () => {
    const pool = (t.server.app.db.driver as unknown as { master: Pool }).master;
    const client = await pool.connect();
    const parts: Buffer[] = [];
    try {
      const sql = `COPY (SELECT a.seq, true, a.occurred_at, a.actor_id, a.actor_kind, a.action, a.subject_type, a.subject_id, a.decision::text, a.reason,
                     a.before::text, a.after::text, a.request_id, a.via::text, a.prev_hash::text, a.hash::text, NULL::text, NULL::text
                   FROM audit_event a ORDER BY a.seq) TO STDOUT (FORMAT binary)`;
      for await (const chunk of client.query(copyTo(sql))) parts.push(chunk as Buffer);
    } finally {
      client.release();
    }
    const copy = Buffer.concat(parts);
    const read = (size: number) => {
      const rows = new CopyRows();
      const seen: string[] = [];
      for (let i = 0; i < copy.length; i += size) {
        rows.feed(copy.subarray(i, i + size));
        while (rows.next()) {
          const fields: Array<string | null> = [String(rows.int(Col.Seq)), String(rows.millis(Col.OccurredAt))];
          for (let c = Col.ActorId; c < COLUMN_COUNT; c++) fields.push(rows.text(c));
          seen.push(JSON.stringify(fields));
        }
      }
      assert.equal(rows.ended, true);
      assert.equal(rows.pending, 0);
      return seen;
    };
    const whole = read(copy.length);
    assert.ok(whole.length >= 240);
    for (const size of [1, 2, 5, 19, 64, 1000, 16 * 1024 + 3, 65_536]) assert.deepEqual(read(size), whole, `chunks of ${size} bytes`);
  });
});
