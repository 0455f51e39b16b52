// A team's routing rules and silences, each change audited in its transaction; and the deliveries
// they made, listed with the caller's read scope.
import { audit } from '../core/audit/audit-chain';
import { assertCan, mapDbError } from '../core/authz';
import { inTransaction, type RequestContext, type TransactionContext } from '../core/context';
import { badInput } from '../core/errors';
import { expectId } from '../core/global-id';
import { listConnection, whereTeam } from '../core/list';
import type { PageArgs } from '../core/pagination';
import { resolveTeam } from '../access/team.service';
import { loadReadable } from '../lineage/lineage.service';
import { Deployment } from '../rollouts/deployment.entity';
import { AlertSeverity } from './alert.entity';
import { MonitoringReason } from './monitoring.errors';
import { NotificationChannel } from './notification-channel.entity';
import { NotificationRule } from './notification-rule.entity';
import {
  NotificationDeliveryConnection,
  NotificationRuleConnection,
  NotificationSilenceConnection,
  type CreateNotificationRuleInput,
  type NotificationDeliveryFilter,
  type SilenceAlertsInput,
  type UpdateNotificationRuleInput,
} from './notification-rule.inputs';
import { NotificationDelivery } from './notification-delivery.entity';
import { NotificationSilence } from './notification-silence.entity';

const MAX_NAME = 100;
const MAX_SECONDS = 86_400;
const MAX_SILENCE_MS = 90 * 86_400_000;

const ruleError = (message: string, field: string) => badInput(message, { field, reason: MonitoringReason.NOTIFICATION_RULE });
const silenceError = (message: string, field: string) => badInput(message, { field, reason: MonitoringReason.NOTIFICATION_SILENCE });

function checkedName(name: string): string {
  const n = name.trim();
  if (!n || n.length > MAX_NAME) throw ruleError(`name must be 1 to ${MAX_NAME} characters`, 'name');
  return n;
}

function checkedSeconds(value: number, field: string): number {
  if (!Number.isInteger(value) || value < 10 || value > MAX_SECONDS) throw ruleError(`${field} must be 10 to ${MAX_SECONDS} seconds`, field);
  return value;
}

/**
 * A channel the rule may send to: readable by the caller, of the rule's team, and one the caller may
 * change (routing to a channel is using it) — another team's channel is not found.
 */
async function usableChannel(ctx: TransactionContext, teamId: string, id: string, field: string): Promise<NotificationChannel> {
  const channel = await loadReadable(ctx, ctx.em, NotificationChannel, 'NotificationChannel', id, field);
  if (channel.teamId !== teamId) throw ruleError("a rule sends to its own team's channels only", field);
  assertCan(ctx, 'update', 'NotificationChannel', channel);
  return channel;
}

async function teamDeployment(ctx: TransactionContext, teamId: string, id: string, error: (m: string, f: string) => Error): Promise<Deployment> {
  const deployment = await loadReadable(ctx, ctx.em, Deployment, 'Deployment', id, 'deployment');
  if (deployment.teamId !== teamId) throw error("a rule or silence matches its own team's deployments only", 'deployment');
  return deployment;
}

/** The rule as its audit events record it (ids as global IDs). */
function described(rule: NotificationRule) {
  return {
    name: rule.name,
    channel: rule.channelId,
    deployment: rule.deploymentId,
    environment: rule.environment,
    kinds: rule.kinds,
    alertKinds: rule.alertKinds,
    minSeverity: rule.minSeverity,
    action: rule.action ?? 'by severity',
    digestSeconds: rule.digestSeconds,
    escalationChannel: rule.escalationChannelId,
    escalateAfterSeconds: rule.escalateAfterSeconds,
    enabled: rule.enabled,
  };
}

export function listNotificationRules(ctx: RequestContext, page: PageArgs, team?: string | null) {
  return listConnection(ctx, NotificationRuleConnection, NotificationRule, 'NotificationRule', page, (qb) => whereTeam(qb, team));
}

