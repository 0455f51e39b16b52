import assert from 'node:assert/strict';
import { createHash, generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { appendFile, copyFile, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, afterEach, before, describe, it } from 'node:test';
import type { DataSource } from 'typeorm';
import { applyRetention } from '../../src/audit/audit-retention.service';
import { ConfigError, loadConfig } from '../../src/config';
import { canonicalJson } from '../../src/core/canonical-json';
import { openAppDatabase } from '../../src/app/database';
import { QUEUES } from '../../src/core/queue/queues';
import { systemContext } from '../../src/access/system-context';
import { runAuditCli, runAuditVerify } from '../support/audit';
import { anchorLines, asDatabaseOwner, chainHead, truncateChainTo } from '../support/audit-anchor';
import { appendGeneratedEvents } from '../support/audit-chain';
import { databaseUrlFor, dropDatabase, startTestServer, type TestServer } from '../support/harness';
import { eventually } from '../support/processes';

const DAY = 24 * 3600 * 1000;

/** An anchor line re-signed with `key` (and, when given, claiming `keyId`), after `edit`. */
function resigned(line: string, key: KeyObject, edit: (a: Record<string, unknown>) => void = () => undefined): string {
  const { signature: _dropped, ...body } = JSON.parse(line) as Record<string, unknown>;
  edit(body);
  return JSON.stringify({ ...body, signature: sign(null, Buffer.from(canonicalJson(body)), key).toString('base64') }) + '\n';
}

describe('audit chain anchors: truncation with a rewritten head is caught', () => {
  let t: TestServer;
  let file: string;
  const anchor = () => runAuditCli(t, ['audit', 'anchor'], { AUDIT_ANCHOR_FILE: file });
  const verify = (...files: string[]) => runAuditCli(t, ['audit', 'verify', ...files.flatMap((f) => ['--anchor', f])]);

  before(async () => {
    t = await startTestServer();
    file = path.join(t.config.dataDir, 'off-host', 'anchors.ndjson');
    await appendGeneratedEvents(t.server.app.db, 20);
  });
  after(async () => t?.stop());

  it('refuses a bad AUDIT_ANCHOR_EVERY_SECONDS at boot; anchors go under DATA_DIR unless AUDIT_ANCHOR_FILE says otherwise', () => {
    for (const bad of ['0', '1.5', 'often', '86401']) {
      assert.throws(
        () => loadConfig({ NODE_ENV: 'test', DATA_DIR: t.config.dataDir, AUDIT_ANCHOR_EVERY_SECONDS: bad }),
        (e: Error) => e instanceof ConfigError && /AUDIT_ANCHOR_EVERY_SECONDS/.test(e.message),
        bad,
      );
    }
    const defaults = loadConfig({ NODE_ENV: 'test', DATA_DIR: t.config.dataDir });
    assert.equal(defaults.auditAnchorEverySeconds, 300);
    assert.equal(defaults.auditAnchorFile, path.join(t.config.dataDir, 'audit-anchors.ndjson'));
    assert.equal(loadConfig({ NODE_ENV: 'test', DATA_DIR: t.config.dataDir, AUDIT_ANCHOR_FILE: file }).auditAnchorFile, file);
  });

  it('audit anchor publishes the signed head once: an unmoved head adds no line, even from several processes at once', async () => {
    const head = (await chainHead(t))!;
    const first = await anchor();
    assert.equal(first.code, 0, first.stdout + first.stderr);
    assert.match(first.stdout, new RegExp(`anchored event ${head.seq} \\(${head.hash}\\) to ${file.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}`));
    const [line] = await anchorLines(file);
    const [{ id, name }] = await t.sql<{ id: string; name: string }>('SELECT database_id::text AS id, current_database() AS name FROM audit_chain_identity');
    assert.deepEqual({ seq: line.seq, hash: line.hash, database: line.database }, { seq: head.seq, hash: head.hash, database: { id, name } });

    const again = await anchor();
    assert.equal(again.code, 0, again.stdout + again.stderr);
    assert.match(again.stdout, new RegExp(`already anchored: event ${head.seq}`));
    assert.equal((await anchorLines(file)).length, 1);

    const moved = await appendGeneratedEvents(t.server.app.db, 15);
    const together = await Promise.all([anchor(), anchor(), anchor()]);
    for (const r of together) assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.equal(together.filter((r) => /^anchored event/.test(r.stdout)).length, 1, together.map((r) => r.stdout).join(''));
    assert.deepEqual((await anchorLines(file)).map((a) => a.seq), [head.seq, moved.lastSeq]);
  });

  it('an untouched database passes audit verify --anchor', async () => {
    await appendGeneratedEvents(t.server.app.db, 5);
    const r = await verify(file);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /audit chain intact/);
    assert.match(r.stdout, /anchors verified: 2 signed by the audit key; 2 held by the chain, 0 inside retention checkpoints/);
  });

  describe('an attacker with the database', () => {
    const setIdentity = async (id: string) => {
      await t.sql('ALTER TABLE audit_chain_identity DISABLE TRIGGER USER');
      try {
        await t.sql('UPDATE audit_chain_identity SET database_id = $1', [id]);
      } finally {
        await t.sql('ALTER TABLE audit_chain_identity ENABLE TRIGGER USER');
      }
    };
    let identity: string;

    before(async () => {
      await t.sql('CREATE TABLE audit_event_pristine AS SELECT * FROM audit_event');
      await t.sql('CREATE TABLE audit_head_pristine AS SELECT * FROM audit_head');
      [{ identity }] = await t.sql<{ identity: string }>('SELECT database_id::text AS identity FROM audit_chain_identity');
    });
    // Each case starts from the untouched chain.
    afterEach(async () => {
      await asDatabaseOwner(t, 'DELETE FROM audit_event', 'INSERT INTO audit_event SELECT * FROM audit_event_pristine');
      await t.sql('UPDATE audit_head h SET seq = p.seq, hash = p.hash FROM audit_head_pristine p WHERE h.id = p.id');
      await setIdentity(identity);
      assert.equal((await verify(file)).code, 0);
    });

    it('deletes the newest events and rewrites audit_head to match: plain verify passes, verify --anchor names the truncation', async () => {
      const anchored = (await anchorLines(file)).at(-1)!.seq;
      const keep = anchored - 4;
      await truncateChainTo(t, keep);

      const plain = await runAuditVerify(t);
      assert.equal(plain.code, 0, 'the chain is consistent in itself: ' + plain.stdout);
      assert.match(plain.stdout, /audit chain intact/);

      const r = await verify(file);
      assert.equal(r.code, 5, r.stdout + r.stderr);
      assert.match(r.stdout, /anchors FAILED/);
      assert.match(r.stdout, new RegExp(`the chain was truncated: it ends at event ${keep}, but the anchor on line 2 of \\S+ \\(anchored [^)]+\\) vouches for event ${anchored}; events ${keep + 1}–${anchored} were removed`));

      // Publishing refuses to anchor the shortened chain, and leaves the file as it was.
      const before = await readFile(file, 'utf8');
      const refused = await anchor();
      assert.equal(refused.code, 1, refused.stdout + refused.stderr);
      assert.match(refused.stdout, new RegExp(`NOT anchored to .*the chain was truncated: it ends at event ${keep}`));
      assert.equal(await readFile(file, 'utf8'), before);
    });

    it('replaces the newest events by others re-hashed past the anchor: verify --anchor names the rewritten event', async () => {
      const anchors = await anchorLines(file);
      const anchored = anchors.at(-1)!.seq;
      await truncateChainTo(t, anchored - 3);
      await appendGeneratedEvents(t.server.app.db, 10);

      assert.equal((await runAuditVerify(t)).code, 0);
      const r = await verify(file);
      assert.equal(r.code, 6, r.stdout + r.stderr);
      assert.match(r.stdout, new RegExp(`the history was rewritten: event ${anchored} has hash [0-9a-f]{64} in the database, but the anchor on line 2 of \\S+ \\(anchored [^)]+\\) vouches for hash ${anchors.at(-1)!.hash}`));
    });

    it('also changes the database identity, so that the anchors look foreign: verify --anchor says the identity was changed', async () => {
      const anchored = (await anchorLines(file)).at(-1)!.seq;
      await truncateChainTo(t, anchored - 4);
      await setIdentity('00000000-0000-4000-8000-000000000000');

      const r = await verify(file);
      assert.equal(r.code, 6, r.stdout + r.stderr);
      assert.match(r.stdout, /the audit chain identity of this database was changed: 1 anchor\(s\) of "another database" vouch for events this chain holds/);
      assert.match(r.stdout, /line 2 of \S+ is an anchor of another database/);
    });
  });

  it('refuses a forged anchor: signed with another key, or edited after signing', async () => {
    const [, last] = (await readFile(file, 'utf8')).split('\n');
    const otherKey = generateKeyPairSync('ed25519');
    const otherKeyId = createHash('sha256').update(otherKey.publicKey.export({ format: 'der', type: 'spki' })).digest('hex').slice(0, 16);
    const cases: Array<{ name: string; line: string; problem: RegExp }> = [
      {
        name: 'another key, its own key id',
        line: resigned(last, otherKey.privateKey, (a) => ((a.keyId = otherKeyId), (a.seq = (a.seq as number) + 100))),
        problem: new RegExp(`is signed by key "${otherKeyId}", not by the audit key`),
      },
      {
        name: 'another key, claiming the audit key id',
        line: resigned(last, otherKey.privateKey, (a) => (a.seq = (a.seq as number) + 100)),
        problem: /has a signature that does not verify with the audit key \(forged or edited\)/,
      },
      {
        name: 'edited after signing',
        line: JSON.stringify({ ...JSON.parse(last), seq: JSON.parse(last).seq - 1 }) + '\n',
        problem: /has a signature that does not verify with the audit key \(forged or edited\)/,
      },
      { name: 'not an anchor', line: '{"type":"anchor","seq":1}\n', problem: /has other fields than an anchor's/ },
    ];
    for (const c of cases) {
      const forged = path.join(t.config.dataDir, `forged-${cases.indexOf(c)}.ndjson`);
      await copyFile(file, forged);
      await appendFile(forged, c.line);
      const r = await verify(forged);
      assert.equal(r.code, 3, `${c.name}: ${r.stdout}${r.stderr}`);
      assert.match(r.stdout, new RegExp(`line 3 of \\S+ is refused: it ${c.problem.source}`), c.name);
    }
    const empty = path.join(t.config.dataDir, 'empty.ndjson');
    await writeFile(empty, '');
    const r = await verify(empty);
    assert.equal(r.code, 3);
    assert.match(r.stdout, /empty\.ndjson holds no anchor/);
  });

  it("does not compare another database's anchors with this chain", async () => {
    const name = `${new URL(t.databaseUrl).pathname.slice(1)}_other`;
    let other: DataSource | undefined;
    try {
      other = await openAppDatabase(databaseUrlFor(name));
      await appendGeneratedEvents(other, 3);
      const otherFile = path.join(t.config.dataDir, 'other-database.ndjson');
      const published = await runAuditCli(t, ['audit', 'anchor'], { DATABASE_URL: databaseUrlFor(name), AUDIT_ANCHOR_FILE: otherFile });
      assert.equal(published.code, 0, published.stdout + published.stderr);
      const r = await verify(otherFile);
      assert.equal(r.code, 4, r.stdout + r.stderr);
      assert.match(r.stdout, new RegExp(`line 1 of \\S+ is an anchor of another database \\("${name}", id [0-9a-f-]{36}\\), not of this one`));
      // Nor is an anchor of this database published into a file of another's.
      const mixed = await runAuditCli(t, ['audit', 'anchor'], { AUDIT_ANCHOR_FILE: otherFile });
      assert.equal(mixed.code, 1);
      assert.match(mixed.stdout, /holds anchors of another database/);
    } finally {
      await other?.destroy();
      await dropDatabase(name);
    }
  });
});

describe('audit chain anchors: the periodic job, and retention', () => {
  let t: TestServer;

  before(async () => {
    t = await startTestServer({ env: { AUDIT_ANCHOR_EVERY_SECONDS: '1' } });
    await appendGeneratedEvents(t.server.app.db, 2);
  });
  after(async () => t?.stop());

  const anchoredHead = async () => {
    const head = await chainHead(t);
    const last = (await anchorLines(t.config.auditAnchorFile)).at(-1);
    return head && last?.seq === head.seq && last.hash === head.hash ? last.seq : undefined;
  };

  /** Waits for two more runs of the anchor job to finish (the second began after the first ended). */
  const twoMoreRuns = async () => {
    const queue = t.server.app.queues!.get(QUEUES.auditAnchor);
    for (let i = 0; i < 2; i++) {
      const [mark] = await queue.getJobs(['completed'], 0, 0, false);
      await eventually('another anchor run', async () => {
        const [newest] = await queue.getJobs(['completed'], 0, 0, false);
        return newest && newest.id !== mark?.id ? true : undefined;
      }, 60_000, 200);
    }
  };

  it('the worker anchors the head as it moves, once per head', async () => {
    await eventually('the head anchored by the worker', anchoredHead, 60_000, 200);
    await appendGeneratedEvents(t.server.app.db, 3);
    const seq = await eventually('the moved head anchored by the worker', anchoredHead, 60_000, 200);
    await twoMoreRuns();
    const lines = await anchorLines(t.config.auditAnchorFile);
    assert.equal(lines.at(-1)!.seq, seq, 'no line for an unmoved head');
    assert.equal(new Set(lines.map((l) => l.seq)).size, lines.length, 'one line per head');
    assert.ok(lines.length >= 2);
  });

  it('anchored events since rolled into a retention checkpoint still verify', async () => {
    const before = await anchorLines(t.config.auditAnchorFile);
    // Newer events, stamped ahead, so that a retention pass "401 days from now" keeps them.
    await appendGeneratedEvents(t.server.app.db, 5, { startAt: new Date(Date.now() + 10 * DAY) });
    await eventually('the future events anchored', anchoredHead, 60_000, 200);
    const r = await applyRetention(systemContext(t.server.app, { id: 'test:retention' }), { now: new Date(Date.now() + 401 * DAY) });
    assert.equal(r.checkpoint!.seq, before.at(-1)!.seq, 'the checkpoint ends at the last anchor before the future events');
    assert.ok(before.length >= 2 && before[0].seq < r.checkpoint!.seq, 'an older anchor lies inside the checkpoint');

    const verified = await runAuditCli(t, ['audit', 'verify', '--anchor', t.config.auditAnchorFile]);
    assert.equal(verified.code, 0, verified.stdout + verified.stderr);
    const [, anchors, held, rolledUp] = verified.stdout.match(/anchors verified: (\d+) signed by the audit key; (\d+) held by the chain, (\d+) inside retention checkpoints/)!.map(Number);
    assert.equal(held + rolledUp, anchors);
    assert.equal(rolledUp, before.length - 1);

    // Truncating behind the checkpoint's back is still caught.
    const anchored = await eventually('the retention event anchored', anchoredHead, 60_000, 200);
    await truncateChainTo(t, r.checkpoint!.seq + 2);
    const caught = await runAuditCli(t, ['audit', 'verify', '--anchor', t.config.auditAnchorFile]);
    assert.equal(caught.code, 5, caught.stdout + caught.stderr);
    assert.match(caught.stdout, new RegExp(`it ends at event ${r.checkpoint!.seq + 2}, but the anchor on line \\d+ of \\S+ \\(anchored [^)]+\\) vouches for event ${anchored}`));
  });
});
