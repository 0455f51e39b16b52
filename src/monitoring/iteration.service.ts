// The iteration loop: a trigger begins an iteration; workers move it on, step by step, each step a
// transaction that does the step's work (sample, training run, verdict, rollout) and records it on
// the iteration with its audit event. Every step runs as whoever set the policy behind it, under the
// request id `iteration:<id>`, so the audit trail of one chain is one query. A worker holds an
// iteration by a lease while it moves it; one that dies leaves the lease to run out, and the next
// worker carries on from the last step that committed: nothing is done twice.
import { randomUUID } from 'node:crypto';
import { In, type EntityManager } from 'typeorm';
import { accountablePerson, accountablePersonOf } from '../access/accountable';
import { systemContext } from '../access/system-context';
import { audit } from '../core/audit/audit-chain';
import type { AppServices, RequestContext, TransactionContext } from '../core/context';
import { inTransaction } from '../core/context';
import { subjectOf } from '../core/ability';
import { AppError, badInput, ErrorCode } from '../core/errors';
import { TOPICS } from '../core/events';
import { toGlobalId } from '../core/global-id';
import { contextFromJob, type SerializedContext } from '../core/job-context';
import { QUEUES } from '../core/queue/queues';
import { DatasetRole, TrainingRun, TrainingRunStatus } from '../lineage/training-run.entity';
import { ModelVersion, ModelVersionStatus } from '../registry/model-version.entity';
import { ChallengeDecision, type ModelVersionChallenge, challengeOf } from '../registry/model-version-challenge';
import { rejectByGate } from '../registry/model-version-challenge.service';
import { approveModelVersion } from '../registry/registry.service';
import { Deployment, DeploymentEnvironment } from '../rollouts/deployment.entity';
import { Rollout, RolloutStatus, RolloutStrategy } from '../rollouts/rollout.entity';
import { startRollout } from '../rollouts/rollout.service';
import { RolloutsReason } from '../rollouts/rollouts.errors';
import { startTrainingRun } from '../training/training.service';
import type { StartTrainingRunInput } from '../training/training.inputs';
import { AlertKind, AlertSeverity, AlertStatus, Alert } from './alert.entity';
import { openAlert, publishAlert } from './alerts';
import { notifyAlertChange } from './alert-notifications';
import { challengeModelVersion } from './challenger.service';
import { ACTIVE_ITERATION, Iteration, IterationStatus, IterationTriggerKind, LoopPolicy, iterationGlobalId, iterationRequestId } from './iteration.entity';
import { PromotionApproval, type StoredPromotionPolicy, type StoredRetrainPolicy } from './loop-policy';
import { MonitoringReason } from './monitoring.errors';
import { sampleProductionData } from './production-sample.service';

/** The principal the loop opens its alerts as. */
export const LOOP_PRINCIPAL = 'system:loop';
/** The principal an automatic approval is recorded as, on behalf of whoever set the promotion policy. */
export const PROMOTION_POLICY_PRINCIPAL = 'system:promotion-policy';
/** How long a worker holds an iteration while moving it on; a worker that dies loses it after this. */
const LEASE_SECONDS = 60;
/** Steps one call moves an iteration at most (each is its own transaction). */
const MAX_STEPS_PER_CALL = 8;

export interface IterationTrigger {
  kind: IterationTriggerKind;
  detail: Record<string, unknown>;
  alertId?: string | null;
}

const gid = (type: 'ModelVersion' | 'DatasetVersion' | 'TrainingRun' | 'Rollout' | 'Alert' | 'Deployment', id: string) => toGlobalId(type, id);

/** The version serving the largest share of a deployment's traffic (ties: the lowest id), or null. */
export async function servingChampion(em: EntityManager, deploymentId: string): Promise<string | null> {
  const rows: Array<{ v: string }> = await em.query(`SELECT model_version_id AS v FROM traffic_share WHERE deployment_id = $1 ORDER BY weight DESC, model_version_id LIMIT 1`, [deploymentId]);
  return rows[0]?.v ?? null;
}

function announce(app: AppServices, it: Pick<Iteration, 'id' | 'deploymentId'>): void {
  app.events?.publish(TOPICS.iterationUpdated, { id: it.deploymentId, iterationId: it.id });
}

/** The context a step acts as: whoever set the policy behind it, their rights as they are now, under the iteration's request id. */
async function actorOf(app: AppServices, it: Pick<Iteration, 'id'>, carried: SerializedContext): Promise<RequestContext> {
  const ctx = await contextFromJob(app, { context: carried }, { queue: QUEUES.loop, id: iterationRequestId(it.id) });
  return { ...ctx, requestId: iterationRequestId(it.id) };
}

/**
 * Begins an iteration of a deployment's loop for `trigger`, as whoever set its retrain policy. Null,
 * with nothing written, when the policy is missing or disabled, the deployment serves nothing, an
 * iteration is in flight, or the last one began within the cool-down; otherwise the iteration
 * (SAMPLING) with its first step and audit event, moved on at once.
 */
