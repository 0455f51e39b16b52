import type { EntityManager } from 'typeorm';
import { subjectOf } from '../core/ability';
import { accountablePerson, accountablePersonOf } from '../access/accountable';
import { audit } from '../core/audit/audit-chain';
import { resolveTeam } from '../access/team.service';
import { assertCan, mapDbError } from '../core/authz';
import { inTransaction, type RequestContext, type TransactionContext } from '../core/context';
import { conflict, notFound, type AppError } from '../core/errors';
import { toGlobalId } from '../core/global-id';
import { NotificationKind } from '../core/notify/notification.entity';
import { raiseNotification } from '../core/notify/notify';
import { validateMetrics } from '../core/validation';
import { loadReadable } from '../lineage/lineage.service';
import { TrainingRun, TrainingRunStatus } from '../lineage/training-run.entity';
import { Approval, ReviewDecision } from './approval.entity';
import { Artifact } from './artifact.entity';
import { checkStoredArtifact } from './artifact.service';
import { Model } from './model.entity';
import { ArtifactFormat, ModelVersion, ModelVersionAlias, ModelVersionStatus } from './model-version.entity';
import type { CreateModelInput, RegisterModelVersionInput, RemoveAliasInput, ReviewInput, SetAliasInput } from './registry.inputs';
import type { ReferenceProfile } from './reference-profile';
import { RegistryReason, registryError } from './registry.errors';

export async function createModel(ctx: RequestContext, input: CreateModelInput): Promise<Model> {
  return inTransaction(ctx, async (em, ctx) => {
    const team = await resolveTeam(ctx, input.team);
    const model = em.create(Model, { teamId: team.id, name: input.name, description: input.description ?? null, createdBy: ctx.principal!.id });
    assertCan(ctx, 'create', 'Model', model);
    await em.insert(Model, model).catch((e) => mapDbError(e, `Model "${input.name}" in team ${team.name}`));
    await audit(ctx, { action: 'createModel', subjectType: 'Model', subjectId: toGlobalId('Model', model.id), after: model });
    return model;
  });
}

export async function registerModelVersion(ctx: RequestContext, input: RegisterModelVersionInput): Promise<ModelVersion> {
  const metrics = validateMetrics(input.metrics);
  return inTransaction(ctx, async (em, ctx) => {
    // Locked so that concurrent registrations number their versions in turn.
    const model = await loadReadable(ctx, em, Model, 'Model', input.model, 'model', 'update');
    // Allowed to add a version to this model at all? Asked before anything else is looked up.
    assertCan(ctx, 'create', 'ModelVersion', { teamId: model.teamId, modelId: model.id, status: ModelVersionStatus.REGISTERED, createdBy: ctx.principal!.id });
    const artifact = await em.findOne(Artifact, { where: { sha256: input.artifactSha256 } });
    if (!artifact) {
      throw registryError(RegistryReason.UNKNOWN_ARTIFACT, 'No artifact with this sha256 was uploaded; POST it to /artifacts first', { field: 'artifactSha256' });
    }
    await checkStoredArtifact(ctx, artifact.sha256);
    let run: TrainingRun | null = null;
    if (input.trainingRun) {
      run = await loadReadable(ctx, em, TrainingRun, 'TrainingRun', input.trainingRun, 'trainingRun');
      assertRunOfModel(run, model);
      // Locked (only once it is known to be the model's own): concurrent claims on one run take turns.
      run = await em.findOneOrFail(TrainingRun, { where: { id: run.id }, lock: { mode: 'pessimistic_write' } });
      await assertRunOutputClaimable(ctx, em, run);
    }
    const version = em.create(ModelVersion, {
      modelId: model.id,
      teamId: model.teamId,
      version: await nextVersionNumber(em, model.id),
      trainingRunId: run?.id ?? null,
      artifactSha256: artifact.sha256,
      artifactSizeBytes: artifact.sizeBytes,
      format: ArtifactFormat.ONNX,
      signatureJson: artifact.signature,
      metrics: Object.keys(metrics).length ? metrics : (run?.metrics ?? {}),
      status: ModelVersionStatus.REGISTERED,
      createdBy: ctx.principal!.id,
    });
    assertCan(ctx, 'create', 'ModelVersion', version);
    await em.insert(ModelVersion, version).catch((e) => {
      // The unique index on the run is the last word if anything got past the lock.
      if (run && isUniqueViolation(e)) throw runRefusal(RegistryReason.RUN_OUTPUT_TAKEN, 'The training run already has its model version', run);
      throw e;
    });
    await audit(ctx, { action: 'registerModelVersion', subjectType: 'ModelVersion', subjectId: toGlobalId('ModelVersion', version.id), after: { ...version, rollupBins: undefined, ...actingFor(ctx) } });
    return version;
  });
}

