import { Field, ObjectType } from 'type-graphql';
import { Column, Entity, Index } from 'typeorm';
import { Node } from '../core/node';
import { TeamOwnedEntity } from '../access/team-owned.entity';

@ObjectType({ implements: Node, description: 'A named model owned by a team; its artifacts are model versions' })
@Entity()
@Index(['teamId', 'name'], { unique: true })
export class Model extends TeamOwnedEntity implements Node {
  @Field({ description: 'Unique within its team' })
  @Column({ type: 'text' })
  name!: string;

  @Field(() => String, { nullable: true, description: 'Free text; null when none was given' })
  @Column({ type: 'text', nullable: true })
  description!: string | null;
}
