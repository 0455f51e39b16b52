import type { EntityTarget, ObjectLiteral, SelectQueryBuilder } from 'typeorm';
import type { SubjectName } from './subjects';
import type { RequestContext } from './context';
import { paginate, type ConnectionShape, type PageArgs } from './pagination';

/**
 * A page of the rows of `subject` the caller may read, filtered in SQL: the read rules become part
 * of the WHERE clause, so pages and totalCount are right. Newest first, by created_at then id.
 */
export function listConnection<T extends ObjectLiteral & { id: string; createdAt: Date }, C extends ConnectionShape<T> & { count: () => Promise<number> }>(
  ctx: RequestContext,
  Conn: new () => C,
  entity: EntityTarget<T>,
  subject: SubjectName,
  args: PageArgs,
  filter: (qb: SelectQueryBuilder<T>) => void,
): Promise<C> {
  const qb = ctx.app.db.getRepository(entity).createQueryBuilder('x').where('TRUE');
  filter(qb);
  ctx.loaders.scope(qb, subject, 'x');
  return paginate(Conn, qb, args, { alias: 'x', timeColumn: 'created_at', idColumn: 'id' }, (row) => [row.createdAt, row.id]);
}

/** `x.team_id` matches the named team (no extra statement). */
export function whereTeam<T extends ObjectLiteral>(qb: SelectQueryBuilder<T>, team: string | null | undefined, column = 'x.team_id'): void {
  if (team) qb.andWhere(`${column} = (SELECT t.id FROM team t WHERE t.name = :filterTeam)`, { filterTeam: team });
}
