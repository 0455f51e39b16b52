import type { EntityManager, EntityTarget, ObjectLiteral } from 'typeorm';
import type { Team } from '../access/team.entity';
import { audit } from '../core/audit/audit-chain';
import { sha256Hex } from '../core/canonical-json';
import { inTransaction, type RequestContext } from '../core/context';
import { resolveTeam } from '../access/team.service';
import { assertCan, mapDbError } from '../core/authz';
import { badInput, notFound } from '../core/errors';
import { expectId, toGlobalId } from '../core/global-id';
import { boundedCanonicalJson } from '../core/validation';
import type { SubjectName } from '../core/subjects';
import { CodeVersion } from './code-version.entity';
import { Config } from './config.entity';
import { Dataset } from './dataset.entity';
import { DatasetVersion, DatasetVersionParent } from './dataset-version.entity';
import { Environment } from './environment.entity';
import type {
  CreateDatasetInput,
  RegisterCodeVersionInput,
  RegisterConfigInput,
  RegisterDatasetVersionInput,
  RegisterEnvironmentInput,
  RegisterSeedSetInput,
} from './lineage.inputs';
import { SeedSet } from './seed-set.entity';

/**
 * NOT_FOUND for an id the caller cannot see: a row it may not read is answered exactly like a
 * missing one, and either is recorded as a refused attempt when a mutation named it.
 */
export function hiddenRowError(subjectName: SubjectName, key: string, id: string) {
  const err = notFound(`${subjectName} ${id}`);
  Object.assign(err.details, { denied: true, subjectType: subjectName, subjectId: toGlobalId(subjectName, key) });
  return err;
}

export type RowLock = 'none' | 'update' | 'share';

/**
 * Loads a row the caller refers to by global ID, inside the transaction, through the caller's read
 * scope in SQL: a row it may not read and a missing one take the same statement and get the same
 * answer. The row is locked (FOR UPDATE or FOR SHARE) only once found, and read again under the lock.
 */
export async function loadReadable<T extends ObjectLiteral>(
  ctx: RequestContext,
  em: EntityManager,
  entity: EntityTarget<T>,
  subjectName: SubjectName,
  id: string,
  argument: string,
  lock: RowLock = 'none',
): Promise<T> {
  const key = expectId(id, subjectName, argument);
  const readable = () => ctx.loaders.scope(em.getRepository(entity).createQueryBuilder('x').where('x.id = :key', { key }), subjectName, 'x');
  const row = await readable().getOne();
  if (!row) throw hiddenRowError(subjectName, key, id);
  if (lock === 'none') return row;
  const locked = await readable().setLock(lock === 'update' ? 'pessimistic_write' : 'pessimistic_read').getOne();
  if (!locked) throw hiddenRowError(subjectName, key, id);
  return locked;
}

export async function createDataset(ctx: RequestContext, input: CreateDatasetInput): Promise<Dataset> {
  return inTransaction(ctx, async (em, ctx) => {
    const team = await resolveTeam(ctx, input.team);
    const dataset = em.create(Dataset, {
      teamId: team.id,
      name: input.name,
      classification: input.classification,
      description: input.description ?? null,
      createdBy: ctx.principal!.id,
    });
    assertCan(ctx, 'create', 'Dataset', dataset);
    await em.insert(Dataset, dataset).catch((e) => mapDbError(e, `Dataset "${input.name}" in team ${team.name}`));
    await audit(ctx, { action: 'createDataset', subjectType: 'Dataset', subjectId: toGlobalId('Dataset', dataset.id), after: dataset });
    return dataset;
  });
}

export async function registerDatasetVersion(ctx: RequestContext, input: RegisterDatasetVersionInput): Promise<DatasetVersion> {
  return inTransaction(ctx, async (em, ctx) => {
    // The dataset row is locked so that concurrent registrations number their versions in turn.
    const dataset = await loadReadable(ctx, em, Dataset, 'Dataset', input.dataset, 'dataset', 'update');
    const names = new Set<string>();
    for (const c of input.columns) {
      if (names.has(c.name)) throw badInput(`columns: "${c.name}" appears twice`, { field: 'columns' });
      names.add(c.name);
    }
    const parentIds = [...new Set(input.derivedFrom ?? [])];
    const parents: DatasetVersion[] = [];
    for (const id of parentIds) parents.push(await loadReadable(ctx, em, DatasetVersion, 'DatasetVersion', id, 'derivedFrom'));
    const [{ next }] = await em.query('SELECT COALESCE(MAX(version), 0) + 1 AS next FROM dataset_version WHERE dataset_id = $1', [dataset.id]);
    const version = em.create(DatasetVersion, {
      datasetId: dataset.id,
      teamId: dataset.teamId,
      classification: dataset.classification,
      version: Number(next),
      uri: input.uri,
      sha256: input.sha256,
      rowCount: input.rowCount,
      columnSchema: input.columns.map((c) => ({ name: c.name, type: c.type, nullable: c.nullable })),
      sourceQuery: input.sourceQuery ?? null,
      createdBy: ctx.principal!.id,
    });
    assertCan(ctx, 'create', 'DatasetVersion', version);
    await em.insert(DatasetVersion, version).catch((e) => mapDbError(e, `A version of dataset ${dataset.name} with this sha256`));
    if (parents.length) await em.insert(DatasetVersionParent, parents.map((p) => ({ childId: version.id, parentId: p.id })));
    await audit(ctx, {
      action: 'registerDatasetVersion',
      subjectType: 'DatasetVersion',
      subjectId: toGlobalId('DatasetVersion', version.id),
      after: { ...version, derivedFrom: parents.map((p) => toGlobalId('DatasetVersion', p.id)) },
    });
    return version;
  });
}