export async function beginIteration(app: AppServices, deploymentId: string, trigger: IterationTrigger): Promise<Iteration | null> {
  const policies = await app.db.getRepository(LoopPolicy).findOneBy({ deploymentId });
  const retrain = policies?.retrain as StoredRetrainPolicy | null | undefined;
  if (!policies || !retrain?.enabled || !policies.retrainSetBy) return null;
  if (await app.db.getRepository(Iteration).exists({ where: ACTIVE_ITERATION.map((status) => ({ deploymentId, status })) })) return null;
  const [last] = await app.db.query(`SELECT COALESCE(finished_at, created_at) AS at FROM iteration WHERE deployment_id = $1 ORDER BY created_at DESC LIMIT 1`, [deploymentId]);
  if (last && Date.now() - new Date(last.at).getTime() < retrain.cooldownSeconds * 1000) return null;
  const id = randomUUID();
  let ctx: RequestContext;
  try {
    ctx = await actorOf(app, { id }, policies.retrainSetBy);
  } catch (e) {
    app.log.warn({ deploymentId, err: (e as Error).message }, 'retrain policy not acted on: its setter cannot be established (a revoked key?); set the policy again');
    return null;
  }
  const iteration = await inTransaction(ctx, async (em, ctx) => {
    const deployment = await em.findOneBy(Deployment, { id: deploymentId });
    const champion = deployment ? await servingChampion(em, deploymentId) : null;
    if (!deployment || !champion) return null;
    // A setter who may no longer start training runs for the team begins nothing (each try would only fail).
    if (!ctx.ability.can('create', subjectOf('TrainingRun', { teamId: deployment.teamId, createdBy: ctx.principal!.id }) as never)) {
      app.log.warn({ deploymentId, setter: ctx.principal!.id }, 'retrain policy not acted on: its setter may no longer start training runs for the team; set the policy again');
      return null;
    }
    // Triggers on two instances begin one iteration: under this lock the cool-down is judged again
    // against what the other committed (the unique index alone only keeps two from running at once).
    await em.query(`SELECT pg_advisory_xact_lock(hashtext('loop-begin:' || $1))`, [deploymentId]);
    const [latest] = await em.query(`SELECT COALESCE(finished_at, created_at) AS at FROM iteration WHERE deployment_id = $1 ORDER BY created_at DESC LIMIT 1`, [deploymentId]);
    if (latest && Date.now() - new Date(latest.at).getTime() < retrain.cooldownSeconds * 1000) return null;
    const at = new Date();
    const inserted: Array<{ id: string }> = await em.query(
      `INSERT INTO iteration (id, team_id, created_by, deployment_id, status, trigger_kind, trigger, alert_id, champion_version_id, policy, steps, actors, message)
       VALUES ($1, $2, $3, $4, 'SAMPLING', $5, $6, $7, $8, $9, '[]', $10, $11)
       ON CONFLICT DO NOTHING RETURNING id`,
      [
        id,
        deployment.teamId,
        ctx.principal!.id,
        deploymentId,
        trigger.kind,
        JSON.stringify(trigger.detail),
        trigger.alertId ?? null,
        champion,
        JSON.stringify({ retrain, promotion: policies.promotion }),
        JSON.stringify({ retrain: policies.retrainSetBy, promotion: policies.promotionSetBy }),
        // Until its first step runs the iteration says what it is about to do, never nothing.
        retrain.collectSeconds > 0
          ? `collecting production traffic until ${new Date(at.getTime() + retrain.collectSeconds * 1000).toISOString()} before sampling`
          : 'collecting labelled production rows to sample',
      ],
    );
    if (!inserted.length) return null;
    const event = await audit(ctx, {
      action: 'beginIteration',
      subjectType: 'Iteration',
      subjectId: iterationGlobalId(id),
      reason: `${trigger.kind} trigger of the retrain policy`,
      after: { status: IterationStatus.SAMPLING, deployment: gid('Deployment', deploymentId), champion: gid('ModelVersion', champion), trigger: { kind: trigger.kind, ...trigger.detail } },
    });
    const steps = [{ step: 'TRIGGERED', at: at.toISOString(), detail: { kind: trigger.kind, ...trigger.detail, champion: gid('ModelVersion', champion) }, auditSeq: String(event.seq) }];
    await em.update(Iteration, { id }, { steps });
    return em.findOneByOrFail(Iteration, { id });
  });
  if (!iteration) return null;
  announce(app, iteration);
  await advanceIteration(app, iteration.id).catch((e) => app.log.warn({ iteration: iteration.id, err: (e as Error).message }, 'iteration not moved on (the next tick will)'));
  return iteration;
}

/** A step's outcome: moved to another status (and the caller may go on), or waiting with a message. */
type StepResult = { moved: true; announce?: Array<() => void> } | { moved: false; message: string | null };

interface Held {
  it: Iteration;
  owner: string;
}

