import { authenticate } from '../access/authenticate';
import { createContext, type AppServices, type RequestContext } from '../core/context';

/** Builds the per-request context from an Authorization header. */
export async function contextFor(app: AppServices, authorization: string | undefined, requestId: string): Promise<RequestContext> {
  const auth = await authenticate(authorization, app.db, app.config.jwtSecret);
  return createContext(app, { requestId, principal: auth.principal, ability: auth.ability, authError: auth.error });
}
