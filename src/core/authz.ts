import { subjectOf } from './ability';
import type { ActionName, SubjectName } from './subjects';
import type { RequestContext } from './context';
import { AppError, ErrorCode, badInput, conflict, forbidden } from './errors';
import { toGlobalId } from './global-id';
import { CoreReason } from './error-reasons';

/** Throws FORBIDDEN (recorded as DENIED for mutations) unless the ability allows `action` on this row. */
export function assertCan(ctx: RequestContext, action: ActionName, subjectName: SubjectName, row: object, key = (row as { id?: string }).id): void {
  if (!ctx.ability.can(action, subjectOf(subjectName, row))) {
    const err = forbidden(`Not allowed to ${action} this ${subjectName}`);
    err.details.subjectType = subjectName;
    err.details.subjectId = key ? toGlobalId(subjectName, key) : null;
    throw err;
  }
}

/** Maps constraint violations to client errors; anything else is rethrown untouched. */
export function mapDbError(e: unknown, what: string): never {
  const code = (e as { code?: string; driverError?: { code?: string } }).driverError?.code ?? (e as { code?: string }).code;
  if (code === '23505') throw conflict(`${what} already exists`, { reason: CoreReason.DUPLICATE });
  if (code === '23503') throw new AppError(ErrorCode.CONFLICT, `${what} refers to, or is referred to by, another record`, { reason: CoreReason.REFERENCE });
  if (code === '23514') throw badInput(`${what} violates a constraint`);
  throw e;
}
