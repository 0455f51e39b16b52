/** What an audit export selects: its filter, checked and normalised, the subjects its scope covers, and the filter as SQL. */

import type { KindName } from '../core/subjects';
import { AuditReason } from './audit.errors';
import { CoreReason } from '../core/error-reasons';
import type { Bind } from '../core/casl-sql';
import type { RequestContext } from '../core/context';
import { badInput, notFound } from '../core/errors';
import { fromGlobalId, isUuid, toGlobalId } from '../core/global-id';
import { Node } from '../core/node';
import { assertStorable, MAX_KEY_LENGTH } from '../core/validation';
import { LineageDirection, traverseLineage } from '../lineage/lineage-graph';
import { AuditExportFormat } from './audit-export.entity';

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

/**
 * Checks and normalises a filter (HTTP query or GraphQL input): unknown keys, malformed times,
 * from after to, malformed ids and wrong scope types are BAD_USER_INPUT naming the field.
 */
export function normaliseFilter(raw: Record<string, unknown>): AuditExportFilter {
  const out: AuditExportFilter = {};
  // Names and values are echoed in errors and stored with the export: the shared check first.
  assertStorable(raw, '', MAX_KEY_LENGTH);
  for (const [k, v] of Object.entries(raw)) {
    if (!(FILTER_KEYS as readonly string[]).includes(k)) throw badInput(`unknown filter ${k}`, { field: k, reason: AuditReason.UNKNOWN_PARAMETER });
    if (v === undefined || v === null || v === '') continue;
    if (typeof v !== 'string' && !(v instanceof Date)) throw badInput(`${k} must be given once, as text`, { field: k, reason: AuditReason.REPEATED_PARAMETER });
    out[k as (typeof FILTER_KEYS)[number]] = v instanceof Date ? v.toISOString() : v;
  }
  for (const k of ['from', 'to'] as const) {
    if (out[k] === undefined) continue;
    const d = new Date(out[k]!);
    if (!/^\d{4}-\d{2}-\d{2}/.test(out[k]!) || Number.isNaN(d.getTime())) throw badInput(`${k} must be an ISO 8601 date or time`, { field: k, reason: AuditReason.MALFORMED_TIME });
    // PostgreSQL has no year 0, and JavaScript writes years past 9999 in a form it does not read.
    const year = d.getUTCFullYear();
    if (year < 1 || year > 9999) throw badInput(`${k} must lie between 0001-01-01 and 9999-12-31 (UTC)`, { field: k, reason: AuditReason.TIME_OUT_OF_RANGE });
    out[k] = d.toISOString();
  }
  if (out.from && out.to && out.from > out.to) throw badInput('from is after to', { field: 'from', reason: AuditReason.TIME_RANGE_REVERSED });
  if (out.subject) fromGlobalId(out.subject, 'subject');
  if (out.scope) {
    const { type, key } = fromGlobalId(out.scope, 'scope');
    if (!SCOPE_TYPES.includes(type) || !isUuid(key)) throw badInput(`scope must be the ID of a ${SCOPE_TYPES.join(', ')}`, { field: 'scope', reason: CoreReason.WRONG_ID_TYPE });
  }
  return out;
}

/** format=ndjson|csv plus the filter, from an HTTP query string. */
export function parseExportQuery(query: Record<string, unknown>): { format: AuditExportFormat; filter: AuditExportFilter } {
  const { format = 'ndjson', ...rest } = query;
  if (format !== 'ndjson' && format !== 'csv') throw badInput('format must be ndjson or csv', { field: 'format', reason: AuditReason.UNKNOWN_FORMAT });
  return { format: format === 'csv' ? AuditExportFormat.CSV : AuditExportFormat.NDJSON, filter: normaliseFilter(rest) };
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
  const more = async (sql: string, params: unknown[], t: KindName) => {
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

/** The filter as an SQL condition on `a` (an audit_event row), its values given to `bind`. */
export function matchSql(f: AuditExportFilter, scopeIds: string[] | null, bind: Bind): string {
  const conds: string[] = [];
  if (f.from) conds.push(`a.occurred_at >= ${bind(f.from)}::timestamptz`);
  if (f.to) conds.push(`a.occurred_at < ${bind(f.to)}::timestamptz`);
  if (f.actor) conds.push(`a.actor_id = ${bind(f.actor)}`);
  if (f.action) conds.push(`a.action = ${bind(f.action)}`);
  if (f.subject) conds.push(`a.subject_id = ${bind(f.subject)}`);
  if (f.scope) conds.push(`a.subject_id = ANY(${bind(scopeIds ?? [])}::text[])`);
  return conds.length ? conds.join(' AND ') : 'TRUE';
}
