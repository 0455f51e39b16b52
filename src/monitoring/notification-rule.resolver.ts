import { Arg, Args, Ctx, FieldResolver, ID, Mutation, Query, Resolver, Root } from 'type-graphql';
import type { RequestContext } from '../core/context';
import { PageArgs } from '../core/pagination';
import { Policy } from '../core/policy';
import { Deployment } from '../rollouts/deployment.entity';
import { Alert } from './alert.entity';
import { NotificationChannel } from './notification-channel.entity';
import { NotificationDelivery } from './notification-delivery.entity';
import { NotificationAction, NotificationRule } from './notification-rule.entity';
import {
  CreateNotificationRuleInput,
  NotificationDeliveryConnection,
  NotificationDeliveryFilter,
  NotificationRuleConnection,
  NotificationSilenceConnection,
  SilenceAlertsInput,
  UpdateNotificationRuleInput,
} from './notification-rule.inputs';
import * as rules from './notification-rule.service';
import { NotificationSilence } from './notification-silence.entity';

@Resolver(() => NotificationRule)
export class NotificationRuleResolver {
  @FieldResolver(() => NotificationChannel, { nullable: true, description: 'The channel it sends to; null if the caller may not read it' })
  channel(@Root() r: NotificationRule, @Ctx() ctx: RequestContext) {
    return ctx.loaders.byId(NotificationChannel, 'NotificationChannel').load(r.channelId);
  }

  @FieldResolver(() => NotificationChannel, { nullable: true, description: 'Where an unacknowledged CRITICAL alert it sent goes after escalateAfterSeconds; null: no escalation' })
  escalationChannel(@Root() r: NotificationRule, @Ctx() ctx: RequestContext) {
    return r.escalationChannelId ? ctx.loaders.byId(NotificationChannel, 'NotificationChannel').load(r.escalationChannelId) : null;
  }

  @FieldResolver(() => Deployment, { nullable: true, description: 'The one deployment it matches; null: any of the team\'s' })
  deployment(@Root() r: NotificationRule, @Ctx() ctx: RequestContext) {
    return r.deploymentId ? ctx.loaders.byId(Deployment, 'Deployment').load(r.deploymentId) : null;
  }

  @FieldResolver(() => NotificationAction, { nullable: true, description: 'What it does with what it matches; null: by severity (CRITICAL IMMEDIATE, WARNING DIGEST, INFO NONE)' })
  action(@Root() r: NotificationRule): NotificationAction | null {
    return r.action;
  }

  @Query(() => NotificationRuleConnection, { nullable: true, description: "Routing rules the caller may read (its own teams'), newest first" })
  @Policy({ action: 'read', subject: 'NotificationRule' })
  notificationRules(@Ctx() ctx: RequestContext, @Args() page: PageArgs, @Arg('team', () => String, { nullable: true, description: 'Only rules of the team with this name' }) team?: string | null) {
    return rules.listNotificationRules(ctx, page, team);
  }

  @Mutation(() => NotificationRule, { nullable: true, description: "Creates a routing rule of a team, sending to one of the team's channels (which the caller may change)" })
  @Policy({ action: 'create', subject: 'NotificationRule' })
  createNotificationRule(@Ctx() ctx: RequestContext, @Arg('input', () => CreateNotificationRuleInput, { description: 'What it matches, where it sends and how' }) input: CreateNotificationRuleInput) {
    return rules.createNotificationRule(ctx, input);
  }

  @Mutation(() => NotificationRule, { nullable: true, description: 'Changes a routing rule' })
  @Policy({ action: 'update', subject: 'NotificationRule' })
  updateNotificationRule(@Ctx() ctx: RequestContext, @Arg('input', () => UpdateNotificationRuleInput, { description: 'The rule and what to change' }) input: UpdateNotificationRuleInput) {
    return rules.updateNotificationRule(ctx, input);
  }

  @Mutation(() => Boolean, { nullable: true, description: 'Removes a routing rule (its deliveries stay listed)' })
  @Policy({ action: 'delete', subject: 'NotificationRule' })
  deleteNotificationRule(@Ctx() ctx: RequestContext, @Arg('id', () => ID, { description: 'The NotificationRule id' }) id: string) {
    return rules.deleteNotificationRule(ctx, id);
  }
}

@Resolver(() => NotificationSilence)
export class NotificationSilenceResolver {
  @FieldResolver(() => Deployment, { nullable: true, description: 'The one deployment it matches; null: any of the team\'s' })
  deployment(@Root() s: NotificationSilence, @Ctx() ctx: RequestContext) {
    return s.deploymentId ? ctx.loaders.byId(Deployment, 'Deployment').load(s.deploymentId) : null;
  }

  @FieldResolver(() => Boolean, { description: 'Holding now: started, not ended, not expired' })
  active(@Root() s: NotificationSilence): boolean {
    const now = new Date();
    return s.startsAt <= now && s.endsAt > now && !s.expiredAt;
  }

  @Query(() => NotificationSilenceConnection, { nullable: true, description: "Silences the caller may read (its own teams'), newest first" })
  @Policy({ action: 'read', subject: 'NotificationSilence' })
  notificationSilences(
    @Ctx() ctx: RequestContext,
    @Args() page: PageArgs,
    @Arg('team', () => String, { nullable: true, description: 'Only silences of the team with this name' }) team?: string | null,
    @Arg('active', () => Boolean, { nullable: true, description: 'true: only those holding now; false: only those not holding now' }) active?: boolean | null,
  ) {
    return rules.listNotificationSilences(ctx, page, team, active);
  }

