import { Field, ObjectType, registerEnumType } from 'type-graphql';
import { Column, CreateDateColumn, Entity, Index, JoinColumn, ManyToOne, PrimaryGeneratedColumn } from 'typeorm';
import { Team } from '../access/team.entity';
import { toGlobalId } from '../core/global-id';
import { Node, NodeId } from '../core/node';

export enum Classification {
  PUBLIC = 'PUBLIC',
  INTERNAL = 'INTERNAL',
  CONFIDENTIAL = 'CONFIDENTIAL',
  RESTRICTED = 'RESTRICTED',
}
registerEnumType(Classification, { name: 'Classification', description: 'Data sensitivity, lowest to highest' });

@ObjectType({ implements: Node, description: 'A named dataset owned by a team; its content lives in versions' })
@Entity()
@Index(['teamId', 'name'], { unique: true })
export class Dataset implements Node {
  @PrimaryGeneratedColumn('uuid')
  id!: string;

  @NodeId()
  get nodeId(): string {
    return toGlobalId('Dataset', this.id);
  }

  @Column('uuid')
  teamId!: string;

  @ManyToOne(() => Team, { onDelete: 'RESTRICT' })
  @JoinColumn({ name: 'team_id' })
  team?: Team;

  @Field()
  @Column({ type: 'text' })
  name!: string;

  @Field(() => String, { nullable: true })
  @Column({ type: 'text', nullable: true })
  description!: string | null;

  @Field(() => Classification)
  @Column({ type: 'enum', enum: Classification, enumName: 'classification' })
  classification!: Classification;

  @Field()
  @Column({ type: 'text' })
  createdBy!: string;

  @Field()
  @CreateDateColumn({ type: 'timestamptz', precision: 3 })
  createdAt!: Date;
}
