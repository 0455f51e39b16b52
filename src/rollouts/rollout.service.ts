import type { EntityManager } from 'typeorm';
import { In } from 'typeorm';
import { audit } from '../core/audit/audit-chain';
import { assertCan } from '../core/authz';
import { inTransaction, type RequestContext, type TransactionContext } from '../core/context';
import { AppError, badInput, conflict, ErrorCode } from '../core/errors';
import { TOPICS } from '../core/events';
import { toGlobalId } from '../core/global-id';
import { loadReadable } from '../lineage/lineage.service';
import { serializeContext, type JobPayload } from '../core/job-context';
import { NotificationKind, type NotificationSeverity } from '../core/notify/notification.entity';
import { raiseNotification } from '../core/notify/notify';
import { enqueue } from '../core/queue/outbox';
import { QUEUES } from '../core/queue/queues';
import { ModelVersion, ModelVersionStatus } from '../registry/model-version.entity';
import { Deployment, DeploymentEnvironment, TrafficShare } from './deployment.entity';
import { Rollout, RolloutStatus, RolloutStrategy, ShadowShare, type SplitEntry } from './rollout.entity';
import { judgeStep, type StepVerdict } from './rollout-health';
import { canarySplit } from './rollouts-split';
import type { RollbackDeploymentInput, RolloutActionInput, StartRolloutInput } from './rollouts.inputs';
import { RolloutsReason } from './rollouts.errors';

export const DEFAULT_CANARY_STEPS = [5, 25, 50, 100];
export const DEFAULT_BAKE_SECONDS = 300;
/** Requests the new version must serve in a step before the step may advance. */
export const DEFAULT_MIN_REQUESTS = 200;
/** A step short of its sample is held at most this many bake times past its bake, then paused. */
export const DEFAULT_HOLD_BAKES = 3;
/** Significance level of the baseline comparison. */
export const DEFAULT_SIGNIFICANCE = 0.05;
/** Share of rows on which a shadow must decide as the served version does. */
export const DEFAULT_MIN_AGREEMENT = 0.95;
const ACTIVE = [RolloutStatus.IN_PROGRESS, RolloutStatus.PAUSED];

/**
 * The payload of a rollout step: check the step that began `generation` schedules ago, then advance
 * or roll back, as whoever scheduled the step (the rollout's starter, or who promoted or resumed it).
 */
export interface RolloutJob extends JobPayload {
  rolloutId: string;
  generation: number;
}

const gid = (id: string) => toGlobalId('ModelVersion', id);
const describe = (split: SplitEntry[]) => split.map((s) => ({ modelVersion: gid(s.modelVersionId), weight: s.weight }));

export async function currentSplit(em: EntityManager, deploymentId: string): Promise<SplitEntry[]> {
  const rows = await em.find(TrafficShare, { where: { deploymentId }, order: { weight: 'DESC', modelVersionId: 'ASC' } });
  return rows.map((r) => ({ modelVersionId: r.modelVersionId, weight: r.weight }));
}

/** Replaces a deployment's split; a split where one version holds 100 % makes it the last stable one. */
export async function applySplit(em: EntityManager, deployment: Deployment, split: SplitEntry[], stable = true): Promise<void> {
  await em.delete(TrafficShare, { deploymentId: deployment.id });
  if (split.length) await em.insert(TrafficShare, split.map((s) => ({ deploymentId: deployment.id, modelVersionId: s.modelVersionId, weight: s.weight })));
  const single = split.length === 1 && split[0].weight === 100 ? split[0].modelVersionId : null;
  await em.update(Deployment, { id: deployment.id }, { updatedAt: new Date(), ...(stable && single ? { lastStableVersionId: single } : {}) });
}

function publish(ctx: RequestContext, deploymentId: string): void {
  ctx.app.events?.publish(TOPICS.rolloutUpdated, { id: deploymentId });
}

/**
 * Schedules the health check of the current step after its bake time, or after `delaySeconds` (a
 * held step's next look); a new generation voids older jobs.
 */
