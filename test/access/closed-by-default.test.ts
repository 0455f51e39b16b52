import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { operationsFor } from '../support/operations';
import { codeOf, startTestServer, type TestServer } from '../support/harness';

describe('closed by default', () => {
  let t: TestServer;
  before(async () => {
    t = await startTestServer({ demo: true });
  });
  after(async () => t?.stop());

  it('answers UNAUTHENTICATED on every Query and Mutation field without a token', async () => {
    const ops = [...operationsFor(t.server.schema, 'Query'), ...operationsFor(t.server.schema, 'Mutation')];
    assert.ok(ops.length > 30, `expected the whole API, found ${ops.length} root fields`);
    for (const op of ops) {
      const r = await t.gql(null, op.query, op.variables);
      assert.equal(codeOf(r), 'UNAUTHENTICATED', `${op.field}: ${JSON.stringify(r.errors ?? r.data)}`);
      assert.ok(r.errors![0].extensions.requestId, `${op.field}: error carries a request id`);
    }
  });

  it('answers UNAUTHENTICATED for a forged or expired token', async () => {
    const forged = t.token(['admin'], ['fraud']).slice(0, -2) + 'xx';
    assert.equal(codeOf(await t.gql(forged, '{ teams { totalCount } }')), 'UNAUTHENTICATED');
    const jwt = await import('jsonwebtoken');
    const expired = jwt.default.sign({ roles: ['admin'], teams: [], exp: Math.floor(Date.now() / 1000) - 60 }, 'test-secret-that-is-long-enough-for-hs256-0123456789', { subject: 'x' });
    assert.equal(codeOf(await t.gql(expired, '{ teams { totalCount } }')), 'UNAUTHENTICATED');
    const none = jwt.default.sign({ roles: ['admin'], teams: [], sub: 'x', exp: Math.floor(Date.now() / 1000) + 60 }, '', { algorithm: 'none' as never });
    assert.equal(codeOf(await t.gql(none, '{ teams { totalCount } }')), 'UNAUTHENTICATED');
  });

  it('answers FORBIDDEN on every field but viewer for a principal without roles, whatever the arguments', async () => {
    const token = t.token([], ['fraud']);
    const ops = [...operationsFor(t.server.schema, 'Query'), ...operationsFor(t.server.schema, 'Mutation')];
    for (const op of ops) {
      const r = await t.gql(token, op.query, op.variables);
      if (op.field === 'viewer') {
        assert.equal(r.errors, undefined, JSON.stringify(r.errors));
        continue;
      }
      assert.equal(codeOf(r), 'FORBIDDEN', `${op.field}: ${JSON.stringify(r.errors ?? r.data)}`);
    }
    // Malformed IDs and invalid inputs change nothing in the answer: authorization comes first.
    const bad = await t.gql(token, 'mutation { setTrafficSplit(input: { deployment: "!!", trafficSplit: [{ modelVersion: "??", weight: 7 }] }) { id } }');
    assert.equal(codeOf(bad), 'FORBIDDEN');
    const badNode = await t.gql(token, '{ node(id: "not-an-id") { id } }');
    assert.equal(codeOf(badNode), 'FORBIDDEN');
  });

  it('records denied mutation attempts in the audit trail', async () => {
    const token = t.token([], ['fraud'], 'nobody');
    await t.gql(token, 'mutation { createModel(input: { name: "x" }) { id } }');
    const rows = await t.sql(`SELECT decision, action, actor_id FROM audit_event WHERE actor_id = 'nobody'`);
    assert.deepEqual(rows, [{ decision: 'DENIED', action: 'createModel', actor_id: 'nobody' }]);
  });
});