/**
 * Registers content identified by its hash within a team: the same content again returns the
 * existing row (and records that it was asked for). The audit event says which happened.
 */
async function registerContent<T extends ObjectLiteral & { id: string; teamId: string; sha256: string }>(
  ctx: RequestContext,
  entity: EntityTarget<T>,
  subjectName: SubjectName,
  action: string,
  teamName: string | null | undefined,
  identity: Record<string, unknown>,
  build: (team: Team, sha256: string) => Partial<T>,
  audited = true,
): Promise<T> {
  return inTransaction(ctx, async (em, ctx) => {
    const team = await resolveTeam(ctx, teamName);
    const sha256 = sha256Hex(boundedCanonicalJson(identity, 'content'));
    const candidate = em.create(entity, { ...build(team, sha256), teamId: team.id, sha256, createdBy: ctx.principal!.id } as never) as T;
    assertCan(ctx, 'create', subjectName, candidate);
    const inserted = await em
      .createQueryBuilder()
      .insert()
      .into(entity)
      .values(candidate as never)
      .orIgnore()
      .returning('id')
      .execute();
    const created = inserted.raw.length > 0;
    const row = await em.getRepository(entity).findOneOrFail({ where: { teamId: team.id, sha256 } as never });
    // Registered inline by another mutation: that mutation's one audit event names it.
    if (!audited) return row;
    await audit(ctx, {
      action,
      subjectType: subjectName,
      subjectId: toGlobalId(subjectName, row.id),
      reason: created ? null : 'identical content already registered; existing record returned',
      after: row,
    });
    return row;
  });
}

/** `audited: false` when another mutation registers it inline and records it in its own event. */
export function registerConfig(ctx: RequestContext, input: RegisterConfigInput, audited = true): Promise<Config> {
  if (input.content === null || typeof input.content !== 'object' || Array.isArray(input.content)) {
    throw badInput('content must be a JSON object', { field: 'content' });
  }
  const canonicalJson = boundedCanonicalJson(input.content, 'content');
  return registerContent(ctx, Config, 'Config', 'registerConfig', input.team, input.content as Record<string, unknown>, () => ({ canonicalJson }), audited);
}

export function registerSeedSet(ctx: RequestContext, input: RegisterSeedSetInput, audited = true): Promise<SeedSet> {
  const entries = Object.entries(input.seeds ?? {});
  if (entries.length === 0 || entries.length > 100) throw badInput('seeds must name 1 to 100 seeds', { field: 'seeds' });
  for (const [name, value] of entries) {
    if (!/^[a-z][a-z0-9_]{0,62}$/.test(name)) throw badInput(`seeds: "${name.slice(0, 64)}" is not a valid seed name`, { field: 'seeds' });
    if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
      throw badInput(`seeds.${name} must be a non-negative integer`, { field: 'seeds' });
    }
  }
  const canonicalJson = boundedCanonicalJson(input.seeds, 'seeds');
  return registerContent(ctx, SeedSet, 'SeedSet', 'registerSeedSet', input.team, input.seeds, () => ({ canonicalJson }), audited);
}

export function registerEnvironment(ctx: RequestContext, input: RegisterEnvironmentInput, audited = true): Promise<Environment> {
  const identity = { runtime: input.runtime, lockfileSha256: input.lockfileSha256, imageDigest: input.imageDigest ?? null, hardware: input.hardware };
  return registerContent(ctx, Environment, 'Environment', 'registerEnvironment', input.team, identity, () => identity, audited);
}

export function registerCodeVersion(ctx: RequestContext, input: RegisterCodeVersionInput, audited = true): Promise<CodeVersion> {
  if (input.dirty && !input.diffSha256) throw badInput('diffSha256 is required when dirty is true', { field: 'diffSha256' });
  if (!input.dirty && input.diffSha256) throw badInput('diffSha256 is only meaningful when dirty is true', { field: 'diffSha256' });
  if (input.entrypoint.split(/[\\/]/).includes('..') || input.entrypoint.startsWith('/')) {
    throw badInput('entrypoint must be a path inside the repository', { field: 'entrypoint' });
  }
  const identity = {
    repositoryUrl: input.repositoryUrl,
    commitSha: input.commitSha,
    branch: input.branch ?? null,
    dirty: input.dirty,
    diffSha256: input.diffSha256 ?? null,
    entrypoint: input.entrypoint,
  };
  return registerContent(ctx, CodeVersion, 'CodeVersion', 'registerCodeVersion', input.team, identity, () => identity, audited);
}


/**
 * The dataset versions a run names, in the order given: each once, each readable by the caller
 * (one that is not is answered like a missing one, and recorded as refused).
 */
export async function loadRunDatasets(ctx: RequestContext, em: EntityManager, datasets: Array<{ datasetVersion: string }>): Promise<DatasetVersion[]> {
  if (datasets.length === 0) throw badInput('datasets must name at least one dataset version', { field: 'datasets' });
  const ids = datasets.map((d) => expectId(d.datasetVersion, 'DatasetVersion', 'datasets.datasetVersion'));
  if (new Set(ids).size !== ids.length) throw badInput('datasets names a dataset version twice', { field: 'datasets' });
  const found = await ctx.loaders.scope(em.getRepository(DatasetVersion).createQueryBuilder('x').where('x.id IN (:...ids)', { ids }), 'DatasetVersion', 'x').getMany();
  return ids.map((id, i) => {
    const row = found.find((f) => f.id === id);
    if (!row) throw hiddenRowError('DatasetVersion', id, datasets[i].datasetVersion);
    return row;
  });
}

