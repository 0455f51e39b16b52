// What the lineage API lists: datasets, their versions, code versions, configs, seed sets,
// environments and training runs, filtered in SQL through the caller's read scope; and a run as
// its subscribers see it.
import type { ObjectLiteral, SelectQueryBuilder } from 'typeorm';
import { subjectOf } from '../core/ability';
import type { RequestContext } from '../core/context';
import { expectId } from '../core/global-id';
import { listConnection, whereTeam } from '../core/list';
import type { PageArgs } from '../core/pagination';
import { CodeVersion } from './code-version.entity';
import { Config } from './config.entity';
import { Dataset } from './dataset.entity';
import { DatasetVersion } from './dataset-version.entity';
import { Environment } from './environment.entity';
import {
  CodeVersionConnection,
  ConfigConnection,
  DatasetConnection,
  DatasetVersionConnection,
  EnvironmentConnection,
  SeedSetConnection,
  TrainingRunConnection,
  type DatasetFilter,
  type DatasetVersionFilter,
  type TeamScopedFilter,
  type TrainingRunFilter,
} from './lineage.inputs';
import { SeedSet } from './seed-set.entity';
import { TrainingRun } from './training-run.entity';

/** A page of the datasets the caller may read, newest first. */
export function listDatasets(ctx: RequestContext, page: PageArgs, filter?: DatasetFilter | null) {
  return listConnection(ctx, DatasetConnection, Dataset, 'Dataset', page, (qb) => {
    whereTeam(qb, filter?.team);
    if (filter?.classification) qb.andWhere('x.classification = :c', { c: filter.classification });
    if (filter?.name) qb.andWhere('x.name = :n', { n: filter.name });
  });
}

/** A page of the dataset versions the caller may read, newest first. */
export function listDatasetVersions(ctx: RequestContext, page: PageArgs, filter?: DatasetVersionFilter | null) {
  return listConnection(ctx, DatasetVersionConnection, DatasetVersion, 'DatasetVersion', page, (qb) => {
    whereTeam(qb, filter?.team);
    if (filter?.dataset) qb.andWhere('x.dataset_id = :d', { d: expectId(filter.dataset, 'Dataset', 'filter.dataset') });
    if (filter?.sha256) qb.andWhere('x.sha256 = :s', { s: filter.sha256 });
  });
}

function contentFilter<T extends ObjectLiteral>(qb: SelectQueryBuilder<T>, filter?: TeamScopedFilter | null) {
  whereTeam(qb, filter?.team);
  if (filter?.sha256) qb.andWhere('x.sha256 = :s', { s: filter.sha256 });
}

/** A page of the code versions the caller may read, newest first. */
export function listCodeVersions(ctx: RequestContext, page: PageArgs, filter?: TeamScopedFilter | null) {
  return listConnection(ctx, CodeVersionConnection, CodeVersion, 'CodeVersion', page, (qb) => contentFilter(qb, filter));
}

/** A page of the configs the caller may read, newest first. */
export function listConfigs(ctx: RequestContext, page: PageArgs, filter?: TeamScopedFilter | null) {
  return listConnection(ctx, ConfigConnection, Config, 'Config', page, (qb) => contentFilter(qb, filter));
}

/** A page of the seed sets the caller may read, newest first. */
export function listSeedSets(ctx: RequestContext, page: PageArgs, filter?: TeamScopedFilter | null) {
  return listConnection(ctx, SeedSetConnection, SeedSet, 'SeedSet', page, (qb) => contentFilter(qb, filter));
}

/** A page of the environments the caller may read, newest first. */
export function listEnvironments(ctx: RequestContext, page: PageArgs, filter?: TeamScopedFilter | null) {
  return listConnection(ctx, EnvironmentConnection, Environment, 'Environment', page, (qb) => contentFilter(qb, filter));
}

/** A page of the training runs the caller may read, newest first. */
export function listTrainingRuns(ctx: RequestContext, page: PageArgs, filter?: TrainingRunFilter | null) {
  return listConnection(ctx, TrainingRunConnection, TrainingRun, 'TrainingRun', page, (qb) => {
    whereTeam(qb, filter?.team);
    if (filter?.status) qb.andWhere('x.status = :st', { st: filter.status });
    if (filter?.datasetVersion) {
      qb.andWhere('x.id IN (SELECT l.training_run_id FROM training_run_dataset l WHERE l.dataset_version_id = :dv)', {
        dv: expectId(filter.datasetVersion, 'DatasetVersion', 'filter.datasetVersion'),
      });
    }
  });
}

/** A training run as it is now, read afresh (never from a loader's cache); null when missing or no longer readable by the caller. */
export async function currentRun(ctx: RequestContext, id: string): Promise<TrainingRun | null> {
  const run = await ctx.app.db.getRepository(TrainingRun).findOne({ where: { id } });
  return run && ctx.ability.can('read', subjectOf('TrainingRun', run)) ? run : null;
}
