import { print, type DocumentNode, type ExecutionResult } from 'graphql';
import { Counter, Registry } from 'prom-client';
import type { AppAbility, Principal } from './ability';
import { canonicalJson } from './canonical-json';
import type { LiveRights, RequestContext } from './context';

/**
 * What decides a subscription's result for an event, the event and the caller aside: the document
 * as printed (white space, commas and comments do not count), the operation name and the variables
 * as canonical JSON (key order does not count). Null when the variables are not plain JSON: such an
 * operation is executed for itself alone.
 */
export function operationKey(document: DocumentNode, operationName: string | null | undefined, variables: Record<string, unknown> | null | undefined): string | null {
  try {
    return canonicalJson({ document: print(document), operationName: operationName ?? null, variables: variables ?? {} });
  } catch {
    return null;
  }
}

/**
 * The access class of a caller: the principal as authenticated and resolved (id, kind, roles, team
 * names and ids, whom it acts for; every field it has, so a field added later counts too) and the
 * rules of its ability as interpolated for it. Two callers are in one class only when both are the
 * same principal holding the same rules: equal rules alone are not enough, because what is executed
 * may read the principal itself (attribution of reads and denials, rules that tell people apart).
 * Null when either is not plain JSON: that caller is a class of its own.
 */
export function accessClass(principal: Principal, ability: AppAbility): string | null {
  try {
    return canonicalJson({ principal, rules: ability.rules });
  } catch {
    return null;
  }
}

/** An execution as the members of its class see it: its result when they may have it. */
interface Shared {
  result: ExecutionResult | null;
  /** The execution checked or ended its caller's subscription. */
  personal: boolean;
}

/** One subscription's standing with the fan-out: whether its events must be executed for it alone. */
export interface FanoutMember {
  /** The operation's key ({@link operationKey}); null: never shared. */
  readonly operation: string | null;
  /** Set once an execution of this operation asked for its caller's own rights check or ended it. */
  personal: boolean;
}

/**
 * Executes a subscription event once per distinct operation and access class on this instance, and
 * hands every subscriber of that class the same result, so that each is serialised to the same
 * bytes. Each subscriber still has its own rights checked for the event before it asks (the class
 * is computed from those rights), and still gets the result under its own subscription id.
 *
 * A result is shared only when it is necessarily the one every member would have got:
 * - it carries no errors (an error may be its caller's own: a request id, a credential refused);
 * - its execution did not check or end its caller's subscription (`live.recheck`, `live.end`): such
 *   an operation's events are, from then on, executed for each subscriber alone.
 * Results are held per event object, for as long as a subscriber still has that event to take.
 */
export class SubscriptionFanout {
  /** This server's subscription metrics (own registry: several servers in one process never share counters). */
  readonly registry = new Registry();
  private readonly executions = new Counter({
    name: 'modelgov_subscription_executions_total',
    help: 'Subscription events executed (once per operation and access class when shared, once per subscriber otherwise)',
    registers: [this.registry],
  });
  private readonly reused = new Counter({
    name: 'modelgov_subscription_results_shared_total',
    help: "Subscription event results sent to a subscriber from another subscriber's execution of the same operation and access class",
    registers: [this.registry],
  });
  private readonly byEvent = new WeakMap<object, Map<string, Promise<Shared>>>();
  private readonly classes = new WeakMap<AppAbility, WeakMap<Principal, string | null>>();
  private readonly serialised = new WeakMap<ExecutionResult, string>();

  /**
   * The `next` message of subscription `id` carrying `result` (without errors), as graphql-ws
   * writes it: `{"id":…,"type":"next","payload":…}`. The payload is serialised once per result, so
   * every subscriber handed a shared result costs one string concatenation, not a serialisation.
   */
  nextMessage(id: string, result: ExecutionResult): string {
    let payload = this.serialised.get(result);
    if (payload === undefined) {
      // graphql-ws sends a result's own fields (data, extensions) as its payload; errors never come here.
      const { errors: _errors, ...fields } = result;
      payload = JSON.stringify(fields);
      this.serialised.set(result, payload);
    }
    return `{"id":${JSON.stringify(id)},"type":"next","payload":${payload}}`;
  }

  /**
   * The result of `event` for `member`, whose rights for it are those of `ctx`: another member's of
   * the same class when one is (or is being) executed, else `run(ctx)`'s.
   */
  async execute(event: unknown, member: FanoutMember, ctx: RequestContext, run: (ctx: RequestContext) => Promise<ExecutionResult>): Promise<ExecutionResult> {
    const cls = ctx.principal ? this.classOf(ctx.principal, ctx.ability) : null;
    if (member.personal || member.operation === null || cls === null || typeof event !== 'object' || event === null) return this.count(run, ctx);
    const key = `${cls}\u0000${member.operation}`;
    let results = this.byEvent.get(event);
    if (!results) this.byEvent.set(event, (results = new Map()));
    const pending = results.get(key);
    if (pending) {
      const shared = await pending;
      if (shared.result) {
        this.reused.inc();
        return shared.result;
      }
      if (shared.personal) member.personal = true;
      return this.count(run, ctx);
    }
    let personal = false;
    const executed = this.count(run, { ...ctx, live: ctx.live && watched(ctx.live, () => (personal = true)) });
    results.set(
      key,
      executed.then(
        (r) => ({ result: personal || r.errors?.length ? null : r, personal }),
        () => ({ result: null, personal }),
      ),
    );
    const result = await executed;
    if (personal) member.personal = true;
    return result;
  }

  private count(run: (ctx: RequestContext) => Promise<ExecutionResult>, ctx: RequestContext): Promise<ExecutionResult> {
    this.executions.inc();
    return run(ctx);
  }

  private classOf(principal: Principal, ability: AppAbility): string | null {
    let byPrincipal = this.classes.get(ability);
    if (!byPrincipal) this.classes.set(ability, (byPrincipal = new WeakMap()));
    if (!byPrincipal.has(principal)) byPrincipal.set(principal, accessClass(principal, ability));
    return byPrincipal.get(principal)!;
  }
}

/** `live`, telling `used` when the execution checks or ends its caller's subscription. */
function watched(live: LiveRights, used: () => void): LiveRights {
  return {
    current: () => live.current(),
    recheck: () => {
      used();
      return live.recheck();
    },
    end: (reason) => {
      used();
      return live.end(reason);
    },
  };
}