  @Mutation(() => NotificationSilence, { nullable: true, description: "Holds back a team's notifications that match, for a while (audited); what it holds back is recorded as SILENCED, naming it" })
  @Policy({ action: 'create', subject: 'NotificationSilence' })
  silenceAlerts(@Ctx() ctx: RequestContext, @Arg('input', () => SilenceAlertsInput, { description: 'What to hold back, from when, until when, and why' }) input: SilenceAlertsInput) {
    return rules.silenceAlerts(ctx, input);
  }

  @Mutation(() => NotificationSilence, { nullable: true, description: 'Ends a silence now (audited; it stays listed)' })
  @Policy({ action: 'update', subject: 'NotificationSilence' })
  expireSilence(@Ctx() ctx: RequestContext, @Arg('id', () => ID, { description: 'The NotificationSilence id' }) id: string) {
    return rules.expireSilence(ctx, id);
  }
}

@Resolver(() => NotificationDelivery)
export class NotificationDeliveryResolver {
  @FieldResolver(() => String, { description: 'The idempotency key receivers get (CloudEvent `id`, `webhook-id`, `Idempotency-Key`, PagerDuty and email headers): the same on every attempt' })
  idempotencyKey(@Root() d: NotificationDelivery): string {
    return d.id;
  }

  @FieldResolver(() => NotificationChannel, { nullable: true, description: 'The channel; null once deleted (see channelName)' })
  channel(@Root() d: NotificationDelivery, @Ctx() ctx: RequestContext) {
    return d.channelId ? ctx.loaders.byId(NotificationChannel, 'NotificationChannel').load(d.channelId) : null;
  }

  @FieldResolver(() => NotificationRule, { nullable: true, description: 'The rule that sent it; null for a digest, or once the rule is deleted' })
  rule(@Root() d: NotificationDelivery, @Ctx() ctx: RequestContext) {
    return d.ruleId ? ctx.loaders.byId(NotificationRule, 'NotificationRule').load(d.ruleId) : null;
  }

  @FieldResolver(() => Alert, { nullable: true, description: 'The alert it is about, if any' })
  alert(@Root() d: NotificationDelivery, @Ctx() ctx: RequestContext) {
    return d.alertId ? ctx.loaders.byId(Alert, 'Alert').load(d.alertId) : null;
  }

  @FieldResolver(() => NotificationSilence, { nullable: true, description: 'SILENCED: the silence that held it back' })
  silence(@Root() d: NotificationDelivery, @Ctx() ctx: RequestContext) {
    return d.silenceId ? ctx.loaders.byId(NotificationSilence, 'NotificationSilence').load(d.silenceId) : null;
  }

  @FieldResolver(() => NotificationDelivery, { nullable: true, description: 'DIGESTED: the delivery of the digest that carried it' })
  digest(@Root() d: NotificationDelivery, @Ctx() ctx: RequestContext) {
    return d.digestDeliveryId ? ctx.loaders.byId(NotificationDelivery, 'NotificationDelivery').load(d.digestDeliveryId) : null;
  }

  @FieldResolver(() => Date, { nullable: true, description: 'HELD_FOR_DIGEST: when the digest it waits for is sent' })
  digestDueAt(@Root() d: NotificationDelivery): Date | null {
    return d.digestDueAt;
  }

  @Query(() => NotificationDeliveryConnection, { nullable: true, description: "Deliveries of notifications to the caller's teams' channels, newest first: status, attempts, last error, latency" })
  @Policy({ action: 'read', subject: 'NotificationDelivery' })
  notificationDeliveries(
    @Ctx() ctx: RequestContext,
    @Args() page: PageArgs,
    @Arg('filter', () => NotificationDeliveryFilter, { nullable: true, description: 'Which deliveries' }) filter?: NotificationDeliveryFilter | null,
  ) {
    return rules.listNotificationDeliveries(ctx, page, filter);
  }
}

@Resolver(() => Alert)
export class AlertNotificationsResolver {
  @FieldResolver(() => [NotificationDelivery], { description: "What was sent about it (and held back), oldest first: only deliveries to channels of the caller's teams" })
  notifications(@Root() a: Alert, @Ctx() ctx: RequestContext) {
    return ctx.loaders.byColumn(NotificationDelivery, 'NotificationDelivery', 'alert_id', { created_at: 'ASC' }).load(a.id);
  }

  @FieldResolver(() => [NotificationSilence], { description: 'The silences that held back notifications about it' })
  async silencedBy(@Root() a: Alert, @Ctx() ctx: RequestContext) {
    const deliveries = (await ctx.loaders.byColumn(NotificationDelivery, 'NotificationDelivery', 'alert_id', { created_at: 'ASC' }).load(a.id)) as NotificationDelivery[];
    const ids = [...new Set(deliveries.map((d) => d.silenceId).filter((s): s is string => !!s))];
    const silences = await Promise.all(ids.map((id) => ctx.loaders.byId(NotificationSilence, 'NotificationSilence').load(id)));
    return silences.filter((s): s is NotificationSilence => !!s);
  }
}
