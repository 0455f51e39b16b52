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

  @Field({ description: 'The repository, as an https, http, ssh or git URL (builtin://modelgov/trainers: the trainers that ship with the server)' })
  @Column({ type: 'text' })
  repositoryUrl!: string;

  @Field({ description: 'The full commit id, 40 (or 64) hex characters' })
  @Column({ type: 'text' })
  commitSha!: string;

  @Field(() => String, { nullable: true, description: 'The branch it was on, as recorded; null when none was given' })
  @Column({ type: 'text', nullable: true })
  branch!: string | null;

  @Field({ description: 'The working tree had uncommitted changes' })
  @Column({ type: 'boolean' })
  dirty!: boolean;

  @Field(() => String, { nullable: true, description: 'sha256 of the uncommitted diff, when dirty' })
  @Column({ type: 'char', length: 64, nullable: true })
  diffSha256!: string | null;

  @Field({ description: 'The path, inside the repository, of what was run (e.g. train.py)' })
  @Column({ type: 'text' })
  entrypoint!: string;
}
