import { buildAbility, SYSTEM_PRINCIPAL, type Principal } from '../core/ability';
import { DEFAULT_ROLES } from './policy-rules';
import { createContext, type AppServices, type RequestContext } from '../core/context';

/** A context for work the server does itself (seeding, jobs): an admin principal with a fixed id. */
export function systemContext(app: AppServices, principal: Partial<Principal> = {}, requestId = 'system'): RequestContext {
  const p: Principal = { ...SYSTEM_PRINCIPAL, ...principal };
  const rules = DEFAULT_ROLES.filter((r) => p.roles.includes(r.name)).map((r) => r.rules);
  return createContext(app, { requestId, principal: p, ability: buildAbility(p, rules) });
}
