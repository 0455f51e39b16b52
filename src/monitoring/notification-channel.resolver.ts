import { Arg, Args, Ctx, FieldResolver, ID, Mutation, Query, Resolver, Root } from 'type-graphql';
import type { RequestContext } from '../core/context';
import { PageArgs } from '../core/pagination';
import { Policy } from '../core/policy';
import { NotificationChannel } from './notification-channel.entity';
import {
  CreatedNotificationChannel,
  CreateNotificationChannelInput,
  NotificationChannelConnection,
  NotificationTestResult,
  UpdateNotificationChannelInput,
} from './notification-channel.inputs';
import * as channels from './notification-channel.service';

/**
 * Where a channel delivers, as answers show it: scheme, host and port, with `/…` standing for a path
 * or query — which for Slack and PagerDuty (and many webhooks) carry the credential to post.
 */
export function shownUrl(url: string): string {
  // An EMAIL channel's recipients are shown to those who may read the channel: an address grants nothing.
  if (url.startsWith('mailto:')) return url;
  try {
    const u = new URL(url);
    return `${u.protocol}//${u.host}${u.pathname !== '/' || u.search ? '/…' : ''}`;
  } catch {
    return '…';
  }
}

@Resolver(() => NotificationChannel)
export class NotificationChannelResolver {
  @FieldResolver(() => String, {
    description:
      'Where deliveries are POSTed: scheme, host and port; a path or query is shown as `/…` (for Slack and PagerDuty it is the credential to post), never returned. For EMAIL the recipients, whole, as a `mailto:` URI',
  })
  url(@Root() channel: NotificationChannel): string {
    return shownUrl(channel.url);
  }

  @Query(() => NotificationChannelConnection, { nullable: true, description: "Notification channels the caller may read (its own teams'), newest first" })
  @Policy({ action: 'read', subject: 'NotificationChannel' })
  notificationChannels(@Ctx() ctx: RequestContext, @Args() page: PageArgs, @Arg('team', () => String, { nullable: true, description: 'Only channels of the team with this name' }) team?: string | null) {
    return channels.listNotificationChannels(ctx, page, team);
  }

  @Mutation(() => CreatedNotificationChannel, {
    nullable: true,
    description:
      "Creates a team's notification channel. A URL that is not http(s) or whose host is an internal address is refused; an EMAIL channel is refused when no SMTP server is configured. A WEBHOOK's signing secret is in this answer only",
  })
  @Policy({ action: 'create', subject: 'NotificationChannel' })
  createNotificationChannel(@Ctx() ctx: RequestContext, @Arg('input', () => CreateNotificationChannelInput, { description: 'The team, name, kind and destination' }) input: CreateNotificationChannelInput) {
    return channels.createNotificationChannel(ctx, input);
  }

  @Mutation(() => NotificationChannel, { nullable: true, description: "Changes a channel's name, URL or PagerDuty routing key" })
  @Policy({ action: 'update', subject: 'NotificationChannel' })
  updateNotificationChannel(@Ctx() ctx: RequestContext, @Arg('input', () => UpdateNotificationChannelInput, { description: 'The channel and what to change' }) input: UpdateNotificationChannelInput) {
    return channels.updateNotificationChannel(ctx, input);
  }

  @Mutation(() => Boolean, { nullable: true, description: 'Removes a channel' })
  @Policy({ action: 'delete', subject: 'NotificationChannel' })
  deleteNotificationChannel(@Ctx() ctx: RequestContext, @Arg('id', () => ID, { description: 'The NotificationChannel id' }) id: string) {
    return channels.deleteNotificationChannel(ctx, id);
  }

  @Mutation(() => NotificationTestResult, { nullable: true, description: 'Sends a test event to the channel now and answers what became of it (redirects are never followed)' })
  @Policy({ action: 'update', subject: 'NotificationChannel' })
  testNotificationChannel(@Ctx() ctx: RequestContext, @Arg('id', () => ID, { description: 'The NotificationChannel id' }) id: string) {
    return channels.testNotificationChannel(ctx, id);
  }
}
