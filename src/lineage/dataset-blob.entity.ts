import { Column, CreateDateColumn, Entity, PrimaryColumn } from 'typeorm';
import { bigintAsNumber } from '../core/scalars';

/** Dataset content the server holds (CSV), addressed by the sha256 it computed on upload. */
@Entity()
export class DatasetBlob {
  @PrimaryColumn({ type: 'char', length: 64 })
  sha256!: string;

  @Column({ type: 'bigint', transformer: bigintAsNumber })
  sizeBytes!: number;

  @Column({ type: 'bigint', transformer: bigintAsNumber })
  rowCount!: number;

  @Column({ type: 'text', array: true })
  columns!: string[];

  @Column({ type: 'text' })
  createdBy!: string;

  @CreateDateColumn({ type: 'timestamptz', precision: 3 })
  createdAt!: Date;
}
