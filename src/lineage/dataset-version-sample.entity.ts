import { registerEnumType } from 'type-graphql';
import { Column, CreateDateColumn, Entity, Index, JoinColumn, ManyToOne, PrimaryColumn } from 'typeorm';
import { DatasetVersion } from './dataset-version.entity';

/** Which side of a time split a sampled dataset version holds. */
export enum SamplePart {
  /** The earlier rows: data to train on. */
  TRAIN = 'TRAIN',
  /** The latest rows: data to evaluate on, never seen by a model trained on the TRAIN part. */
  HOLDOUT = 'HOLDOUT',
}
registerEnumType(SamplePart, {
  name: 'SamplePart',
  description: 'TRAIN: the earlier rows of a production sample; HOLDOUT: the latest ones',
  valuesConfig: {
    TRAIN: { description: 'The earlier rows: data to train on' },
    HOLDOUT: { description: 'The latest rows: data to evaluate on, never seen by a model trained on the TRAIN part' },
  },
});

/**
 * "This dataset version was sampled from the production traffic of this deployment": the lineage
 * edge SAMPLED (Deployment → DatasetVersion), with the window asked for, the rows the part holds
 * and the rows the sample could not use, by cause. The two parts of one sample share `sampleId`;
 * the unusable counts are the whole sample's (an unusable row belongs to neither part).
 */
@Entity()
@Index(['deploymentId', 'windowFrom'])
@Index(['sampleId'])
export class DatasetVersionSample {
  @PrimaryColumn('uuid')
  datasetVersionId!: string;

  @ManyToOne(() => DatasetVersion, { onDelete: 'CASCADE' })
  @JoinColumn({ name: 'dataset_version_id' })
  datasetVersion?: DatasetVersion;

  /** The deployment whose predictions were sampled (a later domain's row: named, not joined). */
  @Column('uuid')
  deploymentId!: string;

  @Column('uuid')
  teamId!: string;

  @Column('uuid')
  sampleId!: string;

  @Column({ type: 'enum', enum: SamplePart, enumName: 'sample_part' })
  part!: SamplePart;

  /** The window the sample was asked for: predictions that occurred in [windowFrom, windowTo). */
  @Column({ type: 'timestamptz', precision: 3 })
  windowFrom!: Date;

  @Column({ type: 'timestamptz', precision: 3 })
  windowTo!: Date;

  /** When the earliest prediction of this part occurred. */
  @Column({ type: 'timestamptz', precision: 3 })
  sampledFrom!: Date;

  /** When the latest prediction of this part occurred (inclusive). */
  @Column({ type: 'timestamptz', precision: 3 })
  sampledTo!: Date;

  /** CSV rows in this part. */
  @Column({ type: 'int' })
  rows!: number;

  /** Labelled rows whose inputs were logged only as their hash. */
  @Column({ type: 'int' })
  unusableInputsHashOnly!: number;

  /** Answered rows without a label. */
  @Column({ type: 'int' })
  unusableUnlabelled!: number;

  /** Labelled rows with a value a CSV cannot hold (a comma, quote or line break in a string; a non-scalar). */
  @Column({ type: 'int' })
  unusableUnstorableValue!: number;

  /** Labelled rows answered by a version whose reference profile names other input columns than the sample's, or none. */
  @Column({ type: 'int' })
  unusableOtherColumns!: number;

  @Column({ type: 'text' })
  createdBy!: string;

  @CreateDateColumn({ type: 'timestamptz', precision: 3 })
  createdAt!: Date;
}