async function scheduleStep(em: EntityManager, ctx: RequestContext, rollout: Rollout, delaySeconds = rollout.bakeSeconds): Promise<void> {
  rollout.generation += 1;
  await em.update(Rollout, { id: rollout.id }, { generation: rollout.generation, stepStartedAt: rollout.stepStartedAt });
  const job: RolloutJob = { rolloutId: rollout.id, generation: rollout.generation, context: serializeContext(ctx) };
  await enqueue(em, { queue: QUEUES.rollouts, name: 'step', jobId: `${rollout.id}-g${rollout.generation}`, payload: job, delayMs: Math.round(delaySeconds * 1000) });
}

function rolloutError(reason: RolloutsReason, message: string): AppError {
  return new AppError(ErrorCode.CONFLICT, message, { reason });
}

export async function startRollout(ctx: RequestContext, input: StartRolloutInput): Promise<Rollout> {
  const rollout = await inTransaction(ctx, async (em, ctx) => {
    const deployment = await loadReadable(ctx, em, Deployment, 'Deployment', input.deployment, 'deployment', 'update');
    assertCan(ctx, 'update', 'Deployment', deployment);
    const version = await loadReadable(ctx, em, ModelVersion, 'ModelVersion', input.modelVersion, 'modelVersion', 'share');
    if (version.teamId !== deployment.teamId) throw badInput('the model version belongs to another team than the deployment', { field: 'modelVersion', reason: RolloutsReason.FOREIGN_VERSION });
    if (version.status === ModelVersionStatus.ARCHIVED || version.status === ModelVersionStatus.REJECTED) {
      throw rolloutError(RolloutsReason.VERSION_NOT_SERVABLE, `a ${version.status} version cannot serve`);
    }
    // Shadow traffic is never served, so a version still under review may be shadowed in production.
    if (deployment.environment === DeploymentEnvironment.PRODUCTION && input.strategy !== RolloutStrategy.SHADOW && version.status !== ModelVersionStatus.APPROVED) {
      throw rolloutError(RolloutsReason.VERSION_NOT_APPROVED, `only APPROVED versions may serve PRODUCTION (this one is ${version.status})`);
    }
    if (await em.exists(Rollout, { where: { deploymentId: deployment.id, status: In(ACTIVE) } })) {
      throw rolloutError(RolloutsReason.IN_PROGRESS, 'the deployment already has a rollout in progress or paused');
    }
    const baseline = await currentSplit(em, deployment.id);
    // The versions a rollback may return to stay servable while the rollout runs (archive checks them).
    if (baseline.length) await em.query(`SELECT id FROM model_version WHERE id = ANY($1::uuid[]) ORDER BY id FOR SHARE`, [baseline.map((b) => b.modelVersionId)]);
    let steps: number[];
    if (input.strategy === RolloutStrategy.CANARY) {
      steps = input.steps ?? DEFAULT_CANARY_STEPS;
      if (steps.some((s, i) => i > 0 && s <= steps[i - 1]) || steps[steps.length - 1] !== 100) {
        throw badInput('steps must increase and end at 100', { field: 'steps' });
      }
      if (!baseline.some((s) => s.modelVersionId !== version.id)) {
        throw badInput('a canary needs traffic to take from: the deployment serves no other version (use BLUE_GREEN)', { field: 'strategy', reason: RolloutsReason.NOTHING_TO_SHIFT });
      }
    } else {
      if (input.steps) throw badInput('steps apply to CANARY rollouts only', { field: 'steps' });
      steps = input.strategy === RolloutStrategy.SHADOW ? [0] : [100];
    }
    if (input.strategy !== RolloutStrategy.SHADOW && baseline.length === 1 && baseline[0].modelVersionId === version.id) {
      throw rolloutError(RolloutsReason.NOTHING_TO_DO, 'the version already serves all of the traffic');
    }
    const bakeSeconds = input.bakeSeconds ?? DEFAULT_BAKE_SECONDS;
    const rollout = em.create(Rollout, {
      teamId: deployment.teamId,
      deploymentId: deployment.id,
      modelVersionId: version.id,
      strategy: input.strategy,
      status: RolloutStatus.IN_PROGRESS,
      steps,
      currentStep: 0,
      bakeSeconds,
      minRequests: input.minRequests ?? DEFAULT_MIN_REQUESTS,
      maxHoldSeconds: input.maxHoldSeconds ?? DEFAULT_HOLD_BAKES * bakeSeconds,
      significance: input.significance ?? DEFAULT_SIGNIFICANCE,
      minAgreement: input.minAgreement ?? DEFAULT_MIN_AGREEMENT,
      lastVerdict: null,
      baselineSplit: baseline,
      generation: 0,
      stepStartedAt: new Date(),
      finishedAt: null,
      reason: null,
      createdBy: ctx.principal!.id,
    });
    assertCan(ctx, 'create', 'Rollout', rollout);
    await em.insert(Rollout, rollout);
    let split = baseline;
    if (input.strategy === RolloutStrategy.SHADOW) await em.insert(ShadowShare, { deploymentId: deployment.id, modelVersionId: version.id });
    else {
      split = input.strategy === RolloutStrategy.CANARY ? canarySplit(baseline, version.id, steps[0]) : [{ modelVersionId: version.id, weight: 100 }];
      await applySplit(em, deployment, split, false);
    }
    await scheduleStep(em, ctx, rollout);
    await audit(ctx, {
      action: 'startRollout',
      subjectType: 'Rollout',
      subjectId: toGlobalId('Rollout', rollout.id),
      before: { trafficSplit: describe(baseline) },
      after: { strategy: rollout.strategy, steps, bakeSeconds, minRequests: rollout.minRequests, maxHoldSeconds: rollout.maxHoldSeconds, significance: rollout.significance, ...(input.strategy === RolloutStrategy.SHADOW ? { minAgreement: rollout.minAgreement } : {}), modelVersion: gid(version.id), trafficSplit: describe(split), shadow: input.strategy === RolloutStrategy.SHADOW },
    });
    return rollout;
  });
  ctx.app.dispatcher?.kick();
  publish(ctx, rollout.deploymentId);
  return rollout;
}

