import { Column, Entity, Index, PrimaryColumn, PrimaryGeneratedColumn } from 'typeorm';
import type { LatencySketch } from './latency-sketch';
import type { QualityStats } from './quality-stats';
import type { CategoryHistogram, NumericHistogram } from './rollup-bins';
import type { AgreementCounts } from './shadow-agreement';

/** The figures a rollup row and a rollup delta both hold (see `RollupStats`). */
abstract class RollupFigures {
  @Column('uuid')
  teamId!: string;

  @Column({ type: 'bigint', default: 0 })
  requests!: string;

  @Column({ type: 'bigint', default: 0 })
  errors!: string;

  @Column({ type: 'bigint', default: 0 })
  fallbacks!: string;

  @Column({ type: 'bigint', default: 0 })
  rows!: string;

  @Column({ type: 'bigint', default: 0 })
  unbinned!: string;

  @Column({ type: 'bigint', default: 0 })
  labelled!: string;

  @Column({ type: 'jsonb', default: () => "'{}'" })
  latency!: LatencySketch;

  @Column({ type: 'jsonb', default: () => "'{}'" })
  features!: Record<string, NumericHistogram | CategoryHistogram>;

  @Column({ type: 'jsonb', nullable: true })
  prediction!: NumericHistogram | null;

  @Column({ type: 'jsonb', default: () => "'{}'" })
  quality!: QualityStats;

  @Column({ type: 'jsonb', default: () => "'{}'" })
  labelDelay!: LatencySketch;

  @Column({ type: 'jsonb', default: () => "'{}'" })
  agreement!: Partial<AgreementCounts>;
}

/**
 * The window rollup of one deployment's model version (served or shadow): counts, a mergeable
 * latency sketch, histograms on the version's rollup bins and the quality statistics of labelled
 * rows (see `RollupStats`). Maintained from the write path — writers append deltas
 * (`PredictionRollupDelta`) with the prediction log's batches and with outcome batches, and every
 * process folds them in within a second — never by rescanning the log; rebuilt from the raw log on
 * request. Monitoring, drift, quality and rollout health read these (and the deltas not folded yet).
 */
@Entity({ name: 'prediction_rollup' })
@Index('IDX_prediction_rollup_window', ['deploymentId', 'windowStart'])
export class PredictionRollup extends RollupFigures {
  @PrimaryColumn('uuid')
  deploymentId!: string;

  @PrimaryColumn('uuid')
  modelVersionId!: string;

  @PrimaryColumn({ type: 'boolean' })
  shadow!: boolean;

  @PrimaryColumn({ type: 'timestamptz', precision: 3 })
  windowStart!: Date;

  @PrimaryColumn({ type: 'int' })
  windowSeconds!: number;

  @Column({ type: 'timestamptz', precision: 3, default: () => 'now()' })
  updatedAt!: Date;
}

/**
 * A rollup delta as a writer appends it (a log batch, an outcome batch), in the statement or
 * transaction of what it counts: appending costs writers no read-modify-write of the window's row.
 * Deltas are folded into `prediction_rollup` within seconds (see `RollupCompactor`); readers add the
 * deltas not folded yet, so a figure never waits for the fold.
 */
@Entity({ name: 'prediction_rollup_delta' })
@Index('IDX_prediction_rollup_delta_window', ['deploymentId', 'windowStart'])
export class PredictionRollupDelta extends RollupFigures {
  @PrimaryGeneratedColumn({ type: 'bigint', primaryKeyConstraintName: 'PK_prediction_rollup_delta' })
  id!: string;

  @Column('uuid')
  deploymentId!: string;

  @Column('uuid')
  modelVersionId!: string;

  @Column({ type: 'boolean' })
  shadow!: boolean;

  @Column({ type: 'timestamptz', precision: 3 })
  windowStart!: Date;

  @Column({ type: 'int' })
  windowSeconds!: number;
}
