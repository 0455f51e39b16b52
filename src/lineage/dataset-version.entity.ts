import { Field, Int, ObjectType } from 'type-graphql';
import { Column, Entity, Index, JoinColumn, ManyToOne, PrimaryColumn } from 'typeorm';
import { Node } from '../core/node';
import { TeamOwnedEntity } from '../access/team-owned.entity';
import { bigintAsNumber, JSONScalar } from '../core/scalars';
import { Classification, Dataset } from './dataset.entity';

export interface ColumnSchema {
  name: string;
  type: string;
  nullable?: boolean;
}

@ObjectType({ implements: Node, description: 'An immutable, content-hashed snapshot of a dataset' })
@Entity()
@Index(['datasetId', 'version'], { unique: true })
@Index(['datasetId', 'sha256'], { unique: true })
@Index(['teamId', 'createdAt'])
export class DatasetVersion extends TeamOwnedEntity implements Node {
  @Column('uuid')
  datasetId!: string;

  @ManyToOne(() => Dataset, { onDelete: 'RESTRICT' })
  @JoinColumn({ name: 'dataset_id' })
  dataset?: Dataset;

  @Field(() => Classification, { description: "The dataset's classification, copied when the version was registered" })
  @Column({ type: 'enum', enum: Classification, enumName: 'classification' })
  classification!: Classification;

  @Field(() => Int, { description: 'Numbered from 1 within its dataset' })
  @Column({ type: 'int' })
  version!: number;

  // uri and sourceQuery are exposed through field resolvers that check field-level permission.
  @Column({ type: 'text' })
  uri!: string;

  @Column({ type: 'text', nullable: true })
  sourceQuery!: string | null;

  @Field({ description: 'sha256 of the content, lowercase hex' })
  @Column({ type: 'char', length: 64 })
  sha256!: string;

  @Field(() => Number, { description: 'Rows in this version' })
  @Column({ type: 'bigint', transformer: bigintAsNumber })
  rowCount!: number;

  @Field(() => JSONScalar, { description: 'Columns: [{ name, type, nullable }]' })
  @Column({ type: 'jsonb' })
  columnSchema!: ColumnSchema[];
}

/** "child was derived from parent": a lineage edge between dataset versions. */
@Entity()
@Index(['parentId'])
export class DatasetVersionParent {
  @PrimaryColumn('uuid')
  childId!: string;

  @PrimaryColumn('uuid')
  parentId!: string;

  @ManyToOne(() => DatasetVersion, { onDelete: 'CASCADE' })
  @JoinColumn({ name: 'child_id' })
  child?: DatasetVersion;

  @ManyToOne(() => DatasetVersion, { onDelete: 'RESTRICT' })
  @JoinColumn({ name: 'parent_id' })
  parent?: DatasetVersion;
}
