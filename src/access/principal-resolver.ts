import type { DataSource } from 'typeorm';
import { buildAbility, type Principal } from '../core/ability';
import type { Rights } from '../core/context';
import { unauthenticated } from '../core/errors';
import { isUuid } from '../core/global-id';
import type { PrincipalRef, PrincipalResolver } from '../core/job-context';
import { accountablePersonSql } from './accountable';
import { rightsOf } from './authenticate';
import { DEFAULT_ROLES } from './policy-rules';

/**
 * Establishes the principal a job carries, again when the job runs: an API key must still hold (not
 * revoked, not expired); a user's or key's roles are read again, so that a role edited since the
 * work was queued takes effect; a named system principal has the server's built-in rights.
 */
export function principalResolver(db: DataSource): PrincipalResolver {
  return { resolve: (ref) => resolvePrincipal(db, ref) };
}

async function resolvePrincipal(db: DataSource, ref: PrincipalRef): Promise<Rights> {
  const identity: Omit<Principal, 'teamIds'> = { id: ref.id, kind: ref.kind, roles: ref.roles, teams: ref.teams };
  if (ref.apiKeyId !== undefined) {
    const [key]: Array<{ revoked_at: Date | null; expires_at: Date | null; accountable: string }> = isUuid(ref.apiKeyId)
      ? await db.query(`SELECT revoked_at, expires_at, ${accountablePersonSql('$1::uuid')} AS accountable FROM api_key WHERE id = $1::uuid`, [ref.apiKeyId])
      : [];
    if (!key) throw unauthenticated('The API key that queued this work no longer exists');
    if (key.revoked_at) throw unauthenticated('The API key that queued this work has been revoked');
    if (key.expires_at && key.expires_at.getTime() < Date.now()) throw unauthenticated('The API key that queued this work has expired');
    identity.onBehalfOf = key.accountable;
  }
  if (ref.kind !== 'system') return rightsOf(db, identity);
  const { principal } = await rightsOf(db, { ...identity, roles: [] });
  const system: Principal = { ...principal, roles: ref.roles };
  return { principal: system, ability: buildAbility(system, DEFAULT_ROLES.filter((r) => ref.roles.includes(r.name)).map((r) => r.rules)) };
}
