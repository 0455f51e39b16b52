import { Field, ID, InputType, Int, ObjectType } from 'type-graphql';
import { Connection } from '../core/pagination';
import { NotificationChannel, NotificationChannelKind } from './notification-channel.entity';

@InputType({ description: 'A new notification channel of a team: its kind, destination and (PAGERDUTY) routing key' })
export class CreateNotificationChannelInput {
  @Field({ description: 'The owning team' })
  team!: string;

  @Field({ description: 'Unique within the team' })
  name!: string;

  @Field(() => NotificationChannelKind, { description: 'The format deliveries take; fixed once created' })
  kind!: NotificationChannelKind;

  @Field({
    description:
      'http(s) URL; for PAGERDUTY the Events API v2 endpoint, optionally carrying `?routing_key=`; for EMAIL the recipients, 1 to 20, as `mailto:a@example.com,b@example.com` or the bare comma-separated addresses',
  })
  url!: string;

  @Field(() => String, { nullable: true, description: 'PAGERDUTY only: the integration (routing) key, when the URL does not carry it. Kept encrypted, never shown again' })
  routingKey?: string | null;
}

@InputType({ description: 'Changes to a channel; each field given replaces the current value, the rest are kept' })
export class UpdateNotificationChannelInput {
  @Field(() => ID, { description: 'The NotificationChannel id' })
  id!: string;

  @Field(() => String, { nullable: true, description: 'A new name, unique within the team; 1 to 100 characters' })
  name?: string | null;

  @Field(() => String, { nullable: true, description: 'A new URL (for EMAIL: new recipients), checked like a new channel\'s' })
  url?: string | null;

  @Field(() => String, { nullable: true, description: 'PAGERDUTY only: a new routing key' })
  routingKey?: string | null;
}

@ObjectType({ description: 'A channel just created, with its webhook signing secret: shown this once, never again' })
export class CreatedNotificationChannel {
  @Field(() => NotificationChannel, { description: 'The channel as created' })
  channel!: NotificationChannel;

  @Field(() => String, {
    nullable: true,
    description: 'WEBHOOK only: the Standard Webhooks signing secret (`whsec_…`). Store it now: it is kept only encrypted and is never returned again',
  })
  signingSecret!: string | null;
}

@ObjectType({ description: 'What became of a test notification sent to a channel' })
export class NotificationTestResult {
  @Field({ description: 'The event id (CloudEvents id, webhook-id, idempotency key)' })
  eventId!: string;

  @Field({ description: 'The receiver answered 2xx (for EMAIL: the SMTP server accepted the message for every recipient)' })
  delivered!: boolean;

  @Field(() => Int, { nullable: true, description: "The receiver's HTTP status; for EMAIL the SMTP server's reply code" })
  status!: number | null;

  @Field(() => String, { nullable: true, description: 'The address connected to; for EMAIL the SMTP server\'s host and port' })
  address!: string | null;

  @Field(() => String, { nullable: true, description: 'Why it was not delivered: a refused destination, a redirect (not followed), a timeout, a network, HTTP or SMTP error' })
  error!: string | null;

  @Field(() => String, { nullable: true, description: "A redirect's Location (never followed)" })
  location!: string | null;
}

export const NotificationChannelConnection = Connection(NotificationChannel);
