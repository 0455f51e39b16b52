import { createHash, randomUUID } from 'node:crypto';
import { Readable } from 'node:stream';
import { escapeLiteral, type Pool } from 'pg';
import { to as copyTo } from 'pg-copy-streams';
import { buildAbility, subjectOf, type Principal } from '../access/ability';
import type { PolicyRule } from '../access/policy-rules';
import { TOPICS } from '../core/events';
import { Loaders } from '../core/loaders';
import { enqueue } from '../queue/outbox';
import { QUEUES, type AuditExportJob } from '../queue/queues';
import { positional, type Bind } from '../access/casl-sql';
import { inTransaction, type AppServices, type RequestContext } from '../core/context';
import { AppError, badInput, ErrorCode, notFound } from '../core/errors';
import { fromGlobalId, isUuid, toGlobalId } from '../core/global-id';
import { Node } from '../core/node';
import { assertStorable, MAX_KEY_LENGTH } from '../core/validation';
import { LineageDirection, traverseLineage } from '../lineage/lineage-graph';
import { audit, auditDenied } from './audit.service';
import { AuditExport, AuditExportFormat, AuditExportStatus } from './audit-export.entity';
import { CSV_HEADER, omittedLine, signManifest, type ExportManifest } from './audit-export.format';
import { publicKeyOf } from './audit-signing';
import { Col, CopyRows, csvEvent, LineWriter, ndjsonEvent } from './audit-export.render';

/** What an export selects. Times are ISO strings (from inclusive, to exclusive); ids are global IDs. */
export interface AuditExportFilter {
  from?: string | null;
  to?: string | null;
  actor?: string | null;
  action?: string | null;
  subject?: string | null;
  /** A Model, ModelVersion or Deployment: events about it and about everything in its lineage. */
  scope?: string | null;
}

const FILTER_KEYS = ['from', 'to', 'actor', 'action', 'subject', 'scope'] as const;
const SCOPE_TYPES = ['Model', 'ModelVersion', 'Deployment'];
export const WITHHELD_RESTRICTED = 'restricted dataset fields';

/**
 * Checks and normalises a filter (HTTP query or GraphQL input): unknown keys, malformed times,
 * from after to, malformed ids and wrong scope types are BAD_USER_INPUT naming the field.
 */
export function normaliseFilter(raw: Record<string, unknown>): AuditExportFilter {
  const out: AuditExportFilter = {};
  // Names and values are echoed in errors and stored with the export: the shared check first.
  assertStorable(raw, '', MAX_KEY_LENGTH);
  for (const [k, v] of Object.entries(raw)) {
    if (!(FILTER_KEYS as readonly string[]).includes(k)) throw badInput(`unknown filter ${k}`, { field: k, reason: 'UNKNOWN_PARAMETER' });
    if (v === undefined || v === null || v === '') continue;
    if (typeof v !== 'string' && !(v instanceof Date)) throw badInput(`${k} must be given once, as text`, { field: k, reason: 'REPEATED_PARAMETER' });
    out[k as (typeof FILTER_KEYS)[number]] = v instanceof Date ? v.toISOString() : v;
  }
  for (const k of ['from', 'to'] as const) {
    if (out[k] === undefined) continue;
    const d = new Date(out[k]!);
    if (!/^\d{4}-\d{2}-\d{2}/.test(out[k]!) || Number.isNaN(d.getTime())) throw badInput(`${k} must be an ISO 8601 date or time`, { field: k, reason: 'MALFORMED_TIME' });
    // PostgreSQL has no year 0, and JavaScript writes years past 9999 in a form it does not read.
    const year = d.getUTCFullYear();
    if (year < 1 || year > 9999) throw badInput(`${k} must lie between 0001-01-01 and 9999-12-31 (UTC)`, { field: k, reason: 'TIME_OUT_OF_RANGE' });
    out[k] = d.toISOString();
  }
  if (out.from && out.to && out.from > out.to) throw badInput('from is after to', { field: 'from', reason: 'TIME_RANGE_REVERSED' });
  if (out.subject) fromGlobalId(out.subject, 'subject');
  if (out.scope) {
    const { type, key } = fromGlobalId(out.scope, 'scope');
    if (!SCOPE_TYPES.includes(type) || !isUuid(key)) throw badInput(`scope must be the ID of a ${SCOPE_TYPES.join(', ')}`, { field: 'scope', reason: 'WRONG_ID_TYPE' });
  }
  return out;
}

/** format=ndjson|csv plus the filter, from an HTTP query string. */
export function parseExportQuery(query: Record<string, unknown>): { format: AuditExportFormat; filter: AuditExportFilter } {
  const { format = 'ndjson', ...rest } = query;
  if (format !== 'ndjson' && format !== 'csv') throw badInput('format must be ndjson or csv', { field: 'format', reason: 'UNKNOWN_FORMAT' });
  return { format: format === 'csv' ? AuditExportFormat.CSV : AuditExportFormat.NDJSON, filter: normaliseFilter(rest) };
}

