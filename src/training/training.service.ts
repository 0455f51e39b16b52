import { mkdir, readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { UnrecoverableError } from 'bullmq';
import { In } from 'typeorm';
import { audit } from '../core/audit/audit-chain';
import { assertCan } from '../core/authz';
import { inTransaction, type RequestContext } from '../core/context';
import { AppError, badInput, conflict, ErrorCode } from '../core/errors';
import { TOPICS } from '../core/events';
import { toGlobalId } from '../core/global-id';
import { NotificationKind } from '../core/notify/notification.entity';
import { raiseNotification } from '../core/notify/notify';
import { validateMetrics } from '../core/validation';
import { serializeContext, type JobPayload } from '../core/job-context';
import { enqueue } from '../core/queue/outbox';
import { QUEUES } from '../core/queue/queues';
import { Model } from '../registry/model.entity';
import { ModelVersion, ModelVersionStatus } from '../registry/model-version.entity';
import { lockModelForRegistration, registerTrainedVersion } from '../registry/registry.service';
import { OnnxParseError } from '../registry/onnx';
import { parseOnnxFile } from '../registry/onnx-parse';
import { storableReference } from '../registry/reference-profile';
import { CodeVersion } from '../lineage/code-version.entity';
import { Config } from '../lineage/config.entity';
import { DatasetBlob } from '../lineage/dataset-blob.entity';
import { Environment } from '../lineage/environment.entity';
import { EntrypointError, resolveEntrypoint, type ExecutionHandle } from './executor';
import { evaluateGate, type GateSpec } from './gate';
import { loadReadable, loadRunDatasets, registerCodeVersion, registerConfig, registerEnvironment, registerSeedSet } from '../lineage/lineage.service';
import { SeedSet } from '../lineage/seed-set.entity';
import type { StartTrainingRunInput } from './training.inputs';
import { TrainingRun, TrainingRunDataset, TrainingRunStatus } from '../lineage/training-run.entity';
import { countFinishedRun } from './training-metrics';
import { TrainingReason } from './training.errors';

const FINAL = [TrainingRunStatus.SUCCEEDED, TrainingRunStatus.FAILED, TrainingRunStatus.CANCELLED];

/** The payload of a training job: the run to execute (everything else is read from the database), as whoever started it. */
export interface TrainingJob extends JobPayload {
  runId: string;
}

/**
 * Queues a training run: the run (QUEUED), its inputs and an outbox entry commit together, with one
 * audit event; the dispatcher hands the job to BullMQ (job id = run id) once Redis takes it.
 */
export async function startTrainingRun(ctx: RequestContext, input: StartTrainingRunInput, opts: { deferChampionComparison?: boolean } = {}): Promise<TrainingRun> {
  if (!!input.config === !!input.configContent) throw badInput('give exactly one of config and configContent', { field: 'config' });
  if (!!input.seedSet === !!input.seeds) throw badInput('give exactly one of seedSet and seeds', { field: 'seedSet' });
  if (!!input.codeVersion === !!input.newCodeVersion) throw badInput('give exactly one of codeVersion and newCodeVersion', { field: 'codeVersion' });
  if (!!input.environment === !!input.newEnvironment) throw badInput('give exactly one of environment and newEnvironment', { field: 'environment' });
  const run = await inTransaction(ctx, async (em, ctx) => {
    const model = await loadReadable(ctx, em, Model, 'Model', input.model, 'model');
    assertCan(ctx, 'create', 'ModelVersion', { teamId: model.teamId, modelId: model.id, status: ModelVersionStatus.REGISTERED, createdBy: ctx.principal!.id });
    const teamName = (await em.query('SELECT name FROM team WHERE id = $1', [model.teamId]))[0].name as string;

    const versions = await loadRunDatasets(ctx, em, input.datasets);
    const stored = await em.getRepository(DatasetBlob).findBy({ sha256: In(versions.map((v) => v.sha256)) });
    const missing = versions.filter((v) => !stored.some((b) => b.sha256 === v.sha256));
    if (missing.length) {
      throw badInput(`the server holds no content for dataset version(s) ${missing.map((v) => toGlobalId('DatasetVersion', v.id)).join(', ')}: upload it to POST /datasets/content`, {
        field: 'datasets',
        reason: TrainingReason.DATA_NOT_STORED,
      });
    }
    const code = input.codeVersion
      ? await loadReadable(ctx, em, CodeVersion, 'CodeVersion', input.codeVersion, 'codeVersion')
      : await registerCodeVersion(ctx, { ...input.newCodeVersion!, team: teamName }, false);
    try {
      await resolveEntrypoint(ctx.app.config.trainerRepositories, code.repositoryUrl, code.entrypoint);
    } catch (e) {
      if (e instanceof EntrypointError) throw badInput(e.message, { field: 'codeVersion', reason: TrainingReason.CODE_NOT_RUNNABLE });
      throw e;
    }
    const env = input.environment
      ? await loadReadable(ctx, em, Environment, 'Environment', input.environment, 'environment')
      : await registerEnvironment(ctx, { ...input.newEnvironment!, team: teamName }, false);
    const config = input.config
      ? await loadReadable(ctx, em, Config, 'Config', input.config, 'config')
      : await registerConfig(ctx, { content: input.configContent, team: teamName }, false);
    const seeds = input.seedSet
      ? await loadReadable(ctx, em, SeedSet, 'SeedSet', input.seedSet, 'seedSet')
      : await registerSeedSet(ctx, { seeds: input.seeds!, team: teamName }, false);
    const base = input.baseModelVersion ? await loadReadable(ctx, em, ModelVersion, 'ModelVersion', input.baseModelVersion, 'baseModelVersion') : null;

    const run = em.create(TrainingRun, {
      teamId: model.teamId,
      name: input.name ?? null,
      status: TrainingRunStatus.QUEUED,
      codeVersionId: code.id,
      configId: config.id,
      seedSetId: seeds.id,
      environmentId: env.id,
      baseModelVersionId: base?.id ?? null,
      championComparisonDeferred: opts.deferChampionComparison === true,
      targetModelId: model.id,
      startedAt: null,
      finishedAt: null,
      metrics: {},
      createdBy: ctx.principal!.id,
    });
    assertCan(ctx, 'create', 'TrainingRun', run);
    await em.insert(TrainingRun, run);
    await em.insert(
      TrainingRunDataset,
      input.datasets.map((d, i) => ({ trainingRunId: run.id, datasetVersionId: versions[i].id, role: d.role })),
    );
    const job: TrainingJob = { runId: run.id, context: serializeContext(ctx) };
    await enqueue(em, { queue: QUEUES.training, name: 'train', jobId: run.id, payload: job });
    await audit(ctx, {
      action: 'startTrainingRun',
      subjectType: 'TrainingRun',
      subjectId: toGlobalId('TrainingRun', run.id),
      after: {
        ...run,
        datasets: input.datasets,
        codeVersion: toGlobalId('CodeVersion', code.id),
        config: toGlobalId('Config', config.id),
        seedSet: toGlobalId('SeedSet', seeds.id),
        environment: toGlobalId('Environment', env.id),
      },
    });
    return run;
  });
  ctx.app.dispatcher?.kick();
  return run;
}

export async function cancelTrainingRun(ctx: RequestContext, id: string, reason: string | null): Promise<TrainingRun> {
  const run = await inTransaction(ctx, async (em, ctx) => {
    const run = await loadReadable(ctx, em, TrainingRun, 'TrainingRun', id, 'trainingRun', 'update');
    assertCan(ctx, 'update', 'TrainingRun', run);
    if (FINAL.includes(run.status)) throw conflict(`The run is already ${run.status}`, { reason: TrainingReason.RUN_FINISHED });
    const before = { status: run.status };
    run.status = TrainingRunStatus.CANCELLED;
    run.finishedAt = new Date();
    run.failureReason = reason ?? `cancelled by ${ctx.principal!.id}`;
    await em.update(TrainingRun, { id: run.id }, { status: run.status, finishedAt: run.finishedAt, failureReason: run.failureReason });
    await audit(ctx, { action: 'cancelTrainingRun', subjectType: 'TrainingRun', subjectId: toGlobalId('TrainingRun', run.id), reason, before, after: { status: run.status } });
    return run;
  });
  countFinishedRun(ctx.app, TrainingRunStatus.CANCELLED);
  await publishRun(ctx, run.id);
  return run;
}

/** Tells subscribers that a run changed (they reload it through their own read scope). */
export async function publishRun(ctx: RequestContext, runId: string): Promise<void> {
  ctx.app.events?.publish(TOPICS.trainingRunUpdated, { id: runId });
}

export interface Attempt {
  number: number;
  final: boolean;
}

const TAIL_LINES = 40;

/**
 * Executes one attempt of a queued run (the training job's whole work). Idempotent: a run that
 * is finished, or that already produced its model version, is not executed again; the model version
 * is registered under a lock on the run, so a retried or duplicated job registers it at most once.
 * Throws UnrecoverableError for failures a retry cannot fix, any other error to be retried.
 */
export async function executeTrainingRun(ctx: RequestContext, runId: string, attempt: Attempt): Promise<void> {
  const db = ctx.app.db;
  const run = await db.getRepository(TrainingRun).findOne({ where: { id: runId } });
  if (!run) throw new UnrecoverableError(`training run ${runId} does not exist`);
  if (FINAL.includes(run.status)) return;
  // A run that is not finished has no version of its own: one naming it was registered by someone else.
  const claimed = await db.getRepository(ModelVersion).findOne({ where: { trainingRunId: run.id } });
  if (claimed) {
    const reason = `the run's output slot is taken by model version ${toGlobalId('ModelVersion', claimed.id)}, registered by ${claimed.createdBy}`;
    await finishRun(ctx, run.id, TrainingRunStatus.FAILED, reason);
    throw new UnrecoverableError(reason);
  }
  // The run executes as whoever started it, with the rights they have now: one who may no longer
  // register its model version does not have it trained (the run fails FORBIDDEN).
  assertMayRegisterOutput(ctx, run);
  // Each execution is recorded (and numbered) under a lock on the run; a run finished meanwhile is left alone.
  // The number is the run's ownership: only the execution holding it records its process or registers the output.
  const begun = await inTransaction(ctx, async (em, ctx) => {
    const locked = await em.findOne(TrainingRun, { where: { id: run.id }, lock: { mode: 'pessimistic_write' } });
    if (!locked || FINAL.includes(locked.status)) return null;
    const number = locked.attempts + 1;
    await em.update(TrainingRun, { id: run.id }, {
      status: TrainingRunStatus.RUNNING,
      startedAt: locked.startedAt ?? new Date(),
      attempts: number,
      progress: 0,
      failureReason: null,
      executionHandle: null,
    });
    await audit(ctx, {
      action: 'beginTrainingRun',
      subjectType: 'TrainingRun',
      subjectId: toGlobalId('TrainingRun', run.id),
      reason: number > 1 ? `execution ${number} (job attempt ${attempt.number})` : null,
      // An execution left behind by a worker that died is named: this one stops it before it starts.
      before: locked.executionHandle ? { status: locked.status, execution: locked.executionHandle } : { status: locked.status },
      after: { status: TrainingRunStatus.RUNNING, execution: number },
    });
    return { number, previous: locked.executionHandle };
  });
  if (begun === null) return;
  const execution = begun.number;
  await publishRun(ctx, run.id);
  if (begun.previous) {
    // Taken over from an execution whose worker died or lost the job: its trainer must not run on beside this one.
    const stale = await ctx.app.executor.stopStale(begun.previous);
    ctx.app.log.warn({ runId: run.id, execution, previous: begun.previous, stale }, 'training run taken over from an earlier execution');
  }

  const fail = async (reason: string): Promise<never> => {
    await finishRun(ctx, run.id, TrainingRunStatus.FAILED, reason);
    throw new UnrecoverableError(reason);
  };
  const code = await db.getRepository(CodeVersion).findOneByOrFail({ id: run.codeVersionId });
  let argv: string[];
  try {
    argv = await resolveEntrypoint(ctx.app.config.trainerRepositories, code.repositoryUrl, code.entrypoint);
  } catch (e) {
    return fail((e as Error).message);
  }
  const config = await db.getRepository(Config).findOneByOrFail({ id: run.configId });
  const seeds = await db.getRepository(SeedSet).findOneByOrFail({ id: run.seedSetId });
  const links: Array<{ role: string; sha256: string }> = await db.query(
    `SELECT l.role, v.sha256 FROM training_run_dataset l JOIN dataset_version v ON v.id = l.dataset_version_id WHERE l.training_run_id = $1 ORDER BY l.role, v.sha256`,
    [run.id],
  );
  // One directory per execution: a job taken over from a stalled worker never shares one with it.
  const workDir = path.join(ctx.app.config.dataDir, 'runs', run.id, `execution-${execution}`);
  const outputDir = path.join(workDir, 'output');
  await rm(workDir, { recursive: true, force: true });
  await mkdir(outputDir, { recursive: true });

  const tail: string[] = [];
  let progress = 0;
  let lastWrite = 0;
  const record = async (force = false) => {
    if (!force && Date.now() - lastWrite < 500) return;
    lastWrite = Date.now();
    // A taken-over execution does not write over its successor's progress.
    await db.query(`UPDATE training_run SET progress = $2, log_tail = $3 WHERE id = $1 AND attempts = $4`, [run.id, progress, tail.join('\n'), execution]);
    await publishRun(ctx, run.id);
  };
  const abort = new AbortController();
  // Cancellation is a row change made by any API instance, and so is a takeover by another worker
  // (a later execution number): look for both while the process runs.
  const watch = setInterval(() => {
    db.query(`SELECT status, attempts FROM training_run WHERE id = $1`, [run.id])
      .then((rows: Array<{ status: string; attempts: number }>) => {
        if (rows[0]?.status === TrainingRunStatus.CANCELLED || (rows[0] && rows[0].attempts !== execution)) abort.abort();
      })
      .catch(() => undefined);
  }, 1000);
  // Recorded only while this is still the current execution; otherwise it was taken over before it began.
  const onStarted = (handle: ExecutionHandle) => {
    db.createQueryBuilder()
      .update(TrainingRun)
      .set({ executionHandle: handle })
      .where('id = :id AND attempts = :execution', { id: run.id, execution })
      .execute()
      .then((r) => {
        if (r.affected === 0) abort.abort();
      })
      .catch((e: Error) => ctx.app.log.warn({ runId: run.id, err: e.message }, 'execution handle not recorded'));
  };
  let outcome;
  try {
    outcome = await ctx.app.executor.run(
      {
        argv,
        cwd: workDir,
        env: {
          MODELGOV_DATASETS: JSON.stringify(links.map((l) => ({ role: l.role, path: ctx.app.artifacts.pathFor(l.sha256), sha256: l.sha256 }))),
          MODELGOV_CONFIG: config.canonicalJson,
          MODELGOV_SEEDS: seeds.canonicalJson,
          MODELGOV_OUTPUT_DIR: outputDir,
          MODELGOV_RUN_ID: run.id,
        },
        timeoutMs: ctx.app.config.trainingTimeoutMs,
        maxOutputBytes: ctx.app.config.trainingMaxOutputBytes,
      },
      (line: string, stream: 'stdout' | 'stderr') => {
        if (stream === 'stdout' && line.startsWith('{')) {
          try {
            const p = JSON.parse(line) as { progress?: unknown; message?: unknown };
            if (typeof p.progress === 'number' && p.progress >= 0 && p.progress <= 1) progress = p.progress;
            if (typeof p.message === 'string') line = p.message;
          } catch {
            // not a progress line: kept as log
          }
        }
        tail.push(line.slice(0, 500));
        if (tail.length > TAIL_LINES) tail.shift();
        void record();
      },
      abort.signal,
      onStarted,
    );
  } finally {
    clearInterval(watch);
  }
  // The process has ended: a retry has nothing left to stop (only a worker that died leaves a handle behind).
  await db.query(`UPDATE training_run SET execution_handle = NULL WHERE id = $1 AND attempts = $2`, [run.id, execution]);
  await record(true);
  switch (outcome.kind) {
    case 'cancelled':
      return;
    case 'timeout':
      return fail(`the trainer ran longer than ${ctx.app.config.trainingTimeoutMs} ms`);
    case 'output-limit':
      return fail(`the trainer printed more than ${ctx.app.config.trainingMaxOutputBytes} bytes`);
    case 'spawn-failed':
      if (attempt.final) await finishRun(ctx, run.id, TrainingRunStatus.FAILED, outcome.message);
      throw new Error(`the trainer could not start: ${outcome.message}`);
    case 'exited':
      if (outcome.code === 2) return fail(`the trainer refused its input: ${tail[tail.length - 1] ?? 'no message'}`);
      if (outcome.code !== 0) {
        const reason = `the trainer exited with code ${outcome.code}: ${tail[tail.length - 1] ?? ''}`;
        if (attempt.final) await finishRun(ctx, run.id, TrainingRunStatus.FAILED, reason);
        throw new Error(reason);
      }
  }
  await registerOutput(ctx, run, execution, outputDir).catch(async (e) => {
    if (e instanceof OnnxParseError || e instanceof OutputError) return fail(e.message);
    // Refused by the registry (the starter may no longer create model versions, or the output slot
    // was taken meanwhile): nothing was registered, and a retry would be refused the same way.
    if (e instanceof AppError && (e.code === ErrorCode.FORBIDDEN || e.code === ErrorCode.CONFLICT)) return fail(`${e.code}: ${e.message}`);
    throw e;
  });
  await publishRun(ctx, run.id);
}

/** Throws FORBIDDEN unless the context may register the model version the run is to produce. */
function assertMayRegisterOutput(ctx: RequestContext, run: TrainingRun): void {
  assertCan(ctx, 'create', 'ModelVersion', { teamId: run.teamId, modelId: run.targetModelId, status: ModelVersionStatus.REGISTERED, createdBy: run.createdBy });
}

class OutputError extends Error {}

async function readJson(file: string, what: string): Promise<unknown> {
  try {
    return JSON.parse(await readFile(file, 'utf8'));
  } catch {
    throw new OutputError(`the trainer wrote no valid ${what}`);
  }
}

/**
 * Stores the artifact and registers the gated model version with its lineage, once per run, and only
 * from the run's current execution: one that was taken over leaves the output to its successor.
 */
async function registerOutput(ctx: RequestContext, run: TrainingRun, execution: number, outputDir: string): Promise<void> {
  const modelFile = path.join(outputDir, 'model.onnx');
  const signature = await parseOnnxFile(modelFile, { heapMb: ctx.app.config.artifactParseHeapMb, timeoutMs: ctx.app.config.artifactParseTimeoutMs });
  let metrics: Record<string, number>;
  try {
    metrics = validateMetrics(await readJson(path.join(outputDir, 'metrics.json'), 'metrics.json'));
  } catch (e) {
    throw new OutputError(e instanceof OutputError ? e.message : `metrics.json: ${(e as Error).message}`);
  }
  // Only the profile's aggregates are stored; the model outputs' sample is kept apart for drift.
  const reference = storableReference(await readJson(path.join(outputDir, 'profile.json'), 'profile.json').catch(() => null));
  const blob = await ctx.app.artifacts.put(await readFile(modelFile));
  const config = await ctx.app.db.getRepository(Config).findOneByOrFail({ id: run.configId });
  const succeeded = await inTransaction(ctx, async (em, ctx) => {
    const locked = await em.findOne(TrainingRun, { where: { id: run.id }, lock: { mode: 'pessimistic_write' } });
    if (!locked || locked.status !== TrainingRunStatus.RUNNING || locked.attempts !== execution) return false;
    const claimed = await em.findOne(ModelVersion, { where: { trainingRunId: run.id } });
    if (claimed) throw new OutputError(`the run's output slot is taken by model version ${toGlobalId('ModelVersion', claimed.id)}, registered by ${claimed.createdBy}`);
    // The registry numbers the version and places it in its status machine; the gate is training's.
    const champion = await lockModelForRegistration(em, run.targetModelId!);
    // A run judged later against the champion on shared evidence is not judged on the champion's offline figures.
    const evaluation = evaluateGate((config.content as { gate?: GateSpec }).gate, metrics, run.championComparisonDeferred ? null : champion);
    const version = await registerTrainedVersion(ctx, em, {
      run,
      artifact: { sha256: blob.sha256, sizeBytes: blob.sizeBytes, signature },
      metrics,
      referenceProfile: reference.profile,
      predictionReferenceSample: reference.predictionSample,
      evaluation: { ...evaluation },
    });
    await em.update(TrainingRun, { id: run.id }, { status: TrainingRunStatus.SUCCEEDED, finishedAt: new Date(), progress: 1, metrics });
    await audit(ctx, {
      action: 'completeTrainingRun',
      subjectType: 'TrainingRun',
      subjectId: toGlobalId('TrainingRun', run.id),
      before: { status: locked.status },
      after: { status: TrainingRunStatus.SUCCEEDED, metrics, modelVersion: toGlobalId('ModelVersion', version.id) },
    });
    return true;
  });
  if (succeeded) countFinishedRun(ctx.app, TrainingRunStatus.SUCCEEDED);
}

/** Ends a run that is not finished yet, with one audit event; a finished run is left as it is. */
export async function finishRun(ctx: RequestContext, runId: string, status: TrainingRunStatus, reason: string | null): Promise<void> {
  const ended = await inTransaction(ctx, async (em, ctx) => {
    const run = await em.findOne(TrainingRun, { where: { id: runId }, lock: { mode: 'pessimistic_write' } });
    if (!run || FINAL.includes(run.status)) return false;
    await em.update(TrainingRun, { id: runId }, { status, finishedAt: new Date(), failureReason: reason });
    if (status === TrainingRunStatus.FAILED) {
      await raiseNotification(em, {
        teamId: run.teamId,
        kind: NotificationKind.TRAINING_RUN_FAILED,
        severity: 'WARNING',
        subject: toGlobalId('TrainingRun', runId),
        summary: `Training run ${toGlobalId('TrainingRun', runId)} failed${reason ? `: ${reason.slice(0, 300)}` : ''}`,
        data: { trainingRun: toGlobalId('TrainingRun', runId), startedBy: run.createdBy, reason },
        requestId: ctx.requestId,
      });
    }
    await audit(ctx, {
      action: status === TrainingRunStatus.FAILED ? 'failTrainingRun' : 'completeTrainingRun',
      subjectType: 'TrainingRun',
      subjectId: toGlobalId('TrainingRun', runId),
      reason,
      before: { status: run.status },
      after: { status },
    });
    return true;
  });
  if (ended) countFinishedRun(ctx.app, status);
  await publishRun(ctx, runId);
}
