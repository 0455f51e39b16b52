import { Field, ObjectType } from 'type-graphql';
import { Column, Entity, Index } from 'typeorm';
import { Node } from '../core/node';
import { TeamOwnedEntity } from '../access/team-owned.entity';

@ObjectType({ implements: Node, description: 'Where a run executed: runtime, locked dependencies, image, hardware' })
@Entity()
@Index(['teamId', 'sha256'], { unique: true })
export class Environment extends TeamOwnedEntity implements Node {
  @Field({ description: 'sha256 of the canonical JSON of the other fields' })
  @Column({ type: 'char', length: 64 })
  sha256!: string;

  @Field({ description: 'For example "python 3.11.7" or "node 20.20"' })
  @Column({ type: 'text' })
  runtime!: string;

  @Field({ description: 'sha256 of the dependency lockfile, lowercase hex' })
  @Column({ type: 'char', length: 64 })
  lockfileSha256!: string;

  @Field(() => String, { nullable: true, description: 'Container image digest, sha256:…' })
  @Column({ type: 'text', nullable: true })
  imageDigest!: string | null;

  @Field({ description: 'For example "cpu x2" or "1x NVIDIA H100"' })
  @Column({ type: 'text' })
  hardware!: string;
}
