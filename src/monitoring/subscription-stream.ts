import type { RequestContext } from '../core/context';
import { eventContext } from '../core/subscription-context';

/**
 * The events of `source` the subscriber may have, checked one by one: the caller's credential and
 * rights are checked again when access changed anywhere since the last check (and at least every
 * few seconds), then `keep` decides with the context of that event. A credential that no longer
 * holds ends the subscription with UNAUTHENTICATED.
 */
export async function* filtered<T>(ctx: RequestContext, source: AsyncIterable<T>, keep: (event: T, now: RequestContext) => boolean): AsyncGenerator<T> {
  for await (const event of source) {
    if (keep(event, await eventContext(ctx, 'when-due'))) yield event;
  }
}
