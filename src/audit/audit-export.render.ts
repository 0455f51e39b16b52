// Renders export lines from the rows of a binary COPY, byte for byte, into Buffers: no JavaScript
// string per field or per line, so rendering costs little CPU and its memory is released as soon
// as the bytes are written (Buffers live outside the V8 heap). The bytes are exactly those that
// PostgreSQL's to_json and CSV quoting produced when it rendered the lines (the export tests
// compare the two).

/** Columns of the page query, in order (see `pageCopySql` in audit-export.stream). */
export const enum Col {
  Seq = 0,
  Shown,
  OccurredAt,
  ActorId,
  ActorKind,
  Action,
  SubjectType,
  SubjectId,
  Decision,
  Reason,
  Before,
  After,
  RequestId,
  Via,
  PrevHash,
  Hash,
  DvTeam,
  DvClass,
}
export const COLUMN_COUNT = 18;

const SIGNATURE = Buffer.from('PGCOPY\n\xff\r\n\0', 'latin1');
// From the Unix epoch to PostgreSQL's (2000-01-01), in milliseconds.
const PG_EPOCH_MS = 946_684_800_000;
const DAY_MS = 86_400_000;
// Bytes of the next chunk joined to the end of a row cut between two chunks (doubled until the row is whole).
const BRIDGE = 16 * 1024;
const EMPTY = Buffer.alloc(0);

/**
 * The rows of a binary COPY, read as its chunks arrive: `feed` a chunk, then take rows with `next`
 * while it returns true. A row is offsets into `buf` (no copies; `start[i] === -1` is NULL), valid
 * until the next call of `next` or `feed`.
 */
export class CopyRows {
  readonly start = new Int32Array(COLUMN_COUNT);
  readonly end = new Int32Array(COLUMN_COUNT);
  /** Bytes of the current row's fields (lengths only). */
  rowBytes = 0;
  buf: Buffer = Buffer.alloc(0);
  private pos = 0;
  // While a row cut between chunks is read from a joined copy: the rest of the chunk, and where it starts in `buf`.
  private tail: Buffer | null = null;
  private tailAt = 0;
  private started = false;
  // Chunks received while a row is cut, and how many bytes from the row's start reading it needs at least.
  private waiting: Buffer[] = [];
  private waitingBytes = 0;
  private need = 0;
  /** Whether the COPY's trailer has been read. */
  ended = false;

  feed(chunk: Buffer): void {
    if (this.pos >= this.buf.length && this.waiting.length === 0) {
      this.buf = chunk;
      this.pos = 0;
      return;
    }
    // A row is cut: keep the chunks (without joining them) until there are bytes enough to read on.
    if (this.waiting.length === 0) {
      this.waiting.push(this.buf.subarray(this.pos));
      this.waitingBytes = this.buf.length - this.pos;
      this.buf = EMPTY;
      this.pos = 0;
    }
    this.waiting.push(chunk);
    this.waitingBytes += chunk.length;
    if (this.waitingBytes < this.need) return;
    const rest = this.waiting.pop()!;
    const left = this.waiting.length === 1 ? this.waiting[0] : Buffer.concat(this.waiting);
    this.waiting = [];
    // Join what is left of the row to the start of the last chunk only, not to the whole chunk.
    this.bridge(left, rest, Math.max(BRIDGE, this.need - left.length));
  }

  private bridge(left: Buffer, rest: Buffer, size: number): void {
    const head = rest.length <= size ? rest : rest.subarray(0, size);
    this.buf = Buffer.concat([left, head]);
    this.pos = 0;
    this.tail = head.length < rest.length ? rest : null;
    this.tailAt = left.length;
    this.waitingBytes = 0;
  }

  /** Bytes received and not yet read as a row (0 at a clean end). */
  get pending(): number {
    return this.waitingBytes + this.buf.length - this.pos + (this.tail ? this.tail.length - (this.buf.length - this.tailAt) : 0);
  }

