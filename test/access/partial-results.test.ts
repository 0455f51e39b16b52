import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startTestServer, type TestServer } from '../support/harness';

// Root Query and Mutation fields are nullable: a field refused (or failing) answers null with its
// own error, and the other root fields of the same operation still answer (mutations, run one
// after the other, each in its own transaction, still run after a refused one).
describe('partial results', () => {
  let t: TestServer;
  before(async () => {
    t = await startTestServer({ demo: true });
  });
  after(async () => t?.stop());

  it("a viewer asking for the audit trail beside its own data gets its data, and one FORBIDDEN for the audit trail", async () => {
    const viewer = t.token(['viewer'], ['fraud'], 'val-viewer');
    const r = await t.gql(viewer, '{ viewer { id } models { totalCount } auditEvents { totalCount } }');
    assert.equal(r.status, 200);
    assert.equal(r.errors?.length, 1, JSON.stringify(r.errors));
    const [e] = r.errors!;
    assert.equal(e.extensions.code, 'FORBIDDEN');
    assert.deepEqual(e.path, ['auditEvents']);
    assert.ok(e.extensions.requestId, 'the error carries the request id');
    assert.ok(r.data, 'data alongside the error');
    assert.equal(r.data.viewer.id, 'val-viewer');
    assert.ok(r.data.models.totalCount > 0, JSON.stringify(r.data.models));
    assert.equal(r.data.auditEvents, null);
    assert.deepEqual(Object.keys(r.data).sort(), ['auditEvents', 'models', 'viewer']);
  });

  it('the same fields for an auditor answer without errors', async () => {
    const auditor = t.token(['auditor'], [], 'ann-auditor');
    const r = await t.gql(auditor, '{ viewer { id } models { totalCount } auditEvents { totalCount } }');
    assert.equal(r.errors, undefined, JSON.stringify(r.errors));
    assert.equal(r.data.viewer.id, 'ann-auditor');
    assert.equal(typeof r.data.auditEvents.totalCount, 'number');
  });

  it('a caller without a credential gets UNAUTHENTICATED for each field it asked, and the public error catalogue', async () => {
    const r = await t.gql(null, '{ teams { totalCount } models { totalCount } errorReasons { reason } }');
    assert.equal(r.status, 200);
    assert.deepEqual(
      (r.errors ?? []).map((e) => [e.path, e.extensions.code]).sort((a, b) => String(a[0]).localeCompare(String(b[0]))),
      [
        [['models'], 'UNAUTHENTICATED'],
        [['teams'], 'UNAUTHENTICATED'],
      ],
      JSON.stringify(r.errors),
    );
    assert.equal(r.data.teams, null);
    assert.equal(r.data.models, null);
    assert.ok(r.data.errorReasons.some((x: { reason: string }) => x.reason === 'DENIALS_RATE_LIMITED'), 'the public field still answers');
  });

  it('a refused credential is answered per field the same way', async () => {
    const forged = t.token(['admin'], ['fraud']).slice(0, -2) + 'xx';
    const r = await t.gql(forged, '{ viewer { id } teams { totalCount } }');
    assert.deepEqual(r.data, { viewer: null, teams: null });
    assert.deepEqual(
      (r.errors ?? []).map((e) => e.extensions.code),
      ['UNAUTHENTICATED', 'UNAUTHENTICATED'],
      JSON.stringify(r.errors),
    );
  });

  it('a refused mutation answers null beside the mutations of the same operation, which run, commit and answer', async () => {
    const engineer = t.token(['ml-engineer'], ['fraud'], 'eve-engineer');
    const [{ seq }] = await t.sql<{ seq: number }>('SELECT coalesce(max(seq), 0)::int AS seq FROM audit_event');
    const r = await t.gql(
      engineer,
      `mutation {
        first: createModel(input: { team: "fraud", name: "partial-first" }) { name }
        refused: createTeam(input: { name: "partial-team" }) { id }
        last: createModel(input: { team: "fraud", name: "partial-last" }) { name }
      }`,
    );
    assert.deepEqual(r.data, { first: { name: 'partial-first' }, refused: null, last: { name: 'partial-last' } });
    assert.deepEqual((r.errors ?? []).map((e) => [e.path, e.extensions.code]), [[['refused'], 'FORBIDDEN']], JSON.stringify(r.errors));
    const models = await t.sql<{ name: string }>(`SELECT name FROM model WHERE name IN ('partial-first', 'partial-last') ORDER BY name`);
    assert.deepEqual(models.map((m) => m.name), ['partial-first', 'partial-last']);
    assert.equal((await t.sql(`SELECT 1 FROM team WHERE name = 'partial-team'`)).length, 0, 'the refused mutation changed nothing');
    // One audit event each, in the order they ran: the refusal recorded as DENIED.
    const events = await t.sql<{ action: string; decision: string }>('SELECT action, decision FROM audit_event WHERE seq > $1 AND actor_id = $2 ORDER BY seq', [seq, 'eve-engineer']);
    assert.deepEqual(
      events.map((e) => [e.action, e.decision]),
      [
        ['createModel', 'ALLOWED'],
        ['createTeam', 'DENIED'],
        ['createModel', 'ALLOWED'],
      ],
    );
  });
});
