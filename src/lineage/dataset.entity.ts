import { Field, ObjectType, registerEnumType } from 'type-graphql';
import { Column, Entity, Index } from 'typeorm';
import { Node } from '../core/node';
import { TeamOwnedEntity } from '../access/team-owned.entity';

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
export class Dataset extends TeamOwnedEntity implements Node {
  @Field()
  @Column({ type: 'text' })
  name!: string;

  @Field(() => String, { nullable: true })
  @Column({ type: 'text', nullable: true })
  description!: string | null;

  @Field(() => Classification)
  @Column({ type: 'enum', enum: Classification, enumName: 'classification' })
  classification!: Classification;
}
