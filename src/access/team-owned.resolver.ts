import { Ctx, FieldResolver, Resolver, Root } from 'type-graphql';
import { Team } from './team.entity';
import type { RequestContext } from '../core/context';
import { TeamOwnedEntity } from './team-owned.entity';

/** `team` on every team-owned type, through the request's scoped loader. */
@Resolver(() => TeamOwnedEntity)
export class TeamOwnedFieldResolver {
  @FieldResolver(() => Team, { nullable: true, description: 'The owning team (null if the caller may not read it)' })
  team(@Root() r: TeamOwnedEntity, @Ctx() ctx: RequestContext) {
    return ctx.loaders.byId(Team, 'Team').load(r.teamId);
  }
}
