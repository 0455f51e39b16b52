import { Field, ID, ObjectType, registerEnumType } from 'type-graphql';
import type { DataSource, EntityMetadata } from 'typeorm';
import { accessibleSql, positional } from '../core/casl-sql';
import { KINDS, LINEAGE_KINDS, type LineageKind, type SubjectName } from '../core/subjects';
import type { RequestContext } from '../core/context';
import { badInput, notFound } from '../core/errors';
import { fromGlobalId, isUuid, toGlobalId } from '../core/global-id';
import { Node } from '../core/node';
import { CoreReason } from '../core/error-reasons';

export enum LineageDirection {
  UPSTREAM = 'UPSTREAM',
  DOWNSTREAM = 'DOWNSTREAM',
  BOTH = 'BOTH',
}
registerEnumType(LineageDirection, {
  name: 'LineageDirection',
  description: 'UPSTREAM: what it came from; DOWNSTREAM: what came from it',
  valuesConfig: {
    UPSTREAM: { description: 'Follow edges against their direction: the inputs it came from' },
    DOWNSTREAM: { description: 'Follow edges in their direction: what was made from it' },
    BOTH: { description: 'Either way at each step, so that relatives such as other runs of the same inputs are reached too' },
  },
});

export enum LineageRelation {
  DERIVED = 'DERIVED',
  USED = 'USED',
  PRODUCED = 'PRODUCED',
  SERVES = 'SERVES',
  SAMPLED = 'SAMPLED',
}
registerEnumType(LineageRelation, {
  name: 'LineageRelation',
  description: 'Edges point downstream: DERIVED (dataset version → derived dataset version), USED (input → training run), PRODUCED (training run → model version), SERVES (model version → deployment), SAMPLED (deployment → dataset version sampled from its production traffic)',
  valuesConfig: {
    DERIVED: { description: 'DatasetVersion → a DatasetVersion derived from it' },
    USED: { description: 'DatasetVersion, CodeVersion, Config, SeedSet, Environment or base ModelVersion → the TrainingRun that used it' },
    PRODUCED: { description: 'TrainingRun → the ModelVersion it produced' },
    SERVES: { description: 'ModelVersion → a Deployment that routes traffic to it' },
    SAMPLED: { description: 'Deployment → a DatasetVersion sampled from its production traffic' },
  },
});

@ObjectType({ description: 'A directed lineage edge, from the upstream node to the downstream one' })
export class LineageEdge {
  @Field(() => ID, { description: 'Global ID of the upstream node' })
  from!: string;

  @Field(() => ID, { description: 'Global ID of the downstream node' })
  to!: string;

  @Field(() => LineageRelation, { description: 'How the two are related' })
  relation!: LineageRelation;
}

@ObjectType({ description: 'The part of the lineage graph reachable from a node that the caller may read' })
export class Lineage {
  @Field(() => Node, { description: 'The node the traversal started from' })
  root!: Node;

  @Field(() => [Node], { description: 'Every node reached, the root first; nodes the caller may not read are left out and not traversed' })
  nodes!: Node[];

  @Field(() => [LineageEdge], { description: 'Every edge traversed between nodes of `nodes`' })
  edges!: LineageEdge[];

  @Field({ description: 'The traversal stopped at the node limit before reaching the requested depth' })
  truncated!: boolean;
}

type NodeType = LineageKind;

/** Each lineage node kind's table, from the subject table: kinds of later domains are named there, not imported. */
export const NODE_ENTITIES = Object.fromEntries(LINEAGE_KINDS.map((k) => [k, { table: KINDS[k].lineage }])) as Record<NodeType, { table: string }>;
export const LINEAGE_NODE_TYPES = LINEAGE_KINDS;

/** One kind of edge: rows of `link` join `fromCol` (upstream id) to `toCol` (downstream id). */
export interface EdgeKind {
  relation: LineageRelation;
  from: NodeType;
  to: NodeType;
  link: string;
  fromCol: string;
  toCol: string;
}

