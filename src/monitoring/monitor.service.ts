import type { Condition } from './condition';
import { audit } from '../core/audit/audit-chain';
import type { AppServices, RequestContext, TransactionContext } from '../core/context';
import { inTransaction } from '../core/context';
import { assertCan } from '../core/authz';
import { badInput, conflict } from '../core/errors';
import { TOPICS } from '../core/events';
import { toGlobalId } from '../core/global-id';
import { DatasetVersion } from '../lineage/dataset-version.entity';
import { contextFromJob, scheduledContext, serializeContext, type JobPayload, type SerializedContext } from '../core/job-context';
import { QUEUES } from '../core/queue/queues';
import { loadReadable } from '../lineage/lineage.service';
import { DatasetRole } from '../lineage/training-run.entity';
import { startTrainingRun } from '../training/training.service';
import type { StartTrainingRunInput } from '../training/training.inputs';
import { ModelVersion } from '../registry/model-version.entity';
import { Deployment } from '../rollouts/deployment.entity';
import { Alert, AlertKind, AlertSeverity, AlertStatus, MonitorRun, SEVERITY_RANK } from './alert.entity';
import { MONITOR_PRINCIPAL, openAlert, publishAlert } from './alerts';
import { notifyAlertChange } from './alert-notifications';
import { LoopPolicy } from './iteration.entity';
import { considerRetraining } from './loop-triggers';
import { driftConditions, driftForVersion, type VersionDrift } from './drift-monitor';
import { latencyStats, type VersionLatency } from './latency';
import { MonitoringReason } from './monitoring.errors';
import { intIn, type DeploymentMonitoringInput } from './monitoring.inputs';
import { checkedQualitySettings, computeQualityReport, qualityConditions, qualitySettingsOf, type QualitySettings } from './quality.service';

/** The payload of a deployment's repeatable monitor job: it judges the window that ended last. */
export interface MonitorJob extends JobPayload {
  deploymentId: string;
}

export interface MonitoringSettings {
  windowSeconds: number;
  everySeconds: number;
  /** After an alert is resolved, the same condition opens a new one only after this long. */
  cooldownSeconds: number;
  /** Windows with fewer requests for a version are not judged (no alert opened or resolved). */
  minRequests: number;
  /** Drift thresholds (see the drift statistics); merged over the defaults. */
  drift: Record<string, number>;
  /** Retrain policy: a CRITICAL drift alert starts a training run on this dataset version (global id). */
  retrainDatasetVersion: string | null;
  /** Quality thresholds against each version's offline metrics, judged over a trailing lookback. */
  quality: QualitySettings;
}

/** A change to a deployment's monitor settings: each one given replaces the current one; quality settings are merged one by one. */
export type MonitoringPatch = Partial<Omit<MonitoringSettings, 'quality'>> & { quality?: Partial<QualitySettings> };

export function monitoringOf(app: AppServices, d: Pick<Deployment, 'monitoring'>): MonitoringSettings {
  const m = (d.monitoring ?? {}) as Partial<MonitoringSettings>;
  const c = app.config.monitoring;
  return {
    windowSeconds: m.windowSeconds ?? c.windowSeconds,
    everySeconds: m.everySeconds ?? c.everySeconds,
    cooldownSeconds: m.cooldownSeconds ?? c.cooldownSeconds,
    minRequests: m.minRequests ?? c.minRequests,
    drift: m.drift ?? {},
    retrainDatasetVersion: m.retrainDatasetVersion ?? null,
    quality: qualitySettingsOf(m.quality),
  };
}

const keyOf = (c: { versionId?: string; modelVersionId?: string | null; kind: AlertKind; feature: string }) => `${c.versionId ?? c.modelVersionId}/${c.kind}/${c.feature}`;

