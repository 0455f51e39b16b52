import { Loaders } from './loaders';
import type { RequestContext, Rights } from './context';

/**
 * The context for one event of a subscription, derived from the operation's (which never changes):
 * the caller's rights as they are now, and loaders of its own, so that nothing is answered from an
 * earlier event's reads. `recheck`: `always` checks the credential and the operation's root fields
 * again for this event; `when-due` only when access changed anywhere since the last check, or a few
 * seconds passed (for streams of many events). Throws, the subscription having been ended, when the
 * credential or the rights no longer hold. Outside a subscription: the same caller, fresh loaders.
 */
export async function eventContext(ctx: RequestContext, recheck: 'always' | 'when-due' = 'always'): Promise<RequestContext> {
  if (!ctx.live) return withRights(ctx, null);
  const current = ctx.live.current();
  return withRights(ctx, recheck === 'always' || current.due ? await ctx.live.recheck() : current);
}

/** `ctx` with `rights` (null: its own), and loaders of its own. */
function withRights(ctx: RequestContext, rights: Rights | null): RequestContext {
  const { principal, ability } = rights ?? ctx;
  return { ...ctx, principal, ability, loaders: new Loaders(ctx.app.db, ability) };
}