/**
 * Ends an active rollout and puts the traffic back where it was before it began. A rollback is told
 * to the team (CRITICAL when the health check made it, WARNING when a person did).
 */
async function unwind(
  em: EntityManager,
  rollout: Rollout,
  deployment: Deployment,
  status: RolloutStatus.ABORTED | RolloutStatus.ROLLED_BACK,
  reason: string,
  told?: { automatic: boolean; requestId: string },
): Promise<void> {
  if (rollout.strategy === RolloutStrategy.SHADOW) await em.delete(ShadowShare, { deploymentId: deployment.id, modelVersionId: rollout.modelVersionId });
  else await applySplit(em, deployment, rollout.baselineSplit, false);
  await em.update(Rollout, { id: rollout.id }, { status, finishedAt: new Date(), reason, generation: rollout.generation + 1 });
  if (status === RolloutStatus.ROLLED_BACK && told) {
    await notifyRollout(em, rollout, deployment, NotificationKind.ROLLOUT_ROLLED_BACK, told.automatic ? 'CRITICAL' : 'WARNING', `Rollout rolled back on ${deployment.name}: ${reason}`, told.requestId);
  }
}

/** Tells the rollout's team what became of it (see raiseNotification). */
function notifyRollout(em: EntityManager, rollout: Rollout, deployment: Deployment, kind: NotificationKind, severity: NotificationSeverity, summary: string, requestId: string) {
  return raiseNotification(em, {
    teamId: rollout.teamId,
    kind,
    severity,
    subject: toGlobalId('Rollout', rollout.id),
    deploymentId: deployment.id,
    environment: deployment.environment,
    summary,
    data: { rollout: toGlobalId('Rollout', rollout.id), deployment: { id: toGlobalId('Deployment', deployment.id), name: deployment.name, environment: deployment.environment }, modelVersion: toGlobalId('ModelVersion', rollout.modelVersionId), step: rollout.currentStep + 1 },
    requestId,
  });
}

