import { Field, Int, ObjectType, registerEnumType } from 'type-graphql';
import { Column, Entity, Index, Unique } from 'typeorm';
import { Node } from '../core/node';
import { NotificationKind } from '../core/notify/notification.entity';
import { TeamOwnedEntity } from '../access/team-owned.entity';
import { AlertSeverity } from './alert.entity';

export enum NotificationDeliveryStatus {
  PENDING = 'PENDING',
  SENDING = 'SENDING',
  RETRYING = 'RETRYING',
  DELIVERED = 'DELIVERED',
  DEAD = 'DEAD',
  HELD_FOR_DIGEST = 'HELD_FOR_DIGEST',
  DIGESTED = 'DIGESTED',
  SILENCED = 'SILENCED',
  DROPPED = 'DROPPED',
}
registerEnumType(NotificationDeliveryStatus, {
  name: 'NotificationDeliveryStatus',
  description: 'Where one notification to one channel stands',
  valuesConfig: {
    PENDING: { description: 'Queued, not tried yet' },
    SENDING: { description: 'Being sent now' },
    RETRYING: { description: 'Failed; tried again at nextAttemptAt (exponential backoff with jitter, or the receiver\'s Retry-After)' },
    DELIVERED: { description: 'The receiver accepted it (HTTP 2xx; for EMAIL, the SMTP server for every recipient)' },
    DEAD: { description: 'Given up: every attempt failed, or the failure was one no retry fixes (a refused destination, a redirect, a 4xx); an alert was opened' },
    HELD_FOR_DIGEST: { description: "Held for the channel's next digest" },
    DIGESTED: { description: 'Sent within a digest (see digest)' },
    SILENCED: { description: 'Held back by a silence (see silence)' },
    DROPPED: { description: 'Not sent: the channel was deleted before it could be' },
  },
});

/** Statuses a delivery ends in. */
export const FINAL_DELIVERY: readonly NotificationDeliveryStatus[] = [
  NotificationDeliveryStatus.DELIVERED,
  NotificationDeliveryStatus.DEAD,
  NotificationDeliveryStatus.DIGESTED,
  NotificationDeliveryStatus.SILENCED,
  NotificationDeliveryStatus.DROPPED,
];

/**
 * One notification to one channel: at least once, under one idempotency key (this row's id, sent
 * as the CloudEvent id, `webhook-id` and `Idempotency-Key`), so that a receiver can drop repeats.
 */
@ObjectType({ implements: Node, description: 'One notification to one channel: its status, attempts, last error and latency; its id is the idempotency key receivers get' })
@Entity()
@Unique(['notificationId', 'channelId', 'escalation'])
@Index(['teamId', 'createdAt'])
@Index(['alertId'])
@Index(['channelId', 'status'])
// The sweep's look for work in flight, and for deliveries past retention.
@Index(['createdAt'])
@Index(['createdAt'], { where: `"status" IN ('PENDING', 'RETRYING', 'SENDING', 'HELD_FOR_DIGEST')` })
export class NotificationDelivery extends TeamOwnedEntity implements Node {
  @Column('uuid')
  notificationId!: string;

  /** Null once the channel is deleted (the delivery stays, with the channel's name). */
  @Column('uuid', { nullable: true })
  channelId!: string | null;

  @Field({ description: 'The channel\'s name when the delivery was made' })
  @Column({ type: 'text' })
  channelName!: string;

  /** The rule that sent it; null for digests and when the rule was deleted. */
  @Column('uuid', { nullable: true })
  ruleId!: string | null;

  @Field({ description: 'Sent to a rule\'s escalation channel because a CRITICAL alert stayed unacknowledged' })
  @Column({ type: 'boolean', default: false })
  escalation!: boolean;

  @Field(() => NotificationKind, { description: 'What it tells' })
  @Column({ type: 'text' })
  kind!: NotificationKind;

  @Field(() => AlertSeverity, { description: 'How serious' })
  @Column({ type: 'text' })
  severity!: AlertSeverity;

  @Field({ description: 'One line: what happened' })
  @Column({ type: 'text' })
  summary!: string;

  /** The alert it is about (for `Alert.notifications`). */
  @Column('uuid', { nullable: true })
  alertId!: string | null;

  @Field(() => NotificationDeliveryStatus, { description: 'Where it stands' })
  @Column({ type: 'text' })
  status!: NotificationDeliveryStatus;

  @Field(() => Int, { description: 'Sending attempts made so far' })
  @Column({ type: 'int', default: 0 })
  attempts!: number;

  @Field(() => String, { nullable: true, description: 'Why the last attempt failed (a refused destination, a redirect, a timeout, an HTTP or SMTP error); null after a success' })
  @Column({ type: 'text', nullable: true })
  lastError!: string | null;

  @Field(() => Int, { nullable: true, description: "The receiver's last HTTP status (for EMAIL the SMTP reply code)" })
  @Column({ type: 'int', nullable: true })
  lastStatus!: number | null;

  @Field(() => Date, { nullable: true, description: 'RETRYING: when the next attempt is due' })
  @Column({ type: 'timestamptz', precision: 3, nullable: true })
  nextAttemptAt!: Date | null;

  @Field(() => Date, { nullable: true, description: 'When the receiver accepted it' })
  @Column({ type: 'timestamptz', precision: 3, nullable: true })
  deliveredAt!: Date | null;

  @Field(() => Int, { nullable: true, description: 'From the change it tells of to its acceptance by the receiver, in milliseconds' })
  @Column({ type: 'int', nullable: true })
  latencyMs!: number | null;

  /** When the change it tells of happened. */
  @Field({ description: 'When the change it tells of happened' })
  @Column({ type: 'timestamptz', precision: 3 })
  occurredAt!: Date;

  /** HELD_FOR_DIGEST: the digest it waits for is sent from then on. */
  @Column({ type: 'timestamptz', precision: 3, nullable: true })
  digestDueAt!: Date | null;

  /** DIGESTED: the delivery of the digest that carried it. */
  @Column('uuid', { nullable: true })
  digestDeliveryId!: string | null;

  /** SILENCED: the silence that held it back. */
  @Column('uuid', { nullable: true })
  silenceId!: string | null;

  /** SENDING: another worker may take it over after this (the one sending died). */
  @Column({ type: 'timestamptz', precision: 3, nullable: true })
  leaseUntil!: Date | null;
}
