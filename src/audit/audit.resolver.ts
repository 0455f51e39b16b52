import { Arg, Args, Ctx, Field, ID, InputType, Query, Resolver } from 'type-graphql';
import type { RequestContext } from '../core/context';
import { badInput } from '../core/errors';
import { fromGlobalId } from '../core/global-id';
import { Connection, PageArgs, paginate } from '../core/pagination';
import { Policy } from '../core/policy';
import { AuditDecision, AuditEvent } from '../core/audit/audit-event.entity';

export const AuditEventConnection = Connection(AuditEvent);

@InputType()
export class AuditEventFilter {
  @Field(() => Date, { nullable: true, description: 'Inclusive' })
  from?: Date | null;

  @Field(() => Date, { nullable: true, description: 'Exclusive' })
  to?: Date | null;

  @Field(() => String, { nullable: true, description: 'Principal id' })
  actor?: string | null;

  @Field(() => String, { nullable: true, description: 'e.g. approveModelVersion' })
  action?: string | null;

  @Field(() => ID, { nullable: true, description: 'Global ID of the subject' })
  subject?: string | null;

  @Field(() => String, { nullable: true, description: 'e.g. ModelVersion' })
  subjectType?: string | null;

  @Field(() => AuditDecision, { nullable: true })
  decision?: AuditDecision | null;
}

@Resolver()
export class AuditResolver {
  @Query(() => AuditEventConnection, { description: 'The audit trail, newest first' })
  @Policy({ action: 'read', subject: 'AuditEvent' })
  auditEvents(@Ctx() ctx: RequestContext, @Args() page: PageArgs, @Arg('filter', () => AuditEventFilter, { nullable: true }) filter?: AuditEventFilter) {
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
    ctx.loaders.scope(qb, 'AuditEvent', 'x');
    return paginate(AuditEventConnection, qb, page, { alias: 'x', timeColumn: 'seq', idColumn: 'seq', numeric: true }, (e) => [e.seq, String(e.seq)]);
  }
}
