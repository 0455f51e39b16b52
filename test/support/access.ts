import assert from 'node:assert/strict';
import { fromGlobalId } from '../../src/core/global-id';
import type { GqlResult, TestServer } from './harness';

/** The table of each team-owned GraphQL type. */
export const TEAM_TABLES: Record<string, string> = {
  Dataset: 'dataset',
  DatasetVersion: 'dataset_version',
  CodeVersion: 'code_version',
  Config: 'config',
  SeedSet: 'seed_set',
  Environment: 'environment',
  TrainingRun: 'training_run',
  Model: 'model',
  ModelVersion: 'model_version',
  Deployment: 'deployment',
  Rollout: 'rollout',
  Alert: 'alert',
};

/** The `data` of a result that must have no errors. */
export function dataOf<T = any>(r: GqlResult<T>, what = 'request'): T {
  assert.equal(r.errors, undefined, `${what}: ${JSON.stringify(r.errors)}`);
  assert.ok(r.data, `${what}: no data`);
  return r.data;
}

/** Posts a GraphQL request with an arbitrary Authorization header (the harness only sends Bearer). */
export async function gqlWithAuthorization<T = any>(
  url: string,
  authorization: string,
  query: string,
  variables?: Record<string, unknown>,
): Promise<GqlResult<T>> {
  const res = await fetch(`${url}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization },
    body: JSON.stringify({ query, variables }),
  });
  return { ...((await res.json()) as GqlResult<T>), status: res.status };
}

/** Every object in a GraphQL answer that carries an `id`, however deeply nested. */
export function objectsWithId(value: unknown, out: Array<Record<string, any>> = []): Array<Record<string, any>> {
  if (Array.isArray(value)) {
    for (const v of value) objectsWithId(v, out);
  } else if (value && typeof value === 'object') {
    const o = value as Record<string, any>;
    if (typeof o.id === 'string') out.push(o);
    for (const v of Object.values(o)) objectsWithId(v, out);
  }
  return out;
}

/**
 * The owning team's name of each global ID, read from the database (not through the API, so that it
 * does not depend on what the caller may see). Teams own themselves; other types map to null.
 */
export async function owningTeams(t: TestServer, ids: Iterable<string>): Promise<Map<string, string | null>> {
  const byType = new Map<string, Array<{ id: string; key: string }>>();
  for (const id of new Set(ids)) {
    const { type, key } = fromGlobalId(id);
    if (!byType.has(type)) byType.set(type, []);
    byType.get(type)!.push({ id, key });
  }
  const out = new Map<string, string | null>();
  for (const [type, entries] of byType) {
    const keys = entries.map((e) => e.key);
    const table = type === 'Team' ? 'team' : TEAM_TABLES[type];
    const rows: Array<{ id: string; team: string }> = table
      ? await t.sql(
          type === 'Team'
            ? 'SELECT id::text AS id, name AS team FROM team WHERE id = ANY($1::uuid[])'
            : `SELECT x.id::text AS id, tm.name AS team FROM ${table} x JOIN team tm ON tm.id = x.team_id WHERE x.id = ANY($1::uuid[])`,
          [keys],
        )
      : [];
    const found = new Map(rows.map((r) => [r.id, r.team]));
    for (const e of entries) out.set(e.id, found.get(e.key) ?? null);
  }
  return out;
}
