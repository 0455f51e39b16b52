import { audit } from '../core/audit/audit-chain';
import { assertCan, mapDbError } from '../core/authz';
import { inTransaction, type RequestContext } from '../core/context';
import { badInput, notFound } from '../core/errors';
import { toGlobalId } from '../core/global-id';
import type { CreateTeamInput } from './access.inputs';
import { announceAccessChange } from './principal-cache';
import { Team } from './team.entity';

/** The team a new row belongs to: the named one, or the caller's only team. */
export async function resolveTeam(ctx: RequestContext, name: string | null | undefined): Promise<Team> {
  const repo = (ctx.em ?? ctx.app.db.manager).getRepository(Team);
  if (name) {
    const team = await repo.findOne({ where: { name } });
    if (!team) throw notFound(`Team "${name}"`);
    return team;
  }
  const own = ctx.principal?.teamIds ?? [];
  if (own.length !== 1) throw badInput('team is required (the caller belongs to more than one team, or none)', { field: 'team' });
  return repo.findOneOrFail({ where: { id: own[0] } });
}

/**
 * Creates a team. Principals already claiming its name (in their token or key) belong to it from
 * now on, so this is an access change.
 */
export async function createTeam(ctx: RequestContext, input: CreateTeamInput): Promise<Team> {
  const created = await inTransaction(ctx, async (em, ctx) => {
    const team = em.create(Team, { name: input.name, description: input.description ?? null });
    assertCan(ctx, 'create', 'Team', { ...team, teamId: undefined });
    await em.insert(Team, team).catch((e) => mapDbError(e, `Team "${input.name}"`));
    await audit(ctx, { action: 'createTeam', subjectType: 'Team', subjectId: toGlobalId('Team', team.id), after: team });
    return team;
  });
  announceAccessChange(ctx.app);
  return created;
}
