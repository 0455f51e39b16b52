import { Field, Float, Int, ObjectType, registerEnumType } from 'type-graphql';
import { Column, CreateDateColumn, Entity, Index, PrimaryColumn, PrimaryGeneratedColumn } from 'typeorm';
import { toGlobalId } from '../core/global-id';
import { Node, NodeId } from '../core/node';
import { JSONScalar } from '../core/scalars';

export enum AuditExportFormat {
  NDJSON = 'NDJSON',
  CSV = 'CSV',
}
registerEnumType(AuditExportFormat, {
  name: 'AuditExportFormat',
  description: 'The file format of an audit export',
  valuesConfig: {
    NDJSON: { description: 'One JSON object a line: the events shown, and hash-only entries standing for those the filter leaves out' },
    CSV: { description: 'The same entries as rows under a header (kind, seq, seq_to, occurred_at, … hash, withheld); strings are always quoted, an empty unquoted cell is null' },
  },
});

export enum AuditExportStatus {
  QUEUED = 'QUEUED',
  RUNNING = 'RUNNING',
  SUCCEEDED = 'SUCCEEDED',
  FAILED = 'FAILED',
  /** A streamed export whose client went away before the end. */
  ABORTED = 'ABORTED',
}
registerEnumType(AuditExportStatus, {
  name: 'AuditExportStatus',
  description: 'Where an audit export stands: QUEUED and RUNNING in flight; SUCCEEDED, FAILED and ABORTED finished',
  valuesConfig: {
    QUEUED: { description: 'A file export waiting for its job' },
    RUNNING: { description: 'Being written (a file export) or streamed (over HTTP)' },
    SUCCEEDED: { description: 'Complete; its signed manifest is on the export' },
    FAILED: { description: 'Stopped on a server error; `error` says why' },
    ABORTED: { description: 'A streamed export whose client went away before the end' },
  },
});

const bigintTransformer = { to: (v: number) => v, from: (v: string | null) => (v === null ? null : Number(v)) };

/**
 * One export of the audit trail, streamed over HTTP or written to the artifact store by a job.
 * Its manifest (signed) is kept here, so that a CSV streamed over HTTP has its manifest too.
 */
@ObjectType({ implements: Node, description: 'An export of the audit trail: its filter, progress and, once done, its signed manifest' })
@Entity()
@Index(['requestedBy', 'createdAt'])
export class AuditExport implements Node {
  @PrimaryGeneratedColumn('uuid')
  id!: string;

  @NodeId()
  get nodeId(): string {
    return toGlobalId('AuditExport', this.id);
  }

  @Field({ description: 'Principal id of the exporter' })
  @Column({ type: 'text' })
  requestedBy!: string;

  @Field(() => AuditExportFormat, { description: 'The file format' })
  @Column({ type: 'enum', enum: AuditExportFormat, enumName: 'audit_export_format' })
  format!: AuditExportFormat;

  @Field(() => JSONScalar, { description: 'The filter as given (from, to, actor, action, subject, scope)' })
  @Column({ type: 'jsonb' })
  filter!: object;

  @Field({ description: 'true: written to a file by a job; false: streamed over HTTP' })
  @Column({ type: 'boolean' })
  asFile!: boolean;

  @Field(() => AuditExportStatus, { description: 'Where it stands' })
  @Column({ type: 'enum', enum: AuditExportStatus, enumName: 'audit_export_status' })
  status!: AuditExportStatus;

  @Field(() => Int, { nullable: true, description: 'The newest event the export may contain (the chain as it was when it was asked for)' })
  @Column({ type: 'bigint', nullable: true, transformer: bigintTransformer })
  upToSeq!: number | null;

  @Field(() => Int, { description: 'Chain events written so far (shown or hash-only)' })
  @Column({ type: 'bigint', default: 0, transformer: bigintTransformer })
  processed!: number;

  @Field(() => Float, { description: 'From 0 to 1' })
  @Column({ type: 'double precision', default: 0 })
  progress!: number;

  @Field(() => JSONScalar, { nullable: true, description: 'The signed manifest, once the export is complete' })
  @Column({ type: 'jsonb', nullable: true })
  manifest!: Record<string, unknown> | null;

  /** Content address of the written file (file exports). */
  @Column({ type: 'char', length: 64, nullable: true })
  fileSha256!: string | null;

  @Field(() => Int, { nullable: true, description: 'Size of the written file in bytes, once a file export has SUCCEEDED; null otherwise' })
  @Column({ type: 'bigint', nullable: true, transformer: bigintTransformer })
  sizeBytes!: number | null;

  @Field(() => String, { nullable: true, description: 'FAILED or ABORTED: why; null otherwise' })
  @Column({ type: 'text', nullable: true })
  error!: string | null;

  @Field({ description: 'When it was asked for' })
  @CreateDateColumn({ type: 'timestamptz', precision: 3 })
  createdAt!: Date;

  @Field(() => Date, { nullable: true, description: 'When it SUCCEEDED, FAILED or was ABORTED; null while QUEUED or RUNNING' })
  @Column({ type: 'timestamptz', precision: 3, nullable: true })
  finishedAt!: Date | null;
}

/**
 * Where the retained chain begins: events up to `seq` were removed by retention, and this row,
 * signed, vouches for the hash of event `seq` so the events after it still verify.
 */
@Entity()
export class AuditCheckpoint {
  @PrimaryColumn({ type: 'bigint', transformer: bigintTransformer })
  seq!: number;

  @Column({ type: 'char', length: 64 })
  hash!: string;

  /** Events rolled up into this checkpoint and every earlier one (the chain's length up to `seq`). */
  @Column({ type: 'bigint', transformer: bigintTransformer })
  eventCount!: number;

  /** The newest removed event's time. */
  @Column({ type: 'timestamptz', precision: 3 })
  lastOccurredAt!: Date;

  @Column({ type: 'text' })
  keyId!: string;

  /** Ed25519 over the canonical JSON of {seq, hash, eventCount, lastOccurredAt, createdAt}, base64. */
  @Column({ type: 'text' })
  signature!: string;

  @Column({ type: 'timestamptz', precision: 3 })
  createdAt!: Date;
}
