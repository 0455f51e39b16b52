import { Arg, Args, Ctx, FieldResolver, Mutation, Query, Resolver, Root } from 'type-graphql';
import type { RequestContext } from '../core/context';
import { expectId } from '../core/global-id';
import { listConnection, whereTeam } from '../core/list';
import { Connection, PageArgs } from '../core/pagination';
import { Policy } from '../core/policy';
import { ModelVersion } from '../registry/model-version.entity';
import { Deployment, TrafficShare } from './deployment.entity';
import * as deployments from './deployment.service';
import { CreateDeploymentInput, DeploymentFilter, SetTrafficSplitInput } from './rollouts.inputs';

export const DeploymentConnection = Connection(Deployment);

@Resolver()
export class RolloutsResolver {
  @Query(() => DeploymentConnection)
  @Policy({ action: 'read', subject: 'Deployment' })
  deployments(@Ctx() ctx: RequestContext, @Args() page: PageArgs, @Arg('filter', () => DeploymentFilter, { nullable: true }) filter?: DeploymentFilter) {
    return listConnection(ctx, DeploymentConnection, Deployment, 'Deployment', page, (qb) => {
      whereTeam(qb, filter?.team);
      if (filter?.environment) qb.andWhere('x.environment = :env', { env: filter.environment });
      if (filter?.modelVersion) {
        qb.andWhere('x.id IN (SELECT s.deployment_id FROM traffic_share s WHERE s.model_version_id = :mv)', {
          mv: expectId(filter.modelVersion, 'ModelVersion', 'filter.modelVersion'),
        });
      }
    });
  }

  @Mutation(() => Deployment)
  @Policy({ action: 'create', subject: 'Deployment' })
  createDeployment(@Ctx() ctx: RequestContext, @Arg('input', () => CreateDeploymentInput) input: CreateDeploymentInput) {
    return deployments.createDeployment(ctx, input);
  }

  @Mutation(() => Deployment, { description: 'Replaces the traffic split at once; weights sum to 100; PRODUCTION takes APPROVED versions only' })
  @Policy({ action: 'update', subject: 'Deployment' })
  setTrafficSplit(@Ctx() ctx: RequestContext, @Arg('input', () => SetTrafficSplitInput) input: SetTrafficSplitInput) {
    return deployments.setTrafficSplit(ctx, input);
  }
}

@Resolver(() => Deployment)
export class DeploymentFieldResolver {
  @FieldResolver(() => [TrafficShare], { description: 'Current split, largest share first; shares of versions the caller may not read are left out' })
  trafficSplit(@Root() r: Deployment, @Ctx() ctx: RequestContext) {
    return ctx.loaders
      .get<TrafficShare[]>('trafficByDeployment', async (ids) => {
        const qb = ctx.app.db
          .getRepository(TrafficShare)
          .createQueryBuilder('s')
          .innerJoin('model_version', 'v', 'v.id = s.model_version_id')
          .where('s.deployment_id IN (:...ids)', { ids })
          .orderBy('s.weight', 'DESC');
        const rows = await ctx.loaders.scope(qb, 'ModelVersion', 'v').getMany();
        return ids.map((id) => rows.filter((x) => x.deploymentId === id));
      })
      .load(r.id);
  }
}

@Resolver(() => TrafficShare)
export class TrafficShareFieldResolver {
  @FieldResolver(() => ModelVersion, { nullable: true })
  modelVersion(@Root() r: TrafficShare, @Ctx() ctx: RequestContext) {
    return ctx.loaders.byId(ModelVersion, 'ModelVersion').load(r.modelVersionId);
  }
}
