import type { EntityManager } from 'typeorm';
import type { Principal } from '../core/ability';

const API_KEY_PRINCIPAL = /^apikey:([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$/;

/**
 * SQL (a scalar subquery) for the person accountable for the API key whose id is the parameter
 * `param`: its creator, or, when a key created it, that key's accountable person, followed up to
 * 32 keys deep. NULL when the key does not exist.
 */
export function accountablePersonSql(param: string): string {
  return `(WITH RECURSIVE chain(created_by, depth) AS (
             SELECT k0.created_by, 0 FROM api_key k0 WHERE k0.id = ${param}
             UNION ALL
             SELECT k.created_by, c.depth + 1 FROM chain c
               JOIN api_key k ON k.id = (CASE WHEN c.created_by ~ '^apikey:[0-9a-f-]{36}$' THEN substr(c.created_by, 8)::uuid END)
              WHERE c.depth < 32)
           SELECT created_by FROM chain ORDER BY depth DESC LIMIT 1)`;
}

/** The person who answers for what `principal` does: the principal itself, or the person behind its API key. */
export function accountablePerson(principal: Principal): string {
  return principal.onBehalfOf ?? principal.id;
}

/**
 * The person accountable for a stored principal id (e.g. a row's `createdBy`): `apikey:<id>` is
 * resolved to the person behind the key; any other id is its own person.
 */
export async function accountablePersonOf(em: EntityManager, principalId: string): Promise<string> {
  const key = API_KEY_PRINCIPAL.exec(principalId);
  if (!key) return principalId;
  const [row]: Array<{ person: string | null }> = await em.query(`SELECT ${accountablePersonSql('$1::uuid')} AS person`, [key[1]]);
  return row?.person ?? principalId;
}
