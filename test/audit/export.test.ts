import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash, generateKeyPairSync, randomUUID } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import { eventHash, signManifest, type ExportManifest, type UnsignedManifest } from '../../src/audit/audit-export.format';
import { verifyExport } from '../../src/audit/audit-export.verify';
import { startTestServer, type TestServer } from '../support/harness';
import { eventually } from '../support/processes';

const run = promisify(execFile);

type Tamper = 'edit' | 'delete' | 'reorder' | 'insert';

/** Data lines of an export (NDJSON: all but the manifest; CSV: all but the header), as 0-based indexes into `lines`. */
function dataLines(format: 'ndjson' | 'csv', lines: string[]): number[] {
  const idx: number[] = [];
  lines.forEach((l, i) => {
    if (l === '') return;
    if (format === 'ndjson' && l.startsWith('{"type":"manifest"')) return;
    if (format === 'csv' && i === 0) return;
    idx.push(i);
  });
  return idx;
}

/** Changes one line of an export the way a forger would, without fixing anything else. */
function tamper(format: 'ndjson' | 'csv', text: string, how: Tamper, i: number): string {
  const lines = text.split('\n');
  const line = lines[i];
  if (how === 'edit') {
    if (line.includes('"omitted"') || line.startsWith('omitted,')) {
      // A hash-only line: change one hex digit of its hash.
      const m = /([0-9a-f]{64})"?,?(\s*"withheld"|,|$)/.exec(line.includes('"hash":') ? line.slice(line.indexOf('"hash":')) : line.slice(line.lastIndexOf('"', line.lastIndexOf('"') - 1) - 70));
      const hash = m![1];
      const flipped = (hash[0] === 'a' ? 'b' : 'a') + hash.slice(1);
      lines[i] = line.split(hash).join(flipped);
    } else {
      lines[i] = line.replace(format === 'ndjson' ? /"actorId" ?: ?"[^"]*"/ : /^(event,\d+,,"[^"]*",)"[^"]*"/, format === 'ndjson' ? '"actorId" : "mallory"' : '$1"mallory"');
      assert.notEqual(lines[i], line, 'the edit changed the line');
    }
  } else if (how === 'delete') {
    lines.splice(i, 1);
  } else if (how === 'reorder') {
    [lines[i], lines[i + 1]] = [lines[i + 1], lines[i]];
  } else {
    // A copy of another data line, placed before line i.
    const other = dataLines(format, lines).find((j) => Math.abs(j - i) > 2)!;
    lines.splice(i, 0, lines[other]);
  }
  return lines.join('\n');
}

