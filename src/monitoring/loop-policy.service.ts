// Setting a deployment's loop policies (audited), reading them, and the retrain schedule's job.
import { audit } from '../core/audit/audit-chain';
import { assertCan } from '../core/authz';
import type { AppServices, RequestContext } from '../core/context';
import { inTransaction } from '../core/context';
import { badInput } from '../core/errors';
import { toGlobalId } from '../core/global-id';
import { scheduledContext, serializeContext, type JobPayload } from '../core/job-context';
import { QUEUES } from '../core/queue/queues';
import { DatasetVersion } from '../lineage/dataset-version.entity';
import { loadReadable } from '../lineage/lineage.service';
import { ModelVersionStatus } from '../registry/model-version.entity';
import { Deployment } from '../rollouts/deployment.entity';
import { DEFAULT_CANARY_STEPS } from '../rollouts/rollout.service';
import { LoopPolicy } from './iteration.entity';
import {
  checkedPromotionPolicy,
  checkedRetrainPolicy,
  PromotionApproval,
  PromotionPolicy,
  RetrainPolicy,
  type SetPromotionPolicyInput,
  type SetRetrainPolicyInput,
  type StoredPromotionPolicy,
  type StoredRetrainPolicy,
} from './loop-policy';
import { MonitoringReason } from './monitoring.errors';

/** The principal the retrain schedule's jobs run as, on behalf of whoever set the policy. */
export const LOOP_SCHEDULE_PRINCIPAL = 'system:loop-schedule';

/** A deployment's retrain schedule fired (the job of its cron scheduler). */
export interface RetrainScheduleJob extends JobPayload {
  deploymentId: string;
}

const schedulerId = (deploymentId: string) => `retrain-schedule:${deploymentId}`;

/** The window a deployment's monitor judges (its own setting, else the server's). */
function windowSecondsOf(app: AppServices, d: Deployment): number {
  return ((d.monitoring ?? {}) as { windowSeconds?: number }).windowSeconds ?? app.config.monitoring.windowSeconds;
}

/**
 * Sets a deployment's retrain policy (replacing the one in force), audited. Needs `update` on the
 * deployment; the loop retrains as whoever set it, so they must be allowed to start training runs
 * and register model versions for its team, and to read `alsoTrainOn`.
 */
export async function setRetrainPolicy(ctx: RequestContext, input: SetRetrainPolicyInput): Promise<Deployment> {
  const deployment = await inTransaction(ctx, async (em, ctx) => {
    const d = await loadReadable(ctx, em, Deployment, 'Deployment', input.deployment, 'deployment', 'update');
    assertCan(ctx, 'update', 'Deployment', d);
    let alsoTrainOn: string | null = null;
    if (input.alsoTrainOn) {
      const dv = await loadReadable(ctx, em, DatasetVersion, 'DatasetVersion', input.alsoTrainOn, 'alsoTrainOn');
      if (dv.teamId !== d.teamId) throw badInput('alsoTrainOn belongs to another team than the deployment', { field: 'alsoTrainOn', reason: MonitoringReason.LOOP_POLICY });
      alsoTrainOn = dv.id;
    }
    const policy = checkedRetrainPolicy(input, windowSecondsOf(ctx.app, d), alsoTrainOn);
    assertCan(ctx, 'create', 'TrainingRun', { teamId: d.teamId, createdBy: ctx.principal!.id });
    assertCan(ctx, 'create', 'ModelVersion', { teamId: d.teamId, status: ModelVersionStatus.REGISTERED, createdBy: ctx.principal!.id });
    const current = await em.findOne(LoopPolicy, { where: { deploymentId: d.id }, lock: { mode: 'pessimistic_write' } });
    const before = current?.retrain ? { ...current.retrain, setBy: current.retrainSetBy?.principal.id ?? null } : null;
    await em.upsert(LoopPolicy, { deploymentId: d.id, teamId: d.teamId, retrain: policy as never, retrainSetBy: serializeContext(ctx) as never }, ['deploymentId']);
    await audit(ctx, { action: 'setRetrainPolicy', subjectType: 'Deployment', subjectId: d.nodeId, before, after: { ...policy, alsoTrainOn: alsoTrainOn ? toGlobalId('DatasetVersion', alsoTrainOn) : null } });
    return d;
  });
  await scheduleRetraining(ctx.app, deployment.id).catch((e) => ctx.log.warn({ err: (e as Error).message }, 'retrain schedule not updated (Redis unavailable); workers reconcile schedules at start'));
  return deployment;
}

