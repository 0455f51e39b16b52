// What the rollouts API reads: pages of deployments and rollouts, filtered in SQL through the
// caller's read scope, and a deployment's latest rollout as its subscribers see it.
import { subjectOf } from '../core/ability';
import type { RequestContext } from '../core/context';
import { expectId } from '../core/global-id';
import { listConnection, whereTeam } from '../core/list';
import type { PageArgs } from '../core/pagination';
import { Deployment } from './deployment.entity';
import { Rollout } from './rollout.entity';
import { DeploymentConnection, RolloutConnection, type DeploymentFilter, type RolloutFilter } from './rollouts.inputs';

/** A page of the deployments the caller may read, newest first. */
export function listDeployments(ctx: RequestContext, page: PageArgs, filter?: DeploymentFilter | null) {
  return listConnection(ctx, DeploymentConnection, Deployment, 'Deployment', page, (qb) => {
    whereTeam(qb, filter?.team);
    if (filter?.environment) qb.andWhere('x.environment = :env', { env: filter.environment });
    if (filter?.name) qb.andWhere('x.name = :name', { name: filter.name });
    if (filter?.modelVersion) {
      qb.andWhere('x.id IN (SELECT s.deployment_id FROM traffic_share s WHERE s.model_version_id = :mv)', {
        mv: expectId(filter.modelVersion, 'ModelVersion', 'filter.modelVersion'),
      });
    }
  });
}

/** A page of the rollouts the caller may read, newest first. */
export function listRollouts(ctx: RequestContext, page: PageArgs, filter?: RolloutFilter | null) {
  return listConnection(ctx, RolloutConnection, Rollout, 'Rollout', page, (qb) => {
    whereTeam(qb, filter?.team);
    if (filter?.deployment) qb.andWhere('x.deployment_id = :d', { d: expectId(filter.deployment, 'Deployment', 'filter.deployment') });
    if (filter?.status) qb.andWhere('x.status = :s', { s: filter.status });
  });
}

/**
 * The deployment's most recent rollout as it is now (null when it has none), and whether the
 * caller has lost sight of the deployment or of that rollout.
 */
export async function latestRollout(ctx: RequestContext, deploymentId: string): Promise<{ latest: Rollout | null; hidden: boolean }> {
  const latest = await ctx.app.db.getRepository(Rollout).findOne({ where: { deploymentId }, order: { createdAt: 'DESC' } });
  const hidden = !(await ctx.loaders.byId(Deployment, 'Deployment').load(deploymentId)) || (!!latest && !ctx.ability.can('read', subjectOf('Rollout', latest)));
  return { latest, hidden };
}
