import { fromGlobalId } from '../src/core/global-id';
import { EDGE_KINDS, LineageDirection, NODE_ENTITIES, traverseLineage } from '../src/lineage/lineage-graph';
import { contextFor } from '../src/app/request-context';
import { startTestServer } from '../test/support/harness';
import { writeLineageFixture } from '../test/support/lineage-fixture';
import { percentile, printTable, timeIt } from './stats';

const QUERY = `query L($id: ID!, $depth: Int!) { lineage(id: $id, direction: BOTH, depth: $depth) { nodes { __typename id } edges { from to relation } } }`;

/** One recursive CTE that returns the same node set (ids and rows): the floor the traversal is compared with. */
function recursiveCte(): string {
  const edges = EDGE_KINDS.map((k) => `SELECT l.${k.fromCol} AS a, l.${k.toCol} AS b FROM ${k.link} l WHERE l.${k.fromCol} IS NOT NULL`).join(' UNION ALL ');
  const joins = Object.values(NODE_ENTITIES)
    .map((n, i) => `LEFT JOIN ${n.table} t${i} ON t${i}.id = w.id`)
    .join(' ');
  const row = `COALESCE(${Object.values(NODE_ENTITIES)
    .map((_, i) => `to_jsonb(t${i})`)
    .join(', ')})`;
  return `WITH RECURSIVE e AS (SELECT a, b FROM (${edges}) x UNION ALL SELECT b, a FROM (${edges}) y),
    walk(id, depth) AS (SELECT $1::uuid, 0 UNION SELECT e.b, w.depth + 1 FROM walk w JOIN e ON e.a = w.id WHERE w.depth < $2)
    SELECT w.id, ${row} AS node FROM (SELECT DISTINCT id FROM walk) w ${joins}`;
}

export async function lineageBench(): Promise<void> {
  const runs = Number(process.env.BENCH_RUNS ?? 30);
  const t = await startTestServer();
  try {
    const db = t.server.app.db;
    const fx = await writeLineageFixture(db, { team: 'bench', width: 100, layers: 8 });
    const depth = 20;
    const admin = t.token(['admin'], ['bench']);
    const viewer = t.token(['viewer'], ['bench']);
    const root = fx.midDatasetVersion;
    const rootKey = fromGlobalId(root).key;
    const rows: Array<Record<string, string | number>> = [];

    const cteSql = recursiveCte();
    const cteNodes: Array<{ id: string }> = await db.query(cteSql, [rootKey, depth]);
    const cteTimes = await timeIt(() => db.query(cteSql, [rootKey, depth]), runs);
    const cteP50 = percentile(cteTimes, 50);

    for (const [who, token] of [
      ['admin', admin],
      ['viewer (rules in SQL)', viewer],
    ] as const) {
      const ctx = await contextFor(t.server.app, `Bearer ${token}`, 'bench');
      const before = t.server.statements.count;
      const result = await traverseLineage(ctx, root, LineageDirection.BOTH, depth);
      const statements = t.server.statements.count - before;
      const ids = new Set(result.nodes.map((n) => fromGlobalId(n.nodeId).key));
      const same = ids.size === cteNodes.length && cteNodes.every((n) => ids.has(n.id));
      const service = await timeIt(() => traverseLineage(ctx, root, LineageDirection.BOTH, depth), runs);
      const beforeHttp = t.server.statements.count;
      await t.gql(token, QUERY, { id: root, depth });
      const httpStatements = t.server.statements.count - beforeHttp;
      const http = await timeIt(() => t.gql(token, QUERY, { id: root, depth }), runs);
      rows.push({
        principal: who,
        path: 'traverseLineage (in process)',
        nodes: ids.size,
        edges: result.edges.length,
        levels: statements - 1,
        statements,
        'p50 ms': percentile(service, 50),
        'p95 ms': percentile(service, 95),
        'vs CTE': `${(percentile(service, 50) / cteP50).toFixed(2)}x`,
        'same set': same ? 'yes' : 'NO',
      });
      rows.push({
        principal: who,
        path: 'GraphQL over HTTP',
        nodes: ids.size,
        edges: result.edges.length,
        levels: statements - 1,
        statements: httpStatements,
        'p50 ms': percentile(http, 50),
        'p95 ms': percentile(http, 95),
        'vs CTE': `${(percentile(http, 50) / cteP50).toFixed(2)}x`,
        'same set': same ? 'yes' : 'NO',
      });
    }
    rows.push({
      principal: 'admin',
      path: 'one recursive CTE (floor)',
      nodes: cteNodes.length,
      edges: '-',
      levels: '-',
      statements: 1,
      'p50 ms': cteP50,
      'p95 ms': percentile(cteTimes, 95),
      'vs CTE': '1.00x',
      'same set': 'yes',
    });
    printTable(
      `lineage: generated graph of ${fx.nodeCount} nodes (8 layers x 100 dataset versions, 100 runs, 100 model versions, 10 deployments); BOTH from a mid-layer dataset version, depth ${depth}; ${runs} runs each. Target: p50 <= 3x the CTE, over HTTP too.`,
      rows,
    );
  } finally {
    await t.stop();
  }
}
