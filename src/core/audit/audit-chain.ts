import type { DataSource, EntityManager } from 'typeorm';
import { AppError, ErrorCode } from '../errors';
import type { AuditEntry, DeniedAttempt } from './audit-entry';
export type { AuditEntry } from './audit-entry';
import { canonicalJson, sha256Hex } from '../canonical-json';
import type { RequestContext, TransactionContext } from '../context';
import { AuditDecision, AuditEvent, AuditHead } from './audit-event.entity';
import { CoreReason } from '../error-reasons';

export const GENESIS_HASH = '0'.repeat(64);
// One advisory lock key for the chain: appends are serialised, so the chain cannot fork.
export const CHAIN_LOCK = 0x6d676175; // "mgau"

/**
 * The fields the hash covers, in the shape hashed. `via` only when it is set: events written before
 * it existed (and those of requests) hash exactly as they always did.
 */
export function hashedPayload(e: Omit<AuditEvent, 'hash' | 'prevHash' | 'nodeId' | 'via'> & { via?: AuditEvent['via'] }): Record<string, unknown> {
  return {
    seq: e.seq,
    occurredAt: e.occurredAt.toISOString(),
    actorId: e.actorId,
    actorKind: e.actorKind,
    action: e.action,
    subjectType: e.subjectType,
    subjectId: e.subjectId,
    decision: e.decision,
    reason: e.reason,
    before: e.before ?? null,
    after: e.after ?? null,
    requestId: e.requestId,
    ...(e.via ? { via: e.via } : {}),
  };
}

export function chainHash(prevHash: string, payload: Record<string, unknown>): string {
  return sha256Hex(prevHash + canonicalJson(payload));
}

/**
 * Appends one event to the chain inside `em`'s transaction. The event commits or rolls back with
 * the change it describes. Its actor is the context's principal; work done by a job records the job
 * (and whom the principal acted for) as `via`. `before`/`after` are normalised to plain JSON first, so that what is
 * hashed is exactly what is stored.
 */
export async function appendAudit(em: EntityManager, ctx: Pick<RequestContext, 'principal' | 'requestId' | 'via'>, entry: AuditEntry): Promise<AuditEvent> {
  await em.query('SELECT pg_advisory_xact_lock($1)', [CHAIN_LOCK]);
  const head = await em.findOne(AuditHead, { where: { id: 1 } });
  const event = em.create(AuditEvent, {
    seq: (head?.seq ?? 0) + 1,
    occurredAt: new Date(),
    actorId: ctx.principal?.id ?? 'anonymous',
    actorKind: ctx.principal?.kind ?? 'anonymous',
    action: entry.action,
    subjectType: entry.subjectType,
    subjectId: entry.subjectId ?? null,
    decision: entry.decision ?? AuditDecision.ALLOWED,
    reason: entry.reason ?? null,
    before: toPlainJson(entry.before),
    after: toPlainJson(entry.after),
    requestId: ctx.requestId,
    via: ctx.via ? { jobs: [...ctx.via.jobs], onBehalfOf: [...ctx.via.onBehalfOf] } : null,
  });
  event.prevHash = head?.hash ?? GENESIS_HASH;
  event.hash = chainHash(event.prevHash, hashedPayload(event));
  await em.insert(AuditEvent, event);
  await em.upsert(AuditHead, { id: 1, seq: event.seq, hash: event.hash }, ['id']);
  return event;
}

/** Appends through the request: joins the transaction of the change, counts the event. */
export async function audit(ctx: TransactionContext, entry: AuditEntry): Promise<AuditEvent> {
  if (!ctx.em) throw new Error('audit events must be written inside the transaction of the change');
  const event = await appendAudit(ctx.em, ctx, entry);
  ctx.auditEvents.written += 1;
  return event;
}

/**
 * Records a refused attempt (in a transaction of its own: the attempt itself changed nothing) and
 * returns the error to answer with: `error`, or RATE_LIMITED when the principal is refused too
 * often. Repeated identical refusals are folded into one counted event (see DenialRecorder).
 */
export async function recordDenial(ctx: RequestContext, attempt: DeniedAttempt, error: AppError): Promise<AppError> {
  const wait = await denied(ctx.app.db, ctx, attempt);
  return wait > 0 ? rateLimited(wait) : error;
}

/**
 * Records a refused attempt whose answer is already decided, through the same rate and folding as
 * {@link recordDenial}.
 */
export async function auditDenied(db: DataSource, ctx: RequestContext, entry: AuditEntry): Promise<void> {
  await denied(db, ctx, { action: entry.action, subjectType: entry.subjectType, subjectId: entry.subjectId ?? null, reason: entry.reason ?? '', after: (entry.after as Record<string, unknown> | null | undefined) ?? null });
  ctx.auditEvents.written += 1;
}

async function denied(db: DataSource, ctx: RequestContext, attempt: DeniedAttempt): Promise<number> {
  if (ctx.app.denials) return ctx.app.denials.record(ctx, attempt);
  await db.transaction((em) => appendAudit(em, ctx, { ...attempt, decision: AuditDecision.DENIED }));
  return 0;
}

/** The answer to a principal refused too often: retry after `seconds`. */
export function rateLimited(seconds: number): AppError {
  return new AppError(ErrorCode.RATE_LIMITED, `Too many refused requests; retry in ${seconds} s`, { reason: CoreReason.DENIALS_RATE_LIMITED, retryAfterSeconds: seconds });
}

function toPlainJson(value: unknown): object | null {
  if (value === undefined || value === null) return null;
  return JSON.parse(canonicalJson(stripUndefined(value)));
}

function stripUndefined(value: unknown): unknown {
  return JSON.parse(JSON.stringify(value, (_k, v) => (typeof v === 'bigint' ? v.toString() : v)));
}
