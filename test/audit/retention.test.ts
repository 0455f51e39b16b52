import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { verifyExport } from '../../src/audit/audit-export.verify';
import { applyRetention } from '../../src/audit/audit-retention.service';
import { ConfigError, loadConfig } from '../../src/config';
import { systemContext } from '../../src/access/system-context';
import { runAuditVerify } from '../support/audit';
import { appendGeneratedEvents } from '../support/audit-chain';
import { startTestServer, type TestServer } from '../support/harness';

const DAY = 24 * 3600 * 1000;

describe('audit retention', () => {
  let t: TestServer;
  let auditor: string;

  before(async () => {
    t = await startTestServer();
    auditor = t.token(['auditor'], [], 'audrey-auditor');
  });
  after(async () => t?.stop());

  it('refuses a retention below six months at boot, and defaults to 400 days', () => {
    assert.throws(() => loadConfig({ NODE_ENV: 'test', AUDIT_RETENTION_DAYS: '182' }), (e: Error) => e instanceof ConfigError && /AUDIT_RETENTION_DAYS: must be at least 183 days/.test(e.message));
    assert.equal(loadConfig({ NODE_ENV: 'test', DATA_DIR: t.config.dataDir, SECRETS_DIR: t.config.secretsDir }).auditRetentionDays, 400);
  });

  it('rolls old events into a signed checkpoint; the rest of the chain and its exports still verify', async () => {
    const [{ n: old }] = await t.sql<{ n: number }>('SELECT count(*)::int AS n FROM audit_event');
    assert.ok(old > 0);
    // Newer events: stamped ten days ahead, so a retention pass run "401 days from now" keeps them.
    await appendGeneratedEvents(t.server.app.db, 300, { startAt: new Date(Date.now() + 10 * DAY) });
    const r = await applyRetention(systemContext(t.server.app, { id: 'test:retention' }), { now: new Date(Date.now() + 401 * DAY) });
    assert.equal(r.removed, old);
    assert.equal(r.checkpoint!.seq, old);
    const [{ first }] = await t.sql<{ first: number }>('SELECT min(seq)::int AS first FROM audit_event');
    assert.equal(first, old + 1);
    const [event] = await t.sql(`SELECT action, actor_id FROM audit_event ORDER BY seq DESC LIMIT 1`);
    assert.deepEqual(event, { action: 'applyAuditRetention', actor_id: 'test:retention' });

    const verified = await runAuditVerify(t);
    assert.equal(verified.code, 0, verified.stdout + verified.stderr);
    assert.match(verified.stdout, /audit chain intact: 301 events/);

    const res = await fetch(`${t.url}/audit/export?format=ndjson`, { headers: { authorization: `Bearer ${auditor}` } });
    const text = await res.text();
    const v = verifyExport(text);
    assert.equal(v.ok, true, v.problem ?? '');
    assert.equal(v.manifest!.firstSeq, old + 1);
    assert.equal(v.manifest!.prevHash, r.checkpoint!.hash);

    // A second pass has nothing older to take.
    const again = await applyRetention(systemContext(t.server.app, { id: 'test:retention' }), { now: new Date(Date.now() + 401 * DAY) });
    assert.equal(again.checkpoint, null);
  });

  it('still refuses ordinary DELETE and UPDATE, and DELETE beyond the checkpoint even with the retention setting', async () => {
    await assert.rejects(t.sql('DELETE FROM audit_event WHERE seq = (SELECT max(seq) FROM audit_event)'), /append-only/);
    await assert.rejects(t.sql(`UPDATE audit_event SET actor_id = 'mallory' WHERE seq = (SELECT max(seq) FROM audit_event)`), /append-only/);
    const db = t.server.app.db;
    await assert.rejects(
      db.transaction(async (em) => {
        await em.query(`SELECT set_config('modelgov.audit_retention', 'on', true)`);
        await em.query('DELETE FROM audit_event WHERE seq = (SELECT max(seq) FROM audit_event)');
      }),
      /append-only/,
    );
    await assert.rejects(t.sql(`UPDATE audit_checkpoint SET hash = repeat('0', 64)`), /append-only/);
  });

  it('a forged checkpoint (not signed by the audit key) makes audit verify fail', async () => {
    const [{ max }] = await t.sql<{ max: number }>('SELECT max(seq)::int AS max FROM audit_event');
    await t.sql(
      `INSERT INTO audit_checkpoint (seq, hash, event_count, last_occurred_at, key_id, signature, created_at)
       SELECT seq, hash, seq, occurred_at, 'forged', 'AAAA', now() FROM audit_event WHERE seq = $1`,
      [max - 1],
    );
    const verified = await runAuditVerify(t);
    assert.equal(verified.code, 1);
    assert.match(verified.stdout, /checkpoint at event \d+ is not signed by the audit key/);
  });
});
