import { Column, CreateDateColumn, Entity, PrimaryColumn } from 'typeorm';
import { bigintAsNumber } from '../core/scalars';
import type { OnnxSignature } from './onnx';

/** A stored model file, addressed by the sha256 the server computed while receiving it. */
@Entity()
export class Artifact {
  @PrimaryColumn({ type: 'char', length: 64 })
  sha256!: string;

  @Column({ type: 'bigint', transformer: bigintAsNumber })
  sizeBytes!: number;

  @Column({ type: 'text' })
  format!: string;

  @Column({ type: 'jsonb' })
  signature!: OnnxSignature;

  @Column({ type: 'text' })
  createdBy!: string;

  @CreateDateColumn({ type: 'timestamptz', precision: 3 })
  createdAt!: Date;
}