/** Records a move of a held iteration, with its audit event; fails (rolling the step back) when the lease was lost meanwhile. */
async function move(
  ctx: TransactionContext,
  held: Held,
  to: IterationStatus,
  patch: Partial<Pick<Iteration, 'trainDatasetVersionId' | 'holdoutDatasetVersionId' | 'trainingRunId' | 'candidateVersionId' | 'shadowRolloutId' | 'canaryRolloutId' | 'approvalAlertId'>>,
  steps: Array<{ step: string; detail: Record<string, unknown> }>,
  message: string | null = null,
): Promise<void> {
  const { it, owner } = held;
  const finished = !ACTIVE_ITERATION.includes(to);
  const event = await audit(ctx, {
    action: finished ? 'finishIteration' : 'advanceIteration',
    subjectType: 'Iteration',
    subjectId: iterationGlobalId(it.id),
    reason: message,
    before: { status: it.status },
    after: { status: to, steps: steps.map((s) => ({ step: s.step, ...s.detail })) },
  });
  const at = new Date().toISOString();
  const recorded = [...it.steps, ...steps.map((s) => ({ step: s.step, at, detail: s.detail, auditSeq: String(event.seq) }))];
  const r = await ctx.em.update(
    Iteration,
    { id: it.id, status: it.status, leaseOwner: owner },
    { ...patch, status: to, steps: recorded as never, message, ...(finished ? { finishedAt: new Date(), leaseUntil: null, leaseOwner: null } : {}) },
  );
  if (!r.affected) throw new Error(`iteration ${it.id} was taken over while it moved on`);
  Object.assign(it, patch, { status: to, steps: recorded, message });
}

/** Takes the lease of an in-flight iteration whose lease is free or ran out; null when another worker holds it or it is finished. */
async function claim(app: AppServices, id: string, owner: string): Promise<Iteration | null> {
  const rows: Array<{ id: string }> = await app.db.query(
    `UPDATE iteration SET lease_owner = $2, lease_until = now() + make_interval(secs => $3)
      WHERE id = $1 AND status = ANY($4::iteration_status[]) AND (lease_until IS NULL OR lease_until < now() OR lease_owner = $2)
      RETURNING id`,
    [id, owner, LEASE_SECONDS, ACTIVE_ITERATION],
  );
  return rows.length ? app.db.getRepository(Iteration).findOneBy({ id }) : null;
}

/**
 * Moves an iteration on as far as it can go now (each step one transaction), under a lease; a
 * no-op when another worker holds it or it is finished. Safe to call at any time, from any process.
 */
export async function advanceIteration(app: AppServices, id: string): Promise<Iteration | null> {
  const owner = randomUUID();
  const it = await claim(app, id, owner);
  if (!it) return null;
  const held = { it, owner };
  try {
    for (let i = 0; i < MAX_STEPS_PER_CALL && ACTIVE_ITERATION.includes(held.it.status); i++) {
      let result: StepResult;
      try {
        result = await step(app, held);
      } catch (e) {
        // Whoever the step acts as may no longer do it (rights withdrawn, a key revoked): the loop stops here, saying why.
        if (!(e instanceof AppError) || (e.code !== ErrorCode.FORBIDDEN && e.code !== ErrorCode.UNAUTHENTICATED)) throw e;
        result = await fail(app, held, IterationStatus.FAILED, 'FAILED', `the step's actor may no longer act: ${e.code}: ${e.message}`);
      }
      if (!result.moved) {
        if (result.message !== held.it.message) {
          await app.db.query(`UPDATE iteration SET message = $2, updated_at = now() WHERE id = $1 AND lease_owner = $3`, [id, result.message, owner]);
          held.it.message = result.message;
          announce(app, held.it);
        }
        break;
      }
      for (const a of result.announce ?? []) a();
      announce(app, held.it);
    }
  } finally {
    await app.db.query(`UPDATE iteration SET lease_until = NULL, lease_owner = NULL WHERE id = $1 AND lease_owner = $2`, [id, owner]).catch(() => undefined);
  }
  return held.it;
}

/** Every in-flight iteration whose lease is free, moved on (the workers' tick). */
export async function advanceIterations(app: AppServices): Promise<number> {
  const rows: Array<{ id: string }> = await app.db.query(
    `SELECT id FROM iteration WHERE status = ANY($1::iteration_status[]) AND (lease_until IS NULL OR lease_until < now()) ORDER BY updated_at`,
    [ACTIVE_ITERATION],
  );
  for (const r of rows) {
    await advanceIteration(app, r.id).catch((e) => app.log.warn({ iteration: r.id, err: (e as Error).message }, 'iteration not moved on'));
  }
  return rows.length;
}

/** Ends an iteration that cannot go on, with the reason: as the retrain policy's setter, or as the loop itself when they can no longer be established. */
async function fail(app: AppServices, held: Held, status: IterationStatus, step: string, message: string, detail: Record<string, unknown> = {}): Promise<StepResult> {
  const ctx = await actorOf(app, held.it, held.it.actors.retrain).catch(() => systemContext(app, { id: LOOP_PRINCIPAL }, iterationRequestId(held.it.id)));
  const closed = await inTransaction(ctx, async (em, ctx) => {
    await move(ctx, held, status, {}, [{ step, detail: { ...detail, reason: message } }], message);
    // An approval request of an iteration that is over asks nobody for anything: it closes with the iteration.
    if (!held.it.approvalAlertId) return null;
    const r = await em.update(
      Alert,
      { id: held.it.approvalAlertId, status: In([AlertStatus.OPEN, AlertStatus.ACKNOWLEDGED]) },
      { status: AlertStatus.RESOLVED, resolvedBy: LOOP_PRINCIPAL, resolvedAt: new Date(), resolution: `the iteration ended ${status}: ${message}` },
    );
    if (!r.affected) return null;
    const resolved = await em.findOneByOrFail(Alert, { id: held.it.approvalAlertId });
    await notifyAlertChange(em, resolved, 'resolved', ctx.requestId);
    return resolved;
  });
  return { moved: true, announce: closed ? [() => publishAlert(app, closed)] : [] };
}