async function lockActive(ctx: RequestContext, em: EntityManager, id: string): Promise<{ rollout: Rollout; deployment: Deployment }> {
  const rollout = await loadReadable(ctx, em, Rollout, 'Rollout', id, 'rollout', 'update');
  assertCan(ctx, 'update', 'Rollout', rollout);
  if (!ACTIVE.includes(rollout.status)) throw rolloutError(RolloutsReason.FINISHED, `the rollout is ${rollout.status}`);
  const deployment = await em.findOneOrFail(Deployment, { where: { id: rollout.deploymentId }, lock: { mode: 'pessimistic_write' } });
  return { rollout, deployment };
}

/**
 * Moves an in-progress rollout on: to its next step, or to completion. Called by the step job
 * after the bake time (which first checks health and rolls back on a breach), and by
 * promoteRollout (which skips the wait). Idempotent per (rollout, generation).
 */
async function advance(ctx: TransactionContext, em: EntityManager, rollout: Rollout, deployment: Deployment, action: string, reason: string, verdict: StepVerdict | null = null): Promise<void> {
  const next = rollout.currentStep + 1;
  const judged = verdict ? { verdict: figuresOf(verdict) } : {};
  if (next >= rollout.steps.length) {
    if (rollout.strategy === RolloutStrategy.SHADOW) {
      await em.delete(ShadowShare, { deploymentId: deployment.id, modelVersionId: rollout.modelVersionId });
    } else {
      await applySplit(em, deployment, [{ modelVersionId: rollout.modelVersionId, weight: 100 }], true);
    }
    await em.update(Rollout, { id: rollout.id }, { status: RolloutStatus.SUCCEEDED, finishedAt: new Date(), reason, generation: rollout.generation + 1, ...(verdict ? { lastVerdict: figuresOf(verdict) } : {}) });
    await audit(ctx, { action, subjectType: 'Rollout', subjectId: toGlobalId('Rollout', rollout.id), reason, before: { step: rollout.currentStep }, after: { status: RolloutStatus.SUCCEEDED, trafficSplit: describe(await currentSplit(em, deployment.id)), ...judged } });
    return;
  }
  const split = canarySplit(rollout.baselineSplit, rollout.modelVersionId, rollout.steps[next]);
  await applySplit(em, deployment, split, false);
  rollout.currentStep = next;
  rollout.stepStartedAt = new Date();
  await em.update(Rollout, { id: rollout.id }, { currentStep: next, ...(verdict ? { lastVerdict: figuresOf(verdict) } : {}) });
  await scheduleStep(em, ctx, rollout);
  await audit(ctx, { action, subjectType: 'Rollout', subjectId: toGlobalId('Rollout', rollout.id), reason, before: { step: next - 1 }, after: { step: next, percent: rollout.steps[next], trafficSplit: describe(split), ...judged } });
}

/** A verdict as stored and audited: plain JSON (global ids, no class instances). */
function figuresOf(v: StepVerdict): Record<string, any> {
  return { ...v, baseline: v.baseline ? { ...v.baseline, versions: v.baseline.versions.map(gid) } : null };
}

/**
 * The step job: after the bake time, judge the step (see {@link judgeStep}). A breach, or an error
 * rate significantly worse than the baseline's, rolls back; a step short of its minimum sample is
 * held (checked again later, the step still running) until its hold runs out, then the rollout
 * pauses and an alert opens; otherwise it advances. Every verdict is audited with its figures and
 * kept as `Rollout.lastVerdict`. FORBIDDEN, with nothing changed, when whoever scheduled the step
 * may no longer update the deployment (the job then gives up: see {@link abandonRolloutStep}).
 */