/**
 * Runs `parse` over an export request's parameters; when it refuses them (BAD_USER_INPUT), the
 * refused attempt is audited (DENIED, with the reason) in a transaction of its own, and the error
 * goes on to the client. Nothing else is written.
 */
export async function parsedOrRefused<T>(ctx: RequestContext, action: string, parse: () => T): Promise<T> {
  try {
    return parse();
  } catch (e) {
    if (e instanceof AppError && e.code === ErrorCode.BAD_USER_INPUT) {
      await auditDenied(ctx.app.db, ctx, {
        action,
        subjectType: 'AuditExport',
        reason: e.message,
        after: { refused: e.details.reason ?? ErrorCode.BAD_USER_INPUT, field: e.details.field ?? null },
      });
    }
    throw e;
  }
}

/**
 * Records the export (row + audit event, one transaction of its own) before any event is read.
 * Its range ends just before its own audit event: the chain as it was when the export was asked
 * for, so the export's own event never shifts what it proves.
 */
export async function beginExport(ctx: RequestContext, format: AuditExportFormat, filter: AuditExportFilter, asFile: boolean): Promise<AuditExport> {
  const id = randomUUID();
  return inTransaction(ctx, async (em) => {
    const event = await audit(ctx, {
      action: asFile ? 'requestAuditExport' : 'exportAuditEvents',
      subjectType: 'AuditExport',
      subjectId: toGlobalId('AuditExport', id),
      after: { format, filter, asFile },
    });
    const row = em.create(AuditExport, {
      id,
      requestedBy: ctx.principal!.id,
      format,
      filter,
      asFile,
      status: asFile ? AuditExportStatus.QUEUED : AuditExportStatus.RUNNING,
      upToSeq: event.seq - 1,
      processed: 0,
      progress: 0,
      manifest: null,
      fileSha256: null,
      sizeBytes: null,
      error: null,
      finishedAt: null,
    });
    await em.save(row);
    return em.findOneByOrFail(AuditExport, { id });
  });
}

/** The global IDs an export scope covers: the object, its lineage (up- and downstream), models, datasets, rollouts. */
export async function scopeSubjects(ctx: RequestContext, scope: string): Promise<string[]> {
  const { type, key } = fromGlobalId(scope, 'scope');
  const db = ctx.app.db;
  const ids = new Set<string>([scope]);
  const versionIds: string[] = [];
  if (type === 'Model') {
    const rows: Array<{ id: string }> = await db.query('SELECT id FROM model_version WHERE model_id = $1', [key]);
    const [model] = await db.query('SELECT id FROM model WHERE id = $1', [key]);
    if (!model) throw notFound(`Model ${scope}`);
    versionIds.push(...rows.map((r) => r.id));
  } else if (type === 'ModelVersion') {
    versionIds.push(key);
  }
  const roots = type === 'Deployment' ? [scope] : versionIds.map((v) => toGlobalId('ModelVersion', v));
  const depth = ctx.app.config.maxLineageDepth;
  for (const root of roots) {
    // Upstream to the data, code, configs, seeds and environments; downstream one step to the
    // deployments serving it (further downstream are other models, with lineages of their own).
    const up = await traverseLineage(ctx, root, LineageDirection.UPSTREAM, depth);
    for (const n of up.nodes) ids.add((n as Node).nodeId);
    if (type !== 'Deployment') {
      const down = await traverseLineage(ctx, root, LineageDirection.DOWNSTREAM, 1);
      for (const n of down.nodes) if (n.constructor.name === 'Deployment') ids.add((n as Node).nodeId);
    }
  }
  const keysOf = (t: string) => [...ids].map((g) => fromGlobalId(g)).filter((d) => d.type === t).map((d) => d.key);
  const more = async (sql: string, params: unknown[], t: string) => {
    for (const r of (await db.query(sql, params)) as Array<{ id: string }>) ids.add(toGlobalId(t, r.id));
  };
  await more('SELECT DISTINCT model_id AS id FROM model_version WHERE id = ANY($1::uuid[])', [keysOf('ModelVersion')], 'Model');
  await more('SELECT DISTINCT dataset_id AS id FROM dataset_version WHERE id = ANY($1::uuid[])', [keysOf('DatasetVersion')], 'Dataset');
  await more('SELECT id FROM rollout WHERE deployment_id = ANY($1::uuid[])', [keysOf('Deployment')], 'Rollout');
  // Dataset content is addressed by its sha256, not by a global ID.
  const blobs: Array<{ sha256: string }> = await db.query('SELECT DISTINCT sha256 FROM dataset_version WHERE id = ANY($1::uuid[])', [keysOf('DatasetVersion')]);
  for (const b of blobs) ids.add(b.sha256);
  return [...ids];
}

