import assert from 'node:assert/strict';
import { createHash, generateKeyPairSync } from 'node:crypto';
import { describe, it } from 'node:test';
import { eventHash, signManifest } from '../../src/audit/audit-export.format';
import { verifyExport } from '../../src/audit/audit-export.verify';
import { AuditDecision, type AuditEvent } from '../../src/core/audit/audit-event.entity';
import { chainHash, GENESIS_HASH, hashedPayload } from '../../src/core/audit/audit-chain';
import { canonicalJson } from '../../src/core/canonical-json';

// Known answers: the audit hash format checked against values computed outside this code base, so
// that a change to canonical JSON or to the chain formula cannot pass by agreeing with itself.

/** An IEEE 754 double from its 16 hex digits (big-endian), as RFC 8785 Appendix B lists them. */
const double = (hex: string) => Buffer.from(hex, 'hex').readDoubleBE(0);

describe('canonical JSON (RFC 8785)', () => {
  it('writes the RFC 8785 §3.2.2 example exactly', () => {
    const input = {
      numbers: [333333333.33333329, 1e30, 4.5, 2e-3, 0.000000000000000000000000001],
      string: '\u20ac$\u000F\u000aA\'\u0042\u0022\u005c\\"/',
      literals: [null, true, false],
    };
    assert.equal(canonicalJson(input), '{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],"string":"€$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}');
  });

  it('sorts keys by UTF-16 code units (RFC 8785 §3.2.3)', () => {
    // Expected text with its characters escaped in the source: they are written raw, not escaped.
    const input = {
      '\u20ac': 'Euro Sign',
      '\r': 'Carriage Return',
      '\ufb33': 'Hebrew Letter Dalet With Dagesh',
      '1': 'One',
      '\ud83d\ude00': 'Emoji: Grinning Face',
      '\u0080': 'Control',
      '\u00f6': 'Latin Small Letter O With Diaeresis',
    };
    assert.equal(
      canonicalJson(input),
      '{"\\r":"Carriage Return","1":"One","\u0080":"Control","\u00f6":"Latin Small Letter O With Diaeresis","\u20ac":"Euro Sign","\ud83d\ude00":"Emoji: Grinning Face","\ufb33":"Hebrew Letter Dalet With Dagesh"}',
    );
  });

  it('prints numbers as RFC 8785 Appendix B does, and refuses NaN and Infinity', () => {
    const vectors: Array<[string, string]> = [
      ['0000000000000000', '0'],
      ['8000000000000000', '0'],
      ['0000000000000001', '5e-324'],
      ['8000000000000001', '-5e-324'],
      ['7fefffffffffffff', '1.7976931348623157e+308'],
      ['ffefffffffffffff', '-1.7976931348623157e+308'],
      ['4340000000000000', '9007199254740992'],
      ['c340000000000000', '-9007199254740992'],
      ['4430000000000000', '295147905179352830000'],
      ['44b52d02c7e14af5', '9.999999999999997e+22'],
      ['44b52d02c7e14af6', '1e+23'],
      ['44b52d02c7e14af7', '1.0000000000000001e+23'],
      ['444b1ae4d6e2ef4e', '999999999999999700000'],
      ['444b1ae4d6e2ef4f', '999999999999999900000'],
      ['444b1ae4d6e2ef50', '1e+21'],
      ['3eb0c6f7a0b5ed8c', '9.999999999999997e-7'],
      ['3eb0c6f7a0b5ed8d', '0.000001'],
      ['41b3de4355555553', '333333333.3333332'],
      ['41b3de4355555554', '333333333.33333325'],
      ['41b3de4355555555', '333333333.3333333'],
      ['41b3de4355555556', '333333333.3333334'],
      ['41b3de4355555557', '333333333.33333343'],
      ['becbf647612f3696', '-0.0000033333333333333333'],
      ['43143ff3c1cb0959', '1424953923781206.2'],
    ];
    for (const [hex, expected] of vectors) assert.equal(canonicalJson(double(hex)), expected, hex);
    assert.equal(canonicalJson([double('0000000000000001'), -0]), '[5e-324,0]');
    assert.throws(() => canonicalJson(double('7fffffffffffffff')), TypeError);
    assert.throws(() => canonicalJson(double('7ff0000000000000')), TypeError);
  });
});

