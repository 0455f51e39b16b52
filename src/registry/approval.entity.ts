import { Field, ObjectType, registerEnumType } from 'type-graphql';
import { Column, CreateDateColumn, Entity, Index, JoinColumn, ManyToOne, PrimaryGeneratedColumn } from 'typeorm';
import { toGlobalId } from '../core/global-id';
import { Node, NodeId } from '../core/node';
import { ModelVersion } from './model-version.entity';

export enum ReviewDecision {
  APPROVED = 'APPROVED',
  REJECTED = 'REJECTED',
}
registerEnumType(ReviewDecision, {
  name: 'ReviewDecision',
  description: "A reviewer's verdict on a CANDIDATE model version",
  valuesConfig: {
    APPROVED: { description: 'The version was approved (approveModelVersion)' },
    REJECTED: { description: 'The version was rejected (rejectModelVersion)' },
  },
});

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

  @Field(() => ReviewDecision, { description: 'Approved or rejected' })
  @Column({ type: 'enum', enum: ReviewDecision, enumName: 'review_decision' })
  decision!: ReviewDecision;

  @Field({ description: 'The reviewer (principal id)' })
  @Column({ type: 'text' })
  actor!: string;

  @Field({ description: "The reviewer's reason, as given" })
  @Column({ type: 'text' })
  reason!: string;

  @Field({ description: 'When the decision was made' })
  @CreateDateColumn({ type: 'timestamptz', precision: 3 })
  createdAt!: Date;
}