const retrainOf = (it: Iteration) => it.policy.retrain as StoredRetrainPolicy;
const promotionOf = (it: Iteration) => (it.policy.promotion as StoredPromotionPolicy | null) ?? null;

async function step(app: AppServices, held: Held): Promise<StepResult> {
  switch (held.it.status) {
    case IterationStatus.SAMPLING:
      return sampleAndTrain(app, held);
    case IterationStatus.TRAINING:
      return watchTraining(app, held);
    case IterationStatus.GATING:
      return gate(app, held);
    case IterationStatus.SHADOW:
      return watchRollout(app, held, held.it.shadowRolloutId!, (ctx) => afterShadow(app, ctx, held));
    case IterationStatus.AWAITING_APPROVAL:
      return watchApproval(app, held);
    case IterationStatus.CANARY:
      return watchRollout(app, held, held.it.canaryRolloutId!, async (ctx) => {
        await move(ctx, held, IterationStatus.PROMOTED, {}, [{ step: 'PROMOTED', detail: { rollout: gid('Rollout', held.it.canaryRolloutId!), modelVersion: gid('ModelVersion', held.it.candidateVersionId!) } }], 'the candidate serves all of the traffic');
        return [];
      });
    default:
      return { moved: false, message: held.it.message };
  }
}

const errorReason = (e: unknown) => (e instanceof AppError ? (e.details.reason as string | undefined) : undefined);

/** SAMPLING: after the collection time, the production sample and the retraining run, in one transaction. */
async function sampleAndTrain(app: AppServices, held: Held): Promise<StepResult> {
  const { it } = held;
  const policy = retrainOf(it);
  const triggeredAt = new Date(it.createdAt).getTime();
  const now = Date.now();
  if (now < triggeredAt + policy.collectSeconds * 1000) {
    return { moved: false, message: `collecting production traffic until ${new Date(triggeredAt + policy.collectSeconds * 1000).toISOString()} before sampling` };
  }
  const deployment = await app.db.getRepository(Deployment).findOneByOrFail({ id: it.deploymentId });
  const windowSeconds = ((deployment.monitoring ?? {}) as { windowSeconds?: number }).windowSeconds ?? app.config.monitoring.windowSeconds;
  const champion = await app.db.getRepository(ModelVersion).findOneBy({ id: it.championVersionId });
  const lineage = champion?.trainingRunId ? await app.db.getRepository(TrainingRun).findOneBy({ id: champion.trainingRunId }) : null;
  if (!lineage?.codeVersionId || !lineage.configId || !lineage.seedSetId || !lineage.environmentId) {
    return fail(app, held, IterationStatus.FAILED, 'FAILED', "the champion was not trained by this server: there is no code, config, seeds and environment to retrain with");
  }
  let ctx: RequestContext;
  try {
    ctx = await actorOf(app, it, it.actors.retrain);
  } catch (e) {
    return fail(app, held, IterationStatus.FAILED, 'FAILED', `the retrain policy's setter cannot be established: ${(e as Error).message}`);
  }
  const to = new Date(now);
  const from = new Date(now - policy.sampleWindows * windowSeconds * 1000);
  try {
    await inTransaction(ctx, async (em, ctx) => {
      const sample = await sampleProductionData(ctx, { deployment: gid('Deployment', it.deploymentId), from, to, holdoutShare: policy.holdoutShare });
      if (!sample.train || !sample.holdout) throw badInput('the sample has no holdout part', { reason: MonitoringReason.SAMPLE_TOO_SMALL });
      // The holdout stays unseen by the trainer: it is the gate's fresh evidence, not the trainer's.
      const datasets: StartTrainingRunInput['datasets'] = [{ datasetVersion: sample.train.datasetVersion.nodeId, role: DatasetRole.TRAIN }];
      if (policy.includeChampionData) {
        const own: Array<{ id: string }> = await em.query(`SELECT dataset_version_id AS id FROM training_run_dataset WHERE training_run_id = $1 AND role = 'TRAIN' ORDER BY dataset_version_id`, [lineage.id]);
        for (const d of own) datasets.push({ datasetVersion: gid('DatasetVersion', d.id), role: DatasetRole.TRAIN });
      }
      if (policy.alsoTrainOn) datasets.push({ datasetVersion: gid('DatasetVersion', policy.alsoTrainOn), role: DatasetRole.TRAIN });
      const run = await startTrainingRun(ctx, {
        model: toGlobalId('Model', champion!.modelId),
        name: `iteration ${it.id}: retrain on production traffic ${from.toISOString()} – ${to.toISOString()}`,
        datasets,
        codeVersion: toGlobalId('CodeVersion', lineage.codeVersionId!),
        config: toGlobalId('Config', lineage.configId!),
        seedSet: toGlobalId('SeedSet', lineage.seedSetId!),
        environment: toGlobalId('Environment', lineage.environmentId!),
      } as StartTrainingRunInput,
      // The gate of this iteration judges the candidate against the champion on the same holdout.
      { deferChampionComparison: true });
      await move(
        ctx,
        held,
        IterationStatus.TRAINING,
        { trainDatasetVersionId: sample.train.datasetVersion.id, holdoutDatasetVersionId: sample.holdout.datasetVersion.id, trainingRunId: run.id },
        [
          {
            step: 'SAMPLED',
            detail: {
              from: from.toISOString(),
              to: to.toISOString(),
              train: { datasetVersion: sample.train.datasetVersion.nodeId, rows: sample.train.rows },
              holdout: { datasetVersion: sample.holdout.datasetVersion.nodeId, rows: sample.holdout.rows },
              unusable: { ...sample.unusable },
            },
          },
          { step: 'TRAINING_STARTED', detail: { trainingRun: gid('TrainingRun', run.id), datasets: datasets.map((d) => ({ ...d })) } },
        ],
      );
    });
    return { moved: true };
  } catch (e) {
    if (errorReason(e) === MonitoringReason.SAMPLE_TOO_SMALL) {
      if (now > triggeredAt + policy.sampleTimeoutSeconds * 1000) return fail(app, held, IterationStatus.FAILED, 'FAILED', `no usable production sample within ${policy.sampleTimeoutSeconds} s: ${(e as Error).message}`);
      return { moved: false, message: `waiting for labelled production rows: ${(e as Error).message}` };
    }
    if (e instanceof AppError) return fail(app, held, IterationStatus.FAILED, 'FAILED', `${e.code}: ${e.message}`);
    throw e;
  }
}

