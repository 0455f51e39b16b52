import { Field, ObjectType } from 'type-graphql';
import { Column, Entity, Index } from 'typeorm';
import { Node } from '../core/node';
import { TeamOwnedEntity } from '../access/team-owned.entity';
import { JSONScalar } from '../core/scalars';

@ObjectType({ implements: Node, description: 'An immutable training configuration, identified by the sha256 of its canonical JSON' })
@Entity()
@Index(['teamId', 'sha256'], { unique: true })
export class Config extends TeamOwnedEntity implements Node {
  @Field({ description: 'sha256 of canonicalJson, lowercase hex; registering the same content again returns this row' })
  @Column({ type: 'char', length: 64 })
  sha256!: string;

  @Field({ description: 'The canonical JSON text that was hashed' })
  @Column({ type: 'text' })
  canonicalJson!: string;

  @Field(() => JSONScalar, { description: 'The configuration, a JSON object (canonicalJson parsed)' })
  // any: arbitrary JSON, and TypeORM's partial-entity types reject unknown
  get content(): Record<string, any> {
    return JSON.parse(this.canonicalJson);
  }
}
