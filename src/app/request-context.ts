import type { Request, Response } from 'express';
import { authenticateRequest } from '../access/principal-cache';
import { createContext, type AppServices, type RequestContext } from '../core/context';
import { noteCaller } from './access-log';

/** Builds the per-request context from an Authorization header (its principal cached per credential). */
export async function contextFor(app: AppServices, authorization: string | undefined, requestId: string): Promise<RequestContext> {
  const auth = await authenticateRequest(app, authorization);
  return createContext(app, { requestId, principal: auth.principal, ability: auth.ability, authError: auth.error });
}

/** The context of an HTTP request (GraphQL or REST), its caller noted on the request's access log line. */
export async function httpContextFor(app: AppServices, req: Request, res: Response): Promise<RequestContext> {
  return noteCaller(res, await contextFor(app, req.header('authorization'), res.locals.requestId));
}
