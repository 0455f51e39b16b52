import { buildAbility, SYSTEM_PRINCIPAL, type Principal } from '../core/ability';
import { DEFAULT_ROLES } from './policy-rules';
import type { AppServices, RequestContext } from '../core/context';
import { Loaders } from '../core/loaders';

/** A context for work the server does itself (seeding, jobs): an admin principal with a fixed id. */
export function systemContext(app: AppServices, principal: Partial<Principal> = {}, requestId = 'system'): RequestContext {
  const p: Principal = { ...SYSTEM_PRINCIPAL, ...principal };
  const rules = DEFAULT_ROLES.filter((r) => p.roles.includes(r.name)).map((r) => r.rules);
  const ability = buildAbility(p, rules);
  return { requestId, principal: p, authError: null, ability, app, log: app.log.child({ requestId }), loaders: new Loaders(app.db, ability), auditEvents: 0 };
}