/** TRAINING: waits for the run; its version (or its failure) moves the iteration on. */
async function watchTraining(app: AppServices, held: Held): Promise<StepResult> {
  const { it } = held;
  const run = await app.db.getRepository(TrainingRun).findOneByOrFail({ id: it.trainingRunId! });
  if (run.status === TrainingRunStatus.FAILED || run.status === TrainingRunStatus.CANCELLED) {
    return fail(app, held, IterationStatus.FAILED, 'TRAINING_FAILED', `the retraining run ${run.status === TrainingRunStatus.FAILED ? 'failed' : 'was cancelled'}: ${run.failureReason ?? 'no reason given'}`, { trainingRun: gid('TrainingRun', run.id) });
  }
  if (run.status !== TrainingRunStatus.SUCCEEDED) return { moved: false, message: `training: run ${gid('TrainingRun', run.id)} is ${run.status}` };
  const version = await app.db.getRepository(ModelVersion).findOneBy({ trainingRunId: run.id });
  if (!version) return { moved: false, message: 'training finished; its model version is being registered' };
  const ctx = await actorOf(app, it, it.actors.retrain);
  const registered = { modelVersion: gid('ModelVersion', version.id), version: version.version, status: version.status, metrics: version.metrics };
  if (version.status === ModelVersionStatus.REJECTED) {
    const reasons = ((version.evaluation ?? {}) as { reasons?: string[] }).reasons ?? [];
    await inTransaction(ctx, (_em, ctx) =>
      move(ctx, held, IterationStatus.REJECTED, { candidateVersionId: version.id }, [{ step: 'CANDIDATE_REJECTED', detail: { ...registered, reasons } }], `rejected by its training gate: ${reasons.join('; ')}`),
    );
    return { moved: true };
  }
  await inTransaction(ctx, (_em, ctx) => move(ctx, held, IterationStatus.GATING, { candidateVersionId: version.id }, [{ step: 'CANDIDATE_REGISTERED', detail: registered }]));
  return { moved: true };
}

