import { Arg, Args, Ctx, Mutation, Query, Resolver } from 'type-graphql';
import type { RequestContext } from '../core/context';
import { listConnection } from '../core/list';
import { Connection, PageArgs, paginate } from '../core/pagination';
import { Policy } from '../core/policy';
import { CreateApiKeyInput, CreatedApiKey, CreateTeamInput, RevokeApiKeyInput, RoleFilter, TeamFilter, UpsertRoleInput, Viewer } from './access.inputs';
import { createTeam } from './team.service';
import * as access from './access.service';
import { ApiKey } from './api-key.entity';
import { Role } from './role.entity';
import { Team } from './team.entity';

export const TeamConnection = Connection(Team);
export const ApiKeyConnection = Connection(ApiKey);
export const RoleConnection = Connection(Role);

@Resolver()
export class AccessResolver {
  @Query(() => Viewer, { description: 'The caller: identity, roles, teams and effective rules' })
  @Policy({ authenticated: 'every caller may see who the server thinks it is' })
  viewer(@Ctx() ctx: RequestContext): Viewer {
    const p = ctx.principal!;
    return { id: p.id, kind: p.kind, roles: p.roles, teams: p.teams, rules: ctx.ability.rules };
  }

  @Query(() => TeamConnection)
  @Policy({ action: 'read', subject: 'Team' })
  teams(@Ctx() ctx: RequestContext, @Args() page: PageArgs, @Arg('filter', () => TeamFilter, { nullable: true }) filter?: TeamFilter) {
    return listConnection(ctx, TeamConnection, Team, 'Team', page, (qb) => {
      if (filter?.name) qb.andWhere('x.name = :n', { n: filter.name });
    });
  }

  @Query(() => RoleConnection, { description: 'Roles and their rules, most recently changed first' })
  @Policy({ action: 'read', subject: 'Role' })
  roles(@Ctx() ctx: RequestContext, @Args() page: PageArgs, @Arg('filter', () => RoleFilter, { nullable: true }) filter?: RoleFilter) {
    const qb = ctx.app.db.getRepository(Role).createQueryBuilder('x').where('TRUE');
    if (filter?.name) qb.andWhere('x.name = :n', { n: filter.name });
    if (filter?.builtIn !== undefined && filter?.builtIn !== null) qb.andWhere('x.built_in = :b', { b: filter.builtIn });
    ctx.loaders.scope(qb, 'Role', 'x');
    return paginate(RoleConnection, qb, page, { alias: 'x', timeColumn: 'updated_at', idColumn: 'name' }, (r) => [r.updatedAt, r.name]);
  }

  @Query(() => ApiKeyConnection)
  @Policy({ action: 'read', subject: 'ApiKey' })
  apiKeys(@Ctx() ctx: RequestContext, @Args() page: PageArgs) {
    return listConnection(ctx, ApiKeyConnection, ApiKey, 'ApiKey', page, () => undefined);
  }

  @Mutation(() => Team)
  @Policy({ action: 'create', subject: 'Team' })
  createTeam(@Ctx() ctx: RequestContext, @Arg('input', () => CreateTeamInput) input: CreateTeamInput) {
    return createTeam(ctx, input);
  }

  @Mutation(() => Role, { description: 'Creates or replaces a role; invalid rules are refused' })
  @Policy({ action: 'update', subject: 'Role' })
  upsertRole(@Ctx() ctx: RequestContext, @Arg('input', () => UpsertRoleInput) input: UpsertRoleInput) {
    return access.upsertRole(ctx, input);
  }

  @Mutation(() => Boolean)
  @Policy({ action: 'delete', subject: 'Role' })
  deleteRole(@Ctx() ctx: RequestContext, @Arg('name') name: string) {
    return access.deleteRole(ctx, name);
  }

  @Mutation(() => CreatedApiKey, { description: 'Creates a service-account key; the key is in the answer and nowhere else' })
  @Policy({ action: 'create', subject: 'ApiKey' })
  createApiKey(@Ctx() ctx: RequestContext, @Arg('input', () => CreateApiKeyInput) input: CreateApiKeyInput) {
    return access.createApiKey(ctx, input);
  }

  @Mutation(() => ApiKey)
  @Policy({ action: 'update', subject: 'ApiKey' })
  revokeApiKey(@Ctx() ctx: RequestContext, @Arg('input', () => RevokeApiKeyInput) input: RevokeApiKeyInput) {
    return access.revokeApiKey(ctx, input);
  }
}