/** The next version number of a model; callers hold the model's row lock, so numbers are handed out in turn. */
async function nextVersionNumber(em: EntityManager, modelId: string): Promise<number> {
  const [{ next }] = await em.query('SELECT COALESCE(MAX(version), 0) + 1 AS next FROM model_version WHERE model_id = $1', [modelId]);
  return Number(next);
}

/** What a gate decided about a trained version: it enters the registry as CANDIDATE when it passed, REJECTED otherwise. */
export interface GateDecision {
  passed: boolean;
  reasons: string[];
  [detail: string]: unknown;
}

/** A version the server trained, as its run's worker hands it over. */
export interface TrainedVersion {
  /** The run that produced it, locked by the caller in the same transaction. */
  run: Pick<TrainingRun, 'id' | 'teamId' | 'targetModelId' | 'createdBy'>;
  artifact: { sha256: string; sizeBytes: number; signature: object };
  metrics: Record<string, number>;
  referenceProfile: ReferenceProfile | null;
  predictionReferenceSample: number[] | null;
  evaluation: GateDecision;
}

/**
 * The model's champion as a gate compares against it (version and metrics), read under the
 * model's row lock so that the number a trained version gets and the champion it was gated
 * against belong to one moment; null when the model has no champion.
 */
export async function lockModelForRegistration(em: EntityManager, modelId: string): Promise<{ version: number; metrics: Record<string, number> } | null> {
  await em.findOne(Model, { where: { id: modelId }, lock: { mode: 'pessimistic_write' } });
  const champion = await em.findOne(ModelVersionAlias, { where: { modelId, alias: 'champion' } });
  const version = champion ? await em.findOneBy(ModelVersion, { id: champion.modelVersionId }) : null;
  return version ? { version: version.version, metrics: version.metrics } : null;
}

/**
 * Registers a version the server trained, inside the caller's transaction (after
 * {@link lockModelForRegistration}): the one place besides {@link registerModelVersion} that numbers
 * versions. It enters the status machine at CANDIDATE (gate passed) or REJECTED, needs `create` on
 * ModelVersion for the acting principal (the run's starter, re-checked when the job runs), records
 * the artifact and writes the registration's audit event. A run produces one version: a second
 * claim is a conflict.
 */
export async function registerTrainedVersion(ctx: TransactionContext, em: EntityManager, trained: TrainedVersion): Promise<ModelVersion> {
  const { run, artifact, evaluation } = trained;
  if (!run.targetModelId) throw new Error(`training run ${run.id} names no model to register its output under`);
  const version = em.create(ModelVersion, {
    modelId: run.targetModelId,
    teamId: run.teamId,
    version: await nextVersionNumber(em, run.targetModelId),
    trainingRunId: run.id,
    artifactSha256: artifact.sha256,
    artifactSizeBytes: artifact.sizeBytes,
    format: ArtifactFormat.ONNX,
    signatureJson: artifact.signature,
    metrics: trained.metrics,
    status: evaluation.passed ? ModelVersionStatus.CANDIDATE : ModelVersionStatus.REJECTED,
    referenceProfile: trained.referenceProfile,
    predictionReferenceSample: trained.predictionReferenceSample,
    evaluation,
    createdBy: run.createdBy,
  });
  assertCan(ctx, 'create', 'ModelVersion', version);
  await em
    .createQueryBuilder()
    .insert()
    .into(Artifact)
    .values({ sha256: artifact.sha256, sizeBytes: artifact.sizeBytes, format: 'ONNX', signature: artifact.signature, createdBy: ctx.principal!.id })
    .orIgnore()
    .execute();
  await em.insert(ModelVersion, version).catch((e) => {
    if (isUniqueViolation(e)) throw conflict("the run's output slot was taken while it was being registered", { reason: RegistryReason.RUN_OUTPUT_TAKEN });
    throw e;
  });
  // The iteration loop's candidates are told by its APPROVAL_REQUIRED alert, and only when a reviewer is needed.
  if (version.status === ModelVersionStatus.CANDIDATE && !ctx.requestId.startsWith('iteration:')) {
    await notifyAwaitingApproval(em, version, 'trained by the server; passed its evaluation gate', ctx.requestId);
  }
  await audit(ctx, {
    action: 'registerModelVersion',
    subjectType: 'ModelVersion',
    subjectId: toGlobalId('ModelVersion', version.id),
    reason: evaluation.passed ? 'trained by the server; passed its evaluation gate' : `trained by the server; rejected by its gate: ${evaluation.reasons.join('; ')}`,
    after: { ...version, referenceProfile: undefined, predictionReferenceSample: undefined, rollupBins: undefined, trainingRun: toGlobalId('TrainingRun', run.id) },
  });
  return version;
}

