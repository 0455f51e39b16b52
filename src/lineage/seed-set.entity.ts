import { Field, ObjectType } from 'type-graphql';
import { Column, CreateDateColumn, Entity, Index, JoinColumn, ManyToOne, PrimaryGeneratedColumn } from 'typeorm';
import { Team } from '../access/team.entity';
import { toGlobalId } from '../core/global-id';
import { Node, NodeId } from '../core/node';
import { JSONObjectScalar } from '../core/scalars';

@ObjectType({ implements: Node, description: 'Named integer seeds (split, init, shuffle, …), identified by the sha256 of their canonical JSON' })
@Entity()
@Index(['teamId', 'sha256'], { unique: true })
export class SeedSet implements Node {
  @PrimaryGeneratedColumn('uuid')
  id!: string;

  @NodeId()
  get nodeId(): string {
    return toGlobalId('SeedSet', this.id);
  }

  @Column('uuid')
  teamId!: string;

  @ManyToOne(() => Team, { onDelete: 'RESTRICT' })
  @JoinColumn({ name: 'team_id' })
  team?: Team;

  @Field()
  @Column({ type: 'char', length: 64 })
  sha256!: string;

  @Field()
  @Column({ type: 'text' })
  canonicalJson!: string;

  @Field(() => JSONObjectScalar, { description: 'Seed name → integer' })
  get seeds(): Record<string, number> {
    return JSON.parse(this.canonicalJson);
  }

  @Field()
  @Column({ type: 'text' })
  createdBy!: string;

  @Field()
  @CreateDateColumn({ type: 'timestamptz', precision: 3 })
  createdAt!: Date;
}
