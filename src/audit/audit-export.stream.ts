/** The bytes of an audit export: pages of the chain read by binary COPY and rendered as they arrive, hash-only runs, and the signed manifest. */

import { createHash } from 'node:crypto';
import { escapeLiteral, type Pool } from 'pg';
import { subjectOf } from '../core/ability';
import { copyOut } from '../core/copy-out';
import { withPoolClient } from '../core/database';
import { positional, type Bind } from '../core/casl-sql';
import type { RequestContext } from '../core/context';
import { AuditExport, AuditExportFormat } from './audit-export.entity';
import { matchSql, type AuditExportFilter } from './audit-export.filter';
import { CSV_HEADER, omittedLine, signManifest } from './audit-export.format';
import { Col, CopyRows, csvEvent, LineWriter, ndjsonEvent } from './audit-export.render';

/** Why an event that matched the filter is shown by its hash only: it holds dataset fields the exporter may not read. */
export const WITHHELD_RESTRICTED = 'restricted dataset fields';

interface Plan {
  first: number | null;
  last: number | null;
}

/**
 * A Bind that writes values as SQL literals, for COPY, which takes no parameters: text through
 * node-postgres' escapeLiteral, arrays of text as ARRAY[...], integers as digits.
 */
const literal: Bind = (value) => {
  if (Array.isArray(value)) return `ARRAY[${value.map((v) => escapeLiteral(String(v))).join(',')}]`;
  if (typeof value === 'number') {
    if (!Number.isSafeInteger(value)) throw new Error(`not an integer: ${value}`);
    return String(value);
  }
  if (typeof value !== 'string') throw new Error(`cannot write a ${typeof value} as a literal`);
  return escapeLiteral(value);
};

async function planExport(ctx: RequestContext, exp: AuditExport, match: string, params: unknown[]): Promise<Plan> {
  const [range] = await ctx.app.db.query(
    `SELECT min(a.seq)::text AS first, max(a.seq)::text AS last FROM audit_event a WHERE a.seq <= $${params.length + 1} AND ${match}`,
    [...params, exp.upToSeq ?? 0],
  );
  return { first: range.first === null ? null : Number(range.first), last: range.last === null ? null : Number(range.last) };
}

/**
 * The rows of events `after < seq <= upTo` as a binary COPY, in the columns of {@link Col}: the
 * event's fields as stored (jsonb as its text), whether it matches the filter, and, for an event
 * that shows a dataset version's location or query, that version's team and classification.
 * Lines are rendered from these by the server (audit-export.render), which is cheaper than having
 * PostgreSQL build them.
 */
function pageCopySql(match: string, after: number, upTo: number): string {
  return `COPY (
    SELECT a.seq, a.m, a.occurred_at, a.actor_id, a.actor_kind, a.action, a.subject_type, a.subject_id, a.decision::text, a.reason,
           a.before::text, a.after::text, a.request_id, a.via::text, a.prev_hash::text, a.hash::text,
           CASE WHEN a.subject_type = 'DatasetVersion' AND (a.after ?| array['uri','sourceQuery'] OR a.before ?| array['uri','sourceQuery'])
                THEN COALESCE(a.after->>'teamId', a.before->>'teamId', '') END,
           CASE WHEN a.subject_type = 'DatasetVersion' THEN COALESCE(a.after, a.before)->>'classification' END
    FROM (SELECT a.*, (${match}) AS m FROM audit_event a WHERE a.seq > ${literal(after)} AND a.seq <= ${literal(upTo)}) a
    ORDER BY a.seq) TO STDOUT (FORMAT binary)`;
}

/**
 * Runs a COPY on a connection of the pool and hands each of its rows to `onRow` as its bytes
 * arrive (PostgreSQL goes on sending while they are rendered). The COPY is read to its end whatever
 * `onRow` does, so the connection is back in the pool when the promise settles.
 */
async function copyRows(ctx: RequestContext, sql: string, onRow: (rows: CopyRows) => void): Promise<void> {
  const pool = (ctx.app.db.driver as unknown as { master: Pool }).master;
  // A connection that failed mid-COPY is not given back to others.
  await withPoolClient(
    pool,
    async (client) => {
      const rows = new CopyRows();
      await copyOut(client, sql, (data) => {
        rows.feed(data);
        while (rows.next()) onRow(rows);
      });
      if (!rows.ended || rows.pending !== 0) throw new Error('the COPY ended early');
    },
    { discardOnFailure: true },
  );
}

export interface ExportProgress {
  processed: number;
  total: number;
}

/**
 * The export's bytes, in blocks of up to 256 KiB, a page at a time (`scopeIds`: {@link scopeSubjects}
 * of the filter's scope), ending with the manifest line (NDJSON); the signed manifest is stored on
 * the export row. Reads pages by seq range, each a short binary COPY of its own whose rows are
 * rendered as they arrive and which is read to its end whatever the consumer does, so its
 * connection is back in the pool at once; the next page is read while the current one is written.
 * Memory is two pages, and a consumer that stops pulling (a client gone) holds no connection.
 * Pulled by a stream, it is paced by the consumer (backpressure).
 */
