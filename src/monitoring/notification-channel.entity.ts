import { Field, ObjectType, registerEnumType } from 'type-graphql';
import { Column, Entity, Unique, UpdateDateColumn } from 'typeorm';
import { Node } from '../core/node';
import { TeamOwnedEntity } from '../access/team-owned.entity';

export enum NotificationChannelKind {
  WEBHOOK = 'WEBHOOK',
  SLACK = 'SLACK',
  PAGERDUTY = 'PAGERDUTY',
  EMAIL = 'EMAIL',
}
registerEnumType(NotificationChannelKind, {
  name: 'NotificationChannelKind',
  description:
    'WEBHOOK: a CloudEvents 1.0 JSON POST signed as Standard Webhooks (`webhook-signature: v1,<base64 HMAC-SHA256>`); ' +
    'SLACK: an incoming-webhook message (`text` and `blocks`); PAGERDUTY: an Events API v2 event; ' +
    'EMAIL: a message to 1 to 20 recipients through the SMTP server of the configuration',
  valuesConfig: {
    WEBHOOK: { description: 'A CloudEvents 1.0 JSON POST, signed as Standard Webhooks with the secret returned at creation' },
    SLACK: { description: 'A Slack incoming-webhook message (`text` and `blocks`)' },
    PAGERDUTY: { description: 'A PagerDuty Events API v2 event, sent with the routing key' },
    EMAIL: { description: 'An email (plain text and HTML) to the channel\'s recipients, submitted to the SMTP server of the configuration (SMTP_URL); refused when none is configured' },
  },
});

/**
 * Where a team's notifications go. The secret (a WEBHOOK's signing secret, a PAGERDUTY routing
 * key) is kept only encrypted (AES-256-GCM under NOTIFY_SECRET_KEY) and is never part of an answer,
 * a log line or an audit event.
 */
@ObjectType({ implements: Node, description: "A team's notification destination: a signed webhook, a Slack incoming webhook, a PagerDuty service or email recipients" })
@Entity()
@Unique(['teamId', 'name'])
export class NotificationChannel extends TeamOwnedEntity implements Node {
  @Field({ description: 'Unique within its team; 1 to 100 characters' })
  @Column({ type: 'text' })
  name!: string;

  @Field(() => NotificationChannelKind, { description: 'The format deliveries take' })
  @Column({ type: 'enum', enum: NotificationChannelKind, enumName: 'notification_channel_kind' })
  kind!: NotificationChannelKind;

  // Never returned whole: a Slack or PagerDuty URL (and many webhook URLs) is itself a credential.
  // For EMAIL, the recipients as a `mailto:` URI (shown whole: an address grants nothing).
  @Column({ type: 'text' })
  url!: string;

  /** `iv.tag.ciphertext` (base64url each) of the channel's secret; null for SLACK. */
  @Column({ type: 'text', nullable: true })
  secretCiphertext!: string | null;

  @Field(() => Date, { nullable: true, description: 'Since when deliveries to it are dead-lettered (its NOTIFICATION_FAILED alert is open); null while it works' })
  @Column({ type: 'timestamptz', precision: 3, nullable: true })
  failingSince!: Date | null;

  @Field({ description: 'When its name, URL or routing key last changed' })
  @UpdateDateColumn({ type: 'timestamptz', precision: 3 })
  updatedAt!: Date;
}