/** GATING: the candidate and the champion run by this server on the sample's holdout; the verdict decides. */
async function gate(app: AppServices, held: Held): Promise<StepResult> {
  const { it } = held;
  const policy = retrainOf(it);
  const ctx = await actorOf(app, it, it.actors.retrain);
  const candidate = await app.db.getRepository(ModelVersion).findOneByOrFail({ id: it.candidateVersionId! });
  // A verdict on this holdout against this champion is this iteration's (a worker that died after recording it does not judge again).
  let verdict: ModelVersionChallenge | null = challengeOf(candidate.challenge);
  const holdout = gid('DatasetVersion', it.holdoutDatasetVersionId!);
  const champion = gid('ModelVersion', it.championVersionId);
  if (!verdict || verdict.holdout !== holdout || verdict.champion !== champion) {
    try {
      verdict = await challengeModelVersion(ctx, { candidate: gid('ModelVersion', candidate.id), champion, holdout, policy: { ...policy.gate, decisionThreshold: null } });
    } catch (e) {
      if (e instanceof AppError) return fail(app, held, IterationStatus.FAILED, 'GATE_FAILED', `the gate could not judge the candidate: ${e.code}: ${e.message}`);
      throw e;
    }
  }
  const detail = {
    decision: verdict.decision,
    rows: verdict.rows,
    candidateAccuracy: verdict.candidateFigures.accuracy,
    championAccuracy: verdict.championFigures?.accuracy ?? null,
    candidateAuc: verdict.candidateFigures.auc,
    championAuc: verdict.championFigures?.auc ?? null,
    mcnemar: verdict.mcnemar,
    aucDifference: verdict.aucDifference,
    reasons: verdict.reasons,
  };
  if (verdict.decision === ChallengeDecision.REJECTED) {
    await inTransaction(ctx, async (_em, ctx) => {
      await rejectByGate(ctx, candidate.id, verdict!.reasons);
      await move(ctx, held, IterationStatus.REJECTED, {}, [{ step: 'GATE_REJECTED', detail }], `rejected by the champion/challenger gate: ${verdict!.reasons.join('; ')}`);
    });
    return { moved: true };
  }
  const promotion = promotionOf(it);
  if (!promotion) {
    await inTransaction(ctx, (_em, ctx) =>
      move(ctx, held, IterationStatus.HANDED_OFF, {}, [{ step: 'GATE_PASSED', detail }], 'passed the gate; the deployment has no promotion policy, so a person rolls it out'),
    );
    return { moved: true };
  }
  let rolloutCtx: RequestContext;
  try {
    rolloutCtx = await actorOf(app, it, it.actors.promotion!);
  } catch (e) {
    return fail(app, held, IterationStatus.FAILED, 'FAILED', `the promotion policy's setter cannot be established: ${(e as Error).message}`);
  }
  return startOrWait(app, held, async () =>
    inTransaction(rolloutCtx, async (_em, ctx) => {
      if (promotion.shadowSeconds > 0) {
        const rollout = await startLoopRollout(ctx, it, RolloutStrategy.SHADOW, promotion);
        await move(ctx, held, IterationStatus.SHADOW, { shadowRolloutId: rollout.id }, [{ step: 'GATE_PASSED', detail }, { step: 'SHADOW_STARTED', detail: { rollout: gid('Rollout', rollout.id), seconds: promotion.shadowSeconds } }]);
        return [];
      }
      return afterShadow(app, ctx, held, [{ step: 'GATE_PASSED', detail }], verdict!);
    }),
  );
}

/** Starts the loop's rollout of the candidate with the promotion policy's figures. */
function startLoopRollout(ctx: RequestContext, it: Iteration, strategy: RolloutStrategy, p: StoredPromotionPolicy): Promise<Rollout> {
  const shadow = strategy === RolloutStrategy.SHADOW;
  return startRollout(ctx, {
    deployment: gid('Deployment', it.deploymentId),
    modelVersion: gid('ModelVersion', it.candidateVersionId!),
    strategy,
    steps: shadow ? null : p.steps,
    bakeSeconds: shadow ? p.shadowSeconds : p.bakeSeconds,
    minRequests: p.minRequests,
    minAgreement: shadow ? p.shadowMinAgreement : null,
  });
}

/** Runs a step that starts a rollout: a deployment busy with another rollout is waited for; any other refusal ends the iteration. */
async function startOrWait(app: AppServices, held: Held, work: () => Promise<Array<() => void>>): Promise<StepResult> {
  try {
    return { moved: true, announce: await work() };
  } catch (e) {
    if (e instanceof AppError && errorReason(e) === RolloutsReason.IN_PROGRESS) return { moved: false, message: 'waiting for the rollout already in progress on the deployment to finish' };
    if (e instanceof AppError) return fail(app, held, IterationStatus.FAILED, 'FAILED', `the rollout could not start: ${e.code}: ${e.message}`);
    throw e;
  }
}

/**
 * After the gate (and the shadow, if any): STAGING goes to the canary; PRODUCTION too once the
 * candidate is APPROVED — by the policy itself when it allows automatic approval and the margin
 * holds, otherwise the iteration waits for a reviewer, who is told by an APPROVAL_REQUIRED alert.
 */
