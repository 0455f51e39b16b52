import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startTestServer, type TestServer } from '../support/harness';
import { writeLineageFixture, type LineageFixture } from '../support/lineage-fixture';

const QUERY = `query L($id: ID!, $direction: LineageDirection!, $depth: Int!) {
  lineage(id: $id, direction: $direction, depth: $depth) {
    truncated
    nodes { __typename id ... on DatasetVersion { version sha256 } ... on ModelVersion { version status } ... on TrainingRun { runStatus: status } ... on Deployment { name } }
    edges { from to relation }
  }
}`;

describe('lineage statement budget', () => {
  let t: TestServer;
  let small: LineageFixture;
  let large: LineageFixture;
  let token: string;
  before(async () => {
    t = await startTestServer();
    small = await writeLineageFixture(t.server.app.db, { team: 'small', width: 3, layers: 6 });
    large = await writeLineageFixture(t.server.app.db, { team: 'large', width: 60, layers: 6 });
    token = t.token(['viewer'], ['small', 'large']);
  });
  after(async () => t?.stop());

  async function measure(id: string, direction: string, depth: number) {
    const before = t.server.statements.count;
    const r = await t.gql(token, QUERY, { id, direction, depth });
    const statements = t.server.statements.count - before;
    assert.equal(r.errors, undefined, JSON.stringify(r.errors));
    return { statements, nodes: r.data.lineage.nodes.length as number, edges: r.data.lineage.edges.length as number };
  }

  it('issues at most depth + 2 SQL statements per request, whatever the number of rows', async () => {
    const roots: Array<[keyof LineageFixture, string]> = [
      ['deployment', 'UPSTREAM'],
      ['rawDatasetVersion', 'DOWNSTREAM'],
      ['midDatasetVersion', 'BOTH'],
    ];
    for (const [root, direction] of roots) {
      for (let depth = 1; depth <= 8; depth++) {
        const s = await measure(small[root] as string, direction, depth);
        const l = await measure(large[root] as string, direction, depth);
        assert.ok(s.statements <= depth + 2, `small ${root} ${direction} depth ${depth}: ${s.statements} statements`);
        assert.ok(l.statements <= depth + 2, `large ${root} ${direction} depth ${depth}: ${l.statements} statements`);
        assert.ok(l.nodes >= s.nodes, 'the larger graph returns at least as many nodes');
      }
    }
    // The budget held while the answers differed by an order of magnitude in size.
    const s = await measure(small.deployment, 'UPSTREAM', 12);
    const l = await measure(large.deployment, 'UPSTREAM', 12);
    assert.ok(l.nodes > 3 * s.nodes, `large graph answered ${l.nodes} nodes, small ${s.nodes}`);
    assert.ok(l.statements <= 14 && s.statements <= 14);
  });

  it('walks the whole graph: downstream from a raw dataset version reaches the deployments', async () => {
    const r = await t.gql(token, QUERY, { id: large.rawDatasetVersion, direction: 'DOWNSTREAM', depth: 20 });
    const types = new Set(r.data.lineage.nodes.map((n: { __typename: string }) => n.__typename));
    assert.deepEqual([...types].sort(), ['DatasetVersion', 'Deployment', 'ModelVersion', 'TrainingRun']);
    const relations = new Set(r.data.lineage.edges.map((e: { relation: string }) => e.relation));
    assert.deepEqual([...relations].sort(), ['DERIVED', 'PRODUCED', 'SERVES', 'USED']);
    const ids = new Set(r.data.lineage.nodes.map((n: { id: string }) => n.id));
    for (const e of r.data.lineage.edges) assert.ok(ids.has(e.from) && ids.has(e.to), 'every edge joins two returned nodes');
  });

  it('refuses a depth beyond the limit and a non-lineage id', async () => {
    const deep = await t.gql(token, QUERY, { id: small.deployment, direction: 'UPSTREAM', depth: 1000 });
    assert.equal(deep.errors?.[0].extensions.code, 'BAD_USER_INPUT');
    const team = Buffer.from(`Team:${small.teamId}`).toString('base64url');
    const wrong = await t.gql(token, QUERY, { id: team, direction: 'BOTH', depth: 2 });
    assert.equal(wrong.errors?.[0].extensions.code, 'BAD_USER_INPUT');
  });

  it('stops at MAX_LINEAGE_NODES and says so', async () => {
    const capped = await startTestServer({ env: { MAX_LINEAGE_NODES: '50' } });
    try {
      const fx = await writeLineageFixture(capped.server.app.db, { team: 'capped', width: 30, layers: 4 });
      const r = await capped.gql(capped.token(['viewer'], ['capped']), QUERY, { id: fx.midDatasetVersion, direction: 'BOTH', depth: 20 });
      assert.equal(r.errors, undefined, JSON.stringify(r.errors));
      assert.equal(r.data.lineage.truncated, true);
      assert.equal(r.data.lineage.nodes.length, 50);
      const ids = new Set(r.data.lineage.nodes.map((n: { id: string }) => n.id));
      for (const e of r.data.lineage.edges) assert.ok(ids.has(e.from) && ids.has(e.to), 'no edge points outside the answer');
      const whole = await t.gql(token, QUERY, { id: large.midDatasetVersion, direction: 'BOTH', depth: 20 });
      assert.equal(whole.data.lineage.truncated, false, 'an answer under the limit is not marked truncated');
    } finally {
      await capped.stop();
    }
  });
});
