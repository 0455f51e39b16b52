import { authenticate } from '../access/authenticate';
import type { AppServices, RequestContext } from '../core/context';
import { Loaders } from '../core/loaders';

/** Builds the per-request context from an Authorization header. */
export async function contextFor(app: AppServices, authorization: string | undefined, requestId: string): Promise<RequestContext> {
  const auth = await authenticate(authorization, app.db, app.config.jwtSecret);
  return {
    requestId,
    principal: auth.principal,
    authError: auth.error,
    ability: auth.ability,
    app,
    log: app.log.child({ requestId, principal: auth.principal?.id ?? null }),
    loaders: new Loaders(app.db, auth.ability),
    auditEvents: 0,
  };
}