export async function runRolloutStep(ctx: RequestContext, rolloutId: string, generation: number): Promise<void> {
  let announce: (() => void) | null = null;
  const deploymentId = await inTransaction(ctx, async (em, ctx) => {
    const rollout = await em.findOne(Rollout, { where: { id: rolloutId }, lock: { mode: 'pessimistic_write' } });
    // A paused, finished, promoted or rescheduled rollout has moved on: this job is stale.
    if (!rollout || rollout.status !== RolloutStatus.IN_PROGRESS || rollout.generation !== generation) return null;
    const deployment = await em.findOneOrFail(Deployment, { where: { id: rollout.deploymentId }, lock: { mode: 'pessimistic_write' } });
    // The step moves traffic as whoever scheduled it, with the rights they have now: to change the
    // deployment, and to read the version it moves traffic to, as starting the rollout needed.
    assertCan(ctx, 'update', 'Deployment', deployment);
    assertCan(ctx, 'read', 'ModelVersion', await em.findOneOrFail(ModelVersion, { where: { id: rollout.modelVersionId } }));
    const verdict = await judgeStep(em, rollout, deployment, ctx.app.rolloutEvidence);
    const figures = figuresOf(verdict);
    const subject = { subjectType: 'Rollout' as const, subjectId: toGlobalId('Rollout', rollout.id) };
    const where = `step ${rollout.currentStep + 1} (${rollout.steps[rollout.currentStep]} %)`;
    switch (verdict.verdict) {
      case 'rollback': {
        const reason = `automatic rollback at ${where}: ${verdict.reasons.join('; ')}`;
        await unwind(em, rollout, deployment, RolloutStatus.ROLLED_BACK, reason, { automatic: true, requestId: ctx.requestId });
        await em.update(Rollout, { id: rollout.id }, { lastVerdict: figures });
        await audit(ctx, { action: 'rollbackRollout', ...subject, reason, after: { status: RolloutStatus.ROLLED_BACK, observed: verdict.observed, verdict: figures, trafficSplit: describe(rollout.baselineSplit) } });
        break;
      }
      case 'hold': {
        const reason = `held at ${where}: ${verdict.reasons.join('; ')}`;
        await em.update(Rollout, { id: rollout.id }, { lastVerdict: figures });
        // Look again after another bake time, or when the hold runs out if that is sooner.
        await scheduleStep(em, ctx, rollout, Math.max(1, Math.min(rollout.bakeSeconds, verdict.holdLeftSeconds)));
        await audit(ctx, { action: 'holdRollout', ...subject, reason, after: { status: RolloutStatus.IN_PROGRESS, verdict: figures } });
        break;
      }
      case 'pause': {
        const reason = `paused at ${where}: ${verdict.reasons.join('; ')}`;
        await em.update(Rollout, { id: rollout.id }, { status: RolloutStatus.PAUSED, reason, lastVerdict: figures, generation: rollout.generation + 1 });
        const alert = await ctx.app.rolloutAlerts.stalled(em, {
          teamId: rollout.teamId,
          deploymentId: deployment.id,
          modelVersionId: rollout.modelVersionId,
          rolloutId: rollout.id,
          pausedBy: ctx.principal!.id,
          stepStartedAt: rollout.stepStartedAt,
          requests: verdict.observed.requests,
          minRequests: verdict.minRequests,
          verdict: figures,
        });
        announce = alert.announce;
        await audit(ctx, { action: 'pauseRollout', ...subject, reason, after: { status: RolloutStatus.PAUSED, alert: alert.id, verdict: figures } });
        break;
      }
      case 'advance':
        await advance(ctx, em, rollout, deployment, 'advanceRollout', `health check passed: ${verdict.reasons.join('; ')}`, verdict);
        break;
    }
    return deployment.id;
  });
  if (deploymentId) {
    ctx.app.dispatcher?.kick();
    publish(ctx, deploymentId);
  }
  (announce as (() => void) | null)?.();
}