// Three events and their chain hashes. The hashes were computed independently of this code base,
// with Python 3's standard library:
//   c = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
//   hash = hashlib.sha256((prev_hash + c).encode("utf-8")).hexdigest()
// starting from prev_hash = "0" * 64, over the payloads below (keys as hashed; event 3 holds
// non-ASCII text, a fraction, keys differing only in case, and nested arrays and objects).
const EVENTS = [
  {
    seq: 1,
    occurredAt: '2026-01-02T03:04:05.678Z',
    actorId: 'ada-admin',
    actorKind: 'user',
    action: 'createTeam',
    subjectType: 'Team',
    subjectId: 'VGVhbTpmcmF1ZA',
    decision: 'ALLOWED',
    reason: null,
    before: null,
    after: { name: 'fraud', description: 'Fraud models' },
    requestId: 'req-1',
  },
  {
    seq: 2,
    occurredAt: '2026-01-02T03:04:06.000Z',
    actorId: 'vera-viewer',
    actorKind: 'user',
    action: 'upsertRole',
    subjectType: 'Role',
    subjectId: null,
    decision: 'DENIED',
    reason: 'missing "manage" on Role\tand\\more',
    before: null,
    after: { name: 'quinn-role', rules: [] },
    requestId: 'req-2',
  },
  {
    seq: 3,
    occurredAt: '2026-01-02T03:04:07.009Z',
    actorId: 'ada-admin',
    actorKind: 'apiKey',
    action: 'setTrafficSplit',
    subjectType: 'Deployment',
    subjectId: 'RGVwbG95bWVudDpkMQ',
    decision: 'ALLOWED',
    reason: null,
    before: { weights: { v1: 100 } },
    after: { weights: { v2: 10, v1: 90 }, note: 'Zürich canary – 10 %', threshold: 0.25, big: 2, Big: 1, nested: [true, null, { z: 1, a: -3 }] },
    requestId: 'req-3',
  },
];
const CANONICAL = [
  '{"action":"createTeam","actorId":"ada-admin","actorKind":"user","after":{"description":"Fraud models","name":"fraud"},"before":null,"decision":"ALLOWED","occurredAt":"2026-01-02T03:04:05.678Z","reason":null,"requestId":"req-1","seq":1,"subjectId":"VGVhbTpmcmF1ZA","subjectType":"Team"}',
  '{"action":"upsertRole","actorId":"vera-viewer","actorKind":"user","after":{"name":"quinn-role","rules":[]},"before":null,"decision":"DENIED","occurredAt":"2026-01-02T03:04:06.000Z","reason":"missing \\"manage\\" on Role\\tand\\\\more","requestId":"req-2","seq":2,"subjectId":null,"subjectType":"Role"}',
  '{"action":"setTrafficSplit","actorId":"ada-admin","actorKind":"apiKey","after":{"Big":1,"big":2,"nested":[true,null,{"a":-3,"z":1}],"note":"Zürich canary – 10 %","threshold":0.25,"weights":{"v1":90,"v2":10}},"before":{"weights":{"v1":100}},"decision":"ALLOWED","occurredAt":"2026-01-02T03:04:07.009Z","reason":null,"requestId":"req-3","seq":3,"subjectId":"RGVwbG95bWVudDpkMQ","subjectType":"Deployment"}',
];
const HASHES = [
  '105f08d37ddfb59df3488ee0ee67018d3c59851522aac2cd7c1a56ca4cf4f9d5',
  '8669b4d01df7f2fff2666bd0021d3cf1dbcf852ae278d1786b2daca59b3c2030',
  '87b22274b446168f9d5392a2449c80d346027dca70066fc5bc8a99a4a93349c9',
];
const prevOf = (i: number) => (i === 0 ? GENESIS_HASH : HASHES[i - 1]);

