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
registerEnumType(Classification, {
  name: 'Classification',
  description: 'Data sensitivity, lowest to highest',
  valuesConfig: {
    PUBLIC: { description: 'Open data, fit to share outside the organisation' },
    INTERNAL: { description: 'For use inside the organisation' },
    CONFIDENTIAL: { description: "Sensitive: the default roles hide it from other teams and withhold a version's uri and sourceQuery unless a role grants those fields" },
    RESTRICTED: { description: 'The most sensitive: the default roles treat it like CONFIDENTIAL; by default, prediction inputs of models trained on it are logged only as their hash' },
  },
});

@ObjectType({ implements: Node, description: 'A named dataset owned by a team; its content lives in versions' })
@Entity()
@Index(['teamId', 'name'], { unique: true })
export class Dataset extends TeamOwnedEntity implements Node {
  @Field({ description: 'Unique within its team' })
  @Column({ type: 'text' })
  name!: string;

  @Field(() => String, { nullable: true, description: 'Free text; null when none was given' })
  @Column({ type: 'text', nullable: true })
  description!: string | null;

  @Field(() => Classification, { description: 'Its sensitivity, copied onto each version when registered' })
  @Column({ type: 'enum', enum: Classification, enumName: 'classification' })
  classification!: Classification;
}
