// What the access API lists: teams, roles and API keys, filtered in SQL through the caller's read scope.
import type { RequestContext } from '../core/context';
import { listConnection } from '../core/list';
import { paginate, type PageArgs } from '../core/pagination';
import { ApiKeyConnection, RoleConnection, TeamConnection, type RoleFilter, type TeamFilter } from './access.inputs';
import { ApiKey } from './api-key.entity';
import { Role } from './role.entity';
import { Team } from './team.entity';

/** A page of the teams the caller may read, newest first. */
export function listTeams(ctx: RequestContext, page: PageArgs, filter?: TeamFilter | null) {
  return listConnection(ctx, TeamConnection, Team, 'Team', page, (qb) => {
    if (filter?.name) qb.andWhere('x.name = :n', { n: filter.name });
  });
}

/** A page of the roles the caller may read, most recently changed first. */
export function listRoles(ctx: RequestContext, page: PageArgs, filter?: RoleFilter | null) {
  const qb = ctx.app.db.getRepository(Role).createQueryBuilder('x').where('TRUE');
  if (filter?.name) qb.andWhere('x.name = :n', { n: filter.name });
  if (filter?.builtIn !== undefined && filter?.builtIn !== null) qb.andWhere('x.built_in = :b', { b: filter.builtIn });
  ctx.loaders.scope(qb, 'Role', 'x');
  return paginate(RoleConnection, qb, page, { alias: 'x', timeColumn: 'updated_at', idColumn: 'name' }, (r) => [r.updatedAt, r.name]);
}

/** A page of the API keys the caller may read, newest first. */
export function listApiKeys(ctx: RequestContext, page: PageArgs) {
  return listConnection(ctx, ApiKeyConnection, ApiKey, 'ApiKey', page, () => undefined);
}
