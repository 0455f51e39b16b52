import type { RequestContext } from '../core/context';
import { AuditExport } from './audit-export.entity';

/**
 * An export by its key, for `node(id:)`: readable by whoever requested it and by those who may
 * export audit events (as `auditExport(id:)`); null otherwise, like a missing one.
 */
export async function readableExport(ctx: RequestContext, key: string): Promise<AuditExport | null> {
  const row = await ctx.app.db.getRepository(AuditExport).findOne({ where: { id: key } });
  if (!row) return null;
  return row.requestedBy === ctx.principal?.id || ctx.ability.can('export', 'AuditEvent') ? row : null;
}
