import { Field, ObjectType } from 'type-graphql';
import { Column, CreateDateColumn, Entity, PrimaryGeneratedColumn } from 'typeorm';
import { toGlobalId } from '../core/global-id';
import { Node, NodeId } from '../core/node';

@ObjectType({ implements: Node, description: 'A service account credential; the secret is shown once, stored hashed' })
@Entity()
export class ApiKey implements Node {
  @PrimaryGeneratedColumn('uuid')
  id!: string;

  @NodeId()
  get nodeId(): string {
    return toGlobalId('ApiKey', this.id);
  }

  @Field()
  @Column({ type: 'text' })
  name!: string;

  @Field({ description: 'The first characters of the key, to recognise it' })
  @Column({ type: 'text' })
  prefix!: string;

  @Column({ type: 'text' })
  secretHash!: string;

  @Field(() => [String])
  @Column({ type: 'text', array: true })
  roles!: string[];

  @Field(() => [String], { description: 'Team names the key acts for' })
  @Column({ type: 'text', array: true })
  teams!: string[];

  @Field()
  @Column({ type: 'text' })
  createdBy!: string;

  @Field()
  @CreateDateColumn({ type: 'timestamptz', precision: 3 })
  createdAt!: Date;

  @Field(() => Date, { nullable: true })
  @Column({ type: 'timestamptz', nullable: true })
  expiresAt!: Date | null;

  @Field(() => Date, { nullable: true })
  @Column({ type: 'timestamptz', nullable: true })
  revokedAt!: Date | null;
}
