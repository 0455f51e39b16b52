import { getMetadataStorage, UseMiddleware, type MiddlewareFn } from 'type-graphql';
import type { GraphQLSchema } from 'graphql';
import type { ActionName, KindName, SubjectName } from './subjects';
import { recordDenial } from './audit/audit-chain';
import type { RequestContext } from './context';
import { AppError, ErrorCode, forbidden, unauthenticated } from './errors';
import { assertStorable } from './validation';

/**
 * What a root field requires:
 * - `{ action, subject }`: an authenticated principal whose ability allows `action` on at least
 *   some `subject` (the service then checks the instance, and lists filter in SQL);
 *   `subject: 'any'` for fields whose subject type is known only from the arguments (node, lineage);
 * - `{ authenticated: reason }`: any authenticated principal;
 * - `{ public: reason }`: anyone, with the reason on record.
 */
export type PolicySpec =
  | { action: ActionName; subject: SubjectName | 'any' }
  | { authenticated: string }
  | { public: string };

const policies = new Map<Function, Map<string, PolicySpec>>();

function describe(spec: PolicySpec): string {
  if ('public' in spec) return `public (${spec.public})`;
  if ('authenticated' in spec) return `authenticated (${spec.authenticated})`;
  return `${spec.action} ${spec.subject}`;
}

function typeLevelAllowed(ctx: RequestContext, spec: { action: ActionName; subject: SubjectName | 'any' }): boolean {
  if (spec.subject !== 'any') return ctx.ability.can(spec.action, spec.subject);
  return ctx.ability.rules.some((r) => !r.inverted && (r.action === 'manage' || ([] as string[]).concat(r.action).includes(spec.action)));
}

/** The policy check on its own, for code paths middleware does not wrap (a subscription's start). */
export function authorizeField(ctx: RequestContext, spec: PolicySpec): void {
  if ('public' in spec) return;
  if (!ctx.principal) throw ctx.authError ?? unauthenticated();
  if (!('authenticated' in spec) && !typeLevelAllowed(ctx, spec)) {
    throw forbidden(`Not allowed to ${spec.action} ${spec.subject === 'any' ? 'this' : spec.subject}`);
  }
}

function guard(spec: PolicySpec): MiddlewareFn<RequestContext> {
  return async ({ context: ctx, info, args }, next) => {
    if ('public' in spec) return next();
    if (!ctx.principal) throw ctx.authError ?? unauthenticated();
    const isMutation = info.parentType.name === 'Mutation';
    try {
      if (!('authenticated' in spec) && !typeLevelAllowed(ctx, spec)) {
        throw forbidden(`Not allowed to ${spec.action} ${spec.subject === 'any' ? 'this' : spec.subject}`);
      }
      assertStorable(args, info.fieldName);
      return await next();
    } catch (e) {
      // NOT_FOUND marked `denied` (an id the caller cannot see, whether hidden or missing) is a refused attempt too.
      if (isMutation && e instanceof AppError && (e.code === ErrorCode.FORBIDDEN || e.details.denied === true)) {
        throw await recordDenial(
          ctx,
          {
            action: info.fieldName,
            subjectType: (e.details.subjectType as KindName | undefined) ?? ('subject' in spec && spec.subject !== 'any' ? spec.subject : 'Mutation'),
            subjectId: (e.details.subjectId as string) ?? null,
            reason: e.message,
          },
          e,
        );
      }
      throw e;
    }
  };
}

/** Declares the policy of a Query, Mutation or Subscription field, and enforces it before anything else runs. */
export function Policy(spec: PolicySpec): MethodDecorator {
  return (target, propertyKey, descriptor) => {
    const cls = target.constructor;
    if (!policies.has(cls)) policies.set(cls, new Map());
    policies.get(cls)!.set(String(propertyKey), spec);
    UseMiddleware(guard(spec))(target, propertyKey, descriptor);
  };
}

export interface RootFieldPolicy {
  field: string;
  policy: string;
}

/**
 * Every root field with its declared policy, sorted. Throws when any field has none: the server
 * refuses to start rather than serve an unguarded field.
 */
export function rootFieldPolicies(schema: GraphQLSchema): RootFieldPolicy[] {
  const storage = getMetadataStorage();
  const declared = new Map<string, PolicySpec>();
  const kinds: Array<[string, ReadonlyArray<{ target: Function; methodName: string; schemaName: string }>]> = [
    ['Query', storage.queries],
    ['Mutation', storage.mutations],
    ['Subscription', storage.subscriptions],
  ];
  for (const [root, handlers] of kinds) {
    for (const h of handlers) {
      const spec = policies.get(h.target)?.get(h.methodName);
      if (spec) declared.set(`${root}.${h.schemaName}`, spec);
    }
  }
  const out: RootFieldPolicy[] = [];
  const missing: string[] = [];
  for (const type of [schema.getQueryType(), schema.getMutationType(), schema.getSubscriptionType()]) {
    if (!type) continue;
    for (const name of Object.keys(type.getFields())) {
      const key = `${type.name}.${name}`;
      const spec = declared.get(key);
      if (!spec) missing.push(key);
      else out.push({ field: key, policy: describe(spec) });
    }
  }
  if (missing.length) throw new Error(`refusing to start: root fields without a policy: ${missing.join(', ')}`);
  return out.sort((a, b) => a.field.localeCompare(b.field));
}

/** The declared policy of a Subscription root field (by its schema name), for checks made while it runs. */
export function subscriptionPolicy(field: string): PolicySpec | undefined {
  const handler = getMetadataStorage().subscriptions.find((h) => h.schemaName === field);
  return handler ? policies.get(handler.target)?.get(handler.methodName) : undefined;
}