interface Plan {
  first: number | null;
  last: number | null;
}

/** The filter as an SQL condition on `a` (an audit_event row), its values given to `bind`. */
function matchSql(f: AuditExportFilter, scopeIds: string[] | null, bind: Bind): string {
  const conds: string[] = [];
  if (f.from) conds.push(`a.occurred_at >= ${bind(f.from)}::timestamptz`);
  if (f.to) conds.push(`a.occurred_at < ${bind(f.to)}::timestamptz`);
  if (f.actor) conds.push(`a.actor_id = ${bind(f.actor)}`);
  if (f.action) conds.push(`a.action = ${bind(f.action)}`);
  if (f.subject) conds.push(`a.subject_id = ${bind(f.subject)}`);
  if (f.scope) conds.push(`a.subject_id = ANY(${bind(scopeIds ?? [])}::text[])`);
  return conds.length ? conds.join(' AND ') : 'TRUE';
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
           a.before::text, a.after::text, a.request_id, a.prev_hash::text, a.hash::text,
           CASE WHEN a.subject_type = 'DatasetVersion' AND (a.after ?| array['uri','sourceQuery'] OR a.before ?| array['uri','sourceQuery'])
                THEN COALESCE(a.after->>'teamId', a.before->>'teamId', '') END,
           CASE WHEN a.subject_type = 'DatasetVersion' THEN COALESCE(a.after, a.before)->>'classification' END
    FROM (SELECT a.*, (${match}) AS m FROM audit_event a WHERE a.seq > ${literal(after)} AND a.seq <= ${literal(upTo)}) a
    ORDER BY a.seq) TO STDOUT (FORMAT binary)`;
}

/**
 * Runs a COPY on a connection of the pool and hands each of its rows to `onRow` as its bytes
 * arrive (PostgreSQL goes on sending while they are rendered). The COPY is read to its end whatever
 * the export's consumer does, so the connection is back in the pool when the promise settles.
 */
async function copyRows(ctx: RequestContext, sql: string, onRow: (rows: CopyRows) => void): Promise<void> {
  const pool = (ctx.app.db.driver as unknown as { master: Pool }).master;
  const client = await pool.connect();
  let failed: Error | undefined;
  try {
    const rows = new CopyRows();
    for await (const chunk of client.query(copyTo(sql))) {
      rows.feed(chunk as Buffer);
      while (rows.next()) onRow(rows);
    }
    if (!rows.ended || rows.pending !== 0) throw new Error('the COPY ended early');
  } catch (e) {
    failed = e as Error;
    throw e;
  } finally {
    // A connection that failed mid-COPY is not given back to others.
    client.release(failed);
  }
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

/**
 * Closes an export: SUCCEEDED (its manifest is on the row), FAILED, or ABORTED (the client went
 * away). The outcome is audited with the row change.
 */
export async function finishExport(
  ctx: RequestContext,
  id: string,
  outcome: { status: AuditExportStatus; error?: string | null; fileSha256?: string | null; sizeBytes?: number | null },
): Promise<AuditExport> {
  return inTransaction(ctx, async (em) => {
    const row = await em.findOneOrFail(AuditExport, { where: { id }, lock: { mode: 'pessimistic_write' } });
    const before = { status: row.status };
    Object.assign(row, { status: outcome.status, error: outcome.error ?? null, finishedAt: new Date() });
    if (outcome.fileSha256 !== undefined) row.fileSha256 = outcome.fileSha256;
    if (outcome.sizeBytes !== undefined) row.sizeBytes = outcome.sizeBytes;
    await em.save(row);
    const manifest = row.manifest as ExportManifest | null;
    await audit(ctx, {
      action: 'finishAuditExport',
      subjectType: 'AuditExport',
      subjectId: row.nodeId,
      reason: outcome.error ?? null,
      before,
      after: {
        status: row.status,
        manifest: manifest && row.status === AuditExportStatus.SUCCEEDED
          ? { firstSeq: manifest.firstSeq, lastSeq: manifest.lastSeq, lastHash: manifest.lastHash, events: manifest.events, contentSha256: manifest.contentSha256, signature: manifest.signature }
          : null,
      },
    });
    return row;
  });
}

/** An export the caller may see: its own, or any when it may export the audit trail. */
export async function loadExport(ctx: RequestContext, id: string): Promise<AuditExport> {
  const row = await exportById(ctx.app, id);
  if (!(row.requestedBy === ctx.principal?.id || ctx.ability.can('export', 'AuditEvent'))) throw notFound(`AuditExport ${id}`);
  return row;
}

/** The row key an AuditExport ID names (no lookup); BAD_USER_INPUT (`WRONG_ID_TYPE`) when it names none. */
export function exportKey(id: string): string {
  const { type, key } = fromGlobalId(id, 'id');
  if (type !== 'AuditExport' || !isUuid(key)) throw badInput('id must be the ID of an AuditExport', { field: 'id', reason: 'WRONG_ID_TYPE' });
  return key;
}

/** An export by global ID, whoever asks (for signed links, which stand for the credential). */
export async function exportById(app: AppServices, id: string): Promise<AuditExport> {
  const key = exportKey(id);
  const row = await app.db.getRepository(AuditExport).findOne({ where: { id: key } });
  if (!row) throw notFound(`AuditExport ${id}`);
  return row;
}

/** The key that signs manifests and checkpoints: PEM and key id. */
export function exportPublicKey(app: AppServices): { pem: string; keyId: string } {
  return publicKeyOf(app.config.auditSigningKeyPem);
}

/**
 * Queues an export to be written to a file by a worker: the export row, its audit event and the
 * outbox entry commit together. Bad filters and unknown scopes are refused before anything is written.
 */
export async function requestFileExport(ctx: RequestContext, format: AuditExportFormat, rawFilter: Record<string, unknown>): Promise<AuditExport> {
  const filter = await parsedOrRefused(ctx, 'requestAuditExport', () => normaliseFilter(rawFilter));
  if (filter.scope) await scopeSubjects(ctx, filter.scope);
  const p = ctx.principal!;
  const exp = await inTransaction(ctx, async (em) => {
    const row = await beginExport(ctx, format, filter, true);
    const job: AuditExportJob = { exportId: row.id, requestId: ctx.requestId, principal: { id: p.id, kind: p.kind, roles: p.roles, teams: p.teams } };
    await enqueue(em, { queue: QUEUES.auditExports, name: 'write-export', jobId: `audit-export-${row.id}`, payload: job });
    return row;
  });
  ctx.app.dispatcher?.kick();
  return exp;
}

/** The exporter's context inside a worker: its roles' current rules, so redaction is the exporter's, not the worker's. */
export async function exporterContext(app: AppServices, job: AuditExportJob): Promise<RequestContext> {
  const [row]: Array<{ rules: PolicyRule[][] | null; team_ids: string[] | null }> = await app.db.query(
    `SELECT (SELECT json_agg(r.rules ORDER BY r.name) FROM role r WHERE r.name = ANY($1)) AS rules,
            (SELECT array_agg(t.id ORDER BY t.name) FROM team t WHERE t.name = ANY($2)) AS team_ids`,
    [job.principal.roles, job.principal.teams],
  );
  const principal: Principal = { ...job.principal, teamIds: row.team_ids ?? [] };
  const ability = buildAbility(principal, row.rules ?? []);
  return { requestId: job.requestId, principal, authError: null, ability, app, log: app.log.child({ requestId: job.requestId }), loaders: new Loaders(app.db, ability), auditEvents: 0 };
}

/**
 * Writes a queued export to the artifact store, publishing progress page by page. Idempotent: a
 * finished export is left alone; a retried one starts its file again.
 */
export async function writeFileExport(ctx: RequestContext, exportId: string): Promise<void> {
  const exp = await ctx.app.db.getRepository(AuditExport).findOne({ where: { id: exportId } });
  if (!exp || exp.status === AuditExportStatus.SUCCEEDED || exp.status === AuditExportStatus.FAILED) return;
  await ctx.app.db.query(`UPDATE audit_export SET status = 'RUNNING', processed = 0, progress = 0 WHERE id = $1`, [exportId]);
  publishExport(ctx, exportId);
  const filter = exp.filter as AuditExportFilter;
  const scopeIds = filter.scope ? await scopeSubjects(ctx, filter.scope) : null;
  const chunks = exportChunks(ctx, exp, scopeIds, async ({ processed, total }) => {
    await ctx.app.db.query('UPDATE audit_export SET processed = $2, progress = $3 WHERE id = $1', [exportId, processed, total ? processed / total : 1]);
    publishExport(ctx, exportId);
  });
  const received = await ctx.app.artifacts.receive(Readable.from(chunks), Number.MAX_SAFE_INTEGER);
  await ctx.app.artifacts.commit(received.tempPath, received.sha256);
  await finishExport(ctx, exportId, { status: AuditExportStatus.SUCCEEDED, fileSha256: received.sha256, sizeBytes: received.sizeBytes });
  publishExport(ctx, exportId);
}

export function publishExport(ctx: RequestContext, exportId: string): void {
  ctx.app.events?.publish(TOPICS.auditExportUpdated, { id: exportId });
}
