import { authenticateRequest } from '../access/principal-cache';
import { createContext, type AppServices, type RequestContext } from '../core/context';

/** Builds the per-request context from an Authorization header (its principal cached per credential). */
export async function contextFor(app: AppServices, authorization: string | undefined, requestId: string): Promise<RequestContext> {
  const auth = await authenticateRequest(app, authorization);
  return createContext(app, { requestId, principal: auth.principal, ability: auth.ability, authError: auth.error });
}