/** Latency and error-rate conditions of each served version against the deployment's SLOs. */
export function latencyConditions(latency: VersionLatency[], slos: Record<string, number>, minRequests: number): Condition[] {
  const out: Condition[] = [];
  const judge = (v: VersionLatency, kind: AlertKind, statistic: string, value: number | null, threshold: number | undefined) => {
    if (value === null || typeof threshold !== 'number' || !(value > threshold)) return;
    out.push({
      versionId: v.modelVersionId,
      kind,
      feature: '',
      statistic,
      value,
      threshold,
      pValue: null,
      // Twice the objective is critical.
      severity: value > 2 * threshold ? AlertSeverity.CRITICAL : AlertSeverity.WARNING,
      details: { ...v },
    });
  };
  for (const v of latency) {
    if (v.shadow || v.requests < minRequests) continue;
    judge(v, AlertKind.LATENCY, 'p95LatencyMs', v.p95Ms, slos.p95LatencyMs);
    judge(v, AlertKind.LATENCY, 'p99LatencyMs', v.p99Ms, slos.p99LatencyMs);
    judge(v, AlertKind.ERROR_RATE, 'errorRate', v.errorRate, slos.errorRate);
  }
  // p95 and p99 are one condition (one LATENCY alert per version): the worse breach wins.
  const byKey = new Map<string, Condition>();
  for (const c of out) {
    const prev = byKey.get(keyOf(c));
    if (!prev || c.value / c.threshold > prev.value / prev.threshold) byKey.set(keyOf(c), c);
  }
  return [...byKey.values()];
}

/** What a monitor pass changed, for the notifications sent after it commits. */
interface PassOutcome {
  run: MonitorRun;
  changed: Alert[];
  opened: Alert[];
}

/**
 * One monitor pass over [windowStart, windowStart + windowSeconds) of a deployment: latency, error
 * rate and drift per serving version, quality against each version's offline metrics over the
 * quality lookback ending at the window's end (labels arrive late), alerts opened, updated
 * (dedup), escalated or resolved, one audit event when any alert changed (always, for a pass asked for `onDemand`: it is the caller's).
 * Idempotent per window: a second pass over the same window (a retried job, two workers) changes
 * nothing and returns the first pass's record. A retraining its policy starts is started as `ctx`.
 */