export async function promoteRollout(ctx: RequestContext, input: RolloutActionInput): Promise<Rollout> {
  const rollout = await inTransaction(ctx, async (em, ctx) => {
    const { rollout, deployment } = await lockActive(ctx, em, input.rollout);
    if (rollout.status === RolloutStatus.PAUSED) await em.update(Rollout, { id: rollout.id }, { status: RolloutStatus.IN_PROGRESS });
    await advance(ctx, em, rollout, deployment, 'promoteRollout', input.reason ?? `promoted by ${ctx.principal!.id}`);
    return em.findOneByOrFail(Rollout, { id: rollout.id });
  });
  ctx.app.dispatcher?.kick();
  publish(ctx, rollout.deploymentId);
  return rollout;
}

export async function pauseRollout(ctx: RequestContext, input: RolloutActionInput): Promise<Rollout> {
  return transition(ctx, input, 'pauseRollout', async (em, rollout, deployment) => {
    if (rollout.status === RolloutStatus.PAUSED) throw rolloutError(RolloutsReason.PAUSED, 'the rollout is already paused');
    await em.update(Rollout, { id: rollout.id }, { status: RolloutStatus.PAUSED, generation: rollout.generation + 1 });
    // A pause for want of evidence is told by its ROLLOUT_STALLED alert; this one is a person's.
    await notifyRollout(em, rollout, deployment, NotificationKind.ROLLOUT_PAUSED, 'WARNING', `Rollout paused on ${deployment.name} by ${ctx.principal!.id}${input.reason ? `: ${input.reason}` : ''}`, ctx.requestId);
  });
}

export async function resumeRollout(ctx: RequestContext, input: RolloutActionInput): Promise<Rollout> {
  return transition(ctx, input, 'resumeRollout', async (em, rollout) => {
    if (rollout.status !== RolloutStatus.PAUSED) throw rolloutError(RolloutsReason.NOT_PAUSED, 'only a paused rollout can be resumed');
    // The step starts again, on fresh evidence; why it paused is in its audit trail.
    await em.update(Rollout, { id: rollout.id }, { status: RolloutStatus.IN_PROGRESS, reason: null });
    rollout.stepStartedAt = new Date();
    await scheduleStep(em, ctx, rollout);
  });
}

export async function abortRollout(ctx: RequestContext, input: RolloutActionInput): Promise<Rollout> {
  return transition(ctx, input, 'abortRollout', async (em, rollout, deployment) => {
    await unwind(em, rollout, deployment, RolloutStatus.ABORTED, input.reason ?? `aborted by ${ctx.principal!.id}`);
  });
}

async function transition(
  ctx: RequestContext,
  input: RolloutActionInput,
  action: string,
  change: (em: EntityManager, rollout: Rollout, deployment: Deployment) => Promise<void>,
): Promise<Rollout> {
  const rollout = await inTransaction(ctx, async (em, ctx) => {
    const { rollout, deployment } = await lockActive(ctx, em, input.rollout);
    const before = { status: rollout.status, trafficSplit: describe(await currentSplit(em, deployment.id)) };
    await change(em, rollout, deployment);
    const after = await em.findOneByOrFail(Rollout, { id: rollout.id });
    await audit(ctx, {
      action,
      subjectType: 'Rollout',
      subjectId: toGlobalId('Rollout', rollout.id),
      reason: input.reason ?? null,
      before,
      after: { status: after.status, trafficSplit: describe(await currentSplit(em, deployment.id)) },
    });
    return after;
  });
  ctx.app.dispatcher?.kick();
  publish(ctx, rollout.deploymentId);
  return rollout;
}

/**
 * Puts a deployment back: an active rollout is rolled back to the split it started from;
 * otherwise the last version that held 100 % of the traffic gets it again.
 */
