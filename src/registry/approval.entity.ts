import { Field, ObjectType, registerEnumType } from 'type-graphql';
import { Column, CreateDateColumn, Entity, Index, JoinColumn, ManyToOne, PrimaryGeneratedColumn } from 'typeorm';
import { toGlobalId } from '../core/global-id';
import { Node, NodeId } from '../core/node';
import { ModelVersion } from './model-version.entity';

export enum ReviewDecision {
  APPROVED = 'APPROVED',
  REJECTED = 'REJECTED',
}
registerEnumType(ReviewDecision, { name: 'ReviewDecision' });

@ObjectType({ implements: Node, description: 'A review decision on a model version: who, when, why' })
@Entity()
@Index(['modelVersionId', 'createdAt'])
export class Approval implements Node {
  @PrimaryGeneratedColumn('uuid')
  id!: string;

  @NodeId()
  get nodeId(): string {
    return toGlobalId('Approval', this.id);
  }

  @Column('uuid')
  modelVersionId!: string;

  @ManyToOne(() => ModelVersion, { onDelete: 'RESTRICT' })
  @JoinColumn({ name: 'model_version_id' })
  modelVersion?: ModelVersion;

  @Column('uuid')
  teamId!: string;

  @Field(() => ReviewDecision)
  @Column({ type: 'enum', enum: ReviewDecision, enumName: 'review_decision' })
  decision!: ReviewDecision;

  @Field({ description: 'The reviewer (principal id)' })
  @Column({ type: 'text' })
  actor!: string;

  @Field()
  @Column({ type: 'text' })
  reason!: string;

  @Field()
  @CreateDateColumn({ type: 'timestamptz', precision: 3 })
  createdAt!: Date;
}