export async function monitorWindow(
  ctx: RequestContext,
  deploymentId: string,
  windowStart: Date,
  windowSeconds: number,
  opts: { onDemand?: boolean } = {},
): Promise<MonitorRun> {
  const app = ctx.app;
  const onDemand = opts.onDemand ?? false;
  const existing = await app.db.getRepository(MonitorRun).findOne({ where: { deploymentId, windowStart, windowSeconds } });
  if (existing) return existing;
  const deployment = await app.db.getRepository(Deployment).findOneByOrFail({ id: deploymentId });
  const settings = monitoringOf(app, deployment);
  const windowEnd = new Date(windowStart.getTime() + windowSeconds * 1000);

  // Reads first, outside the transaction: the statistics are computed where the data lives.
  const latency = await latencyStats(app.db, deploymentId, windowStart, windowEnd);
  const drifts: VersionDrift[] = [];
  for (const v of latency.filter((x) => x.requests >= settings.minRequests)) {
    const d = await driftForVersion(app, deploymentId, v.modelVersionId, v.shadow, windowStart, windowEnd, settings.drift);
    if (d) drifts.push(d);
  }
  const quality = await computeQualityReport(app.db, deploymentId, new Date(windowEnd.getTime() - settings.quality.lookbackSeconds * 1000), windowEnd);
  // Versions with enough labels: an open QUALITY alert of theirs whose condition is gone is resolved.
  const qualityJudged = new Set<string>();
  const conditions = [
    ...latencyConditions(latency, deployment.slos ?? {}, settings.minRequests),
    ...drifts.flatMap(driftConditions),
    ...qualityConditions(quality, settings.quality, qualityJudged),
  ];
  // Versions judged in this window: an open alert of theirs whose condition is gone is resolved.
  const judged = new Set(latency.filter((x) => !x.shadow && x.requests >= settings.minRequests).map((x) => x.modelVersionId));
  const driftJudged = new Set(drifts.map((d) => d.modelVersionId));
  // A version that no longer serves the deployment cannot recover nor get worse: its alerts close.
  const serving = new Set<string>(
    (
      await app.db.query(
        `SELECT model_version_id AS v FROM traffic_share WHERE deployment_id = $1 UNION SELECT model_version_id FROM shadow_share WHERE deployment_id = $1`,
        [deploymentId],
      )
    ).map((r: { v: string }) => r.v),
  );

  const outcome = await inTransaction(ctx, async (em, ctx): Promise<PassOutcome | null> => {
    // One pass per deployment at a time.
    await em.query(`SELECT pg_advisory_xact_lock(hashtext('monitor:' || $1))`, [deploymentId]);
    const inserted = await em.query(
      `INSERT INTO monitor_run (deployment_id, team_id, window_start, window_seconds, latency, drift, alerts_raised)
       VALUES ($1, $2, $3, $4, $5, $6, 0) ON CONFLICT DO NOTHING RETURNING id`,
      [deploymentId, deployment.teamId, windowStart, windowSeconds, JSON.stringify({ versions: latency }), JSON.stringify({ versions: drifts })],
    );
    if (!inserted.length) return null;
    const now = new Date();
    const open = await em.getRepository(Alert).find({ where: [{ deploymentId, status: AlertStatus.OPEN }, { deploymentId, status: AlertStatus.ACKNOWLEDGED }] });
    const openByKey = new Map(open.map((a) => [keyOf(a), a]));
    const changed: Alert[] = [];
    const opened: Alert[] = [];
    let raised = 0;
    const summary: Array<Record<string, unknown>> = [];
    for (const c of conditions) {
      const current = openByKey.get(keyOf(c));
      if (current) {
        openByKey.delete(keyOf(c));
        const escalated = SEVERITY_RANK[c.severity] > SEVERITY_RANK[current.severity];
        Object.assign(current, {
          lastSeenAt: now,
          windowEnd,
          occurrences: current.occurrences + 1,
          value: c.value,
          pValue: c.pValue,
          details: c.details,
          ...(escalated ? { severity: c.severity, status: AlertStatus.OPEN } : {}),
        });
        await em.save(Alert, current);
        if (escalated) {
          raised += 1;
          changed.push(current);
          await notifyAlertChange(em, current, 'escalated', ctx.requestId);
        }
        summary.push({ alert: current.nodeId, change: escalated ? 'escalated' : 'seen again', severity: current.severity, occurrences: current.occurrences, value: c.value });
        continue;
      }
      const cooling = await em.query(
        `SELECT 1 FROM alert WHERE deployment_id = $1 AND model_version_id = $2 AND kind = $3 AND feature = $4
           AND status = 'RESOLVED' AND resolved_at > $5 LIMIT 1`,
        [deploymentId, c.versionId, c.kind, c.feature, new Date(now.getTime() - settings.cooldownSeconds * 1000)],
      );
      if (cooling.length) continue;
      const alert = openAlert(em, {
        teamId: deployment.teamId,
        createdBy: MONITOR_PRINCIPAL,
        deploymentId,
        modelVersionId: c.versionId,
        kind: c.kind,
        severity: c.severity,
        feature: c.feature,
        statistic: c.statistic,
        value: c.value,
        threshold: c.threshold,
        pValue: c.pValue,
        windowStart,
        windowEnd,
        lastSeenAt: now,
        details: c.details,
      });
      await em.insert(Alert, alert);
      await notifyAlertChange(em, alert, 'opened', ctx.requestId);
      raised += 1;
      changed.push(alert);
      opened.push(alert);
      summary.push({ alert: alert.nodeId, change: 'opened', kind: c.kind, feature: c.feature, severity: c.severity, statistic: c.statistic, value: c.value, threshold: c.threshold });
    }
    for (const stale of openByKey.values()) {
      // An approval request is about a version that does not serve yet: the loop closes it when a reviewer decides.
      if (stale.kind === AlertKind.APPROVAL_REQUIRED) continue;
      // Alerts of a deployment are about one of its versions (only channel alerts name none).
      const versionId = stale.modelVersionId!;
      const retired = !serving.has(versionId);
      // Run budget and stalled rollout alerts are not windowed conditions: only a person, or the version leaving, closes them.
      if ((stale.kind === AlertKind.RUN_BUDGET || stale.kind === AlertKind.ROLLOUT_STALLED) && !retired) continue;
      const wasJudged =
        stale.kind === AlertKind.LATENCY || stale.kind === AlertKind.ERROR_RATE
          ? judged.has(versionId)
          : stale.kind === AlertKind.QUALITY
            ? qualityJudged.has(versionId)
            : driftJudged.has(versionId);
      if (!wasJudged && !retired) continue;
      const resolution = retired ? 'the version no longer serves this deployment' : `cleared in the window from ${windowStart.toISOString()}`;
      Object.assign(stale, { status: AlertStatus.RESOLVED, resolvedBy: 'monitor', resolvedAt: now, resolution });
      await em.save(Alert, stale);
      await notifyAlertChange(em, stale, 'resolved', ctx.requestId);
      changed.push(stale);
      summary.push({ alert: stale.nodeId, change: 'resolved' });
    }
    await em.query(`UPDATE monitor_run SET alerts_raised = $2 WHERE id = $1`, [inserted[0].id, raised]);
    if (summary.length || onDemand) {
      await audit(ctx, {
        action: onDemand ? 'runMonitor' : 'monitorDeployment',
        subjectType: 'Deployment',
        subjectId: toGlobalId('Deployment', deploymentId),
        after: { windowStart, windowSeconds, alerts: summary },
      });
    }
    const run = await em.getRepository(MonitorRun).findOneByOrFail({ id: inserted[0].id });
    return { run, changed, opened };
  });
  if (!outcome) return (await app.db.getRepository(MonitorRun).findOneBy({ deploymentId, windowStart, windowSeconds }))!;
  for (const a of outcome.changed) publishAlert(app, a);
  app.events?.publish(TOPICS.monitorRan, { id: deploymentId, runId: outcome.run.id });
  // The loop's triggers, once the pass's alerts are committed (a drift trigger reads them).
  await considerRetraining(app, deploymentId, { quality });
  // The fixed-dataset retrain setting gives way to a retrain policy (which retrains on production traffic).
  const looped = settings.retrainDatasetVersion ? await app.db.getRepository(LoopPolicy).exists({ where: { deploymentId } }) : false;
  for (const a of outcome.opened) {
    if (!looped && a.kind === AlertKind.DRIFT && a.severity === AlertSeverity.CRITICAL && settings.retrainDatasetVersion) {
      await retrain(app, a, settings.retrainDatasetVersion, retrainPolicyOwner(deployment)).catch((e) => app.log.error({ err: (e as Error).message, alert: a.id }, 'retrain policy could not start a run'));
    }
  }
  return outcome.run;
}

