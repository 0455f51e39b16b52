import { buildAbility, type Principal } from './ability';
import { createContext, type AppServices, type RequestContext, type Rights, type Via } from './context';
import { unauthenticated } from './errors';

/** A principal as a job carries it: enough to establish it again when the job runs. */
export interface PrincipalRef {
  id: string;
  kind: Principal['kind'];
  /** Role names, as the token or key gave them; their rules are read again when the job runs. */
  roles: string[];
  /** Team names, as the token or key gave them, and the ids they had when the job was queued. */
  teams: string[];
  teamIds: string[];
  /** For a principal authenticated by an API key: the key, checked again when the job runs. */
  apiKeyId?: string;
}

/** A request context as a job carries it (plain JSON). */
export interface SerializedContext {
  /** The request (or schedule) that caused the work, so that logs and audit events can be followed across processes. */
  requestId: string;
  principal: PrincipalRef;
  /** Whom the principal acts for, nearest first (a named system principal: whoever set its schedule or policy). */
  onBehalfOf: string[];
  /** The jobs the work has come through before this one, oldest first (`queue/job id`). */
  jobs: string[];
}

/** What every job's payload holds beside its own fields: the context of the work that caused it. */
export interface JobPayload {
  context: SerializedContext;
}

/** Where a job came from: its queue and id. */
export interface JobOrigin {
  queue: string;
  id: string;
}

/**
 * Establishes a carried principal again when its job runs (the access domain implements it): its
 * roles' rules as they are now, its teams' ids, and for an API key that the key still holds.
 * Throws UNAUTHENTICATED when the credential behind it no longer does (a key revoked or expired).
 */
export interface PrincipalResolver {
  resolve(ref: PrincipalRef): Promise<Rights>;
}

declare module './context' {
  interface AppServices {
    /** Establishes the principals that jobs carry, again when they run. */
    principals: PrincipalResolver;
  }
}

const API_KEY_PRINCIPAL = /^apikey:(.+)$/;

/** `ctx` as a job carries it, so that the job acts as the principal that caused it. */
export function serializeContext(ctx: RequestContext): SerializedContext {
  const p = ctx.principal;
  if (!p) throw new Error('work queued without a principal');
  const key = p.kind === 'service' ? API_KEY_PRINCIPAL.exec(p.id) : null;
  return {
    requestId: ctx.requestId,
    principal: { id: p.id, kind: p.kind, roles: [...p.roles], teams: [...p.teams], teamIds: [...p.teamIds], ...(key ? { apiKeyId: key[1] } : {}) },
    onBehalfOf: [...(ctx.via?.onBehalfOf ?? [])],
    jobs: [...(ctx.via?.jobs ?? [])],
  };
}

/**
 * The context scheduled work acts as: a named system principal (`system:…`, with the rights of the
 * server itself), on behalf of whoever set the schedule or the policy.
 */
export function scheduledContext(principal: string, onBehalfOf: string, requestId: string): SerializedContext {
  return { requestId, principal: { id: principal, kind: 'system', roles: ['admin'], teams: [], teamIds: [] }, onBehalfOf: [onBehalfOf], jobs: [] };
}

/**
 * The context a job runs as: the principal that caused it, established again now (its rights as
 * they are now; UNAUTHENTICATED when its API key was revoked or has expired), with the job added to
 * the jobs it came through.
 */
export async function contextFromJob(app: AppServices, payload: JobPayload, job: JobOrigin): Promise<RequestContext> {
  const carried = payload?.context;
  // Queued before jobs carried their context: nobody to act as (the work is given up on; start it again).
  if (!carried?.principal) throw unauthenticated('The job carries no principal to act as');
  const rights = await app.principals.resolve(carried.principal);
  return { ...createContext(app, { requestId: carried.requestId, ...rights }), via: viaOf(carried, job) };
}

/**
 * The context a job was queued as, without any rights: for recording what became of a job whose
 * principal could not be established again.
 */
export function recordedContext(app: AppServices, payload: JobPayload, job: JobOrigin): RequestContext {
  const carried = payload?.context;
  const ref = carried?.principal ?? { id: 'unknown', kind: 'system', roles: [], teams: [], teamIds: [] };
  const principal: Principal = { id: ref.id, kind: ref.kind, roles: ref.roles, teams: ref.teams, teamIds: ref.teamIds };
  const ctx = createContext(app, { requestId: carried?.requestId ?? `job:${job.queue}/${job.id}`, principal, ability: buildAbility(principal, []) });
  return { ...ctx, via: viaOf(carried, job) };
}

function viaOf(carried: SerializedContext | undefined, job: JobOrigin): Via {
  return { jobs: [...(carried?.jobs ?? []), `${job.queue}/${job.id}`], onBehalfOf: [...(carried?.onBehalfOf ?? [])] };
}
