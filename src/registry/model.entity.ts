import { Field, ObjectType } from 'type-graphql';
import { Column, CreateDateColumn, Entity, Index, JoinColumn, ManyToOne, PrimaryGeneratedColumn } from 'typeorm';
import { Team } from '../access/team.entity';
import { toGlobalId } from '../core/global-id';
import { Node, NodeId } from '../core/node';

@ObjectType({ implements: Node, description: 'A named model owned by a team; its artifacts are model versions' })
@Entity()
@Index(['teamId', 'name'], { unique: true })
export class Model implements Node {
  @PrimaryGeneratedColumn('uuid')
  id!: string;

  @NodeId()
  get nodeId(): string {
    return toGlobalId('Model', this.id);
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

  @Field()
  @Column({ type: 'text' })
  createdBy!: string;

  @Field()
  @CreateDateColumn({ type: 'timestamptz', precision: 3 })
  createdAt!: Date;
}
