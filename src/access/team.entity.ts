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

  @Field({ description: 'Unique; how API keys and tokens name the team' })
  @Column({ type: 'text', unique: true })
  name!: string;

  @Field(() => String, { nullable: true, description: 'Free text; null when none was given' })
  @Column({ type: 'text', nullable: true })
  description!: string | null;

  @Field({ description: 'When the team was created' })
  @CreateDateColumn({ type: 'timestamptz', precision: 3 })
  createdAt!: Date;

  /** Policy attribute: lets team-scoped rules (`teamId $in user.teamIds`) apply to teams themselves. */
  get teamId(): string {
    return this.id;
  }
}
