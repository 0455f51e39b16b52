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

interface Found {
  relation: LineageRelation;
  from_type: NodeType;
  from_id: string;
  to_type: NodeType;
  to_id: string;
  node_type: NodeType;
  node: Record<string, unknown> | null;
}

/**
 * Breadth-first traversal, one SQL statement per level: every edge kind adjacent to the frontier,
 * joined to the far node's table and filtered by the caller's read rules, in one UNION ALL.
 * Nodes the caller may not read are neither returned nor traversed.
 */
export async function traverseLineage(
  ctx: RequestContext,
  id: string,
  direction: LineageDirection,
  depth: number,
  maxNodes = ctx.app.config.maxLineageNodes,
): Promise<Lineage> {
  // Edges are bounded too: each level reads at most what is left of this budget (+1 to notice).
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

  const nodes = new Map<string, object>([[decoded.key, root]]);
  const edges = new Map<string, { from: string; to: string; edge: LineageEdge }>();
  let frontier = new Map<NodeType, string[]>([[rootType, [decoded.key]]]);
  let truncated = false;

  for (let level = 1; level <= depth && frontier.size > 0; level++) {
    const params: unknown[] = [];
    const bind = positional(params);
    // Bound on first use: a parameter no branch refers to would have no type PostgreSQL can infer.
    const placeholders = new Map<NodeType, string>();
    const frontierParam = {
      has: (t: NodeType) => frontier.has(t),
      get: (t: NodeType) => {
        if (!placeholders.has(t)) placeholders.set(t, bind(frontier.get(t)));
        return placeholders.get(t)!;
      },
    };
    // Rows of nodes already returned are not sent again (their edges still are).
    const visited = bind([...nodes.keys()]);
    const branches: string[] = [];
    const scopeCache = new Map<NodeType, string>();
    const scope = (t: NodeType) => {
      if (!scopeCache.has(t)) scopeCache.set(t, accessibleSql(ctx.ability, 'read', t as SubjectName, 'n', bind));
      return scopeCache.get(t)!;
    };
    for (const k of EDGE_KINDS) {
      if (direction !== LineageDirection.UPSTREAM && frontierParam.has(k.from)) {
        branches.push(
          `SELECT '${k.relation}' AS relation, '${k.from}' AS from_type, l.${k.fromCol}::text AS from_id, '${k.to}' AS to_type, n.id::text AS to_id, '${k.to}' AS node_type, CASE WHEN n.id = ANY(${visited}::uuid[]) THEN NULL ELSE to_jsonb(n) END AS node
           FROM ${k.link} l JOIN ${NODE_ENTITIES[k.to].table} n ON n.id = l.${k.toCol}
           WHERE l.${k.fromCol} = ANY(${frontierParam.get(k.from)}::uuid[]) AND ${scope(k.to)}`,
        );
      }
      if (direction !== LineageDirection.DOWNSTREAM && frontierParam.has(k.to)) {
        branches.push(
          `SELECT '${k.relation}' AS relation, '${k.from}' AS from_type, n.id::text AS from_id, '${k.to}' AS to_type, l.${k.toCol}::text AS to_id, '${k.from}' AS node_type, CASE WHEN n.id = ANY(${visited}::uuid[]) THEN NULL ELSE to_jsonb(n) END AS node
           FROM ${k.link} l JOIN ${NODE_ENTITIES[k.from].table} n ON n.id = l.${k.fromCol}
           WHERE l.${k.toCol} = ANY(${frontierParam.get(k.to)}::uuid[]) AND ${scope(k.from)}`,
        );
      }
    }
    if (branches.length === 0) break;
    const budget = maxEdges - edges.size;
    const found: Found[] = await db.query(`SELECT * FROM (${branches.join('\nUNION ALL\n')}) level LIMIT ${budget + 1}`, params);
    if (found.length > budget) {
      truncated = true;
      found.length = budget;
    }
    const next = new Map<NodeType, string[]>();
    for (const f of found) {
      const edgeKey = `${f.from_id}>${f.to_id}>${f.relation}`;
      if (!edges.has(edgeKey)) {
        edges.set(edgeKey, { from: f.from_id, to: f.to_id, edge: { from: toGlobalId(f.from_type, f.from_id), to: toGlobalId(f.to_type, f.to_id), relation: f.relation } });
      }
      if (!f.node) continue;
      const nodeId = f.node.id as string;
      if (!nodes.has(nodeId)) {
        if (nodes.size >= maxNodes) {
          truncated = true;
          continue;
        }
        nodes.set(nodeId, hydrate(db, f.node_type, f.node));
        if (!next.has(f.node_type)) next.set(f.node_type, []);
        next.get(f.node_type)!.push(nodeId);
      }
    }
    frontier = next;
    if (truncated) break;
  }
  // Edges whose far node was cut by the node limit would dangle: keep only edges between returned nodes.
  const kept = [...edges.values()].filter((e) => nodes.has(e.from) && nodes.has(e.to)).map((e) => e.edge);
  return Object.assign(new Lineage(), { root, nodes: [...nodes.values()] as Node[], edges: kept, truncated });
}
