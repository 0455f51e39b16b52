import { Column, Entity, Index, PrimaryGeneratedColumn } from 'typeorm';

/**
 * One answered (or failed) prediction request, or one shadow run. Written in batches by the
 * prediction log writer, never per request. Inputs are kept as sent, or only as their hash when
 * the model's training data is classified above the configured level.
 */
@Entity({ name: 'prediction_log' })
@Index(['deploymentId', 'occurredAt'])
@Index(['modelVersionId', 'occurredAt'])
// Outcomes join by request key within a deployment.
@Index(['deploymentId', 'requestKey'], { where: '"request_key" IS NOT NULL' })
export class PredictionRecord {
  /**
   * The prediction id the answer carried (`Prediction.id`, the Open Inference Protocol's
   * `parameters.prediction_id`): assigned when answering, before the batched write. The
   * database's default only serves records inserted by hand.
   */
  @PrimaryGeneratedColumn('uuid')
  id!: string;

  @Column({ type: 'timestamptz', precision: 3 })
  occurredAt!: Date;

  @Column('uuid')
  deploymentId!: string;

  @Column('uuid')
  teamId!: string;

  /** The version that produced `outputs` (the fallback version when `fallback`). */
  @Column('uuid')
  modelVersionId!: string;

  @Column({ type: 'text' })
  requestId!: string;

  @Column({ type: 'text', nullable: true })
  requestKey!: string | null;

  @Column({ type: 'text' })
  principalId!: string;

  @Column({ type: 'text' })
  principalKind!: string;

  /** `graphql` or `open-inference`. */
  @Column({ type: 'text' })
  source!: string;

  @Column({ type: 'int' })
  rows!: number;

  @Column({ type: 'jsonb', nullable: true })
  inputs!: Record<string, unknown> | null;

  /** sha256 over each input's name, shape and little-endian element bytes, in input order. */
  @Column({ type: 'text' })
  inputsSha256!: string;

  @Column({ type: 'jsonb', nullable: true })
  outputs!: Record<string, unknown> | null;

  @Column({ type: 'double precision' })
  latencyMs!: number;

  @Column({ type: 'boolean', default: false })
  fallback!: boolean;

  @Column({ type: 'boolean', default: false })
  shadow!: boolean;

  /** The version that failed, when the answer came from the fallback (or nothing answered). */
  @Column('uuid', { nullable: true })
  failedVersionId!: string | null;

  @Column({ type: 'text', nullable: true })
  error!: string | null;
}
