import { Column, CreateDateColumn, Entity, Index, PrimaryGeneratedColumn } from 'typeorm';

/**
 * Work to hand to the queue, written in the same transaction as the row it is about. The
 * dispatcher moves undispatched entries to BullMQ with `jobId` as the job id, so a crash or a Redis
 * outage between the commit and the hand-over loses nothing and duplicates nothing.
 */
@Entity()
@Index(['availableAt'], { where: '"dispatched_at" IS NULL' })
export class OutboxEntry {
  @PrimaryGeneratedColumn({ type: 'bigint' })
  id!: string;

  @Column({ type: 'text' })
  queue!: string;

  @Column({ type: 'text' })
  jobName!: string;

  @Column({ type: 'text', unique: true })
  jobId!: string;

  @Column({ type: 'jsonb' })
  payload!: object;

  /** The job runs no earlier than this (delayed jobs); the dispatcher also backs off here. */
  @Column({ type: 'timestamptz', precision: 3, default: () => 'now()' })
  availableAt!: Date;

  @Column({ type: 'timestamptz', precision: 3, nullable: true })
  dispatchedAt!: Date | null;

  @Column({ type: 'int', default: 0 })
  dispatchAttempts!: number;

  @Column({ type: 'text', nullable: true })
  lastError!: string | null;

  @CreateDateColumn({ type: 'timestamptz', precision: 3 })
  createdAt!: Date;
}
