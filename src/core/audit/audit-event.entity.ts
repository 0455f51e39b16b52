import { Field, ObjectType, registerEnumType } from 'type-graphql';
import { Column, Entity, Index, PrimaryColumn } from 'typeorm';
import { toGlobalId } from '../global-id';
import { Node, NodeId } from '../node';
import { JSONScalar } from '../scalars';

export enum AuditDecision {
  ALLOWED = 'ALLOWED',
  DENIED = 'DENIED',
}
registerEnumType(AuditDecision, {
  name: 'AuditDecision',
  description: 'Whether the attempt an audit event records went ahead',
  valuesConfig: {
    ALLOWED: { description: 'It was permitted, and the change it describes committed with the event' },
    DENIED: { description: 'It was refused (by policy or a check); nothing changed' },
  },
});

const seqTransformer = { to: (v: number) => v, from: (v: string) => Number(v) };

/** How an event's actor acted when it was not in a request of its own: through jobs, possibly for someone else. */
@ObjectType({ description: 'How the actor acted when not in a request of its own: through jobs, possibly on behalf of someone' })
export class AuditVia {
  @Field(() => [String], { description: 'The jobs (queue/job id), oldest first: the last one wrote the event' })
  jobs!: string[];

  @Field(() => [String], { description: 'Whom the actor acted for, nearest first (a named system principal: whoever set its schedule or policy)' })
  onBehalfOf!: string[];
}

/**
 * One link of the append-only audit chain: hash = sha256(prevHash ‖ canonical JSON of the event).
 * Rows are never updated or deleted (a trigger refuses it).
 */
@ObjectType({ implements: Node, description: 'One entry of the hash-chained, append-only audit trail' })
@Entity()
@Index(['occurredAt'])
@Index(['actorId', 'seq'])
@Index(['subjectType', 'subjectId', 'seq'])
@Index(['action', 'seq'])
@Index(['requestId', 'seq'])
export class AuditEvent implements Node {
  @Field(() => Number, { description: 'Position in the chain, from 1, without gaps' })
  @PrimaryColumn({ type: 'bigint', transformer: seqTransformer })
  seq!: number;

  @NodeId()
  get nodeId(): string {
    return toGlobalId('AuditEvent', String(this.seq));
  }

  @Field({ description: 'When it was appended, to the millisecond' })
  @Column({ type: 'timestamptz', precision: 3 })
  occurredAt!: Date;

  @Field({ description: 'Principal id, or "anonymous"' })
  @Column({ type: 'text' })
  actorId!: string;

  @Field({ description: 'user, service, system' })
  @Column({ type: 'text' })
  actorKind!: string;

  @Field({ description: 'What was attempted, e.g. modelVersion.approve' })
  @Column({ type: 'text' })
  action!: string;

  @Field({ description: 'The type of what was acted on, e.g. ModelVersion' })
  @Column({ type: 'text' })
  subjectType!: string;

  @Field(() => String, { nullable: true, description: 'Global ID of the subject' })
  @Column({ type: 'text', nullable: true })
  subjectId!: string | null;

  @Field(() => AuditDecision, { description: 'Whether it was allowed or denied' })
  @Column({ type: 'enum', enum: AuditDecision, enumName: 'audit_decision' })
  decision!: AuditDecision;

  @Field(() => String, { nullable: true, description: 'Why it was allowed or denied' })
  @Column({ type: 'text', nullable: true })
  reason!: string | null;

  @Field(() => JSONScalar, { nullable: true, description: 'The state it changed, before the change; null when the subject was created or nothing was changed' })
  @Column({ type: 'jsonb', nullable: true })
  before!: object | null;

  @Field(() => JSONScalar, { nullable: true, description: 'The state after the change; null when the subject was deleted or nothing was changed' })
  @Column({ type: 'jsonb', nullable: true })
  after!: object | null;

  @Field(() => String, { nullable: true, description: "The request it was written in (the answer's x-request-id header); null when none was recorded" })
  @Column({ type: 'text', nullable: true })
  requestId!: string | null;

  @Field(() => AuditVia, { nullable: true, description: 'Set when the actor acted through a job (null: in a request of its own)' })
  @Column({ type: 'jsonb', nullable: true })
  via!: AuditVia | null;

  @Field({ description: "The previous event's hash (64 zeros for the first), in lowercase hex" })
  @Column({ type: 'char', length: 64, unique: true })
  prevHash!: string;

  @Field({ description: 'sha256 of prevHash followed by the canonical JSON of the event, in lowercase hex' })
  @Column({ type: 'char', length: 64, unique: true })
  hash!: string;
}

/** The chain's tip, moved in the same transaction as each append: deleting the newest rows is detectable. */
@Entity()
export class AuditHead {
  @PrimaryColumn({ type: 'smallint' })
  id!: number;

  @Column({ type: 'bigint', transformer: seqTransformer })
  seq!: number;

  @Column({ type: 'char', length: 64 })
  hash!: string;
}

/**
 * Names this database's audit chain (one row, written by the migration that created it, kept
 * through dump and restore): an anchor records it, so that it is never compared with another
 * database's chain.
 */
@Entity()
export class AuditChainIdentity {
  @PrimaryColumn({ type: 'smallint' })
  id!: number;

  @Column({ type: 'uuid' })
  databaseId!: string;

  @Column({ type: 'timestamptz', precision: 3 })
  createdAt!: Date;
}