const FINISHED_WITHOUT_OUTPUT = [TrainingRunStatus.FAILED, TrainingRunStatus.CANCELLED];

/**
 * A registration names the run that produced its artifact: a run of the model's own team, started
 * for this model when the server trained it. Refusals name the run as their subject (audited as DENIED).
 */
function assertRunOfModel(run: TrainingRun, model: Model): void {
  if (run.teamId !== model.teamId) {
    throw runRefusal(RegistryReason.RUN_FOREIGN_TEAM, "The training run belongs to another team than the model: a version can only name its own team's runs", run);
  }
  if (run.targetModelId && run.targetModelId !== model.id) {
    throw runRefusal(RegistryReason.RUN_FOREIGN_MODEL, 'The training run was started for another model', run);
  }
}

/**
 * The run (locked) takes this version as its output only from a caller who may update it, once it
 * has finished successfully, and only while its output slot is empty: a run in progress has its
 * output registered by its own worker, and a run produces one model version.
 */
async function assertRunOutputClaimable(ctx: RequestContext, em: EntityManager, run: TrainingRun): Promise<void> {
  if (!ctx.ability.can('update', subjectOf('TrainingRun', run))) {
    throw runRefusal(RegistryReason.RUN_NOT_UPDATABLE, 'Not allowed to update this TrainingRun, so not allowed to register its output', run);
  }
  if (await em.exists(ModelVersion, { where: { trainingRunId: run.id } })) {
    throw runRefusal(RegistryReason.RUN_OUTPUT_TAKEN, 'The training run already has its model version', run);
  }
  if (FINISHED_WITHOUT_OUTPUT.includes(run.status)) {
    throw runRefusal(RegistryReason.RUN_NO_OUTPUT, `The training run is ${run.status}: it has no output to register`, run);
  }
  if (run.status !== TrainingRunStatus.SUCCEEDED) {
    throw runRefusal(RegistryReason.RUN_IN_PROGRESS, `The training run is ${run.status}: the server registers its model version when it finishes`, run);
  }
}

function runRefusal(reason: RegistryReason, message: string, run: TrainingRun): AppError {
  // `denied` makes the policy gate record CONFLICT refusals too, not only FORBIDDEN ones.
  return registryError(reason, message, { denied: true, subjectType: 'TrainingRun', subjectId: toGlobalId('TrainingRun', run.id) });
}

const isUniqueViolation = (e: unknown) => ((e as { driverError?: { code?: string } }).driverError?.code ?? (e as { code?: string }).code) === '23505';

// Identity providers differ on the case (and Unicode form) of one person's id: "Rita" and "rita" are
// the same author for the four-eyes rule.
const principalKey = (id: string) => id.normalize('NFKC').trim().toLowerCase();
const samePrincipal = (a: string, b: string) => principalKey(a) === principalKey(b);

/** For the audit trail: the person an API key acts for, beside the key recorded as the actor. */
function actingFor(ctx: RequestContext): { onBehalfOf?: string } {
  const person = accountablePerson(ctx.principal!);
  return person === ctx.principal!.id ? {} : { onBehalfOf: person };
}