async function afterShadow(app: AppServices, ctx: TransactionContext, held: Held, before: Array<{ step: string; detail: Record<string, unknown> }> = [], known?: ModelVersionChallenge): Promise<Array<() => void>> {
  const { it } = held;
  const em = ctx.em;
  const promotion = promotionOf(it)!;
  const deployment = await em.findOneByOrFail(Deployment, { id: it.deploymentId });
  const candidate = await em.findOneByOrFail(ModelVersion, { id: it.candidateVersionId! });
  const steps = [...before];
  if (it.shadowRolloutId) steps.push({ step: 'SHADOW_PASSED', detail: { rollout: gid('Rollout', it.shadowRolloutId) } });
  if (deployment.environment === DeploymentEnvironment.PRODUCTION && candidate.status !== ModelVersionStatus.APPROVED) {
    const verdict = known ?? gateVerdictOf(it);
    const margin = verdict.championFigures ? verdict.candidateFigures.accuracy - verdict.championFigures.accuracy : null;
    let waitReason: string;
    // Approval is the one thing a policy tightened mid-flight still changes: automatic only if the policy in force still allows it.
    const inForce = (await em.findOneBy(LoopPolicy, { deploymentId: it.deploymentId }))?.promotion as StoredPromotionPolicy | null | undefined;
    if (promotion.approval === PromotionApproval.AUTOMATIC && inForce?.approval !== PromotionApproval.AUTOMATIC) {
      waitReason = 'the promotion policy in force no longer approves automatically: a reviewer must approve the candidate for PRODUCTION';
    } else if (promotion.approval === PromotionApproval.AUTOMATIC) {
      const approver = await policyApprover(app, it);
      const person = approver.principal!.onBehalfOf!;
      const samePerson = norm(await accountablePersonOf(em, candidate.createdBy)) === norm(person);
      if (margin === null || margin < promotion.autoApproveMargin) {
        waitReason = `not approved automatically: the candidate's holdout accuracy is ${margin === null ? 'not comparable (no champion figures)' : `${fmt(margin)} above the champion's`}; the policy needs ${promotion.autoApproveMargin}`;
      } else if (samePerson) {
        waitReason = `not approved automatically: ${person} set the promotion policy and is accountable for the candidate too; four eyes are two people`;
      } else if (!approver.ability.can('approve', subjectOf('ModelVersion', candidate) as never)) {
        waitReason = `not approved automatically: ${person}, who set the promotion policy, may no longer approve this version`;
      } else {
        await approveModelVersion({ ...approver, em } as TransactionContext, {
          modelVersion: gid('ModelVersion', candidate.id),
          reason: `approved by the promotion policy of deployment ${deployment.name} on behalf of ${person}: passed the gate with holdout accuracy ${fmt(margin)} above the champion's (margin ${promotion.autoApproveMargin})`,
        });
        steps.push({ step: 'APPROVED', detail: { by: PROMOTION_POLICY_PRINCIPAL, onBehalfOf: person, margin } });
        return startCanary(ctx, held, steps);
      }
    } else {
      waitReason = 'the promotion policy requires a reviewer to approve the candidate for PRODUCTION';
    }
    const alert = openAlert(em, {
      teamId: it.teamId,
      createdBy: LOOP_PRINCIPAL,
      deploymentId: it.deploymentId,
      modelVersionId: candidate.id,
      kind: AlertKind.APPROVAL_REQUIRED,
      severity: AlertSeverity.WARNING,
      feature: '',
      statistic: 'holdoutAccuracyMargin',
      value: margin ?? 0,
      threshold: promotion.approval === PromotionApproval.AUTOMATIC ? promotion.autoApproveMargin : 0,
      pValue: verdict.mcnemar?.pCandidateWorse ?? null,
      windowStart: new Date(it.createdAt),
      windowEnd: new Date(),
      lastSeenAt: new Date(),
      details: { iteration: iterationGlobalId(it.id), candidate: gid('ModelVersion', candidate.id), champion: gid('ModelVersion', it.championVersionId), decision: verdict.decision, reasons: verdict.reasons, why: waitReason },
    });
    await em.insert(Alert, alert);
    await notifyAlertChange(em, alert, 'opened', ctx.requestId);
    steps.push({ step: 'APPROVAL_REQUESTED', detail: { alert: gid('Alert', alert.id), why: waitReason } });
    await move(ctx, held, IterationStatus.AWAITING_APPROVAL, { approvalAlertId: alert.id }, steps, waitReason);
    return [() => publishAlert(app, alert)];
  }
  return startCanary(ctx, held, steps);
}

/**
 * The gate's verdict as this iteration recorded it (its GATE_PASSED step): the comparison stored on
 * the candidate is only the latest one, which anyone who may update the candidate can replace.
 */
function gateVerdictOf(it: Iteration): Pick<ModelVersionChallenge, 'decision' | 'reasons' | 'mcnemar'> & { candidateFigures: { accuracy: number }; championFigures: { accuracy: number } | null } {
  const d = it.steps.find((s) => s.step === 'GATE_PASSED')?.detail as { decision: ChallengeDecision; reasons: string[]; mcnemar: ModelVersionChallenge['mcnemar']; candidateAccuracy: number; championAccuracy: number | null } | undefined;
  if (!d) throw new Error(`iteration ${it.id} passed no gate`);
  return {
    decision: d.decision,
    reasons: d.reasons,
    mcnemar: d.mcnemar,
    candidateFigures: { accuracy: d.candidateAccuracy },
    championFigures: d.championAccuracy === null ? null : { accuracy: d.championAccuracy },
  };
}

async function startCanary(ctx: TransactionContext, held: Held, steps: Array<{ step: string; detail: Record<string, unknown> }>): Promise<Array<() => void>> {
  const promotion = promotionOf(held.it)!;
  const rollout = await startLoopRollout(ctx, held.it, RolloutStrategy.CANARY, promotion);
  steps.push({ step: 'CANARY_STARTED', detail: { rollout: gid('Rollout', rollout.id), steps: promotion.steps, bakeSeconds: promotion.bakeSeconds } });
  await move(ctx, held, IterationStatus.CANARY, { canaryRolloutId: rollout.id }, steps);
  return [];
}

