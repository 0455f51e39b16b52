import { Arg, Args, Ctx, ID, Mutation, Query, Resolver } from 'type-graphql';
import { AuditEvent } from '../audit/audit-event.entity';
import type { RequestContext } from '../core/context';
import { badInput } from '../core/errors';
import { fromGlobalId, isUuid } from '../core/global-id';
import { listConnection } from '../core/list';
import { Node } from '../core/node';
import { Connection, PageArgs, paginate } from '../core/pagination';
import { Policy } from '../core/policy';
import { CreateTeamInput, TeamFilter } from '../lineage/lineage.inputs';
import { createTeam } from '../lineage/lineage.service';
import { CodeVersion } from '../lineage/code-version.entity';
import { Config } from '../lineage/config.entity';
import { Dataset } from '../lineage/dataset.entity';
import { DatasetVersion } from '../lineage/dataset-version.entity';
import { Environment } from '../lineage/environment.entity';
import { SeedSet } from '../lineage/seed-set.entity';
import { TrainingRun } from '../lineage/training-run.entity';
import { Alert } from '../monitoring/alert.entity';
import { Model } from '../registry/model.entity';
import { ModelVersion } from '../registry/model-version.entity';
import { Deployment } from '../rollouts/deployment.entity';
import { Rollout } from '../rollouts/rollout.entity';
import { CreateApiKeyInput, CreatedApiKey, RevokeApiKeyInput, RoleFilter, UpsertRoleInput, Viewer } from './access.inputs';
import * as access from './access.service';
import { ApiKey } from './api-key.entity';
import type { SubjectName } from './policy-rules';
import { Role } from './role.entity';
import { Team } from './team.entity';
import { CoreReason } from '../core/error-reasons';

export const TeamConnection = Connection(Team);
export const ApiKeyConnection = Connection(ApiKey);
export const RoleConnection = Connection(Role);

// A Map: the type part of an id is client text, and must never find `constructor` or `__proto__`.
interface NodeSpec {
  entity: Function;
  subject: SubjectName;
  key: 'id' | 'name' | 'seq';
}
const NODE_TYPES = new Map(Object.entries<NodeSpec>({
  Team: { entity: Team, subject: 'Team', key: 'id' },
  Dataset: { entity: Dataset, subject: 'Dataset', key: 'id' },
  DatasetVersion: { entity: DatasetVersion, subject: 'DatasetVersion', key: 'id' },
  CodeVersion: { entity: CodeVersion, subject: 'CodeVersion', key: 'id' },
  Config: { entity: Config, subject: 'Config', key: 'id' },
  SeedSet: { entity: SeedSet, subject: 'SeedSet', key: 'id' },
  Environment: { entity: Environment, subject: 'Environment', key: 'id' },
  TrainingRun: { entity: TrainingRun, subject: 'TrainingRun', key: 'id' },
  Model: { entity: Model, subject: 'Model', key: 'id' },
  ModelVersion: { entity: ModelVersion, subject: 'ModelVersion', key: 'id' },
  Deployment: { entity: Deployment, subject: 'Deployment', key: 'id' },
  Rollout: { entity: Rollout, subject: 'Rollout', key: 'id' },
  Alert: { entity: Alert, subject: 'Alert', key: 'id' },
  Role: { entity: Role, subject: 'Role', key: 'name' },
  ApiKey: { entity: ApiKey, subject: 'ApiKey', key: 'id' },
  AuditEvent: { entity: AuditEvent, subject: 'AuditEvent', key: 'seq' },
}));

@Resolver()
export class AccessResolver {
  @Query(() => Viewer, { description: 'The caller: identity, roles, teams and effective rules' })
  @Policy({ authenticated: 'every caller may see who the server thinks it is' })
  viewer(@Ctx() ctx: RequestContext): Viewer {
    const p = ctx.principal!;
    return { id: p.id, kind: p.kind, roles: p.roles, teams: p.teams, rules: ctx.ability.rules };
  }

  @Query(() => Node, { nullable: true, description: 'Any object by global ID; null when it does not exist or the caller may not read it' })
  @Policy({ action: 'read', subject: 'any' })
  async node(@Ctx() ctx: RequestContext, @Arg('id', () => ID) id: string) {
    const { type, key } = fromGlobalId(id);
    const spec = NODE_TYPES.get(type);
    if (!spec) throw badInput(`id is not the ID of an object this API serves`, { field: 'id', reason: CoreReason.WRONG_ID_TYPE });
    if (spec.key === 'id' && !isUuid(key)) throw badInput('id is not a valid ID', { field: 'id', reason: CoreReason.MALFORMED_ID });
    if (spec.key === 'seq' && !/^\d{1,15}$/.test(key)) throw badInput('id is not a valid ID', { field: 'id', reason: CoreReason.MALFORMED_ID });
    return ctx.loaders.byId(spec.entity as never, spec.subject, spec.key).load(key);
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
