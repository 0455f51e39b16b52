import { Field, ObjectType } from 'type-graphql';
import { Column, CreateDateColumn, Entity, Index, JoinColumn, ManyToOne, PrimaryGeneratedColumn } from 'typeorm';
import { Team } from '../access/team.entity';
import { toGlobalId } from '../core/global-id';
import { Node, NodeId } from '../core/node';
import { JSONScalar } from '../core/scalars';

@ObjectType({ implements: Node, description: 'An immutable training configuration, identified by the sha256 of its canonical JSON' })
@Entity()
@Index(['teamId', 'sha256'], { unique: true })
export class Config implements Node {
  @PrimaryGeneratedColumn('uuid')
  id!: string;

  @NodeId()
  get nodeId(): string {
    return toGlobalId('Config', this.id);
  }

  @Column('uuid')
  teamId!: string;

  @ManyToOne(() => Team, { onDelete: 'RESTRICT' })
  @JoinColumn({ name: 'team_id' })
  team?: Team;

  @Field()
  @Column({ type: 'char', length: 64 })
  sha256!: string;

  @Field({ description: 'The canonical JSON text that was hashed' })
  @Column({ type: 'text' })
  canonicalJson!: string;

  @Field(() => JSONScalar)
  // any: arbitrary JSON, and TypeORM's partial-entity types reject unknown
  get content(): Record<string, any> {
    return JSON.parse(this.canonicalJson);
  }

  @Field()
  @Column({ type: 'text' })
  createdBy!: string;

  @Field()
  @CreateDateColumn({ type: 'timestamptz', precision: 3 })
  createdAt!: Date;
}
