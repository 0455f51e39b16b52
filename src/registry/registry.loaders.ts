import type { RequestContext } from '../core/context';
import { Approval } from './approval.entity';
import { ModelVersionAlias } from './model-version.entity';

/**
 * Aliases by model or by version, ordered by alias: only those of versions the caller may read
 * (the version's read scope, in the same statement).
 */
export function aliasesBy(ctx: RequestContext, column: 'model_id' | 'model_version_id') {
  return ctx.loaders.get<ModelVersionAlias[]>(`aliases:${column}`, async (ids) => {
    const qb = ctx.app.db
      .getRepository(ModelVersionAlias)
      .createQueryBuilder('a')
      .innerJoin('model_version', 'v', 'v.id = a.model_version_id')
      .where(`a.${column} IN (:...ids)`, { ids })
      .orderBy('a.alias');
    const rows = await ctx.loaders.scope(qb, 'ModelVersion', 'v').getMany();
    return ids.map((id) => rows.filter((r) => (column === 'model_id' ? r.modelId : r.modelVersionId) === id));
  });
}

/** Review decisions by model version, oldest first: visible to whoever may read the version. */
export function approvalsByVersion(ctx: RequestContext) {
  return ctx.loaders.get<Approval[]>('approvals', async (ids) => {
    const qb = ctx.app.db
      .getRepository(Approval)
      .createQueryBuilder('a')
      .innerJoin('model_version', 'v', 'v.id = a.model_version_id')
      .where('a.model_version_id IN (:...ids)', { ids })
      .orderBy('a.created_at');
    const rows = await ctx.loaders.scope(qb, 'ModelVersion', 'v').getMany();
    return ids.map((id) => rows.filter((x) => x.modelVersionId === id));
  });
}