  /** Moves to the next complete row; false when more bytes are needed, or at the end. */
  next(): boolean {
    if (this.waiting.length > 0) return false;
    if (this.tail && this.pos >= this.tailAt) {
      // The cut row has been read: go on in the chunk itself.
      this.pos -= this.tailAt;
      this.buf = this.tail;
      this.tail = null;
    }
    const buf = this.buf;
    let p = this.pos;
    if (!this.started) {
      if (buf.length < p + 19) return this.more(19);
      if (!buf.subarray(p, p + 11).equals(SIGNATURE)) throw new Error('not a binary COPY');
      const skip = 19 + buf.readUInt32BE(p + 15);
      if (buf.length < p + skip) return this.more(skip);
      this.pos = p += skip;
      this.started = true;
    }
    if (this.ended) return false;
    const row = p;
    if (p + 2 > buf.length) return this.more(p + 2 - row);
    const n = (buf[p] << 8) | buf[p + 1];
    p += 2;
    if (n === 0xffff) {
      this.pos = p;
      this.ended = true;
      return false;
    }
    if (n !== COLUMN_COUNT) throw new Error(`a COPY row of ${n} columns, expected ${COLUMN_COUNT}`);
    const start = this.start;
    const end = this.end;
    let bytes = 0;
    for (let i = 0; i < COLUMN_COUNT; i++) {
      if (p + 4 > buf.length) return this.more(p + 4 - row);
      const len = buf.readInt32BE(p);
      p += 4;
      if (len === -1) {
        start[i] = -1;
        end[i] = -1;
      } else {
        if (p + len > buf.length) return this.more(p + len - row);
        start[i] = p;
        end[i] = p + len;
        p += len;
        bytes += len;
      }
    }
    this.pos = p;
    this.rowBytes = bytes;
    return true;
  }

  /** The bytes end within a row: with a joined copy, join more of the chunk; else wait for the next chunk. */
  private more(need: number): boolean {
    if (!this.tail) {
      this.need = need;
      return false;
    }
    if (this.pos >= this.tailAt) {
      this.pos -= this.tailAt;
      this.buf = this.tail;
      this.tail = null;
    } else this.bridge(this.buf.subarray(this.pos, this.tailAt), this.tail, Math.max(2 * (this.buf.length - this.tailAt), need));
    return this.next();
  }

  isNull(c: Col): boolean {
    return this.start[c] === -1;
  }

  /** An int8 column. */
  int(c: Col): number {
    const p = this.start[c];
    return this.buf.readInt32BE(p) * 4_294_967_296 + this.buf.readUInt32BE(p + 4);
  }

  bool(c: Col): boolean {
    return this.buf[this.start[c]] === 1;
  }

  /** A timestamptz column, in milliseconds since the Unix epoch (the column holds milliseconds). */
  millis(c: Col): number {
    return Math.floor(this.int(c) / 1000) + PG_EPOCH_MS;
  }

  text(c: Col): string | null {
    return this.start[c] === -1 ? null : this.buf.toString('utf8', this.start[c], this.end[c]);
  }

  /** Copies a column of `n` bytes (a hash) into `to`. */
  copyTo(c: Col, to: Buffer): void {
    this.buf.copy(to, 0, this.start[c], this.end[c]);
  }
}

const BLOCK = 256 * 1024;

/** Output bytes, written into blocks of 256 KiB (a full block is kept as it is, never copied). */
export class LineWriter {
  buf: Buffer;
  pos = 0;
  private readonly full: Buffer[] = [];
  private day = NaN;
  private dayPrefix: Buffer = Buffer.alloc(0);

  constructor() {
    this.buf = Buffer.allocUnsafe(BLOCK);
  }

  /** Makes room for `n` more bytes in the current block. */
  reserve(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    if (this.pos > 0) this.full.push(this.buf.subarray(0, this.pos));
    this.buf = Buffer.allocUnsafe(Math.max(BLOCK, n));
    this.pos = 0;
  }

