import { Field, ObjectType } from 'type-graphql';
import { Column, Entity, Index } from 'typeorm';
import { Node } from '../core/node';
import { TeamOwnedEntity } from '../access/team-owned.entity';
import { JSONObjectScalar } from '../core/scalars';

@ObjectType({ implements: Node, description: 'Named integer seeds (split, init, shuffle, …), identified by the sha256 of their canonical JSON' })
@Entity()
@Index(['teamId', 'sha256'], { unique: true })
export class SeedSet extends TeamOwnedEntity implements Node {
  @Field({ description: 'sha256 of canonicalJson, lowercase hex; registering the same seeds again returns this row' })
  @Column({ type: 'char', length: 64 })
  sha256!: string;

  @Field({ description: 'The canonical JSON text of the seeds that was hashed' })
  @Column({ type: 'text' })
  canonicalJson!: string;

  @Field(() => JSONObjectScalar, { description: 'Seed name → integer' })
  get seeds(): Record<string, number> {
    return JSON.parse(this.canonicalJson);
  }
}