const TRANSITIONS: Record<ModelVersionStatus, ModelVersionStatus[]> = {
  [ModelVersionStatus.REGISTERED]: [ModelVersionStatus.CANDIDATE, ModelVersionStatus.ARCHIVED],
  [ModelVersionStatus.CANDIDATE]: [ModelVersionStatus.APPROVED, ModelVersionStatus.REJECTED, ModelVersionStatus.ARCHIVED],
  [ModelVersionStatus.APPROVED]: [ModelVersionStatus.ARCHIVED],
  [ModelVersionStatus.REJECTED]: [ModelVersionStatus.ARCHIVED],
  [ModelVersionStatus.ARCHIVED]: [],
};

async function transition(
  ctx: RequestContext,
  id: string,
  to: ModelVersionStatus,
  action: 'submitModelVersion' | 'approveModelVersion' | 'rejectModelVersion' | 'archiveModelVersion',
  reason: string | null,
): Promise<ModelVersion> {
  return inTransaction(ctx, async (em, ctx) => {
    const version = await loadReadable(ctx, em, ModelVersion, 'ModelVersion', id, 'modelVersion', 'update');
    const permission = to === ModelVersionStatus.APPROVED ? 'approve' : to === ModelVersionStatus.REJECTED ? 'reject' : 'update';
    assertCan(ctx, permission, 'ModelVersion', version);
    if (!TRANSITIONS[version.status].includes(to)) {
      throw registryError(RegistryReason.INVALID_TRANSITION, `A ${version.status} version cannot become ${to}`, { from: version.status, to });
    }
    // Four eyes are two people: an API key counts as the person accountable for it, on either side.
    if (
      (to === ModelVersionStatus.APPROVED || to === ModelVersionStatus.REJECTED) &&
      samePrincipal(await accountablePersonOf(em, version.createdBy), accountablePerson(ctx.principal!))
    ) {
      const err = registryError(RegistryReason.SELF_APPROVAL, 'A version must be reviewed by someone other than who registered it (an API key counts as the person it acts for)');
      err.details.subjectType = 'ModelVersion';
      err.details.subjectId = toGlobalId('ModelVersion', version.id);
      throw err;
    }
    const before: Record<string, unknown> = { status: version.status };
    const after: Record<string, unknown> = { status: to, ...actingFor(ctx) };
    if (to === ModelVersionStatus.ARCHIVED) {
      // Still routed, mirrored, pending in a rollout or a deployment's fallback: the domain that routes traffic knows.
      const serving = await ctx.app.servingPath(em, version.id);
      if (serving) throw registryError(RegistryReason.VERSION_SERVING, serving);
      const aliases = await em.find(ModelVersionAlias, { where: { modelVersionId: version.id } });
      if (aliases.length) {
        before.aliases = aliases.map((a) => a.alias);
        after.aliases = [];
        await em.delete(ModelVersionAlias, { modelVersionId: version.id });
      }
    }
    await em.update(ModelVersion, { id: version.id }, { status: to });
    version.status = to;
    if (to === ModelVersionStatus.APPROVED || to === ModelVersionStatus.REJECTED) {
      const approval = em.create(Approval, {
        modelVersionId: version.id,
        teamId: version.teamId,
        decision: to === ModelVersionStatus.APPROVED ? ReviewDecision.APPROVED : ReviewDecision.REJECTED,
        actor: ctx.principal!.id,
        reason: reason!,
      });
      await em.insert(Approval, approval);
      after.approval = toGlobalId('Approval', approval.id);
    }
    if (to === ModelVersionStatus.CANDIDATE) await notifyAwaitingApproval(em, version, `submitted by ${ctx.principal!.id}`, ctx.requestId);
    await audit(ctx, { action, subjectType: 'ModelVersion', subjectId: toGlobalId('ModelVersion', version.id), reason, before, after });
    return (await em.findOneByOrFail(ModelVersion, { id: version.id }))!;
  });
}

/** Tells the version's team (its reviewers) that it waits for a review. */
async function notifyAwaitingApproval(em: EntityManager, version: ModelVersion, how: string, requestId: string): Promise<void> {
  const model = await em.findOneOrFail(Model, { where: { id: version.modelId }, select: { id: true, name: true } });
  await raiseNotification(em, {
    teamId: version.teamId,
    kind: NotificationKind.VERSION_AWAITING_APPROVAL,
    severity: 'WARNING',
    subject: toGlobalId('ModelVersion', version.id),
    summary: `${model.name} v${version.version} awaits approval (${how})`,
    data: { modelVersion: toGlobalId('ModelVersion', version.id), model: model.name, version: version.version, metrics: version.metrics },
    requestId,
  });
}

