import { Field, ObjectType } from 'type-graphql';
import { Column, Entity, PrimaryColumn, UpdateDateColumn } from 'typeorm';
import { JSONScalar } from '../core/scalars';
import { toGlobalId } from '../core/global-id';
import { Node, NodeId } from '../core/node';
import type { PolicyRule } from '../core/subjects';

@ObjectType({ implements: Node, description: 'A named list of CASL rules; principals hold roles by name' })
@Entity()
export class Role implements Node {
  @Field({ description: 'Unique; what principals and API keys list in their roles' })
  @PrimaryColumn({ type: 'text' })
  name!: string;

  @NodeId()
  get nodeId(): string {
    return toGlobalId('Role', this.name);
  }

  @Field(() => String, { nullable: true, description: 'Free text; null when none was given' })
  @Column({ type: 'text', nullable: true })
  description!: string | null;

  @Field(() => JSONScalar, { description: 'CASL rules: action, subject, conditions, fields, inverted, reason' })
  @Column({ type: 'jsonb' })
  rules!: PolicyRule[];

  @Field({ description: 'Seeded by the server; may be edited, not deleted' })
  @Column({ type: 'boolean', default: false })
  builtIn!: boolean;

  @Field({ description: 'When the role was created or last replaced' })
  @UpdateDateColumn({ type: 'timestamptz', precision: 3 })
  updatedAt!: Date;
}
