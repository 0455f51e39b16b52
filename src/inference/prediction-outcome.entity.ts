import { Column, Entity, Index, PrimaryColumn } from 'typeorm';

/**
 * The observed outcome (ground truth) of one row of a logged prediction: what the model should
 * have answered, sent by the caller whenever it learns it (seconds or days later). One row per
 * (prediction, row index); the same label again changes nothing, a different one only as a
 * correction.
 */
@Entity({ name: 'prediction_outcome' })
@Index(['deploymentId', 'recordedAt'])
export class PredictionOutcome {
  /** The prediction (`prediction_log.id`). */
  @PrimaryColumn('uuid')
  predictionId!: string;

  /** The row of the prediction's batch, from 0. */
  @PrimaryColumn({ type: 'int' })
  row!: number;

  @Column('uuid')
  deploymentId!: string;

  @Column('uuid')
  teamId!: string;

  /** The version that answered the prediction. */
  @Column('uuid')
  modelVersionId!: string;

  /** The label as sent (any JSON value: a class, a number, a vector). */
  @Column({ type: 'jsonb' })
  label!: unknown;

  /** sha256 of the label's canonical JSON: how "the same label" is decided. */
  @Column({ type: 'text' })
  labelSha256!: string;

  /** When the outcome was observed, as the caller says; null when it did not say. */
  @Column({ type: 'timestamptz', precision: 3, nullable: true })
  observedAt!: Date | null;

  @Column({ type: 'timestamptz', precision: 3 })
  recordedAt!: Date;

  /** The principal that recorded (or last corrected) it. */
  @Column({ type: 'text' })
  recordedBy!: string;

  /** How many times the label was corrected (`correct: true`). */
  @Column({ type: 'int', default: 0 })
  corrections!: number;
}