export async function* exportChunks(
  ctx: RequestContext,
  exp: AuditExport,
  scopeIds: string[] | null,
  onProgress?: (p: ExportProgress) => Promise<void> | void,
): AsyncGenerator<Buffer> {
  const f = exp.filter as AuditExportFilter;
  const params: unknown[] = [];
  const plan = await planExport(ctx, exp, matchSql(f, scopeIds, positional(params)), params);
  const match = matchSql(f, scopeIds, literal);
  const format = exp.format;
  const digest = createHash('sha256');
  const counts = { events: 0, omitted: 0, withheld: 0, lines: 0 };
  let prevHash: string | null = null;
  const emit = (b: Buffer) => {
    digest.update(b);
    return b;
  };
  if (format === AuditExportFormat.CSV) yield emit(Buffer.from(CSV_HEADER));
  const total = plan.first === null ? 0 : plan.last! - plan.first + 1;
  const pageRows = ctx.app.config.auditExportPageRows;
  const mayRead = restrictedFieldCheck(ctx);
  const renderEvent = format === AuditExportFormat.NDJSON ? ndjsonEvent : csvEvent;
  // The hash of the last row read, as bytes (a string only where a line or the manifest needs it).
  const last = Buffer.alloc(64);
  let any = false;
  // A run of events outside the filter, written as one hash-only line when the run ends.
  // Its last hash is that of the last row read, as long as the run is open.
  let run: { seq: number; seqTo: number; prevHash: string } | null = null;
  const flushRun = (w: LineWriter) => {
    if (!run) return;
    w.string(omittedLine(format, run.seq, run.seqTo, run.prevHash, last.toString('latin1'), null));
    counts.omitted += run.seqTo - run.seq + 1;
    counts.lines += 1;
    run = null;
  };
  const w = new LineWriter();
  const onRow = (rows: CopyRows) => {
    const seq = rows.int(Col.Seq);
    if (seq !== nextSeq) throw new Error(`audit event ${nextSeq} is missing: the chain changed during the export`);
    nextSeq += 1;
    if (!any) {
      prevHash = rows.text(Col.PrevHash);
      any = true;
    }
    if (!rows.bool(Col.Shown)) {
      run ??= { seq, seqTo: seq, prevHash: rows.text(Col.PrevHash)! };
      run.seqTo = seq;
      rows.copyTo(Col.Hash, last);
      return;
    }
    flushRun(w);
    rows.copyTo(Col.Hash, last);
    if (!rows.isNull(Col.DvTeam) && !mayRead(rows.text(Col.DvTeam)!, rows.text(Col.DvClass))) {
      w.string(omittedLine(format, seq, seq, rows.text(Col.PrevHash)!, rows.text(Col.Hash)!, WITHHELD_RESTRICTED));
      counts.omitted += 1;
      counts.withheld += 1;
    } else {
      renderEvent(w, rows);
      counts.events += 1;
    }
    counts.lines += 1;
  };
  let nextSeq = plan.first ?? 0;
  // One page: its rows rendered as they arrive, its bytes taken once it is complete.
  const read = async (after: number) => {
    const upTo = Math.min(after + pageRows, plan.last!);
    await copyRows(ctx, pageCopySql(match, after, upTo), onRow);
    if (nextSeq !== upTo + 1) throw new Error(`audit event ${nextSeq} is missing: the chain changed during the export`);
    if (upTo >= plan.last!) flushRun(w);
    return { upTo, blocks: w.take() };
  };
  const start = (after: number) => {
    const page = read(after);
    page.catch(() => undefined); // awaited below; not an unhandled rejection while the previous page is written
    return page;
  };
  // The next page is read (and rendered) while the current one is written.
  let next = plan.first === null ? null : start(plan.first - 1);
  try {
    while (next) {
      const { upTo, blocks } = await next;
      next = upTo < plan.last! ? start(upTo) : null;
      if (onProgress) await onProgress({ processed: upTo - plan.first! + 1, total });
      for (const b of blocks) yield emit(b);
    }
  } finally {
    // A page still being read when the consumer stops: let it finish, so its connection is back in the pool.
    if (next) await next.catch(() => undefined);
  }
  const manifest = signManifest(ctx.app.config.auditSigningKeyPem, {
    format,
    exportId: exp.nodeId,
    generatedAt: new Date().toISOString(),
    filter: { ...(exp.filter as object), upToSeq: exp.upToSeq },
    firstSeq: plan.first,
    lastSeq: plan.last,
    prevHash,
    lastHash: any ? last.toString('latin1') : null,
    ...counts,
    contentSha256: digest.digest('hex'),
  });
  await ctx.app.db.query('UPDATE audit_export SET manifest = $2, processed = $3, progress = 1 WHERE id = $1', [exp.id, JSON.stringify(manifest), total]);
  if (format === AuditExportFormat.NDJSON) yield Buffer.from(JSON.stringify(manifest) + '\n');
}

/** Whether the exporter may read the location and query of a dataset version of this team and classification. */
function restrictedFieldCheck(ctx: RequestContext): (teamId: string, classification: string | null) => boolean {
  const cache = new Map<string, boolean>();
  return (teamId, classification) => {
    const k = `${teamId}/${classification}`;
    let allowed = cache.get(k);
    if (allowed === undefined) {
      const row = subjectOf('DatasetVersion', { teamId, classification });
      allowed = ctx.ability.can('read', row, 'uri') && ctx.ability.can('read', row, 'sourceQuery');
      cache.set(k, allowed);
    }
    return allowed;
  };
}
