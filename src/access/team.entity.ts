import { Field, ObjectType } from 'type-graphql';
import { Column, CreateDateColumn, Entity, PrimaryGeneratedColumn } from 'typeorm';
import { toGlobalId } from '../core/global-id';
import { Node, NodeId } from '../core/node';

@ObjectType({ implements: Node, description: 'A group that owns datasets, models and deployments' })
@Entity()
export class Team implements Node {
  @PrimaryGeneratedColumn('uuid')
  id!: string;

  @NodeId()
  get nodeId(): string {
    return toGlobalId('Team', this.id);
  }

  @Field()
  @Column({ type: 'text', unique: true })
  name!: string;

  @Field(() => String, { nullable: true })
  @Column({ type: 'text', nullable: true })
  description!: string | null;

  @Field()
  @CreateDateColumn({ type: 'timestamptz', precision: 3 })
  createdAt!: Date;

  /** Policy attribute: lets team-scoped rules (`teamId $in user.teamIds`) apply to teams themselves. */
  get teamId(): string {
    return this.id;
  }
}
