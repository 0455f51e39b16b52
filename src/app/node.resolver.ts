import { Arg, Ctx, ID, Query, Resolver } from 'type-graphql';
import { readableExport } from '../audit/audit-export.node';
import type { RequestContext } from '../core/context';
import { CoreReason } from '../core/error-reasons';
import { badInput } from '../core/errors';
import { fromGlobalId, isUuid } from '../core/global-id';
import { Node } from '../core/node';
import { Policy } from '../core/policy';
import { isKind, KINDS, type KindSpec, type NodeKind, type SubjectName } from '../core/subjects';
import { readableIteration } from '../monitoring/iteration.resolver';
import { readableApproval } from '../registry/approval.node';
import { ENTITIES } from './entities';

/** Kinds that are not CASL subjects of their own are read through the rules of what they belong to. */
const OWN_READERS: Record<Exclude<NodeKind, SubjectName>, (ctx: RequestContext, key: string) => Promise<object | null>> = {
  Approval: readableApproval,
  AuditExport: readableExport,
  Iteration: readableIteration,
};

// The entity of each kind, by name (the subject table's name is the entity's class name).
const ENTITY_OF = new Map<string, Function>(ENTITIES.map((e) => [e.name, e]));

const KEY_FORMAT: Record<NonNullable<KindSpec['node']>, (key: string) => boolean> = {
  id: isUuid,
  seq: (key) => /^\d{1,15}$/.test(key),
  name: () => true,
};

/** `node(id:)`: any object by its global ID, through the caller's read scope; every kind the subject table marks as a node. */
@Resolver()
export class NodeResolver {
  @Query(() => Node, { nullable: true, description: 'Any object by global ID; null when it does not exist or the caller may not read it' })
  @Policy({ action: 'read', subject: 'any' })
  async node(@Ctx() ctx: RequestContext, @Arg('id', () => ID, { description: 'A global ID, as any `id` field answers it' }) id: string) {
    const { type, key } = fromGlobalId(id);
    // isKind looks at own properties only: client text never finds `constructor` or `__proto__`.
    const spec: KindSpec | undefined = isKind(type) ? KINDS[type] : undefined;
    if (!spec?.node) throw badInput(`id is not the ID of an object this API serves`, { field: 'id', reason: CoreReason.WRONG_ID_TYPE });
    if (!KEY_FORMAT[spec.node](key)) throw badInput('id is not a valid ID', { field: 'id', reason: CoreReason.MALFORMED_ID });
    const kind = type as NodeKind;
    if (kind in OWN_READERS) return OWN_READERS[kind as keyof typeof OWN_READERS](ctx, key);
    return ctx.loaders.byId(ENTITY_OF.get(kind) as never, kind as SubjectName, spec.node).load(key);
  }
}
