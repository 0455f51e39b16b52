import { ArgsType, Field, Int, ObjectType, type ClassType } from 'type-graphql';
import type { ObjectLiteral, SelectQueryBuilder } from 'typeorm';
import { badInput } from './errors';
import { CoreReason } from './error-reasons';

export const MAX_PAGE = 200;
export const DEFAULT_PAGE = 50;

@ArgsType()
export class PageArgs {
  @Field(() => Int, { nullable: true, description: `Page size, 1–${MAX_PAGE} (default ${DEFAULT_PAGE})` })
  first?: number | null;

  @Field(() => String, { nullable: true, description: 'Cursor of the last edge of the previous page' })
  after?: string | null;
}

@ObjectType({ description: 'Where a page of a connection stands: pass `endCursor` as `after` for the next page' })
export class PageInfo {
  @Field({ description: 'More edges follow this page' })
  hasNextPage!: boolean;

  @Field({ description: 'The page was asked for with `after`, so edges come before it (pages go forward only)' })
  hasPreviousPage!: boolean;

  @Field(() => String, { nullable: true, description: 'Cursor of the first edge; null on an empty page' })
  startCursor!: string | null;

  @Field(() => String, { nullable: true, description: 'Cursor of the last edge, for `after`; null on an empty page' })
  endCursor!: string | null;
}

export interface ConnectionShape<T> {
  edges: Array<{ cursor: string; node: T }>;
  nodes: T[];
  pageInfo: PageInfo;
  totalCount: Promise<number>;
}

/** A Relay connection type for `Item`: edges, nodes, pageInfo, totalCount (counted only when asked). */
export function Connection<T extends object>(Item: ClassType<T>, name = Item.name) {
  @ObjectType(`${name}Edge`, { description: `One ${name} of a page, with its cursor` })
  class Edge {
    @Field({ description: 'Opaque position of this edge: pass it as `after` to continue after it' })
    cursor!: string;

    @Field(() => Item, { description: `The ${name} at this position` })
    node!: T;
  }

  @ObjectType(`${name}Connection`, { description: `A page of ${name} records, newest first` })
  class Conn {
    @Field(() => [Edge], { description: 'The page, in order, each with its cursor' })
    edges!: Edge[];

    @Field(() => [Item], { description: 'The nodes of `edges`, for clients that do not need cursors' })
    nodes!: T[];

    @Field(() => PageInfo, { description: 'Whether more pages follow, and the cursors to reach them' })
    pageInfo!: PageInfo;

    count!: () => Promise<number>;

    @Field(() => Int, { description: 'All rows matching the filter that the caller may read' })
    get totalCount(): Promise<number> {
      return this.count();
    }
  }
  return Conn as unknown as ClassType<ConnectionShape<T>> & { new (): ConnectionShape<T> & { count: () => Promise<number> } };
}

/** Keys a page is ordered by: a timestamp column (millisecond precision) and the id. */
export interface KeysetOrder {
  alias: string;
  timeColumn: string;
  idColumn: string;
  /** Newest first unless 'ASC'. */
  direction?: 'ASC' | 'DESC';
  /** The ordering column holds whole numbers (a sequence), not times. */
  numeric?: boolean;
}

const ISO_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?Z$/;

function encodeCursor(time: Date | string | number, id: string): string {
  const t = time instanceof Date ? time.toISOString() : String(time);
  return Buffer.from(JSON.stringify([t, id])).toString('base64url');
}

function decodeCursor(cursor: string): [string, string] {
  try {
    const v = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
    if (Array.isArray(v) && v.length === 2 && typeof v[0] === 'string' && typeof v[1] === 'string') return [v[0], v[1]];
  } catch {
    // fall through
  }
  throw badInput('after is not a cursor this server issued', { field: 'after', reason: CoreReason.MALFORMED_CURSOR });
}

/**
 * Keyset pagination over an already filtered (and scoped) query: one statement for the page,
 * one more for totalCount only when the client selects it.
 */
export async function paginate<T extends ObjectLiteral, C extends ConnectionShape<T> & { count: () => Promise<number> }>(
  Conn: new () => C,
  qb: SelectQueryBuilder<T>,
  args: PageArgs,
  order: KeysetOrder,
  keyOf: (row: T) => [Date | string | number, string],
): Promise<C> {
  const first = args.first ?? DEFAULT_PAGE;
  if (!Number.isInteger(first) || first < 1 || first > MAX_PAGE) {
    throw badInput(`first must be between 1 and ${MAX_PAGE}`, { field: 'first', reason: CoreReason.PAGE_SIZE });
  }
  const dir = order.direction ?? 'DESC';
  const t = `${order.alias}.${order.timeColumn}`;
  const i = `${order.alias}.${order.idColumn}`;
  const countQb = qb.clone();
  const pageQb = qb.clone();
  if (args.after) {
    const [key, id] = decodeCursor(args.after);
    const cmp = dir === 'DESC' ? '<' : '>';
    // A cursor must fit the column it continues: whole numbers for sequences, ISO times otherwise.
    const numeric = order.numeric === true;
    const valid = numeric ? /^\d{1,15}$/.test(key) : ISO_TIME.test(key) && !Number.isNaN(Date.parse(key));
    if (!valid || id.length > 100) throw badInput('after is not a cursor this server issued', { field: 'after', reason: CoreReason.MALFORMED_CURSOR });
    pageQb.andWhere(`(${t}, ${i}::text) ${cmp} (:cursorKey, :cursorId)`, { cursorKey: numeric ? Number(key) : new Date(key), cursorId: id });
  }
  pageQb.orderBy(t, dir).addOrderBy(`${i}`, dir).take(undefined).limit(first + 1);
  const rows = await pageQb.getMany();
  const hasNextPage = rows.length > first;
  const page = rows.slice(0, first);
  const edges = page.map((node) => {
    const [time, id] = keyOf(node);
    return { cursor: encodeCursor(time, id), node };
  });
  const conn = new Conn();
  conn.edges = edges;
  conn.nodes = page;
  conn.pageInfo = Object.assign(new PageInfo(), {
    hasNextPage,
    hasPreviousPage: !!args.after,
    startCursor: edges[0]?.cursor ?? null,
    endCursor: edges[edges.length - 1]?.cursor ?? null,
  });
  let counted: Promise<number> | undefined;
  conn.count = () => (counted ??= countQb.orderBy().getCount());
  return conn;
}
