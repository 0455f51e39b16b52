import type { RequestContext } from '../core/context';
import { AuditExport } from './audit-export.entity';

/**
 * An export by its key, for `node(id:)`: readable by those who may export audit events, as through
 * `auditExport(id:)` (an export holds download links to the events); null otherwise, like a missing
 * one — its requester too, once they may no longer export.
 */
export async function readableExport(ctx: RequestContext, key: string): Promise<AuditExport | null> {
  if (!ctx.ability.can('export', 'AuditEvent')) return null;
  return ctx.app.db.getRepository(AuditExport).findOne({ where: { id: key } });
}