/** The window that ended last, for a deployment's settings. */
export function lastWindow(now: number, windowSeconds: number): Date {
  const span = windowSeconds * 1000;
  return new Date(Math.floor(now / span) * span - span);
}

/**
 * A monitor pass on demand over the window that ends now (recorded like scheduled passes, keyed by
 * its start to the millisecond).
 */
export async function runMonitor(ctx: RequestContext, deploymentRef: string, windowSeconds?: number | null): Promise<MonitorRun> {
  const deployment = await loadReadable(ctx, ctx.app.db.manager, Deployment, 'Deployment', deploymentRef, 'deployment');
  assertCan(ctx, 'update', 'Deployment', deployment);
  const settings = monitoringOf(ctx.app, deployment);
  const seconds = windowSeconds ?? settings.windowSeconds;
  if (!Number.isInteger(seconds) || seconds < 1 || seconds > 7 * 24 * 3600) throw badInput('windowSeconds must be 1 to 604800', { field: 'windowSeconds' });
  const start = new Date(Date.now() - seconds * 1000);
  return monitorWindow(ctx, deployment.id, start, seconds, { onDemand: true });
}

/** A deployment's scheduled pass (its monitor job): the window that ended last, by its current settings. */
export async function monitorLastWindow(ctx: RequestContext, deploymentId: string): Promise<MonitorRun | null> {
  const deployment = await ctx.app.db.getRepository(Deployment).findOneBy({ id: deploymentId });
  if (!deployment) return null;
  const { windowSeconds } = monitoringOf(ctx.app, deployment);
  return monitorWindow(ctx, deployment.id, lastWindow(Date.now(), windowSeconds), windowSeconds);
}

async function loadAlert(ctx: TransactionContext, id: string): Promise<Alert> {
  return loadReadable(ctx, ctx.em, Alert, 'Alert', id, 'id', 'update');
}

/** Marks an open alert as seen by a person (it stays open until resolved or cleared). */
export async function acknowledgeAlert(ctx: RequestContext, id: string, note: string | null): Promise<Alert> {
  const alert = await inTransaction(ctx, async (em, ctx) => {
    const a = await loadAlert(ctx, id);
    assertCan(ctx, 'update', 'Alert', a);
    if (a.status !== AlertStatus.OPEN) throw conflict(`alert is ${a.status}`, { reason: MonitoringReason.ALERT_NOT_OPEN });
    const before = { status: a.status };
    Object.assign(a, { status: AlertStatus.ACKNOWLEDGED, acknowledgedBy: ctx.principal!.id, acknowledgedAt: new Date() });
    await em.save(Alert, a);
    await notifyAlertChange(em, a, 'acknowledged', ctx.requestId);
    await audit(ctx, { action: 'acknowledgeAlert', subjectType: 'Alert', subjectId: a.nodeId, before, after: { status: a.status, note } });
    return a;
  });
  publishAlert(ctx.app, alert);
  return alert;
}