/** SHADOW and CANARY: wait for the rollout; its success moves on, a rollback or an abort ends the iteration. */
async function watchRollout(app: AppServices, held: Held, rolloutId: string, onSuccess: (ctx: TransactionContext) => Promise<Array<() => void>>): Promise<StepResult> {
  const { it } = held;
  const rollout = await app.db.getRepository(Rollout).findOneByOrFail({ id: rolloutId });
  if (rollout.status === RolloutStatus.IN_PROGRESS) return { moved: false, message: `${rollout.strategy === RolloutStrategy.SHADOW ? 'shadow' : `canary step ${rollout.currentStep + 1} of ${rollout.steps.length}`} of rollout ${gid('Rollout', rollout.id)} in progress` };
  if (rollout.status === RolloutStatus.PAUSED) return { moved: false, message: `rollout ${gid('Rollout', rollout.id)} is paused: ${rollout.reason ?? 'a person resumes or aborts it'}` };
  if (rollout.status !== RolloutStatus.SUCCEEDED) {
    return fail(app, held, IterationStatus.ROLLED_BACK, 'ROLLED_BACK', `rollout ${gid('Rollout', rollout.id)} ended ${rollout.status}: ${rollout.reason ?? ''}`.trim(), { rollout: gid('Rollout', rollout.id), lastVerdict: rollout.lastVerdict });
  }
  let ctx: RequestContext;
  try {
    ctx = await actorOf(app, it, it.actors.promotion!);
  } catch (e) {
    return fail(app, held, IterationStatus.FAILED, 'FAILED', `the promotion policy's setter cannot be established: ${(e as Error).message}`);
  }
  return startOrWait(app, held, () => inTransaction(ctx, (_em, ctx) => onSuccess(ctx)));
}

/** AWAITING_APPROVAL: a reviewer's approval starts the canary; a rejection (or an archived candidate) ends the iteration. */
async function watchApproval(app: AppServices, held: Held): Promise<StepResult> {
  const { it } = held;
  const candidate = await app.db.getRepository(ModelVersion).findOneByOrFail({ id: it.candidateVersionId! });
  if (candidate.status === ModelVersionStatus.CANDIDATE || candidate.status === ModelVersionStatus.REGISTERED) return { moved: false, message: it.message };
  const [review] = await app.db.query(`SELECT id, actor, reason, decision FROM approval WHERE model_version_id = $1 ORDER BY created_at DESC LIMIT 1`, [candidate.id]);
  const closeAlert = async (em: EntityManager, resolution: string): Promise<Array<() => void>> => {
    if (!it.approvalAlertId) return [];
    const r = await em.update(
      Alert,
      { id: it.approvalAlertId, status: In([AlertStatus.OPEN, AlertStatus.ACKNOWLEDGED]) },
      { status: AlertStatus.RESOLVED, resolvedBy: LOOP_PRINCIPAL, resolvedAt: new Date(), resolution },
    );
    const alert = await em.findOneBy(Alert, { id: it.approvalAlertId });
    if (alert && r.affected) await notifyAlertChange(em, alert, 'resolved', iterationRequestId(it.id));
    return alert ? [() => publishAlert(app, alert)] : [];
  };
  const reviewed = review ? { approval: toGlobalId('Approval', review.id), by: review.actor, reason: review.reason } : {};
  if (candidate.status !== ModelVersionStatus.APPROVED) {
    const ctx = await actorOf(app, it, it.actors.retrain);
    const announced = await inTransaction(ctx, async (em, ctx) => {
      const a = await closeAlert(em, `the candidate was ${candidate.status.toLowerCase()}`);
      await move(ctx, held, candidate.status === ModelVersionStatus.REJECTED ? IterationStatus.REJECTED : IterationStatus.FAILED, {}, [{ step: candidate.status, detail: reviewed }], `the candidate was ${candidate.status.toLowerCase()} while awaiting approval`);
      return a;
    });
    return { moved: true, announce: announced };
  }
  let ctx: RequestContext;
  try {
    ctx = await actorOf(app, it, it.actors.promotion!);
  } catch (e) {
    return fail(app, held, IterationStatus.FAILED, 'FAILED', `the promotion policy's setter cannot be established: ${(e as Error).message}`);
  }
  return startOrWait(app, held, () =>
    inTransaction(ctx, async (em, ctx) => {
      const a = await closeAlert(em, 'approved by a reviewer');
      return [...a, ...(await startCanary(ctx, held, [{ step: 'APPROVED', detail: reviewed }]))];
    }),
  );
}

/** The promotion policy as an approver: its own principal, with the rights of whoever set it, on their behalf. */
async function policyApprover(app: AppServices, it: Iteration): Promise<RequestContext> {
  const setter = await actorOf(app, it, it.actors.promotion!);
  const person = accountablePerson(setter.principal!);
  return {
    ...setter,
    principal: { ...setter.principal!, id: PROMOTION_POLICY_PRINCIPAL, kind: 'system', onBehalfOf: person },
    via: { jobs: setter.via?.jobs ?? [], onBehalfOf: [person] },
  };
}

const norm = (id: string) => id.normalize('NFKC').trim().toLowerCase();
const fmt = (x: number) => (Math.round(x * 10_000) / 10_000).toString();