export const EDGE_KINDS: EdgeKind[] = [
  { relation: LineageRelation.DERIVED, from: 'DatasetVersion', to: 'DatasetVersion', link: 'dataset_version_parent', fromCol: 'parent_id', toCol: 'child_id' },
  { relation: LineageRelation.USED, from: 'DatasetVersion', to: 'TrainingRun', link: 'training_run_dataset', fromCol: 'dataset_version_id', toCol: 'training_run_id' },
  { relation: LineageRelation.USED, from: 'CodeVersion', to: 'TrainingRun', link: 'training_run', fromCol: 'code_version_id', toCol: 'id' },
  { relation: LineageRelation.USED, from: 'Config', to: 'TrainingRun', link: 'training_run', fromCol: 'config_id', toCol: 'id' },
  { relation: LineageRelation.USED, from: 'SeedSet', to: 'TrainingRun', link: 'training_run', fromCol: 'seed_set_id', toCol: 'id' },
  { relation: LineageRelation.USED, from: 'Environment', to: 'TrainingRun', link: 'training_run', fromCol: 'environment_id', toCol: 'id' },
  { relation: LineageRelation.USED, from: 'ModelVersion', to: 'TrainingRun', link: 'training_run', fromCol: 'base_model_version_id', toCol: 'id' },
  { relation: LineageRelation.PRODUCED, from: 'TrainingRun', to: 'ModelVersion', link: 'model_version', fromCol: 'training_run_id', toCol: 'id' },
  { relation: LineageRelation.SERVES, from: 'ModelVersion', to: 'Deployment', link: 'traffic_share', fromCol: 'model_version_id', toCol: 'deployment_id' },
  { relation: LineageRelation.SAMPLED, from: 'Deployment', to: 'DatasetVersion', link: 'dataset_version_sample', fromCol: 'deployment_id', toCol: 'dataset_version_id' },
];

/** Turns a row read as jsonb back into an entity instance (dates, numbers and getters included). */
function hydrate(db: DataSource, type: NodeType, json: Record<string, unknown>): object {
  const meta: EntityMetadata = db.getMetadata(type);
  const row = meta.create() as Record<string, unknown>;
  for (const col of meta.columns) {
    let v = json[col.databaseName];
    if (v === undefined) continue;
    if (v !== null && (col.type === 'timestamptz' || col.type === Date)) v = new Date(v as string);
    else if (v !== null && col.type === 'bigint') v = Number(v);
    row[col.propertyName] = v;
  }
  return row;
}

/** One row of the traversal: a node reached (with its row and depth), or an edge between two of them. */
interface Found {
  /** `node`, or `edge` (then `kind` is the edge kind's index in {@link EDGE_KINDS}). */
  what: 'node' | 'edge';
  kind: number | null;
  /** node: its type and id; edge: its upstream end. */
  a_type: NodeType;
  a_id: string;
  /** edge: its downstream end. */
  b_type: NodeType | null;
  b_id: string | null;
  node: Record<string, unknown> | null;
}

/**
 * The traversal as one recursive statement: the root ($1, of `rootType`), depth ($2) and the node
 * count past which the walk goes no further ($3); the caller's read rules are inside it, on
 * the far node of every edge, so nodes the caller may not read are neither returned nor traversed.
 * It returns each reached node once (its row, nearest first), then each edge leaving a node nearer
 * than `depth` toward a node the caller may read: what a breadth-first walk, level by level,
 * traverses (its far node is one of the nodes returned, unless the node limit cut it off).
 */