describe('the audit chain hash', () => {
  it('gives the known canonical form and hash for each of three chained events', () => {
    assert.equal(GENESIS_HASH, '0'.repeat(64));
    EVENTS.forEach((e, i) => {
      assert.equal(canonicalJson(e), CANONICAL[i], `event ${e.seq}`);
      // The server's append path: the stored event's fields, shaped and hashed as appendAudit does.
      const stored = { ...e, occurredAt: new Date(e.occurredAt), decision: e.decision as AuditDecision } as unknown as Omit<AuditEvent, 'hash' | 'prevHash' | 'nodeId'>;
      assert.equal(chainHash(prevOf(i), hashedPayload(stored)), HASHES[i], `event ${e.seq} as appended`);
      // The offline verifier's formula.
      assert.equal(eventHash(prevOf(i), e), HASHES[i], `event ${e.seq} as verified`);
    });
  });

  it('covers `via` only on an event that carries one: a job\'s event has its own known hash, the others hash as they always did', () => {
    // Computed outside this code base: Python's json.dumps(event, sort_keys=True, separators=(',', ':'),
    // ensure_ascii=False), then sha256 of the previous hash followed by that text.
    const viaEvent = {
      seq: 4,
      occurredAt: '2026-01-02T03:04:08.250Z',
      actorId: 'tina-trainer',
      actorKind: 'user',
      action: 'completeTrainingRun',
      subjectType: 'TrainingRun',
      subjectId: 'VHJhaW5pbmdSdW46cjE',
      decision: 'ALLOWED',
      reason: null,
      before: { status: 'RUNNING' },
      after: { status: 'SUCCEEDED' },
      requestId: 'req-4',
      via: { jobs: ['training/r1'], onBehalfOf: [] },
    };
    const canonical =
      '{"action":"completeTrainingRun","actorId":"tina-trainer","actorKind":"user","after":{"status":"SUCCEEDED"},"before":{"status":"RUNNING"},"decision":"ALLOWED","occurredAt":"2026-01-02T03:04:08.250Z","reason":null,"requestId":"req-4","seq":4,"subjectId":"VHJhaW5pbmdSdW46cjE","subjectType":"TrainingRun","via":{"jobs":["training/r1"],"onBehalfOf":[]}}';
    const hash = 'e9d9bf9b0a12bc1066b59ff30e496b7b49a78402a59d1876c2d55dd0f1ea95a8';
    assert.equal(canonicalJson(viaEvent), canonical);
    const stored = { ...viaEvent, occurredAt: new Date(viaEvent.occurredAt), decision: AuditDecision.ALLOWED } as unknown as AuditEvent;
    assert.equal(chainHash(HASHES[2], hashedPayload(stored)), hash, 'as appended');
    assert.equal(eventHash(HASHES[2], viaEvent), hash, 'as verified');
    // An event stored without one (via NULL) hashes as before the column existed.
    EVENTS.forEach((e, i) => {
      const plain = { ...e, occurredAt: new Date(e.occurredAt), decision: e.decision as AuditDecision, via: null } as unknown as AuditEvent;
      assert.equal(chainHash(prevOf(i), hashedPayload(plain)), HASHES[i], `event ${e.seq} with via NULL`);
    });
  });

  it('an export of the three events, with the known hashes, verifies; one changed digit does not', () => {
    const lines = EVENTS.map((e, i) => JSON.stringify({ type: 'event', ...e, prevHash: prevOf(i), hash: HASHES[i] }) + '\n');
    const body = lines.join('');
    const { privateKey, publicKey } = generateKeyPairSync('ed25519');
    const manifest = signManifest(privateKey.export({ format: 'pem', type: 'pkcs8' }).toString(), {
      format: 'NDJSON',
      exportId: 'known-answer',
      generatedAt: '2026-01-02T03:05:00.000Z',
      filter: {},
      firstSeq: 1,
      lastSeq: 3,
      prevHash: GENESIS_HASH,
      lastHash: HASHES[2],
      events: 3,
      omitted: 0,
      withheld: 0,
      lines: 3,
      contentSha256: createHash('sha256').update(body).digest('hex'),
    });
    const text = body + JSON.stringify(manifest) + '\n';
    const ok = verifyExport(text, { publicKeyPem: publicKey.export({ format: 'pem', type: 'spki' }).toString() });
    assert.equal(ok.ok, true, ok.problem ?? '');
    assert.deepEqual([ok.events, ok.lastSeq, ok.lastHash], [3, 3, HASHES[2]]);
    // Event 2 claiming a hash one digit off is refused at its line, though the chain links on.
    const wrong = HASHES[1].slice(0, 63) + (HASHES[1][63] === '0' ? '1' : '0');
    const bad = verifyExport(text.replace(`"hash":"${HASHES[1]}"`, `"hash":"${wrong}"`).replace(`"prevHash":"${HASHES[1]}"`, `"prevHash":"${wrong}"`));
    assert.equal(bad.ok, false);
    assert.equal(bad.line, 2, bad.problem ?? '');
    assert.match(bad.problem!, /event 2 was altered/);
  });
});
