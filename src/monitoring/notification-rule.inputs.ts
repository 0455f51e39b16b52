import { Field, ID, InputType, Int } from 'type-graphql';
import { NotificationKind } from '../core/notify/notification.entity';
import { Connection } from '../core/pagination';
import { DeploymentEnvironment } from '../rollouts/deployment.entity';
import { AlertKind, AlertSeverity } from './alert.entity';
import { NotificationDelivery, NotificationDeliveryStatus } from './notification-delivery.entity';
import { NotificationAction, NotificationRule } from './notification-rule.entity';
import { NotificationSilence } from './notification-silence.entity';

@InputType({ description: "A new routing rule of a team: what it matches, the team's channel it sends to, how, and escalation" })
export class CreateNotificationRuleInput {
  @Field({ description: 'The owning team: the rule matches its notifications, and sends to its channels only' })
  team!: string;

  @Field({ description: 'Unique within the team; 1 to 100 characters' })
  name!: string;

  @Field(() => ID, { description: "The NotificationChannel to send to (one of the team's)" })
  channel!: string;

  @Field(() => ID, { nullable: true, description: 'Only notifications about this Deployment (of the team)' })
  deployment?: string | null;

  @Field(() => DeploymentEnvironment, { nullable: true, description: 'Only notifications about deployments of this environment' })
  environment?: DeploymentEnvironment | null;

  @Field(() => [NotificationKind], { nullable: true, description: 'Only these kinds of notification; omitted or empty: every kind' })
  kinds?: NotificationKind[] | null;

  @Field(() => [AlertKind], { nullable: true, description: 'Only notifications about alerts of these kinds (then nothing about something else); omitted or empty: any' })
  alertKinds?: AlertKind[] | null;

  @Field(() => AlertSeverity, { nullable: true, description: 'Only notifications at least this severe (default INFO: every severity, each with its default action)' })
  minSeverity?: AlertSeverity | null;

  @Field(() => NotificationAction, { nullable: true, description: 'What to do with what it matches; omitted: by severity (CRITICAL IMMEDIATE, WARNING DIGEST, INFO NONE)' })
  action?: NotificationAction | null;

  @Field(() => Int, { nullable: true, description: 'DIGEST: how long notifications are held before they are sent together, 10 to 86,400 seconds (default 900)' })
  digestSeconds?: number | null;

  @Field(() => ID, { nullable: true, description: "A NotificationChannel of the team that gets a CRITICAL alert this rule sent if it is still unacknowledged after escalateAfterSeconds" })
  escalationChannel?: string | null;

  @Field(() => Int, { nullable: true, description: 'With escalationChannel: 10 to 86,400 seconds' })
  escalateAfterSeconds?: number | null;

  @Field(() => Boolean, { nullable: true, description: 'Default true' })
  enabled?: boolean | null;
}

@InputType({ description: 'Changes to a rule; each field given replaces the current value, the rest are kept (an empty list clears kinds or alertKinds)' })
export class UpdateNotificationRuleInput {
  @Field(() => ID, { description: 'The NotificationRule id' })
  id!: string;

  @Field(() => String, { nullable: true, description: 'A new name, unique within the team' })
  name?: string | null;

  @Field(() => ID, { nullable: true, description: "Another of the team's channels" })
  channel?: string | null;

  @Field(() => [NotificationKind], { nullable: true, description: 'New kinds; empty: every kind' })
  kinds?: NotificationKind[] | null;

  @Field(() => [AlertKind], { nullable: true, description: 'New alert kinds; empty: every kind' })
  alertKinds?: AlertKind[] | null;

  @Field(() => AlertSeverity, { nullable: true, description: 'A new minimum severity' })
  minSeverity?: AlertSeverity | null;

  @Field(() => NotificationAction, { nullable: true, description: 'A new action' })
  action?: NotificationAction | null;

  @Field(() => Boolean, { nullable: true, description: 'true: the action goes back to the default by severity' })
  actionBySeverity?: boolean | null;

  @Field(() => Int, { nullable: true, description: 'A new digest period, 10 to 86,400 seconds' })
  digestSeconds?: number | null;

  @Field(() => ID, { nullable: true, description: 'A new escalation channel (with escalateAfterSeconds, unless the rule has one)' })
  escalationChannel?: string | null;

  @Field(() => Int, { nullable: true, description: 'A new escalation delay, 10 to 86,400 seconds' })
  escalateAfterSeconds?: number | null;

  @Field(() => Boolean, { nullable: true, description: 'true: the rule no longer escalates' })
  noEscalation?: boolean | null;

  @Field(() => Boolean, { nullable: true, description: 'Enables or disables the rule' })
  enabled?: boolean | null;
}

@InputType({ description: "A time-boxed hold on a team's notifications: what it matches, from when, until when, and why" })
export class SilenceAlertsInput {
  @Field({ description: 'The team whose notifications it holds back' })
  team!: string;

  @Field(() => ID, { nullable: true, description: 'Only notifications about this Deployment' })
  deployment?: string | null;

  @Field(() => DeploymentEnvironment, { nullable: true, description: 'Only notifications about deployments of this environment' })
  environment?: DeploymentEnvironment | null;

  @Field(() => [NotificationKind], { nullable: true, description: 'Only these kinds of notification; omitted or empty: every kind' })
  kinds?: NotificationKind[] | null;

  @Field(() => [AlertKind], { nullable: true, description: 'Only notifications about alerts of these kinds (then nothing about something else)' })
  alertKinds?: AlertKind[] | null;

  @Field(() => [AlertSeverity], { nullable: true, description: 'Only these severities; omitted or empty: every severity' })
  severities?: AlertSeverity[] | null;

  @Field(() => Date, { nullable: true, description: 'From when (default: now)' })
  startsAt?: Date | null;

  @Field(() => Date, { nullable: true, description: 'Until when; or give durationSeconds' })
  endsAt?: Date | null;

  @Field(() => Int, { nullable: true, description: 'How long from startsAt, when endsAt is not given (at most 90 days)' })
  durationSeconds?: number | null;

  @Field({ description: 'Why (1 to 500 characters): shown with what it held back' })
  comment!: string;
}

@InputType({ description: 'Which deliveries to list (all given conditions hold)' })
export class NotificationDeliveryFilter {
  @Field(() => String, { nullable: true, description: 'Of the team with this name' })
  team?: string | null;

  @Field(() => ID, { nullable: true, description: 'To this NotificationChannel' })
  channel?: string | null;

  @Field(() => ID, { nullable: true, description: 'About this Alert' })
  alert?: string | null;

  @Field(() => [NotificationDeliveryStatus], { nullable: true, description: 'In one of these statuses' })
  statuses?: NotificationDeliveryStatus[] | null;

  @Field(() => [NotificationKind], { nullable: true, description: 'Of one of these kinds' })
  kinds?: NotificationKind[] | null;

  @Field(() => Date, { nullable: true, description: 'Made at or after this time' })
  since?: Date | null;
}

export const NotificationRuleConnection = Connection(NotificationRule);
export const NotificationSilenceConnection = Connection(NotificationSilence);
export const NotificationDeliveryConnection = Connection(NotificationDelivery);