function lineageStatement(ability: RequestContext['ability'], rootType: NodeType, direction: LineageDirection, bind: (value: unknown) => string): string {
  // The edges as the walk may take them: from `a` to `b`, b readable; `kind` names the edge kind,
  // `down` whether a is its upstream end.
  const steps: string[] = [];
  const scopes = new Map<NodeType, string>();
  const scope = (t: NodeType) => {
    if (!scopes.has(t)) scopes.set(t, accessibleSql(ability, 'read', t as SubjectName, 'n', bind));
    return scopes.get(t)!;
  };
  EDGE_KINDS.forEach((k, i) => {
    if (direction !== LineageDirection.UPSTREAM) {
      steps.push(
        `SELECT l.${k.fromCol} AS a, '${k.from}'::text AS a_type, n.id AS b, '${k.to}'::text AS b_type, ${i} AS kind, TRUE AS down
         FROM ${k.link} l JOIN ${NODE_ENTITIES[k.to].table} n ON n.id = l.${k.toCol} WHERE ${scope(k.to)}`,
      );
    }
    if (direction !== LineageDirection.DOWNSTREAM) {
      steps.push(
        `SELECT l.${k.toCol} AS a, '${k.to}'::text AS a_type, n.id AS b, '${k.from}'::text AS b_type, ${i} AS kind, FALSE AS down
         FROM ${k.link} l JOIN ${NODE_ENTITIES[k.from].table} n ON n.id = l.${k.fromCol} WHERE ${scope(k.from)}`,
      );
    }
  });
  // Each reached node's row from its own table (one short branch per kind, not one join over all of them).
  const rows = (Object.keys(NODE_ENTITIES) as NodeType[]).map(
    (t, i) =>
      `SELECT 'node'${i ? '' : ' AS what'}, NULL::int${i ? '' : ' AS kind'}, r.type${i ? '' : ' AS a_type'}, r.id::text${i ? '' : ' AS a_id'}, NULL::text${i ? '' : ' AS b_type'}, NULL::text${i ? '' : ' AS b_id'}, to_jsonb(n)${i ? '' : ' AS node'}, r.depth
      FROM reached r JOIN ${NODE_ENTITIES[t].table} n ON n.id = r.id WHERE r.type = '${t}'`,
  );
  // BOTH reaches an edge from either end: from its upstream end u, taken downstream, it is listed
  // whenever u is nearer than the depth; from its downstream end v, upstream, it is needed only when
  // u is not, which can happen only when v is one step short of the depth (u is at most one step
  // further than v).
  // Materialised: the edges the caller may take are read once (each end keyed by kind and id),
  // then every level of the walk and the edge list join them in memory. The walk keeps one row per
  // level: its frontier and every node reached so far, so that no node is walked twice.
  return `WITH RECURSIVE step AS MATERIALIZED (SELECT a_type || ':' || a AS ak, b_type || ':' || b AS bk, kind, down FROM (${steps.join('\nUNION ALL\n')}) e),
    walk(frontier, seen, depth) AS (
      SELECT ARRAY['${rootType}:' || $1::text], ARRAY['${rootType}:' || $1::text], 0
      UNION ALL
      SELECT x.next, w.seen || x.next, w.depth + 1
      FROM walk w, LATERAL (
        SELECT array_agg(DISTINCT s.bk) AS next
        FROM unnest(w.frontier) f(k) JOIN step s ON s.ak = f.k
        LEFT JOIN unnest(w.seen) v(k) ON v.k = s.bk
        WHERE v.k IS NULL
      ) x
      WHERE w.depth < $2 AND x.next IS NOT NULL AND cardinality(w.seen) <= $3
    ),
    reached AS MATERIALIZED (
      SELECT f.k, split_part(f.k, ':', 1) AS type, split_part(f.k, ':', 2)::uuid AS id, w.depth FROM walk w, unnest(w.frontier) f(k) WHERE w.depth > 0
    )
    ${rows.join('\nUNION ALL\n')}
    UNION ALL
    SELECT 'edge', s.kind, split_part(CASE WHEN s.down THEN s.ak ELSE s.bk END, ':', 1), split_part(CASE WHEN s.down THEN s.ak ELSE s.bk END, ':', 2),
           split_part(CASE WHEN s.down THEN s.bk ELSE s.ak END, ':', 1), split_part(CASE WHEN s.down THEN s.bk ELSE s.ak END, ':', 2), NULL, a.depth
    FROM (SELECT k, depth FROM reached UNION ALL SELECT '${rootType}:' || $1::text, 0) a JOIN step s ON s.ak = a.k
    WHERE a.depth < $2${direction === LineageDirection.BOTH ? ' AND (s.down OR a.depth = $2 - 1)' : ''}
    ORDER BY 1 DESC, 8`;
}

