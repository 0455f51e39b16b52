import { Arg, Args, Ctx, Query, Resolver } from 'type-graphql';
import type { RequestContext } from '../core/context';
import { PageArgs } from '../core/pagination';
import { Policy } from '../core/policy';
import * as queries from './audit-query.service';
import { AuditEventConnection, AuditEventFilter } from './audit.inputs';

@Resolver()
export class AuditResolver {
  @Query(() => AuditEventConnection, { nullable: true, description: 'The audit trail, newest first' })
  @Policy({ action: 'read', subject: 'AuditEvent' })
  auditEvents(@Ctx() ctx: RequestContext, @Args() page: PageArgs, @Arg('filter', () => AuditEventFilter, { nullable: true, description: 'Only events matching it; the whole readable trail when left out' }) filter?: AuditEventFilter) {
    return queries.listAuditEvents(ctx, page, filter);
  }
}
