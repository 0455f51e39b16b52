import type { DataSource, EntityManager } from 'typeorm';
import { AppError, ErrorCode } from '../core/errors';
import type { DeniedAttempt } from './audit-denials';
import { canonicalJson, sha256Hex } from '../core/canonical-json';
import type { RequestContext } from '../core/context';
import { AuditDecision, AuditEvent, AuditHead } from './audit-event.entity';
import { AuditCheckpoint } from './audit-export.entity';
import { verifyCanonical } from './audit-signing';

export const GENESIS_HASH = '0'.repeat(64);
// One advisory lock key for the chain: appends are serialised, so the chain cannot fork.
export const CHAIN_LOCK = 0x6d676175; // "mgau"

export interface AuditEntry {
  action: string;
  subjectType: string;
  subjectId?: string | null;
  decision?: AuditDecision;
  reason?: string | null;
  before?: unknown;
  after?: unknown;
}

/** The fields the hash covers, in the shape hashed. */
export function hashedPayload(e: Omit<AuditEvent, 'hash' | 'prevHash' | 'nodeId'>): Record<string, unknown> {
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
  };
}

export function chainHash(prevHash: string, payload: Record<string, unknown>): string {
  return sha256Hex(prevHash + canonicalJson(payload));
}

/**
 * Appends one event to the chain inside `em`'s transaction. The event commits or rolls back with
 * the change it describes. `before`/`after` are normalised to plain JSON first, so that what is
 * hashed is exactly what is stored.
 */
export async function appendAudit(em: EntityManager, ctx: Pick<RequestContext, 'principal' | 'requestId'>, entry: AuditEntry): Promise<AuditEvent> {
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
  });
  event.prevHash = head?.hash ?? GENESIS_HASH;
  event.hash = chainHash(event.prevHash, hashedPayload(event));
  await em.insert(AuditEvent, event);
  await em.upsert(AuditHead, { id: 1, seq: event.seq, hash: event.hash }, ['id']);
  return event;
}

/** Appends through the request: joins the open transaction, counts the event. */
export async function audit(ctx: RequestContext, entry: AuditEntry): Promise<AuditEvent> {
  if (!ctx.em) throw new Error('audit events must be written inside the transaction of the change');
  const event = await appendAudit(ctx.em, ctx, entry);
  ctx.auditEvents += 1;
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
  ctx.auditEvents += 1;
}

async function denied(db: DataSource, ctx: RequestContext, attempt: DeniedAttempt): Promise<number> {
  if (ctx.app.denials) return ctx.app.denials.record(ctx, attempt);
  await db.transaction((em) => appendAudit(em, ctx, { ...attempt, decision: AuditDecision.DENIED }));
  return 0;
}

/** The answer to a principal refused too often: retry after `seconds`. */
export function rateLimited(seconds: number): AppError {
  return new AppError(ErrorCode.RATE_LIMITED, `Too many refused requests; retry in ${seconds} s`, { reason: 'DENIALS_RATE_LIMITED', retryAfterSeconds: seconds });
}

function toPlainJson(value: unknown): object | null {
  if (value === undefined || value === null) return null;
  return JSON.parse(canonicalJson(stripUndefined(value)));
}

function stripUndefined(value: unknown): unknown {
  return JSON.parse(JSON.stringify(value, (_k, v) => (typeof v === 'bigint' ? v.toString() : v)));
}

export interface ChainBreak {
  seq: number;
  problem: string;
}

export interface VerifyResult {
  ok: boolean;
  checked: number;
  lastSeq: number;
  lastHash: string;
  firstBreak: ChainBreak | null;
}

/**
 * Walks the whole chain in sequence order, in pages, and reports the first broken link:
 * a row whose hash does not match its content (altered), a gap in sequence (deleted or
 * reordered), a wrong previous hash (inserted or replaced), or a head that is ahead of the
 * last row (the newest rows deleted).
 */
export async function verifyChain(db: DataSource, pageSize = 5000, publicKeyPem?: string): Promise<VerifyResult> {
  let prevHash = GENESIS_HASH;
  let expectedSeq = 1;
  let checked = 0;
  // Retention removed the events up to the newest checkpoint: the chain goes on from its hash, once its signature holds.
  const [checkpoint] = await db.getRepository(AuditCheckpoint).find({ order: { seq: 'DESC' }, take: 1 });
  if (checkpoint) {
    if (!publicKeyPem || !verifyCheckpoint(checkpoint, publicKeyPem)) {
      return { ok: false, checked, lastSeq: checkpoint.seq, lastHash: checkpoint.hash, firstBreak: { seq: checkpoint.seq, problem: `the retention checkpoint at event ${checkpoint.seq} is not signed by the audit key` } };
    }
    prevHash = checkpoint.hash;
    expectedSeq = checkpoint.seq + 1;
  }
  for (;;) {
    const rows: AuditEvent[] = await db
      .getRepository(AuditEvent)
      .createQueryBuilder('a')
      .where('a.seq >= :from', { from: expectedSeq })
      .orderBy('a.seq', 'ASC')
      .limit(pageSize)
      .getMany();
    for (const row of rows) {
      const fail = (problem: string): VerifyResult => ({ ok: false, checked, lastSeq: expectedSeq - 1, lastHash: prevHash, firstBreak: { seq: row.seq, problem } });
      if (row.seq !== expectedSeq) {
        return {
          ok: false,
          checked,
          lastSeq: expectedSeq - 1,
          lastHash: prevHash,
          firstBreak: { seq: expectedSeq, problem: `event ${expectedSeq} is missing (next present is ${row.seq})` },
        };
      }
      if (row.prevHash !== prevHash) return fail(`event ${row.seq} does not follow event ${row.seq - 1} (previous hash differs)`);
      const recomputed = chainHash(row.prevHash, hashedPayload(row));
      if (recomputed !== row.hash) return fail(`event ${row.seq} was altered (its content no longer matches its hash)`);
      prevHash = row.hash;
      expectedSeq += 1;
      checked += 1;
    }
    if (rows.length < pageSize) break;
  }
  const head = await db.getRepository(AuditHead).findOne({ where: { id: 1 } });
  const lastSeq = expectedSeq - 1;
  if (head && (head.seq !== lastSeq || head.hash !== prevHash)) {
    return {
      ok: false,
      checked,
      lastSeq,
      lastHash: prevHash,
      firstBreak: {
        seq: lastSeq + 1,
        problem: head.seq > lastSeq ? `events ${lastSeq + 1}–${head.seq} are missing (the chain head records ${head.seq})` : `the chain head does not match event ${lastSeq}`,
      },
    };
  }
  if (!head && lastSeq > 0) {
    return { ok: false, checked, lastSeq, lastHash: prevHash, firstBreak: { seq: lastSeq, problem: 'the chain head record is missing' } };
  }
  return { ok: true, checked, lastSeq, lastHash: prevHash, firstBreak: null };
}

/** What a checkpoint's signature covers. */
export function checkpointPayload(c: Pick<AuditCheckpoint, 'seq' | 'hash' | 'eventCount' | 'lastOccurredAt' | 'createdAt'>): Record<string, unknown> {
  return { seq: c.seq, hash: c.hash, eventCount: c.eventCount, lastOccurredAt: c.lastOccurredAt.toISOString(), createdAt: c.createdAt.toISOString() };
}

export function verifyCheckpoint(c: AuditCheckpoint, publicKeyPem: string): boolean {
  return verifyCanonical(publicKeyPem, checkpointPayload(c), c.signature);
}