export const submitModelVersion = (ctx: RequestContext, id: string) => transition(ctx, id, ModelVersionStatus.CANDIDATE, 'submitModelVersion', null);
export const approveModelVersion = (ctx: RequestContext, input: ReviewInput) =>
  transition(ctx, input.modelVersion, ModelVersionStatus.APPROVED, 'approveModelVersion', input.reason);
export const rejectModelVersion = (ctx: RequestContext, input: ReviewInput) =>
  transition(ctx, input.modelVersion, ModelVersionStatus.REJECTED, 'rejectModelVersion', input.reason);
export const archiveModelVersion = (ctx: RequestContext, input: ReviewInput) =>
  transition(ctx, input.modelVersion, ModelVersionStatus.ARCHIVED, 'archiveModelVersion', input.reason);

/** Aliases that only an approved version may hold. */
export const GUARDED_ALIASES = new Set(['champion', 'production']);

export async function setModelVersionAlias(ctx: RequestContext, input: SetAliasInput): Promise<ModelVersion> {
  return inTransaction(ctx, async (em, ctx) => {
    const version = await loadReadable(ctx, em, ModelVersion, 'ModelVersion', input.modelVersion, 'modelVersion', 'update');
    assertCan(ctx, 'update', 'ModelVersion', version);
    // The model row serialises alias moves, including the first assignment of a new alias.
    await em.findOne(Model, { where: { id: version.modelId }, lock: { mode: 'pessimistic_write' } });
    if (version.status === ModelVersionStatus.ARCHIVED || version.status === ModelVersionStatus.REJECTED) {
      throw registryError(RegistryReason.INVALID_TRANSITION, `A ${version.status} version cannot hold an alias`);
    }
    if (GUARDED_ALIASES.has(input.alias) && version.status !== ModelVersionStatus.APPROVED) {
      throw registryError(RegistryReason.ALIAS_REQUIRES_APPROVAL, `Only an APPROVED version may be "${input.alias}"`);
    }
    // Lock the model's alias rows so that two moves of one alias serialise.
    const previous = await em.findOne(ModelVersionAlias, { where: { modelId: version.modelId, alias: input.alias } });
    await em.upsert(
      ModelVersionAlias,
      { modelId: version.modelId, alias: input.alias, modelVersionId: version.id, updatedBy: ctx.principal!.id },
      ['modelId', 'alias'],
    );
    await audit(ctx, {
      action: 'setModelVersionAlias',
      subjectType: 'ModelVersion',
      subjectId: toGlobalId('ModelVersion', version.id),
      before: { alias: input.alias, modelVersion: previous ? toGlobalId('ModelVersion', previous.modelVersionId) : null },
      after: { alias: input.alias, modelVersion: toGlobalId('ModelVersion', version.id) },
    });
    return version;
  });
}

export async function removeModelVersionAlias(ctx: RequestContext, input: RemoveAliasInput): Promise<Model> {
  return inTransaction(ctx, async (em, ctx) => {
    const model = await loadReadable(ctx, em, Model, 'Model', input.model, 'model', 'update');
    const existing = await em.findOne(ModelVersionAlias, { where: { modelId: model.id, alias: input.alias } });
    if (!existing) throw notFound(`Alias "${input.alias}" of model ${model.name}`);
    const version = await em.findOneByOrFail(ModelVersion, { id: existing.modelVersionId });
    assertCan(ctx, 'update', 'ModelVersion', version);
    await em.delete(ModelVersionAlias, { modelId: model.id, alias: input.alias });
    await audit(ctx, {
      action: 'removeModelVersionAlias',
      subjectType: 'Model',
      subjectId: toGlobalId('Model', model.id),
      before: { alias: input.alias, modelVersion: toGlobalId('ModelVersion', existing.modelVersionId) },
      after: { alias: input.alias, modelVersion: null },
    });
    return model;
  });
}