/**
 * The part of the lineage graph reachable from `id` within `depth` steps that the caller may read,
 * read in two statements: the root (with the caller's rules), then the walk, breadth first, as
 * one recursive statement with the caller's rules on every node it reaches (see
 * {@link lineageStatement}). Nodes the caller may not read are neither returned nor traversed. At
 * most `maxNodes` nodes (the nearest) and five edges per node allowed are returned; beyond them the
 * answer says it is truncated.
 */
export async function traverseLineage(
  ctx: RequestContext,
  id: string,
  direction: LineageDirection,
  depth: number,
  maxNodes = ctx.app.config.maxLineageNodes,
): Promise<Lineage> {
  const maxEdges = maxNodes * 5;
  if (!Number.isInteger(depth) || depth < 0 || depth > ctx.app.config.maxLineageDepth) {
    throw badInput(`depth must be between 0 and ${ctx.app.config.maxLineageDepth}`, { field: 'depth' });
  }
  const decoded = fromGlobalId(id);
  if (!(LINEAGE_NODE_TYPES as string[]).includes(decoded.type) || !isUuid(decoded.key)) {
    throw badInput(`id must be the ID of a ${LINEAGE_NODE_TYPES.join(', ')}`, { field: 'id', reason: CoreReason.WRONG_ID_TYPE });
  }
  const rootType = decoded.type as NodeType;
  const db = ctx.app.db;
  const rootParams: unknown[] = [decoded.key];
  const rootScope = accessibleSql(ctx.ability, 'read', rootType as SubjectName, 'n', positional(rootParams));
  const rootRows: Array<{ node: Record<string, unknown> }> = await db.query(
    `SELECT to_jsonb(n) AS node FROM ${NODE_ENTITIES[rootType].table} n WHERE n.id = $1 AND ${rootScope}`,
    rootParams,
  );
  if (rootRows.length === 0) throw notFound(`${rootType} ${id}`);
  const root = hydrate(db, rootType, rootRows[0].node) as Node;
  if (depth === 0) return Object.assign(new Lineage(), { root, nodes: [root], edges: [], truncated: false });

  // The walk stops going further once it has reached more than maxNodes nodes.
  const params: unknown[] = [decoded.key, depth, maxNodes];
  const found: Found[] = await db.query(lineageStatement(ctx.ability, rootType, direction, positional(params)), params);
  const nodes = new Map<string, object>([[decoded.key, root]]);
  let truncated = false;
  const edges = new Map<string, LineageEdge>();
  for (const f of found) {
    if (f.what === 'node') {
      if (nodes.has(f.a_id)) continue;
      if (nodes.size >= maxNodes) {
        truncated = true;
        continue;
      }
      nodes.set(f.a_id, hydrate(db, f.a_type, f.node!));
      continue;
    }
    if (!nodes.has(f.a_id) || !nodes.has(f.b_id!)) continue;
    const kind = EDGE_KINDS[f.kind!];
    const key = `${f.a_id}>${f.b_id}>${kind.relation}`;
    if (edges.has(key)) continue;
    if (edges.size >= maxEdges) {
      truncated = true;
      break;
    }
    edges.set(key, { from: toGlobalId(f.a_type, f.a_id), to: toGlobalId(f.b_type!, f.b_id!), relation: kind.relation });
  }
  return Object.assign(new Lineage(), { root, nodes: [...nodes.values()] as Node[], edges: [...edges.values()], truncated });
}