export async function rollbackDeployment(ctx: RequestContext, input: RollbackDeploymentInput): Promise<Deployment> {
  const deployment = await inTransaction(ctx, async (em, ctx) => {
    const visible = await loadReadable(ctx, em, Deployment, 'Deployment', input.deployment, 'deployment');
    assertCan(ctx, 'update', 'Deployment', visible);
    // Same lock order as every rollout transition: the rollout first, then its deployment.
    const candidate = await em.findOne(Rollout, { where: { deploymentId: visible.id, status: In(ACTIVE) } });
    let active = candidate ? await em.findOne(Rollout, { where: { id: candidate.id }, lock: { mode: 'pessimistic_write' } }) : null;
    if (active && !ACTIVE.includes(active.status)) active = null;
    const deployment = await em.findOneOrFail(Deployment, { where: { id: visible.id }, lock: { mode: 'pessimistic_write' } });
    const before = await currentSplit(em, deployment.id);
    const reason = input.reason ?? `rolled back by ${ctx.principal!.id}`;
    if (active) {
      await unwind(em, active, deployment, RolloutStatus.ROLLED_BACK, reason, { automatic: false, requestId: ctx.requestId });
    } else {
      const target = deployment.lastStableVersionId;
      if (!target) throw rolloutError(RolloutsReason.NOTHING_TO_ROLL_BACK, 'no version has held all of this deployment\'s traffic yet');
      if (before.length === 1 && before[0].modelVersionId === target) throw rolloutError(RolloutsReason.NOTHING_TO_ROLL_BACK, 'the last stable version already serves all of the traffic');
      const version = await em.findOneOrFail(ModelVersion, { where: { id: target }, lock: { mode: 'pessimistic_read' } });
      if (version.status === ModelVersionStatus.ARCHIVED || version.status === ModelVersionStatus.REJECTED) {
        throw rolloutError(RolloutsReason.VERSION_NOT_SERVABLE, `the last stable version is now ${version.status}`);
      }
      await applySplit(em, deployment, [{ modelVersionId: target, weight: 100 }], true);
    }
    await audit(ctx, {
      action: 'rollbackDeployment',
      subjectType: 'Deployment',
      subjectId: toGlobalId('Deployment', deployment.id),
      reason,
      before: { trafficSplit: describe(before) },
      after: { trafficSplit: describe(await currentSplit(em, deployment.id)), rollout: active ? toGlobalId('Rollout', active.id) : null },
    });
    return em.findOneByOrFail(Deployment, { id: deployment.id });
  });
  publish(ctx, deployment.id);
  return deployment;
}

export function conflictIfRolling(em: EntityManager, deploymentId: string): Promise<void> {
  return em.exists(Rollout, { where: { deploymentId, status: In(ACTIVE) } }).then((yes) => {
    if (yes) throw conflict('the deployment has a rollout in progress: promote, abort or roll it back instead', { reason: RolloutsReason.IN_PROGRESS });
  });
}

/**
 * A step whose check could not run (after every retry, or refused to whoever scheduled it): the
 * rollout is rolled back rather than left half-way with nobody checking it.
 */
export async function abandonRolloutStep(ctx: RequestContext, rolloutId: string, generation: number, error: string): Promise<void> {
  const deploymentId = await inTransaction(ctx, async (em, ctx) => {
    const rollout = await em.findOne(Rollout, { where: { id: rolloutId }, lock: { mode: 'pessimistic_write' } });
    if (!rollout || rollout.status !== RolloutStatus.IN_PROGRESS || rollout.generation !== generation) return null;
    const deployment = await em.findOneOrFail(Deployment, { where: { id: rollout.deploymentId }, lock: { mode: 'pessimistic_write' } });
    const reason = `automatic rollback: the health check of step ${rollout.currentStep + 1} could not run (${error.slice(0, 300)})`;
    await unwind(em, rollout, deployment, RolloutStatus.ROLLED_BACK, reason, { automatic: true, requestId: ctx.requestId });
    await audit(ctx, { action: 'rollbackRollout', subjectType: 'Rollout', subjectId: toGlobalId('Rollout', rollout.id), reason, after: { status: RolloutStatus.ROLLED_BACK, trafficSplit: describe(rollout.baselineSplit) } });
    return deployment.id;
  });
  if (deploymentId) publish(ctx, deploymentId);
}
