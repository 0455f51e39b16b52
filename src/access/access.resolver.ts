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

  @Query(() => TeamConnection, { nullable: true, description: 'The teams the caller may read, newest first' })
  @Policy({ action: 'read', subject: 'Team' })
  teams(@Ctx() ctx: RequestContext, @Args() page: PageArgs, @Arg('filter', () => TeamFilter, { nullable: true, description: 'Narrows the list; null: every team the caller may read' }) filter?: TeamFilter) {
    return queries.listTeams(ctx, page, filter);
  }

  @Query(() => RoleConnection, { nullable: true, description: 'Roles and their rules, most recently changed first' })
  @Policy({ action: 'read', subject: 'Role' })
  roles(@Ctx() ctx: RequestContext, @Args() page: PageArgs, @Arg('filter', () => RoleFilter, { nullable: true, description: 'Narrows the list; null: every role the caller may read' }) filter?: RoleFilter) {
    return queries.listRoles(ctx, page, filter);
  }

  @Query(() => ApiKeyConnection, { nullable: true, description: 'The API keys the caller may read, revoked and expired ones included, newest first' })
  @Policy({ action: 'read', subject: 'ApiKey' })
  apiKeys(@Ctx() ctx: RequestContext, @Args() page: PageArgs) {
    return queries.listApiKeys(ctx, page);
  }

  @Mutation(() => Team, { nullable: true, description: 'Creates a team; a name already taken is refused' })
  @Policy({ action: 'create', subject: 'Team' })
  createTeam(@Ctx() ctx: RequestContext, @Arg('input', () => CreateTeamInput, { description: 'The team to create' }) input: CreateTeamInput) {
    return createTeam(ctx, input);
  }

  @Mutation(() => Role, { nullable: true, description: 'Creates or replaces a role; invalid rules are refused' })
  @Policy({ action: 'update', subject: 'Role' })
  upsertRole(@Ctx() ctx: RequestContext, @Arg('input', () => UpsertRoleInput, { description: 'The role, named, with its full list of rules' }) input: UpsertRoleInput) {
    return access.upsertRole(ctx, input);
  }

  @Mutation(() => Boolean, { nullable: true, description: 'Deletes a role (true); built-in roles are refused' })
  @Policy({ action: 'delete', subject: 'Role' })
  deleteRole(@Ctx() ctx: RequestContext, @Arg('name', { description: 'The name of the role' }) name: string) {
    return access.deleteRole(ctx, name);
  }

  @Mutation(() => CreatedApiKey, { nullable: true, description: 'Creates a service-account key; the key is in the answer and nowhere else' })
  @Policy({ action: 'create', subject: 'ApiKey' })
  createApiKey(@Ctx() ctx: RequestContext, @Arg('input', () => CreateApiKeyInput, { description: 'Its name, roles, teams and expiry' }) input: CreateApiKeyInput) {
    return access.createApiKey(ctx, input);
  }

  @Mutation(() => ApiKey, { nullable: true, description: 'Revokes an API key at once, on every instance; revoking it twice is refused' })
  @Policy({ action: 'update', subject: 'ApiKey' })
  revokeApiKey(@Ctx() ctx: RequestContext, @Arg('input', () => RevokeApiKeyInput, { description: 'The key to revoke' }) input: RevokeApiKeyInput) {
    return access.revokeApiKey(ctx, input);
  }
}