  /** The bytes written since the last `take`, as blocks. */
  take(): Buffer[] {
    const out = this.full.splice(0);
    if (this.pos > 0) out.push(this.buf.subarray(0, this.pos));
    // The rest of the block stays free for what comes next.
    this.buf = this.buf.subarray(this.pos);
    this.pos = 0;
    return out;
  }

  /** Any text (reserves for itself). */
  string(s: string): void {
    this.reserve(s.length * 3);
    this.pos += this.buf.write(s, this.pos, 'utf8');
  }

  /** `YYYY-MM-DDTHH:MM:SS.mmmZ` at `p`, as Date#toISOString writes it (the form the chain hashes); returns the end. */
  iso(out: Buffer, p: number, ms: number): number {
    const day = Math.floor(ms / DAY_MS);
    if (day !== this.day) {
      const s = new Date(day * DAY_MS).toISOString();
      this.dayPrefix = Buffer.from(s.slice(0, s.indexOf('T') + 1), 'latin1');
      this.day = day;
    }
    p = put(out, p, this.dayPrefix);
    let t = ms - day * DAY_MS;
    const milli = t % 1000;
    t = (t - milli) / 1000;
    const sec = t % 60;
    t = (t - sec) / 60;
    const min = t % 60;
    const hour = (t - min) / 60;
    out[p++] = 48 + ((hour / 10) | 0);
    out[p++] = 48 + (hour % 10);
    out[p++] = 58; // :
    out[p++] = 48 + ((min / 10) | 0);
    out[p++] = 48 + (min % 10);
    out[p++] = 58;
    out[p++] = 48 + ((sec / 10) | 0);
    out[p++] = 48 + (sec % 10);
    out[p++] = 46; // .
    out[p++] = 48 + ((milli / 100) | 0);
    out[p++] = 48 + (((milli / 10) | 0) % 10);
    out[p++] = 48 + (milli % 10);
    out[p++] = 90; // Z
    return p;
  }
}

// Writers at a position of a block with room enough (the row reserved it); each returns the end.

function put(out: Buffer, p: number, b: Buffer): number {
  for (let i = 0; i < b.length; i++) out[p++] = b[i];
  return p;
}

function putRaw(out: Buffer, p: number, src: Buffer, start: number, end: number): number {
  if (end - start > 64) return p + src.copy(out, p, start, end);
  for (let i = start; i < end; i++) out[p++] = src[i];
  return p;
}

function putInt(out: Buffer, p: number, v: number): number {
  return p + out.write(String(v), p, 'latin1');
}

/** A JSON string of UTF-8 `src[start, end)`, escaped as JSON.stringify (and PostgreSQL's to_json) escape it; `null` for NULL. */
function putJson(out: Buffer, p: number, src: Buffer, start: number, end: number): number {
  if (start === -1) return put(out, p, NULL);
  const from = p;
  out[p++] = 34;
  for (let i = start; i < end; i++) {
    const b = src[i];
    if (b < 32 || b === 34 || b === 92) {
      // Rare: let JSON.stringify escape the value (at most 6 bytes for each byte of it).
      return from + out.write(JSON.stringify(src.toString('utf8', start, end)), from, 'utf8');
    }
    out[p++] = b;
  }
  out[p++] = 34;
  return p;
}

/** A quoted CSV cell (quotes doubled) followed by a comma; only the comma for NULL. */
function putCsv(out: Buffer, p: number, src: Buffer, start: number, end: number): number {
  if (start !== -1) {
    out[p++] = 34;
    for (let i = start; i < end; i++) {
      const b = src[i];
      out[p++] = b;
      if (b === 34) out[p++] = 34;
    }
    out[p++] = 34;
  }
  out[p++] = 44;
  return p;
}