/** Closes an alert by hand, with the reason. */
export async function resolveAlert(ctx: RequestContext, id: string, reason: string): Promise<Alert> {
  if (!reason.trim()) throw badInput('a reason is required', { field: 'reason' });
  const alert = await inTransaction(ctx, async (em, ctx) => {
    const a = await loadAlert(ctx, id);
    assertCan(ctx, 'update', 'Alert', a);
    if (a.status === AlertStatus.RESOLVED) throw conflict('alert is already resolved', { reason: MonitoringReason.ALERT_RESOLVED });
    const before = { status: a.status };
    Object.assign(a, { status: AlertStatus.RESOLVED, resolvedBy: ctx.principal!.id, resolvedAt: new Date(), resolution: reason });
    await em.save(Alert, a);
    await notifyAlertChange(em, a, 'resolved', ctx.requestId);
    await audit(ctx, { action: 'resolveAlert', subjectType: 'Alert', subjectId: a.nodeId, before, after: { status: a.status, reason } });
    return a;
  });
  publishAlert(ctx.app, alert);
  return alert;
}

/** Settings of a deployment's monitor (merged over the current ones), audited. */
export async function setDeploymentMonitoring(ctx: RequestContext, deploymentRef: string, patch: MonitoringPatch): Promise<Deployment> {
  const deployment = await inTransaction(ctx, async (em, ctx) => {
    const d = await loadReadable(ctx, em, Deployment, 'Deployment', deploymentRef, 'deployment', 'update');
    assertCan(ctx, 'update', 'Deployment', d);
    let owner: SerializedContext | undefined;
    if (patch.retrainDatasetVersion) {
      const dv = await loadReadable(ctx, em, DatasetVersion, 'DatasetVersion', patch.retrainDatasetVersion, 'retrainDatasetVersion');
      if (dv.teamId !== d.teamId) throw badInput('the retrain dataset version belongs to another team', { field: 'retrainDatasetVersion' });
      // The policy starts runs as whoever set it: they must be allowed to start one themselves.
      assertCan(ctx, 'create', 'TrainingRun', { teamId: d.teamId, createdBy: ctx.principal!.id });
      owner = serializeContext(ctx);
    }
    const before = d.monitoring ?? {};
    // A setting the patch leaves out (undefined) is kept; one it gives as null is cleared.
    const given: Record<string, unknown> = Object.fromEntries(Object.entries(patch).filter(([, v]) => v !== undefined));
    // Checked against the thresholds in force, so that a warning alone cannot pass its critical.
    if (patch.quality) given.quality = checkedQualitySettings(before.quality, patch.quality);
    const next: Record<string, unknown> = Object.fromEntries(Object.entries({ ...before, ...given }).filter(([, v]) => v !== null));
    if (owner) next[RETRAIN_OWNER] = owner;
    else if (!next.retrainDatasetVersion) delete next[RETRAIN_OWNER];
    await em.update(Deployment, { id: d.id }, { monitoring: next as never });
    d.monitoring = next;
    await audit(ctx, { action: 'setDeploymentMonitoring', subjectType: 'Deployment', subjectId: d.nodeId, before, after: next });
    return d;
  });
  await scheduleMonitor(ctx.app, deployment).catch((e) => ctx.log.warn({ err: (e as Error).message }, 'monitor schedule not updated (Redis unavailable); workers reconcile schedules at start'));
  return deployment;
}

/**
 * Creates or updates the repeatable monitor job of a deployment: it runs as the monitor, on behalf
 * of the deployment's creator.
 */
export async function scheduleMonitor(app: AppServices, deployment: Pick<Deployment, 'id' | 'monitoring' | 'createdBy'>): Promise<void> {
  const settings = monitoringOf(app, deployment);
  const job: MonitorJob = { deploymentId: deployment.id, context: scheduledContext(MONITOR_PRINCIPAL, deployment.createdBy, `monitor:${deployment.id}`) };
  await app.queues?.get(QUEUES.monitors).upsertJobScheduler(
    `monitor:${deployment.id}`,
    { every: settings.everySeconds * 1000 },
    { name: 'monitor', data: job, opts: { removeOnComplete: 100, removeOnFail: 100 } },
  );
}

/**
 * Every deployment's repeatable monitor job, upserted by id (idempotent across processes): workers
 * reconcile them when they start, so that a schedule Redis lost, or one changed while Redis was
 * away, is right again. A Redis that does not answer is logged, not thrown.
 */