/**
 * Sets a deployment's promotion policy (replacing the one in force), audited. Needs `update` on the
 * deployment; rollouts start as whoever set it, so they must be allowed to create rollouts for its
 * team, and for AUTOMATIC approval to approve its model versions.
 */
export async function setPromotionPolicy(ctx: RequestContext, input: SetPromotionPolicyInput): Promise<Deployment> {
  return inTransaction(ctx, async (em, ctx) => {
    const d = await loadReadable(ctx, em, Deployment, 'Deployment', input.deployment, 'deployment', 'update');
    assertCan(ctx, 'update', 'Deployment', d);
    const policy = checkedPromotionPolicy(input, DEFAULT_CANARY_STEPS);
    assertCan(ctx, 'create', 'Rollout', { teamId: d.teamId, createdBy: ctx.principal!.id });
    if (policy.approval === PromotionApproval.AUTOMATIC) assertCan(ctx, 'approve', 'ModelVersion', { teamId: d.teamId, status: ModelVersionStatus.CANDIDATE, createdBy: 'another person' });
    const current = await em.findOne(LoopPolicy, { where: { deploymentId: d.id }, lock: { mode: 'pessimistic_write' } });
    const before = current?.promotion ? { ...current.promotion, setBy: current.promotionSetBy?.principal.id ?? null } : null;
    await em.upsert(LoopPolicy, { deploymentId: d.id, teamId: d.teamId, promotion: policy as never, promotionSetBy: serializeContext(ctx) as never }, ['deploymentId']);
    await audit(ctx, { action: 'setPromotionPolicy', subjectType: 'Deployment', subjectId: d.nodeId, before, after: { ...policy } });
    return d;
  });
}

/** The retrain policy of a deployment as shown, or null. */
export function retrainPolicyOf(row: LoopPolicy | null): RetrainPolicy | null {
  if (!row?.retrain || !row.retrainSetBy) return null;
  const p = row.retrain as unknown as StoredRetrainPolicy;
  return Object.assign(new RetrainPolicy(), { ...p, alsoTrainOn: p.alsoTrainOn ? toGlobalId('DatasetVersion', p.alsoTrainOn) : null, setBy: row.retrainSetBy.principal.id });
}

/** The promotion policy of a deployment as shown, or null. */
export function promotionPolicyOf(row: LoopPolicy | null): PromotionPolicy | null {
  if (!row?.promotion || !row.promotionSetBy) return null;
  return Object.assign(new PromotionPolicy(), { ...(row.promotion as unknown as StoredPromotionPolicy), setBy: row.promotionSetBy.principal.id });
}

/** Creates, updates or removes the cron scheduler of a deployment's retrain policy. */
export async function scheduleRetraining(app: AppServices, deploymentId: string): Promise<void> {
  const queue = app.queues?.get(QUEUES.loop);
  if (!queue) return;
  const row = await app.db.getRepository(LoopPolicy).findOneBy({ deploymentId });
  const policy = row?.retrain as StoredRetrainPolicy | null | undefined;
  if (!row || !policy?.enabled || !policy.schedule || !row.retrainSetBy) {
    await queue.removeJobScheduler(schedulerId(deploymentId));
    return;
  }
  const job: RetrainScheduleJob = { deploymentId, context: scheduledContext(LOOP_SCHEDULE_PRINCIPAL, row.retrainSetBy.principal.id, schedulerId(deploymentId)) };
  await queue.upsertJobScheduler(schedulerId(deploymentId), { pattern: policy.schedule, tz: 'UTC' }, { name: 'retrain-schedule', data: job, opts: { removeOnComplete: 100, removeOnFail: 100 } });
}

/** The workers' tick that moves in-flight iterations on, and every retrain schedule, upserted by id (idempotent across processes). */
export async function reconcileLoopSchedules(app: AppServices): Promise<void> {
  try {
    const queue = app.queues?.get(QUEUES.loop);
    if (!queue) return;
    await queue.upsertJobScheduler('loop-tick', { every: app.config.loopTickSeconds * 1000 }, {
      name: 'tick',
      data: { context: scheduledContext('system:loop', 'system', 'loop-tick') },
      opts: { removeOnComplete: 10, removeOnFail: 10 },
    });
    const all: Array<{ deployment_id: string }> = await app.db.query(`SELECT deployment_id FROM loop_policy WHERE retrain IS NOT NULL`);
    await Promise.all(all.map((r) => scheduleRetraining(app, r.deployment_id)));
  } catch (e) {
    app.log.warn({ err: (e as Error).message }, 'loop schedules not reconciled (Redis unavailable?)');
  }
}
