import { Field, ObjectType } from 'type-graphql';
import { Column, CreateDateColumn, JoinColumn, ManyToOne, PrimaryGeneratedColumn } from 'typeorm';
import { Team } from './team.entity';
import { toGlobalId } from '../core/global-id';
import type { KindName } from '../core/subjects';
import { NodeId } from '../core/node';

/**
 * The columns every team-owned record has: a uuid, its team (the attribute team-scoped rules test),
 * who registered it and when. The global ID's type is the subclass's name.
 */
// Not itself in the schema: no resolver returns it; its fields are inherited by each subclass.
@ObjectType()
export abstract class TeamOwnedEntity {
  @PrimaryGeneratedColumn('uuid')
  id!: string;

  @NodeId()
  get nodeId(): string {
    return toGlobalId(this.constructor.name as KindName, this.id);
  }

  @Column('uuid')
  teamId!: string;

  @ManyToOne(() => Team, { onDelete: 'RESTRICT' })
  @JoinColumn({ name: 'team_id' })
  team?: Team;

  @Field({ description: 'The principal that registered it' })
  @Column({ type: 'text' })
  createdBy!: string;

  @Field({ description: 'When it was registered' })
  @CreateDateColumn({ type: 'timestamptz', precision: 3 })
  createdAt!: Date;
}
