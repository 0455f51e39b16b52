import DataLoader from 'dataloader';
import type { DataSource, EntityTarget, ObjectLiteral, SelectQueryBuilder } from 'typeorm';
import type { AppAbility } from './ability';
import { accessibleSql, named } from './casl-sql';
import type { SubjectName } from './subjects';

/**
 * Per-request DataLoaders. They batch; they do not decide who may read what: each is built with
 * the request's read scope (the SQL form of its CASL rules), which every batch query applies.
 */
export class Loaders {
  private readonly cache = new Map<string, DataLoader<string, unknown>>();

  constructor(
    private readonly db: DataSource,
    private readonly ability: AppAbility,
  ) {}

  /** Applies the read scope of `subject` to a query over `alias`. */
  scope<T extends ObjectLiteral>(qb: SelectQueryBuilder<T>, subject: SubjectName, alias: string, action = 'read'): SelectQueryBuilder<T> {
    const params: Record<string, unknown> = {};
    const sql = accessibleSql(this.ability, action, subject, alias, named(params, `s_${alias}_${action}`));
    return qb.andWhere(sql, params);
  }

  /** Rows by primary key, readable ones only (others resolve to null). */
  byId<T extends ObjectLiteral>(entity: EntityTarget<T>, subject: SubjectName, key = 'id'): DataLoader<string, T | null> {
    return this.get(`byId:${subject}:${key}`, async (ids) => {
      const qb = this.db.getRepository(entity).createQueryBuilder('x').where(`x.${key} IN (:...ids)`, { ids });
      const rows = await this.scope(qb, subject, 'x').getMany();
      const map = new Map(rows.map((r) => [String((r as Record<string, unknown>)[key]), r]));
      return ids.map((id) => map.get(id) ?? null);
    });
  }

  /** Readable rows whose `column` (snake_case) is one of the keys, grouped by key, in `order`. */
  byColumn<T extends ObjectLiteral>(
    entity: EntityTarget<T>,
    subject: SubjectName,
    column: string,
    order: Record<string, 'ASC' | 'DESC'> = {},
  ): DataLoader<string, T[]> {
    return this.get(`byColumn:${subject}:${column}`, async (keys) => {
      const qb = this.db.getRepository(entity).createQueryBuilder('x').where(`x.${column} IN (:...keys)`, { keys });
      for (const [k, dir] of Object.entries(order)) qb.addOrderBy(`x.${k}`, dir);
      const rows = await this.scope(qb, subject, 'x').getMany();
      const property = column.replace(/_([a-z])/g, (_m, c: string) => c.toUpperCase());
      const groups = new Map<string, T[]>(keys.map((k) => [k, []]));
      for (const r of rows) groups.get(String((r as Record<string, unknown>)[property]))?.push(r);
      return keys.map((k) => groups.get(k) ?? []);
    });
  }

  /**
   * Readable rows reached through a link table: `link.<from>` = key, `link.<to>` = row id.
   * Optional `linkWhere` narrows the links (e.g. only shares with weight > 0).
   */
  through<T extends ObjectLiteral>(
    entity: EntityTarget<T>,
    subject: SubjectName,
    link: { table: string; from: string; to: string; where?: string },
    order: Record<string, 'ASC' | 'DESC'> = {},
  ): DataLoader<string, T[]> {
    return this.get(`through:${subject}:${link.table}:${link.from}`, async (keys) => {
      const qb = this.db
        .getRepository(entity)
        .createQueryBuilder('x')
        .innerJoin(link.table, 'l', `l.${link.to} = x.id${link.where ? ` AND ${link.where}` : ''}`)
        .addSelect(`l.${link.from}`, 'link_key')
        .where(`l.${link.from} IN (:...keys)`, { keys });
      for (const [k, dir] of Object.entries(order)) qb.addOrderBy(`x.${k}`, dir);
      const { entities, raw } = await this.scope(qb, subject, 'x').getRawAndEntities();
      // One raw row per (link, entity); entities are de-duplicated by id, so pair them by id.
      const byId = new Map(entities.map((e) => [(e as Record<string, unknown>).id as string, e]));
      const groups = new Map<string, T[]>(keys.map((k) => [k, []]));
      for (const r of raw as Array<Record<string, unknown>>) {
        const e = byId.get(r.x_id as string);
        if (e) groups.get(String(r.link_key))?.push(e);
      }
      return keys.map((k) => groups.get(k) ?? []);
    });
  }

  /** A loader of anything, cached for the request under `name`. */
  get<V>(name: string, batch: (keys: readonly string[]) => Promise<V[]>): DataLoader<string, V> {
    let loader = this.cache.get(name) as DataLoader<string, V> | undefined;
    if (!loader) {
      loader = new DataLoader<string, V>(batch, { maxBatchSize: 1000 });
      this.cache.set(name, loader as DataLoader<string, unknown>);
    }
    return loader;
  }
}
