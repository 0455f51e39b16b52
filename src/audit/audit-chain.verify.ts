import type { DataSource } from 'typeorm';
import { chainHash, GENESIS_HASH, hashedPayload } from '../core/audit/audit-chain';
import { AuditEvent, AuditHead } from '../core/audit/audit-event.entity';
import { AuditCheckpoint } from './audit-export.entity';
import { verifyCanonical } from './audit-signing';

export interface ChainBreak {
  seq: number;
  problem: string;
}

export interface VerifyResult {
  ok: boolean;
  checked: number;
  lastSeq: number;
  lastHash: string;
  firstBreak: ChainBreak | null;
}

/**
 * Walks the whole chain in sequence order, in pages, and reports the first broken link:
 * a row whose hash does not match its content (altered), a gap in sequence (deleted or
 * reordered), a wrong previous hash (inserted or replaced), or a head that is ahead of the
 * last row (the newest rows deleted).
 */
export async function verifyChain(db: DataSource, pageSize = 5000, publicKeyPem?: string): Promise<VerifyResult> {
  let prevHash = GENESIS_HASH;
  let expectedSeq = 1;
  let checked = 0;
  // Retention removed the events up to the newest checkpoint: the chain goes on from its hash, once its signature holds.
  const [checkpoint] = await db.getRepository(AuditCheckpoint).find({ order: { seq: 'DESC' }, take: 1 });
  if (checkpoint) {
    if (!publicKeyPem || !verifyCheckpoint(checkpoint, publicKeyPem)) {
      return { ok: false, checked, lastSeq: checkpoint.seq, lastHash: checkpoint.hash, firstBreak: { seq: checkpoint.seq, problem: `the retention checkpoint at event ${checkpoint.seq} is not signed by the audit key` } };
    }
    prevHash = checkpoint.hash;
    expectedSeq = checkpoint.seq + 1;
  }
  for (;;) {
    const rows: AuditEvent[] = await db
      .getRepository(AuditEvent)
      .createQueryBuilder('a')
      .where('a.seq >= :from', { from: expectedSeq })
      .orderBy('a.seq', 'ASC')
      .limit(pageSize)
      .getMany();
    for (const row of rows) {
      const fail = (problem: string): VerifyResult => ({ ok: false, checked, lastSeq: expectedSeq - 1, lastHash: prevHash, firstBreak: { seq: row.seq, problem } });
      if (row.seq !== expectedSeq) {
        return {
          ok: false,
          checked,
          lastSeq: expectedSeq - 1,
          lastHash: prevHash,
          firstBreak: { seq: expectedSeq, problem: `event ${expectedSeq} is missing (next present is ${row.seq})` },
        };
      }
      if (row.prevHash !== prevHash) return fail(`event ${row.seq} does not follow event ${row.seq - 1} (previous hash differs)`);
      const recomputed = chainHash(row.prevHash, hashedPayload(row));
      if (recomputed !== row.hash) return fail(`event ${row.seq} was altered (its content no longer matches its hash)`);
      prevHash = row.hash;
      expectedSeq += 1;
      checked += 1;
    }
    if (rows.length < pageSize) break;
  }
  const head = await db.getRepository(AuditHead).findOne({ where: { id: 1 } });
  const lastSeq = expectedSeq - 1;
  if (head && (head.seq !== lastSeq || head.hash !== prevHash)) {
    return {
      ok: false,
      checked,
      lastSeq,
      lastHash: prevHash,
      firstBreak: {
        seq: lastSeq + 1,
        problem: head.seq > lastSeq ? `events ${lastSeq + 1}–${head.seq} are missing (the chain head records ${head.seq})` : `the chain head does not match event ${lastSeq}`,
      },
    };
  }
  if (!head && lastSeq > 0) {
    return { ok: false, checked, lastSeq, lastHash: prevHash, firstBreak: { seq: lastSeq, problem: 'the chain head record is missing' } };
  }
  return { ok: true, checked, lastSeq, lastHash: prevHash, firstBreak: null };
}

/** What a checkpoint's signature covers. */
export function checkpointPayload(c: Pick<AuditCheckpoint, 'seq' | 'hash' | 'eventCount' | 'lastOccurredAt' | 'createdAt'>): Record<string, unknown> {
  return { seq: c.seq, hash: c.hash, eventCount: c.eventCount, lastOccurredAt: c.lastOccurredAt.toISOString(), createdAt: c.createdAt.toISOString() };
}

export function verifyCheckpoint(c: AuditCheckpoint, publicKeyPem: string): boolean {
  return verifyCanonical(publicKeyPem, checkpointPayload(c), c.signature);
}