export async function createNotificationRule(ctx: RequestContext, input: CreateNotificationRuleInput): Promise<NotificationRule> {
  return inTransaction(ctx, async (em, ctx) => {
    const team = await resolveTeam(ctx, input.team);
    const rule = em.create(NotificationRule, {
      teamId: team.id,
      createdBy: ctx.principal!.id,
      name: checkedName(input.name),
      channelId: '',
      deploymentId: null,
      environment: input.environment ?? null,
      kinds: [...new Set(input.kinds ?? [])],
      alertKinds: [...new Set(input.alertKinds ?? [])],
      minSeverity: input.minSeverity ?? AlertSeverity.INFO,
      action: input.action ?? null,
      digestSeconds: checkedSeconds(input.digestSeconds ?? 900, 'digestSeconds'),
      escalationChannelId: null,
      escalateAfterSeconds: null,
      enabled: input.enabled ?? true,
    });
    assertCan(ctx, 'create', 'NotificationRule', rule);
    rule.channelId = (await usableChannel(ctx, team.id, input.channel, 'channel')).id;
    if (input.deployment) rule.deploymentId = (await teamDeployment(ctx, team.id, input.deployment, ruleError)).id;
    if ((input.escalationChannel == null) !== (input.escalateAfterSeconds == null)) throw ruleError('escalationChannel and escalateAfterSeconds go together', input.escalationChannel == null ? 'escalationChannel' : 'escalateAfterSeconds');
    if (input.escalationChannel) {
      rule.escalationChannelId = (await usableChannel(ctx, team.id, input.escalationChannel, 'escalationChannel')).id;
      rule.escalateAfterSeconds = checkedSeconds(input.escalateAfterSeconds!, 'escalateAfterSeconds');
    }
    await em.insert(NotificationRule, rule).catch((e) => mapDbError(e, `NotificationRule "${rule.name}" in team ${team.name}`));
    await audit(ctx, { action: 'createNotificationRule', subjectType: 'NotificationRule', subjectId: rule.nodeId, after: { team: team.name, ...described(rule) } });
    return rule;
  });
}

export async function updateNotificationRule(ctx: RequestContext, input: UpdateNotificationRuleInput): Promise<NotificationRule> {
  return inTransaction(ctx, async (em, ctx) => {
    const rule = await loadReadable(ctx, em, NotificationRule, 'NotificationRule', input.id, 'id', 'update');
    assertCan(ctx, 'update', 'NotificationRule', rule);
    const before = described(rule);
    if (input.name != null) rule.name = checkedName(input.name);
    if (input.channel != null) rule.channelId = (await usableChannel(ctx, rule.teamId, input.channel, 'channel')).id;
    if (input.kinds != null) rule.kinds = [...new Set(input.kinds)];
    if (input.alertKinds != null) rule.alertKinds = [...new Set(input.alertKinds)];
    if (input.minSeverity != null) rule.minSeverity = input.minSeverity;
    if (input.action != null && input.actionBySeverity) throw ruleError('give action or actionBySeverity, not both', 'actionBySeverity');
    if (input.action != null) rule.action = input.action;
    if (input.actionBySeverity) rule.action = null;
    if (input.digestSeconds != null) rule.digestSeconds = checkedSeconds(input.digestSeconds, 'digestSeconds');
    if (input.enabled != null) rule.enabled = input.enabled;
    if (input.noEscalation && (input.escalationChannel != null || input.escalateAfterSeconds != null)) throw ruleError('noEscalation clears the escalation: give no escalation settings with it', 'noEscalation');
    if (input.noEscalation) Object.assign(rule, { escalationChannelId: null, escalateAfterSeconds: null });
    if (input.escalationChannel != null) rule.escalationChannelId = (await usableChannel(ctx, rule.teamId, input.escalationChannel, 'escalationChannel')).id;
    if (input.escalateAfterSeconds != null) rule.escalateAfterSeconds = checkedSeconds(input.escalateAfterSeconds, 'escalateAfterSeconds');
    if ((rule.escalationChannelId == null) !== (rule.escalateAfterSeconds == null)) throw ruleError('escalationChannel and escalateAfterSeconds go together', rule.escalationChannelId == null ? 'escalationChannel' : 'escalateAfterSeconds');
    await em.save(NotificationRule, rule).catch((e) => mapDbError(e, `NotificationRule "${rule.name}"`));
    await audit(ctx, { action: 'updateNotificationRule', subjectType: 'NotificationRule', subjectId: rule.nodeId, before, after: described(rule) });
    return rule;
  });
}

export async function deleteNotificationRule(ctx: RequestContext, id: string): Promise<boolean> {
  return inTransaction(ctx, async (em, ctx) => {
    const rule = await loadReadable(ctx, em, NotificationRule, 'NotificationRule', id, 'id', 'update');
    assertCan(ctx, 'delete', 'NotificationRule', rule);
    await em.delete(NotificationRule, { id: rule.id });
    await audit(ctx, { action: 'deleteNotificationRule', subjectType: 'NotificationRule', subjectId: rule.nodeId, before: described(rule) });
    return true;
  });
}

export function listNotificationSilences(ctx: RequestContext, page: PageArgs, team?: string | null, active?: boolean | null) {
  return listConnection(ctx, NotificationSilenceConnection, NotificationSilence, 'NotificationSilence', page, (qb) => {
    whereTeam(qb, team);
    if (active === true) qb.andWhere('x.starts_at <= now() AND x.ends_at > now() AND x.expired_at IS NULL');
    if (active === false) qb.andWhere('NOT (x.starts_at <= now() AND x.ends_at > now() AND x.expired_at IS NULL)');
  });
}

