import { Column, Entity, PrimaryGeneratedColumn } from 'typeorm';

/**
 * A prediction record the database refused because of its data (a NUL character, a value out of
 * range), set aside so that the rest of its batch, and every later one, is written. The record
 * is kept whole as JSON text, in which such characters are escapes, so this row always stores.
 * Inspect with SQL; fix and re-insert into `prediction_log` or delete.
 */
@Entity({ name: 'prediction_log_quarantine' })
export class QuarantinedPrediction {
  @PrimaryGeneratedColumn({ type: 'bigint' })
  id!: string;

  @Column({ type: 'timestamptz', precision: 3, default: () => 'now()' })
  quarantinedAt!: Date;

  /** As in the record (text: a malformed id may be why it was refused). */
  @Column({ type: 'text' })
  deploymentId!: string;

  @Column({ type: 'text' })
  teamId!: string;

  @Column({ type: 'text' })
  requestId!: string;

  /** What PostgreSQL said when the record was written alone. */
  @Column({ type: 'text' })
  error!: string;

  /** The record as the writer held it, as JSON text. */
  @Column({ type: 'text' })
  record!: string;
}
