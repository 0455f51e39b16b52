import { createHash } from 'node:crypto';
import type { DataSource } from 'typeorm';
import { canonicalJson } from '../../src/core/canonical-json';
import { GENESIS_HASH } from '../../src/core/audit/audit-chain';

/**
 * Appends `count` generated events to the audit chain, with valid hashes (computed here as the
 * server computes them) and the chain head moved to the last: an audit trail of a given size in
 * seconds, for exports and benchmarks. Every third event is written as if by a job (with `via`,
 * which its hash then covers; the others' hashes do not name it). Batches of multi-row inserts from arrays.
 */
export async function appendGeneratedEvents(db: DataSource, count: number, opts: { batch?: number; startAt?: Date } = {}): Promise<{ lastSeq: number; lastHash: string }> {
  const batch = opts.batch ?? 5000;
  const [head] = await db.query('SELECT seq::int AS seq, hash FROM audit_head WHERE id = 1');
  let seq: number = head?.seq ?? 0;
  let prev: string = head?.hash ?? GENESIS_HASH;
  const t0 = (opts.startAt ?? new Date()).getTime();
  for (let done = 0; done < count; ) {
    const n = Math.min(batch, count - done);
    const cols: unknown[][] = Array.from({ length: 12 }, () => []);
    for (let i = 0; i < n; i++) {
      seq += 1;
      const occurredAt = new Date(t0 + done + i).toISOString();
      const team = seq % 2 ? 'fraud' : 'vision';
      const payload = {
        seq,
        occurredAt,
        actorId: `bench:${team}-engineer`,
        actorKind: 'user',
        action: seq % 5 === 0 ? 'setTrafficSplit' : 'registerConfig',
        subjectType: 'Config',
        subjectId: Buffer.from(`Config:${team}-${seq % 1000}`).toString('base64url'),
        decision: 'ALLOWED',
        reason: seq % 7 === 0 ? `generated "event" ${seq}` : null,
        before: null,
        after: { team, step: seq, weights: [seq % 100, 100 - (seq % 100)], note: 'generated for a benchmark, with a little text to weigh it like a real one' },
        requestId: `gen-${seq}`,
      };
      const via = seq % 3 === 0 ? { jobs: [`training/gen-${seq}`], onBehalfOf: seq % 6 === 0 ? ['config'] : [] } : null;
      const hashed = via ? { ...payload, via } : payload;
      const hash = createHash('sha256').update(prev + canonicalJson(hashed)).digest('hex');
      const row = [seq, occurredAt, payload.actorId, payload.actorKind, payload.action, payload.subjectType, payload.subjectId, payload.reason, JSON.stringify(payload.after), payload.requestId, via ? JSON.stringify(via) : null];
      row.forEach((v, c) => cols[c].push(v));
      cols[11].push(`${prev}${hash}`);
      prev = hash;
    }
    await db.query(
      `INSERT INTO audit_event (seq, occurred_at, actor_id, actor_kind, action, subject_type, subject_id, decision, reason, before, after, request_id, via, prev_hash, hash)
       SELECT s, o, a, k, ac, st, si, 'ALLOWED', r, NULL, af::jsonb, rq, v::jsonb, left(h, 64), right(h, 64)
       FROM unnest($1::bigint[], $2::timestamptz[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::text[])
         AS u(s, o, a, k, ac, st, si, r, af, rq, v, h)`,
      cols,
    );
    done += n;
  }
  await db.query('INSERT INTO audit_head (id, seq, hash) VALUES (1, $1, $2) ON CONFLICT (id) DO UPDATE SET seq = EXCLUDED.seq, hash = EXCLUDED.hash', [seq, prev]);
  return { lastSeq: seq, lastHash: prev };
}
