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

  @Field({ description: 'A label chosen by its creator; not unique' })
  @Column({ type: 'text' })
  name!: string;

  @Field({ description: 'The first characters of the key, to recognise it' })
  @Column({ type: 'text' })
  prefix!: string;

  @Column({ type: 'text' })
  secretHash!: string;

  @Field(() => [String], { description: 'Names of the roles the key holds' })
  @Column({ type: 'text', array: true })
  roles!: string[];

  @Field(() => [String], { description: 'Team names the key acts for' })
  @Column({ type: 'text', array: true })
  teams!: string[];

  @Field({ description: 'The principal that created it' })
  @Column({ type: 'text' })
  createdBy!: string;

  @Field({ description: 'When it was created' })
  @CreateDateColumn({ type: 'timestamptz', precision: 3 })
  createdAt!: Date;

  @Field(() => Date, { nullable: true, description: 'From then on the key is refused; null: it does not expire' })
  @Column({ type: 'timestamptz', nullable: true })
  expiresAt!: Date | null;

  @Field(() => Date, { nullable: true, description: 'When it was revoked (refused from then on); null while it is not' })
  @Column({ type: 'timestamptz', nullable: true })
  revokedAt!: Date | null;
}
