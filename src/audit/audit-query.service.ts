// The audit trail as the API reads it: pages of events, filtered in SQL through the caller's read scope.
import type { RequestContext } from '../core/context';
import { AuditEvent } from '../core/audit/audit-event.entity';
import { badInput } from '../core/errors';
import { fromGlobalId } from '../core/global-id';
import { paginate, type PageArgs } from '../core/pagination';
import { AuditEventConnection, type AuditEventFilter } from './audit.inputs';

/** A page of the audit events the caller may read, newest first. */
export function listAuditEvents(ctx: RequestContext, page: PageArgs, filter?: AuditEventFilter | null) {
  const qb = ctx.app.db.getRepository(AuditEvent).createQueryBuilder('x').where('TRUE');
  if (filter?.from) qb.andWhere('x.occurred_at >= :from', { from: filter.from });
  if (filter?.to) qb.andWhere('x.occurred_at < :to', { to: filter.to });
  if (filter?.from && filter?.to && filter.from > filter.to) throw badInput('filter.from is after filter.to', { field: 'filter.from' });
  if (filter?.actor) qb.andWhere('x.actor_id = :actor', { actor: filter.actor });
  if (filter?.action) qb.andWhere('x.action = :action', { action: filter.action });
  if (filter?.subject) {
    fromGlobalId(filter.subject, 'filter.subject');
    qb.andWhere('x.subject_id = :subject', { subject: filter.subject });
  }
  if (filter?.subjectType) qb.andWhere('x.subject_type = :st', { st: filter.subjectType });
  if (filter?.decision) qb.andWhere('x.decision = :decision', { decision: filter.decision });
  if (filter?.requestId) qb.andWhere('x.request_id = :requestId', { requestId: filter.requestId });
  ctx.loaders.scope(qb, 'AuditEvent', 'x');
  return paginate(AuditEventConnection, qb, page, { alias: 'x', timeColumn: 'seq', idColumn: 'seq', numeric: true }, (e) => [e.seq, String(e.seq)]);
}
