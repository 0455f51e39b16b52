import { Field, ObjectType } from 'type-graphql';
import { Column, Entity, Index } from 'typeorm';
import { Node } from '../core/node';
import { TeamOwnedEntity } from '../access/team-owned.entity';

@ObjectType({ implements: Node, description: 'The code a run used: repository, commit, local changes, entrypoint' })
@Entity()
@Index(['teamId', 'sha256'], { unique: true })
export class CodeVersion extends TeamOwnedEntity implements Node {
  @Field({ description: 'sha256 of the canonical JSON of the identifying fields; registering them again returns this row' })
  @Column({ type: 'char', length: 64 })
  sha256!: string;

  @Field()
  @Column({ type: 'text' })
  repositoryUrl!: string;

  @Field()
  @Column({ type: 'text' })
  commitSha!: string;

  @Field(() => String, { nullable: true })
  @Column({ type: 'text', nullable: true })
  branch!: string | null;

  @Field({ description: 'The working tree had uncommitted changes' })
  @Column({ type: 'boolean' })
  dirty!: boolean;

  @Field(() => String, { nullable: true, description: 'sha256 of the uncommitted diff, when dirty' })
  @Column({ type: 'char', length: 64, nullable: true })
  diffSha256!: string | null;

  @Field()
  @Column({ type: 'text' })
  entrypoint!: string;
}