const ascii = (s: string) => Buffer.from(s, 'latin1');
const NULL = ascii('null');
const K = {
  seq: ascii('{"type":"event","seq":'),
  occurredAt: ascii(',"occurredAt":"'),
  actorId: ascii('","actorId":'),
  actorKind: ascii(',"actorKind":'),
  action: ascii(',"action":'),
  subjectType: ascii(',"subjectType":'),
  subjectId: ascii(',"subjectId":'),
  decision: ascii(',"decision":"'),
  reason: ascii('","reason":'),
  before: ascii(',"before":'),
  after: ascii(',"after":'),
  requestId: ascii(',"requestId":'),
  via: ascii(',"via":'),
  prevHash: ascii(',"prevHash":"'),
  hash: ascii('","hash":"'),
  end: ascii('"}\n'),
  csvEvent: ascii('event,'),
  csvAfterSeq: ascii(',,"'),
};

// Room for a line: every field escaped at worst (6 bytes a byte), plus the keys and numbers.
const room = (r: CopyRows) => 6 * r.rowBytes + 512;

/** An NDJSON event line of the current row. */
export function ndjsonEvent(w: LineWriter, r: CopyRows): void {
  w.reserve(room(r));
  const out = w.buf;
  const src = r.buf;
  const s = r.start;
  const e = r.end;
  let p = w.pos;
  p = put(out, p, K.seq);
  p = putInt(out, p, r.int(Col.Seq));
  p = put(out, p, K.occurredAt);
  p = w.iso(out, p, r.millis(Col.OccurredAt));
  p = put(out, p, K.actorId);
  p = putJson(out, p, src, s[Col.ActorId], e[Col.ActorId]);
  p = put(out, p, K.actorKind);
  p = putJson(out, p, src, s[Col.ActorKind], e[Col.ActorKind]);
  p = put(out, p, K.action);
  p = putJson(out, p, src, s[Col.Action], e[Col.Action]);
  p = put(out, p, K.subjectType);
  p = putJson(out, p, src, s[Col.SubjectType], e[Col.SubjectType]);
  p = put(out, p, K.subjectId);
  p = putJson(out, p, src, s[Col.SubjectId], e[Col.SubjectId]);
  p = put(out, p, K.decision);
  p = putRaw(out, p, src, s[Col.Decision], e[Col.Decision]);
  p = put(out, p, K.reason);
  p = putJson(out, p, src, s[Col.Reason], e[Col.Reason]);
  p = put(out, p, K.before);
  p = s[Col.Before] === -1 ? put(out, p, NULL) : putRaw(out, p, src, s[Col.Before], e[Col.Before]);
  p = put(out, p, K.after);
  p = s[Col.After] === -1 ? put(out, p, NULL) : putRaw(out, p, src, s[Col.After], e[Col.After]);
  p = put(out, p, K.requestId);
  p = putJson(out, p, src, s[Col.RequestId], e[Col.RequestId]);
  // Only on events written through a job: the others' lines are as they always were.
  if (s[Col.Via] !== -1) {
    p = put(out, p, K.via);
    p = putRaw(out, p, src, s[Col.Via], e[Col.Via]);
  }
  p = put(out, p, K.prevHash);
  p = putRaw(out, p, src, s[Col.PrevHash], e[Col.PrevHash]);
  p = put(out, p, K.hash);
  p = putRaw(out, p, src, s[Col.Hash], e[Col.Hash]);
  w.pos = put(out, p, K.end);
}

/** A CSV event record of the current row (columns as CSV_COLUMNS; text quoted, NULL empty). */
export function csvEvent(w: LineWriter, r: CopyRows): void {
  w.reserve(room(r));
  const out = w.buf;
  const src = r.buf;
  const s = r.start;
  const e = r.end;
  let p = w.pos;
  p = put(out, p, K.csvEvent);
  p = putInt(out, p, r.int(Col.Seq));
  p = put(out, p, K.csvAfterSeq);
  p = w.iso(out, p, r.millis(Col.OccurredAt));
  out[p++] = 34;
  out[p++] = 44;
  for (let c = Col.ActorId; c <= Col.Hash; c++) p = putCsv(out, p, src, s[c], e[c]);
  // The last cell, withheld, is empty for an event.
  out[p++] = 10;
  w.pos = p;
}
