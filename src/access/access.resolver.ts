import { Arg, Args, Ctx, Mutation, Query, Resolver } from 'type-graphql';
import type { RequestContext } from '../core/context';
import { PageArgs } from '../core/pagination';
import { Policy } from '../core/policy';
import {
  ApiKeyConnection,
  CreateApiKeyInput,
  CreatedApiKey,
  CreateTeamInput,
  RevokeApiKeyInput,
  RoleConnection,
  RoleFilter,
  TeamConnection,
  TeamFilter,
  UpsertRoleInput,
  Viewer,
} from './access.inputs';
import { createTeam } from './team.service';
import * as access from './access.service';
import * as queries from './access-query.service';
import { ApiKey } from './api-key.entity';
import { Role } from './role.entity';
import { Team } from './team.entity';

@Resolver()
export class AccessResolver {
  @Query(() => Viewer, { nullable: true, description: 'The caller: identity, roles, teams and effective rules' })
  @Policy({ authenticated: 'every caller may see who the server thinks it is' })
  viewer(@Ctx() ctx: RequestContext): Viewer {
    const p = ctx.principal!;
    return { id: p.id, kind: p.kind, roles: p.roles, teams: p.teams, rules: ctx.ability.rules };
  }

  @Query(() => TeamConnection, { nullable: true })
  @Policy({ action: 'read', subject: 'Team' })
  teams(@Ctx() ctx: RequestContext, @Args() page: PageArgs, @Arg('filter', () => TeamFilter, { nullable: true }) filter?: TeamFilter) {
    return queries.listTeams(ctx, page, filter);
  }

  @Query(() => RoleConnection, { nullable: true, description: 'Roles and their rules, most recently changed first' })
  @Policy({ action: 'read', subject: 'Role' })
  roles(@Ctx() ctx: RequestContext, @Args() page: PageArgs, @Arg('filter', () => RoleFilter, { nullable: true }) filter?: RoleFilter) {
    return queries.listRoles(ctx, page, filter);
  }

  @Query(() => ApiKeyConnection, { nullable: true })
  @Policy({ action: 'read', subject: 'ApiKey' })
  apiKeys(@Ctx() ctx: RequestContext, @Args() page: PageArgs) {
    return queries.listApiKeys(ctx, page);
  }

  @Mutation(() => Team, { nullable: true })
  @Policy({ action: 'create', subject: 'Team' })
  createTeam(@Ctx() ctx: RequestContext, @Arg('input', () => CreateTeamInput) input: CreateTeamInput) {
    return createTeam(ctx, input);
  }

  @Mutation(() => Role, { nullable: true, description: 'Creates or replaces a role; invalid rules are refused' })
  @Policy({ action: 'update', subject: 'Role' })
  upsertRole(@Ctx() ctx: RequestContext, @Arg('input', () => UpsertRoleInput) input: UpsertRoleInput) {
    return access.upsertRole(ctx, input);
  }

  @Mutation(() => Boolean, { nullable: true })
  @Policy({ action: 'delete', subject: 'Role' })
  deleteRole(@Ctx() ctx: RequestContext, @Arg('name') name: string) {
    return access.deleteRole(ctx, name);
  }

  @Mutation(() => CreatedApiKey, { nullable: true, description: 'Creates a service-account key; the key is in the answer and nowhere else' })
  @Policy({ action: 'create', subject: 'ApiKey' })
  createApiKey(@Ctx() ctx: RequestContext, @Arg('input', () => CreateApiKeyInput) input: CreateApiKeyInput) {
    return access.createApiKey(ctx, input);
  }

  @Mutation(() => ApiKey, { nullable: true })
  @Policy({ action: 'update', subject: 'ApiKey' })
  revokeApiKey(@Ctx() ctx: RequestContext, @Arg('input', () => RevokeApiKeyInput) input: RevokeApiKeyInput) {
    return access.revokeApiKey(ctx, input);
  }
}
