// What the registry API lists: models and model versions, filtered in SQL through the caller's read scope.
import type { RequestContext } from '../core/context';
import { expectId } from '../core/global-id';
import { listConnection, whereTeam } from '../core/list';
import type { PageArgs } from '../core/pagination';
import { Model } from './model.entity';
import { ModelVersion } from './model-version.entity';
import { ModelConnection, ModelVersionConnection, type ModelFilter, type ModelVersionFilter } from './registry.inputs';

/** A page of the models the caller may read, newest first. */
export function listModels(ctx: RequestContext, page: PageArgs, filter?: ModelFilter | null) {
  return listConnection(ctx, ModelConnection, Model, 'Model', page, (qb) => {
    whereTeam(qb, filter?.team);
    if (filter?.name) qb.andWhere('x.name = :n', { n: filter.name });
  });
}

/** A page of the model versions the caller may read, newest first. */
export function listModelVersions(ctx: RequestContext, page: PageArgs, filter?: ModelVersionFilter | null) {
  return listConnection(ctx, ModelVersionConnection, ModelVersion, 'ModelVersion', page, (qb) => {
    whereTeam(qb, filter?.team);
    if (filter?.model) qb.andWhere('x.model_id = :m', { m: expectId(filter.model, 'Model', 'filter.model') });
    if (filter?.status) qb.andWhere('x.status = :st', { st: filter.status });
    if (filter?.trainingRun) qb.andWhere('x.training_run_id = :tr', { tr: expectId(filter.trainingRun, 'TrainingRun', 'filter.trainingRun') });
    if (filter?.alias) qb.andWhere('x.id IN (SELECT a.model_version_id FROM model_version_alias a WHERE a.alias = :alias)', { alias: filter.alias });
  });
}
