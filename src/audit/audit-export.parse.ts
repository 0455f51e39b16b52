/** Reads one export line (an NDJSON object, or a CSV record's cells) into the chain entry it claims, refusing a malformed line. */

import { CSV_COLUMNS, eventHash, type CsvColumn } from './audit-export.format';

// Knows nothing of the database or the server: the offline verifier imports it from the build output.

/**
 * Keys of an NDJSON event line, exactly (a line with other keys is refused); `via` is there only on
 * events written through a job (its hash covers it only then).
 */
const EVENT_KEYS = ['type', 'seq', 'occurredAt', 'actorId', 'actorKind', 'action', 'subjectType', 'subjectId', 'decision', 'reason', 'before', 'after', 'requestId', 'prevHash', 'hash'];
const EVENT_KEYS_WITH_VIA = [...EVENT_KEYS, 'via'];
const OMITTED_KEYS = ['type', 'seq', 'seqTo', 'prevHash', 'hash', 'withheld'];

/** One data line of an export, as the chain sees it: an event, or a run of events shown by their hashes only. */
export interface Entry {
  line: number;
  kind: 'event' | 'omitted';
  seq: number;
  seqTo: number;
  prevHash: string;
  hash: string;
  /** For events: their content recomputes to their hash. */
  intact: boolean;
}

/** The first problem of an export, at its 1-based line (null: the file as a whole). */
export class Failure extends Error {
  constructor(
    readonly line: number | null,
    message: string,
  ) {
    super(message);
  }
}

const HEX64 = /^[0-9a-f]{64}$/;

function isInt(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v > 0;
}

/** The entry an NDJSON event or hash-only line claims; its event's content is recomputed against its hash. */
export function ndjsonEntry(obj: Record<string, unknown>, line: number): Entry {
  if (!obj || typeof obj !== 'object' || Array.isArray(obj)) throw new Failure(line, 'not an export line');
  const keys = Object.keys(obj).sort().join(',');
  if (obj.type === 'event') {
    if (keys !== [...EVENT_KEYS].sort().join(',') && keys !== [...EVENT_KEYS_WITH_VIA].sort().join(',')) throw new Failure(line, 'event line with missing or unknown fields');
    const e = obj as Record<string, any>;
    if ('via' in e && (!e.via || typeof e.via !== 'object' || Array.isArray(e.via))) throw new Failure(line, 'event line with a malformed via');
    if (!isInt(e.seq) || typeof e.hash !== 'string' || !HEX64.test(e.hash) || typeof e.prevHash !== 'string' || !HEX64.test(e.prevHash)) throw new Failure(line, 'event line with a malformed seq or hash');
    const payload = {
      seq: e.seq,
      occurredAt: e.occurredAt,
      actorId: e.actorId,
      actorKind: e.actorKind,
      action: e.action,
      subjectType: e.subjectType,
      subjectId: e.subjectId,
      decision: e.decision,
      reason: e.reason,
      before: e.before,
      after: e.after,
      requestId: e.requestId,
      ...('via' in e ? { via: e.via } : {}),
    };
    let intact = false;
    try {
      intact = eventHash(e.prevHash, payload) === e.hash;
    } catch {
      intact = false;
    }
    return { line, kind: 'event', seq: e.seq, seqTo: e.seq, prevHash: e.prevHash, hash: e.hash, intact };
  }
  if (obj.type === 'omitted') {
    if (keys !== [...OMITTED_KEYS].sort().join(',')) throw new Failure(line, 'hash-only line with missing or unknown fields');
    const e = obj as Record<string, any>;
    if (!isInt(e.seq) || !isInt(e.seqTo) || typeof e.hash !== 'string' || !HEX64.test(e.hash) || typeof e.prevHash !== 'string' || !HEX64.test(e.prevHash)) {
      throw new Failure(line, 'hash-only line with a malformed range or hash');
    }
    if (e.withheld !== null && (typeof e.withheld !== 'string' || e.seq !== e.seqTo)) throw new Failure(line, 'malformed withheld marker');
    return { line, kind: 'omitted', seq: e.seq, seqTo: e.seqTo, prevHash: e.prevHash, hash: e.hash, intact: true };
  }
  throw new Failure(line, `unknown line type ${JSON.stringify(obj.type)}`);
}

