import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { EntityManager } from 'typeorm';
import { createTeam } from '../../src/access/team.service';
import { contextFor } from '../../src/app/request-context';
import { inTransaction } from '../../src/core/context';
import { toGlobalId } from '../../src/core/global-id';
import { startTestServer, type TestServer } from '../support/harness';

/** Resolves for everyone once `n` callers have arrived. */
function barrier(n: number): () => Promise<void> {
  let arrived = 0;
  let open!: () => void;
  const opened = new Promise<void>((resolve) => (open = resolve));
  return async () => {
    if (++arrived === n) open();
    await opened;
  };
}

const txid = async (em: EntityManager): Promise<string> => (await em.query('SELECT txid_current()::text AS id'))[0].id;

describe('one request, several transactions', () => {
  let t: TestServer;

  before(async () => {
    t = await startTestServer();
  });
  after(async () => t?.stop());

  it('two pieces of work of one request, resolved concurrently, each keep their own transaction: one failing never takes the other with it', async () => {
    // One request's context, as two root fields of one operation would share it.
    const ctx = await contextFor(t.server.app, `Bearer ${t.token(['admin'], [], 'ada-admin')}`, 'one-operation');
    // Both transactions are open before either goes on: where a shared context would let one join the other.
    const bothOpen = barrier(2);
    const seen: Record<string, { own: string; nested: string }> = {};
    const field = (name: string, fail: boolean) =>
      inTransaction(ctx, async (em, ctx) => {
        const own = await txid(em);
        await bothOpen();
        // A service and a nested transaction, both through the context this work was handed.
        const team = await createTeam(ctx, { name, description: null });
        seen[name] = { own, nested: await inTransaction(ctx, (nestedEm) => txid(nestedEm)) };
        if (fail) throw new Error(`${name} refused after its writes`);
        return team;
      });
    const [kept, dropped] = await Promise.allSettled([field('kept-team', false), field('dropped-team', true)]);

    assert.equal(kept.status, 'fulfilled');
    assert.equal(dropped.status, 'rejected');
    assert.notEqual(seen['kept-team'].own, seen['dropped-team'].own, 'two transactions');
    assert.equal(seen['kept-team'].nested, seen['kept-team'].own, 'nested work of the kept field ran in its own transaction');
    assert.equal(seen['dropped-team'].nested, seen['dropped-team'].own, 'nested work of the failed field ran in its own transaction');
    // The request's context itself was never given a transaction.
    assert.equal(ctx.em, undefined);

    // What a user sees afterwards: the kept team, committed with its one audit event in the same
    // transaction; nothing of the failed one.
    const teams = await t.sql<{ name: string; id: string; xmin: string }>(`SELECT name, id, xmin::text FROM team WHERE name IN ('kept-team', 'dropped-team')`);
    assert.deepEqual(teams.map((r) => r.name), ['kept-team']);
    const events = await t.sql<{ subject_id: string; request_id: string; xmin: string }>(
      `SELECT subject_id, request_id, xmin::text FROM audit_event WHERE action = 'createTeam' ORDER BY seq`,
    );
    assert.deepEqual(
      events.map((e) => [e.subject_id, e.request_id]),
      [[toGlobalId('Team', teams[0].id), 'one-operation']],
    );
    assert.equal(events[0].xmin, teams[0].xmin, 'the audit event committed with the change it describes');
  });
});