describe('audit exports', () => {
  let t: TestServer;
  let auditor: string;
  let dir: string;

  before(async () => {
    t = await startTestServer({ demo: true });
    auditor = t.token(['auditor'], ['fraud', 'vision'], 'audrey-auditor');
    dir = await mkdtemp(path.join(os.tmpdir(), 'modelgov-export-'));
  });
  after(async () => {
    await t?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  const get = (pathAndQuery: string, token: string | null = auditor) =>
    fetch(`${t.url}${pathAndQuery}`, { headers: token ? { authorization: `Bearer ${token}` } : {} });
  const publicKey = async () => (await get('/audit/export/public-key', null)).text();

  async function exportOf(query: string): Promise<{ text: string; manifest: any; exportId: string }> {
    const res = await get(`/audit/export?${query}`);
    assert.equal(res.status, 200, await res.clone().text());
    const text = await res.text();
    const exportId = res.headers.get('x-audit-export-id')!;
    if (query.includes('format=csv')) {
      const m = await get(`/audit/exports/${exportId}/manifest`);
      assert.equal(m.status, 200);
      return { text, manifest: await m.json(), exportId };
    }
    const lines = text.trimEnd().split('\n');
    return { text, manifest: JSON.parse(lines[lines.length - 1]), exportId };
  }

  it('an auditor exports NDJSON that verifies offline, with a signed manifest and its own export audited', async () => {
    const [{ n: before }] = await t.sql<{ n: number }>('SELECT count(*)::int AS n FROM audit_event');
    const { text, manifest } = await exportOf('format=ndjson');
    const lines = text.trimEnd().split('\n');
    assert.equal(manifest.type, 'manifest');
    assert.equal(manifest.firstSeq, 1);
    assert.equal(manifest.lastSeq, before);
    assert.equal(manifest.events, before);
    assert.equal(manifest.prevHash, '0'.repeat(64));
    const [last] = await t.sql<{ hash: string }>('SELECT hash FROM audit_event WHERE seq = $1', [before]);
    assert.equal(manifest.lastHash, last.hash);
    assert.equal(lines.length, before + 1);
    const ok = verifyExport(text, { publicKeyPem: await publicKey() });
    assert.equal(ok.ok, true, ok.problem ?? '');
    assert.equal(ok.events, before);
    // The end of the export is recorded once the last byte is out.
    const actions = await eventually('the export to be recorded as finished', async () => {
      const rows = await t.sql<{ action: string; actor_id: string }>('SELECT action, actor_id FROM audit_event WHERE seq > $1 ORDER BY seq', [before]);
      return rows.length === 2 ? rows : undefined;
    });
    assert.deepEqual(actions, [
      { action: 'exportAuditEvents', actor_id: 'audrey-auditor' },
      { action: 'finishAuditExport', actor_id: 'audrey-auditor' },
    ]);
  });

  it('a filtered export shows matching events and the others by hash only; the chain still verifies', async () => {
    const { text, manifest } = await exportOf('format=ndjson&actor=demo:fraud-reviewer');
    const lines = text.trimEnd().split('\n').map((l) => JSON.parse(l));
    const events = lines.filter((l) => l.type === 'event');
    assert.ok(events.length >= 1);
    assert.ok(events.every((e) => e.actorId === 'demo:fraud-reviewer'));
    assert.equal(manifest.events, events.length);
    assert.equal(manifest.firstSeq, events[0].seq);
    assert.equal(manifest.lastSeq, events[events.length - 1].seq);
    assert.equal(manifest.filter.actor, 'demo:fraud-reviewer');
    const r = verifyExport(text);
    assert.equal(r.ok, true, r.problem ?? '');
  });

  it('CSV comes with its manifest; both verify together, and the CLI says so', async () => {
    const { text, manifest } = await exportOf('format=csv&action=registerDatasetVersion&to=2999-01-01T00:00:00Z');
    assert.match(text, /^kind,seq,seq_to,occurred_at,/);
    assert.match(text.split('\n')[1], /^event,\d+,,"/);
    assert.match(text, /\nomitted,\d+,\d+,/);
    const r = verifyExport(text, { manifest, publicKeyPem: await publicKey() });
    assert.equal(r.ok, true, r.problem ?? '');
    const file = path.join(dir, 'export.csv');
    await writeFile(file, text);
    await writeFile(path.join(dir, 'export.manifest.json'), JSON.stringify(manifest));
    await writeFile(path.join(dir, 'key.pem'), await publicKey());
    const cli = path.resolve(__dirname, '../../src/cli.js');
    const { stdout } = await run(process.execPath, [cli, 'audit', 'verify-export', file, '--public-key', path.join(dir, 'key.pem')], { env: { ...process.env, NODE_ENV: 'production' } });
    assert.match(stdout, /export verified: \d+ events shown, \d+ by hash only/);
    await writeFile(file, tamper('csv', text, 'edit', 1));
    const bad = await run(process.execPath, [cli, 'audit', 'verify-export', file], { env: process.env }).then(
      () => assert.fail('verify-export accepted a tampered file'),
      (e: { code: number; stdout: string }) => e,
    );
    assert.equal(bad.code, 1);
    assert.match(bad.stdout, /export INVALID at line 2: event \d+ was altered/);
  });

  for (const format of ['ndjson', 'csv'] as const) {
    it(`editing, deleting, reordering or inserting any kind of line of a ${format} export fails at that line`, async () => {
      const { text, manifest } = await exportOf(`format=${format}&actor=demo:fraud-engineer`);
      const opts = format === 'csv' ? { manifest } : {};
      assert.equal(verifyExport(text, opts).ok, true);
      const lines = text.split('\n');
      const data = dataLines(format, lines);
      const isOmitted = (i: number) => lines[i].includes('"omitted"') || lines[i].startsWith('omitted,');
      const firstOmitted = data.find(isOmitted)!;
      const firstEvent = data.find((i) => !isOmitted(i))!;
      const middleEvent = data.find((i) => i > firstOmitted && !isOmitted(i))!;
      const positions = [...new Set([data[0], firstEvent, middleEvent, firstOmitted, data[Math.floor(data.length / 2)], data[data.length - 2], data[data.length - 1]])];
      let cases = 0;
      for (const how of ['edit', 'delete', 'reorder', 'insert'] as Tamper[]) {
        for (const i of positions) {
          if (how === 'reorder' && i === data[data.length - 1]) continue;
          const r = verifyExport(tamper(format, text, how, i), opts);
          assert.equal(r.ok, false, `${how} of line ${i + 1} went unnoticed`);
          assert.equal(r.line, i + 1, `${how} of line ${i + 1} (${lines[i].slice(0, 60)}…) reported at line ${r.line}: ${r.problem}`);
          cases += 1;
        }
      }
      assert.ok(cases >= 20);
      // A manifest with its counts changed (and its signature kept) is refused too; one re-signed
      // with another key is the next test.
      const forged = { ...manifest, events: manifest.events + 1 };
      const rf = format === 'csv' ? verifyExport(text, { manifest: forged }) : verifyExport(text.replace(/\{"type":"manifest".*\n$/, JSON.stringify(forged) + '\n'));
      assert.equal(rf.ok, false);
    });
  }

  it("an export rewritten and re-signed with another key, its public key embedded, is refused once the server's key is pinned", async () => {
    const serverKey = await publicKey();
    const { text, manifest } = await exportOf('format=ndjson');
    // The forger's own Ed25519 key pair.
    const foreign = generateKeyPairSync('ed25519');
    const foreignPrivate = foreign.privateKey.export({ format: 'pem', type: 'pkcs8' }).toString();
    const foreignPublic = foreign.publicKey.export({ format: 'pem', type: 'spki' }).toString();
    const unsigned = (m: ExportManifest): UnsignedManifest => {
      const { type, version, algorithm, keyId, publicKey: embedded, signature, ...rest } = m;
      void [type, version, algorithm, keyId, embedded, signature];
      return rest;
    };
    // The whole attack: one event edited, every hash from it on recomputed, the digest and the
    // manifest's last hash updated, the manifest signed with the forger's key and carrying it.
    const lines = text.trimEnd().split('\n').slice(0, -1).map((l) => JSON.parse(l) as Record<string, any>);
    assert.ok(lines.length >= 3 && lines.every((l) => l.type === 'event'), 'an unfiltered export shows every event');
    const target = 2;
    assert.notEqual(lines[target].actorId, 'mallory');
    lines[target].actorId = 'mallory';
    for (let i = target; i < lines.length; i++) {
      const { type, prevHash, hash, ...payload } = lines[i];
      void [type, prevHash, hash];
      lines[i].prevHash = lines[i - 1].hash;
      lines[i].hash = eventHash(lines[i].prevHash, payload);
    }
    const body = lines.map((l) => JSON.stringify(l) + '\n').join('');
    const forgedManifest = signManifest(foreignPrivate, {
      ...unsigned(manifest),
      lastHash: lines[lines.length - 1].hash,
      contentSha256: createHash('sha256').update(body).digest('hex'),
    });
    assert.notEqual(forgedManifest.keyId, manifest.keyId);
    const forged = body + JSON.stringify(forgedManifest) + '\n';
    const manifestLine = lines.length + 1;
    // Trusting the key the file carries, the forgery is consistent: that is why the key is pinned.
    const unpinned = verifyExport(forged);
    assert.equal(unpinned.ok, true, unpinned.problem ?? '');
    assert.equal(unpinned.keyPinned, false);
    assert.equal(verifyExport(forged, { publicKeyPem: foreignPublic }).ok, true, 'the forgery holds under its own key');
    const pinned = verifyExport(forged, { publicKeyPem: serverKey });
    assert.equal(pinned.ok, false, 'a forgery signed with another key passed with the server key pinned');
    assert.equal(pinned.line, manifestLine);
    assert.match(pinned.problem!, new RegExp(`signed with key ${forgedManifest.keyId}, not with the key given \\(${manifest.keyId}\\)`));
    // The same through the CLI.
    const file = path.join(dir, 'forged.ndjson');
    await writeFile(file, forged);
    await writeFile(path.join(dir, 'server-key.pem'), serverKey);
    const cli = path.resolve(__dirname, '../../src/cli.js');
    const refused = await run(process.execPath, [cli, 'audit', 'verify-export', file, '--public-key', path.join(dir, 'server-key.pem')], { env: process.env }).then(
      () => assert.fail('verify-export accepted a forgery with the server key pinned'),
      (e: { code: number; stdout: string }) => e,
    );
    assert.equal(refused.code, 1);
    assert.match(refused.stdout, new RegExp(`export INVALID at line ${manifestLine}: the manifest was signed with key ${forgedManifest.keyId}`));
    // Claiming the server's key id (and key) while signing with another key fails on the signature.
    const posing = { ...forgedManifest, keyId: manifest.keyId, publicKey: manifest.publicKey };
    for (const opts of [{}, { publicKeyPem: serverKey }]) {
      const r = verifyExport(body + JSON.stringify(posing) + '\n', opts);
      assert.equal(r.ok, false);
      assert.match(r.problem!, /signature does not verify/);
    }
    // The forger's key with the server's key id: the embedded key does not match its id.
    const r = verifyExport(body + JSON.stringify({ ...forgedManifest, keyId: manifest.keyId }) + '\n');
    assert.equal(r.ok, false);
    assert.match(r.problem!, /public key does not match its key id/);
  });

  it("a genuine export checked against a key that is not the server's is refused, and against the server's passes", async () => {
    const { text, manifest } = await exportOf('format=csv&actor=demo:fraud-engineer');
    const other = generateKeyPairSync('ed25519').publicKey.export({ format: 'pem', type: 'spki' }).toString();
    const mismatched = verifyExport(text, { manifest, publicKeyPem: other });
    assert.equal(mismatched.ok, false, 'an export verified against a key that did not sign it');
    assert.match(mismatched.problem!, new RegExp(`signed with key ${manifest.keyId}, not with the key given`));
    assert.equal(mismatched.keyPinned, true);
    const matched = verifyExport(text, { manifest, publicKeyPem: await publicKey() });
    assert.equal(matched.ok, true, matched.problem ?? '');
    assert.equal(matched.keyPinned, true);
  });

  it('refuses without credentials (401), a viewer (403, audited as denied) and bad parameters (400 with a code)', async () => {
    const anonymous = await get('/audit/export', null);
    assert.equal(anonymous.status, 401);
    assert.equal(((await anonymous.json()) as any).errors[0].extensions.code, 'UNAUTHENTICATED');
    const viewer = await get('/audit/export?format=csv', t.token(['viewer'], ['fraud'], 'vera-viewer'));
    assert.equal(viewer.status, 403);
    assert.equal(((await viewer.json()) as any).errors[0].extensions.code, 'FORBIDDEN');
    const [denied] = await t.sql(`SELECT action, decision::text AS decision FROM audit_event WHERE actor_id = 'vera-viewer' ORDER BY seq DESC LIMIT 1`);
    assert.deepEqual(denied, { action: 'exportAuditEvents', decision: 'DENIED' });
    for (const query of [
      'format=xml',
      'from=yesterday',
      'from=2026-02-01&to=2026-01-01',
      'scope=not-an-id!',
      `scope=${Buffer.from('Team:00000000-0000-0000-0000-000000000000').toString('base64url')}`,
      'colour=blue',
      'actor=a&actor=b',
    ]) {
      const res = await get(`/audit/export?${query}`);
      assert.equal(res.status, 400, query);
      const body = (await res.json()) as any;
      assert.equal(body.errors[0].extensions.code, 'BAD_USER_INPUT', query);
      assert.doesNotMatch(JSON.stringify(body), /at .*\.js/);
    }
    const missing = await get(`/audit/export?scope=${Buffer.from('Model:00000000-0000-4000-8000-000000000000').toString('base64url')}`);
    assert.equal(missing.status, 404);
  });

  it("events showing a confidential dataset version's location are withheld (hash only) from an exporter who may not read it", async () => {
    const admin = t.token(['admin'], [], 'ada-admin');
    const role = await t.gql(admin, 'mutation ($input: UpsertRoleInput!) { upsertRole(input: $input) { name } }', {
      input: {
        name: 'external-auditor',
        rules: [
          { action: 'read', subject: 'all' },
          { action: 'export', subject: 'AuditEvent' },
          { action: 'read', subject: 'DatasetVersion', fields: ['uri', 'sourceQuery'], inverted: true, conditions: { classification: { $in: ['CONFIDENTIAL', 'RESTRICTED'] } } },
        ],
      },
    });
    assert.equal(role.errors, undefined, JSON.stringify(role.errors));
    const external = t.token(['external-auditor'], [], 'eve-external');
    const res = await get('/audit/export?format=ndjson&action=registerDatasetVersion', external);
    const text = await res.text();
    const v = verifyExport(text);
    assert.equal(v.ok, true, v.problem ?? '');
    const lines = text.trimEnd().split('\n').map((l) => JSON.parse(l));
    const withheld = lines.filter((l) => l.type === 'omitted' && l.withheld);
    const shown = lines.filter((l) => l.type === 'event');
    assert.equal(withheld.length, 3, 'the fraud team\'s three CONFIDENTIAL versions');
    assert.equal(v.manifest!.withheld, 3);
    assert.equal(shown.length, 3, 'the vision team\'s INTERNAL versions stay visible');
    assert.ok(shown.every((e) => e.after.classification === 'INTERNAL'));
    assert.doesNotMatch(text, /s3:\/\/modelgov-demo\/fraud|fraud\.events/);
    // The auditor, who may read them, sees all six.
    const full = await exportOf('format=ndjson&action=registerDatasetVersion');
    assert.equal(full.manifest.events, 6);
    assert.match(full.text, /s3:\/\/modelgov-demo\/fraud/);
  });

  it('an expired or forged download link is refused', async () => {
    const { exportId } = await exportOf('format=csv&actor=nobody');
    const res = await get(`/audit/exports/${exportId}/manifest?expires=1&signature=abc`, null);
    assert.equal(res.status, 403);
  });

  it('a forged download link is refused the same way whether or not the export exists', async () => {
    const { exportId } = await exportOf('format=csv&actor=nobody');
    const missing = Buffer.from(`AuditExport:${randomUUID()}`, 'utf8').toString('base64url');
    const future = Math.floor(Date.now() / 1000) + 3600;
    for (const part of ['file', 'manifest']) {
      const answers = [];
      for (const id of [exportId, missing]) {
        const res = await get(`/audit/exports/${id}/${part}?expires=${future}&signature=${'A'.repeat(43)}`, null);
        const body = (await res.json()) as any;
        answers.push({ status: res.status, code: body.errors?.[0]?.extensions?.code, reason: body.errors?.[0]?.extensions?.reason, message: body.errors?.[0]?.message });
      }
      assert.deepEqual(answers[0], { status: 403, code: 'FORBIDDEN', reason: 'BAD_LINK', message: 'The download link is not valid' }, part);
      assert.deepEqual(answers[1], answers[0], `${part}: a missing export is answered like an existing one`);
    }
  });
});