/**
 * The entry a CSV record claims, from its cells (with whether each was quoted) in `columns` (a file
 * written before `via` existed has no such column); its event's content is recomputed against its hash.
 */
export function csvEntry(fields: Array<{ value: string; quoted: boolean }>, line: number, columns: readonly CsvColumn[] = CSV_COLUMNS): Entry {
  if (fields.length !== columns.length) throw new Failure(line, `expected ${columns.length} cells, found ${fields.length}`);
  const cell = Object.fromEntries(columns.map((c, i) => [c, fields[i]])) as Record<CsvColumn, { value: string; quoted: boolean }>;
  cell.via ??= { value: '', quoted: false };
  const text = (c: CsvColumn): string | null => {
    const f = cell[c];
    if (!f.quoted) {
      if (f.value !== '') throw new Failure(line, `cell ${c} must be quoted text or empty`);
      return null;
    }
    return f.value;
  };
  const int = (c: CsvColumn): number => {
    const f = cell[c];
    if (f.quoted || !/^[1-9]\d{0,15}$/.test(f.value)) throw new Failure(line, `cell ${c} is not a sequence number`);
    return Number(f.value);
  };
  const json = (c: CsvColumn): unknown => {
    const t = text(c);
    if (t === null) return null;
    try {
      return JSON.parse(t);
    } catch {
      throw new Failure(line, `cell ${c} is not valid JSON`);
    }
  };
  const kind = cell.kind;
  if (kind.quoted) throw new Failure(line, 'malformed kind');
  const hash = text('hash');
  if (hash === null || !HEX64.test(hash)) throw new Failure(line, 'malformed hash');
  if (kind.value === 'event') {
    const seq = int('seq');
    if (cell.seq_to.value !== '' || cell.seq_to.quoted || cell.withheld.value !== '' || cell.withheld.quoted) throw new Failure(line, 'event line with a range or withheld marker');
    const prevHash = text('prev_hash');
    if (prevHash === null || !HEX64.test(prevHash)) throw new Failure(line, 'malformed prev_hash');
    const payload = {
      seq,
      occurredAt: text('occurred_at'),
      actorId: text('actor_id'),
      actorKind: text('actor_kind'),
      action: text('action'),
      subjectType: text('subject_type'),
      subjectId: text('subject_id'),
      decision: text('decision'),
      reason: text('reason'),
      before: json('before'),
      after: json('after'),
      requestId: text('request_id'),
    };
    const via = json('via');
    if (via !== null && (typeof via !== 'object' || Array.isArray(via))) throw new Failure(line, 'cell via is not an object');
    return { line, kind: 'event', seq, seqTo: seq, prevHash, hash, intact: eventHash(prevHash, via === null ? payload : { ...payload, via }) === hash };
  }
  if (kind.value === 'omitted') {
    const seq = int('seq');
    const seqTo = int('seq_to');
    const prevHash = text('prev_hash');
    if (prevHash === null || !HEX64.test(prevHash)) throw new Failure(line, 'malformed prev_hash');
    for (const c of columns) {
      if (['kind', 'seq', 'seq_to', 'prev_hash', 'hash', 'withheld'].includes(c)) continue;
      if (cell[c].value !== '' || cell[c].quoted) throw new Failure(line, `hash-only line with a value in ${c}`);
    }
    const withheld = text('withheld');
    if (withheld !== null && seq !== seqTo) throw new Failure(line, 'malformed withheld marker');
    return { line, kind: 'omitted', seq, seqTo, prevHash, hash, intact: true };
  }
  throw new Failure(line, `unknown line kind ${JSON.stringify(kind.value)}`);
}