/** Sets a silence: matching notifications of the team are held back (SILENCED) from startsAt to endsAt. */
export async function silenceAlerts(ctx: RequestContext, input: SilenceAlertsInput): Promise<NotificationSilence> {
  return inTransaction(ctx, async (em, ctx) => {
    const team = await resolveTeam(ctx, input.team);
    const now = new Date();
    const startsAt = input.startsAt ?? now;
    if (input.endsAt != null && input.durationSeconds != null) throw silenceError('give endsAt or durationSeconds, not both', 'durationSeconds');
    if (input.endsAt == null && input.durationSeconds == null) throw silenceError('a silence needs an end: endsAt or durationSeconds', 'endsAt');
    if (input.durationSeconds != null && (!Number.isInteger(input.durationSeconds) || input.durationSeconds < 1)) throw silenceError('durationSeconds must be a positive whole number', 'durationSeconds');
    const endsAt = input.endsAt ?? new Date(startsAt.getTime() + input.durationSeconds! * 1000);
    const field = input.endsAt ? 'endsAt' : 'durationSeconds';
    if (endsAt <= startsAt || endsAt <= now) throw silenceError('a silence must end after it starts and after now', field);
    if (endsAt.getTime() - startsAt.getTime() > MAX_SILENCE_MS) throw silenceError('a silence lasts at most 90 days', field);
    if (startsAt.getTime() - now.getTime() > MAX_SILENCE_MS) throw silenceError('a silence starts within 90 days from now', 'startsAt');
    const comment = input.comment.trim();
    if (!comment || comment.length > 500) throw silenceError('comment must be 1 to 500 characters', 'comment');
    const silence = em.create(NotificationSilence, {
      teamId: team.id,
      createdBy: ctx.principal!.id,
      deploymentId: null,
      environment: input.environment ?? null,
      kinds: [...new Set(input.kinds ?? [])],
      alertKinds: [...new Set(input.alertKinds ?? [])],
      severities: [...new Set(input.severities ?? [])],
      comment,
      startsAt,
      endsAt,
      expiredAt: null,
      expiredBy: null,
    });
    assertCan(ctx, 'create', 'NotificationSilence', silence);
    if (input.deployment) silence.deploymentId = (await teamDeployment(ctx, team.id, input.deployment, silenceError)).id;
    await em.insert(NotificationSilence, silence);
    await audit(ctx, {
      action: 'silenceAlerts',
      subjectType: 'NotificationSilence',
      subjectId: silence.nodeId,
      after: { team: team.name, deployment: silence.deploymentId, environment: silence.environment, kinds: silence.kinds, alertKinds: silence.alertKinds, severities: silence.severities, startsAt, endsAt, comment },
    });
    return silence;
  });
}

/** Ends a silence now (it stays listed, with who ended it). */
export async function expireSilence(ctx: RequestContext, id: string): Promise<NotificationSilence> {
  return inTransaction(ctx, async (em, ctx) => {
    const silence = await loadReadable(ctx, em, NotificationSilence, 'NotificationSilence', id, 'id', 'update');
    assertCan(ctx, 'update', 'NotificationSilence', silence);
    if (silence.expiredAt || silence.endsAt <= new Date()) return silence;
    Object.assign(silence, { expiredAt: new Date(), expiredBy: ctx.principal!.id });
    await em.save(NotificationSilence, silence);
    await audit(ctx, { action: 'expireSilence', subjectType: 'NotificationSilence', subjectId: silence.nodeId, before: { endsAt: silence.endsAt }, after: { expiredAt: silence.expiredAt } });
    return silence;
  });
}

export function listNotificationDeliveries(ctx: RequestContext, page: PageArgs, filter: NotificationDeliveryFilter | null | undefined) {
  return listConnection(ctx, NotificationDeliveryConnection, NotificationDelivery, 'NotificationDelivery', page, (qb) => {
    whereTeam(qb, filter?.team);
    if (filter?.channel) qb.andWhere('x.channel_id = :fChannel', { fChannel: expectId(filter.channel, 'NotificationChannel', 'filter.channel') });
    if (filter?.alert) qb.andWhere('x.alert_id = :fAlert', { fAlert: expectId(filter.alert, 'Alert', 'filter.alert') });
    if (filter?.statuses?.length) qb.andWhere('x.status IN (:...fStatuses)', { fStatuses: filter.statuses });
    if (filter?.kinds?.length) qb.andWhere('x.kind IN (:...fKinds)', { fKinds: filter.kinds });
    if (filter?.since) qb.andWhere('x.created_at >= :fSince', { fSince: filter.since });
  });
}
