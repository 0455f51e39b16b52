// Arguments and pages of the audit API: the trail's filter, the export filter, pages of events.
import { Field, ID, InputType } from 'type-graphql';
import { AuditDecision, AuditEvent } from '../core/audit/audit-event.entity';
import { Connection } from '../core/pagination';

@InputType({ description: 'Narrows the audit trail; every field given must match' })
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

  @Field(() => AuditDecision, { nullable: true, description: 'Only events with this decision (a refused action is DENIED)' })
  decision?: AuditDecision | null;

  @Field(() => String, {
    nullable: true,
    description: 'The request (or scheduled work) that caused the events, followed through the jobs it queued: e.g. `iteration:<uuid>` gives the whole chain of one iteration of the loop',
  })
  requestId?: string | null;
}

@InputType({ description: 'Which events an export shows; the others in its range appear by hash only' })
export class AuditExportFilterInput {
  @Field(() => Date, { nullable: true, description: 'Inclusive' })
  from?: Date | null;

  @Field(() => Date, { nullable: true, description: 'Exclusive' })
  to?: Date | null;

  @Field(() => String, { nullable: true, description: 'Principal id' })
  actor?: string | null;

  @Field(() => String, { nullable: true, description: 'The action name exactly, e.g. approveModelVersion' })
  action?: string | null;

  @Field(() => ID, { nullable: true, description: 'Global ID of the subject' })
  subject?: string | null;

  @Field(() => ID, { nullable: true, description: 'A Model, ModelVersion or Deployment: its events and those of everything in its lineage' })
  scope?: string | null;
}

export const AuditEventConnection = Connection(AuditEvent);