export async function reconcileMonitorSchedules(app: AppServices): Promise<void> {
  try {
    const all = await app.db.getRepository(Deployment).find({ select: { id: true, monitoring: true, createdBy: true } });
    await Promise.all(all.map((d) => scheduleMonitor(app, d)));
  } catch (e) {
    app.log.warn({ err: (e as Error).message }, 'monitor schedules not reconciled (Redis unavailable?)');
  }
}

// Beside the settings in deployment.monitoring, never in what the `monitoring` field shows.
const RETRAIN_OWNER = 'retrainPolicySetBy';

/** Whoever set the deployment's retrain policy, as a job would carry them; null for a policy set before policies carried one. */
function retrainPolicyOwner(d: Pick<Deployment, 'monitoring'>): SerializedContext | null {
  const owner = (d.monitoring ?? {})[RETRAIN_OWNER] as SerializedContext | undefined;
  return owner?.principal ? owner : null;
}

/**
 * Retrain policy: a training run with the lineage of the version that drifted (its code, config,
 * seeds, environment) on the deployment's fresh dataset version, started as whoever set the policy
 * (their rights as they are now, re-checked like a job's; never as the monitor), the alert being
 * the work it came through; the alert records the run.
 */
async function retrain(app: AppServices, alert: Alert, datasetVersion: string, owner: SerializedContext | null): Promise<void> {
  if (!owner) {
    app.log.warn({ alert: alert.id, deployment: alert.deploymentId }, 'retrain policy has nobody to act as (set before policies recorded who set them): set it again');
    return;
  }
  const ctx = await contextFromJob(app, { context: owner }, { queue: 'retrain-policy', id: alert.id });
  const version = await app.db.getRepository(ModelVersion).findOneByOrFail({ id: alert.modelVersionId! });
  if (!version.trainingRunId) return;
  const run = (await app.db.query(`SELECT code_version_id, config_id, seed_set_id, environment_id FROM training_run WHERE id = $1`, [version.trainingRunId]))[0];
  if (!run?.code_version_id || !run.config_id || !run.seed_set_id || !run.environment_id) return;
  const started = await startTrainingRun(ctx, {
    model: toGlobalId('Model', version.modelId),
    name: `retrain after drift alert ${alert.id}`,
    datasets: [{ datasetVersion, role: DatasetRole.TRAIN }],
    codeVersion: toGlobalId('CodeVersion', run.code_version_id),
    config: toGlobalId('Config', run.config_id),
    seedSet: toGlobalId('SeedSet', run.seed_set_id),
    environment: toGlobalId('Environment', run.environment_id),
  } satisfies Partial<StartTrainingRunInput> as StartTrainingRunInput);
  const linked = await inTransaction(ctx, async (em, ctx) => {
    await em.update(Alert, { id: alert.id }, { retrainRunId: started.id });
    await audit(ctx, { action: 'linkRetrainRun', subjectType: 'Alert', subjectId: alert.nodeId, after: { trainingRun: started.nodeId } });
    return em.getRepository(Alert).findOneByOrFail({ id: alert.id });
  });
  publishAlert(app, linked);
}

/** The settings a {@link DeploymentMonitoringInput} changes, each checked against its range. */
export function monitoringPatch(input: DeploymentMonitoringInput): MonitoringPatch {
  if (input.drift && Object.values(input.drift).some((v) => typeof v !== 'number' || !Number.isFinite(v) || v < 0)) {
    throw badInput('drift thresholds must be non-negative numbers', { field: 'drift' });
  }
  return {
    windowSeconds: intIn(input.windowSeconds, 1, 7 * 86_400, 'windowSeconds'),
    everySeconds: intIn(input.everySeconds, 1, 86_400, 'everySeconds'),
    cooldownSeconds: intIn(input.cooldownSeconds, 0, 30 * 86_400, 'cooldownSeconds'),
    minRequests: intIn(input.minRequests, 1, 1_000_000, 'minRequests'),
    drift: input.drift ?? undefined,
    retrainDatasetVersion: input.retrainDatasetVersion ?? undefined,
    // Checked in the service, against the thresholds in force.
    quality: input.quality
      ? { warning: input.quality.warning ?? undefined, critical: input.quality.critical ?? undefined, minLabelled: input.quality.minLabelled ?? undefined, lookbackSeconds: input.quality.lookbackSeconds ?? undefined }
      : undefined,
  };
}
