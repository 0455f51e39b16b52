import type { RequestContext } from '../core/context';
import { TrafficShare } from './deployment.entity';

/** Each deployment's current split, largest share first: only shares of versions the caller may read. */
export function trafficByDeployment(ctx: RequestContext) {
  return ctx.loaders.get<TrafficShare[]>('trafficByDeployment', async (ids) => {
    const qb = ctx.app.db
      .getRepository(TrafficShare)
      .createQueryBuilder('s')
      .innerJoin('model_version', 'v', 'v.id = s.model_version_id')
      .where('s.deployment_id IN (:...ids)', { ids })
      .orderBy('s.weight', 'DESC');
    const rows = await ctx.loaders.scope(qb, 'ModelVersion', 'v').getMany();
    return ids.map((id) => rows.filter((x) => x.deploymentId === id));
  });
}
