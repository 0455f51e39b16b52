import { Field, Int, ObjectType, registerEnumType } from 'type-graphql';
import { Column, Entity, Unique, UpdateDateColumn } from 'typeorm';
import { Node } from '../core/node';
import { NotificationMatcher } from './notification-matcher.entity';
import { AlertSeverity } from './alert.entity';

export enum NotificationAction {
  IMMEDIATE = 'IMMEDIATE',
  DIGEST = 'DIGEST',
  NONE = 'NONE',
}
registerEnumType(NotificationAction, {
  name: 'NotificationAction',
  description: 'What a rule does with a notification it matches; by default IMMEDIATE for CRITICAL, DIGEST for WARNING and NONE for INFO',
  valuesConfig: {
    IMMEDIATE: { description: 'Sent to the channel at once (queued, retried until delivered or dead-lettered)' },
    DIGEST: { description: "Held for the channel and sent with the others held in the same period as one DIGEST message (the rule's digestSeconds)" },
    NONE: { description: 'Not sent: it stays on dashboards and subscriptions' },
  },
});

/** The action a rule without one takes for a notification of each severity. */
export const DEFAULT_ACTION: Record<AlertSeverity, NotificationAction> = {
  CRITICAL: NotificationAction.IMMEDIATE,
  WARNING: NotificationAction.DIGEST,
  INFO: NotificationAction.NONE,
};

/**
 * Where a team's notifications go: what it matches (deployment, environment, kinds, minimum
 * severity) and what it does with them (immediate, digest or none), on one of the team's channels;
 * optionally, an unacknowledged CRITICAL alert it sent is sent again to an escalation channel.
 */
@ObjectType({ implements: Node, description: "A routing rule of a team's notifications: what it matches, which channel, immediate, digest or none, and escalation" })
@Entity()
@Unique(['teamId', 'name'])
export class NotificationRule extends NotificationMatcher implements Node {
  @Field({ description: 'What the rule is for, unique within its team; 1 to 100 characters' })
  @Column({ type: 'text' })
  name!: string;

  @Column('uuid')
  channelId!: string;

  @Field(() => AlertSeverity, { description: 'Only notifications at least this severe' })
  @Column({ type: 'text' })
  minSeverity!: AlertSeverity;

  /** Null: by severity ({@link DEFAULT_ACTION}). */
  @Column({ type: 'text', nullable: true })
  action!: NotificationAction | null;

  @Field(() => Int, { description: 'DIGEST: how long notifications are held for the channel before they are sent together' })
  @Column({ type: 'int' })
  digestSeconds!: number;

  @Column('uuid', { nullable: true })
  escalationChannelId!: string | null;

  @Field(() => Int, { nullable: true, description: 'With an escalation channel: a CRITICAL alert this rule sent that is still OPEN (unacknowledged) after this long is sent there' })
  @Column({ type: 'int', nullable: true })
  escalateAfterSeconds!: number | null;

  @Field({ description: 'A disabled rule matches nothing' })
  @Column({ type: 'boolean', default: true })
  enabled!: boolean;

  @Field({ description: 'When it last changed' })
  @UpdateDateColumn({ type: 'timestamptz', precision: 3 })
  updatedAt!: Date;
}
