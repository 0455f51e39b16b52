/** Offline verification of an export: every event against its hash, the chain, the counts and bytes against the signed manifest. */

import { createHash, createPublicKey } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { open } from 'node:fs/promises';
import { CSV_COLUMNS, CSV_COLUMNS_WITHOUT_VIA, CSV_HEADER, type CsvColumn, type ExportManifest } from './audit-export.format';
import { csvEntry, Failure, ndjsonEntry, type Entry } from './audit-export.parse';
import { keyIdOf, verifyCanonical } from './audit-signing';

// This module knows nothing of the database or the server: the offline verifier (CLI, client
// examples) imports it from the build output on its own.

export interface ExportVerification {
  ok: boolean;
  /** 1-based line of the file where the first problem is (null: the file as a whole, e.g. a missing manifest). */
  line: number | null;
  problem: string | null;
  events: number;
  omitted: number;
  lastSeq: number | null;
  lastHash: string | null;
  /** Whether the signature was checked against a key given by the caller (not only the one in the manifest). */
  keyPinned: boolean;
  manifest: ExportManifest | null;
}

export interface VerifyExportOptions {
  /** The manifest, when it is a separate file (CSV). NDJSON exports carry theirs as the last line. */
  manifest?: ExportManifest | string | null;
  /** The server's public key (PEM): the manifest's signature must verify with it. */
  publicKeyPem?: string | null;
}

/**
 * Verifies an export offline: every shown event's content against its hash, every link of the
 * chain (hash-only lines included), the sequence, the counts and last hash against the manifest,
 * the bytes against the manifest's digest, and the manifest's Ed25519 signature. Reports the first
 * bad line. Edits, deletions, reorderings and insertions of lines fail at the line concerned.
 */
export function verifyExport(text: string, opts: VerifyExportOptions = {}): ExportVerification {
  const v = new ExportVerifier(opts);
  v.expectStart(text.slice(text.lastIndexOf('\n', text.length - 2) + 1));
  let start = 0;
  while (start < text.length) {
    const nl = text.indexOf('\n', start);
    const end = nl === -1 ? text.length : nl;
    v.push(text.slice(start, end), nl !== -1);
    start = end + 1;
  }
  return v.finish();
}

/** {@link verifyExport} of a file, read as a stream (exports of millions of events fit). */
export async function verifyExportFile(file: string, opts: VerifyExportOptions = {}): Promise<ExportVerification> {
  const v = new ExportVerifier(opts);
  // An NDJSON export's manifest is its last line: read it first, so the start of the chain is known from line 1.
  const handle = await open(file, 'r');
  try {
    const { size } = await handle.stat();
    const length = Math.min(size, 256 * 1024);
    const { buffer } = await handle.read(Buffer.alloc(length), 0, length, size - length);
    const tail = buffer.toString('utf8');
    v.expectStart(tail.slice(tail.lastIndexOf('\n', tail.length - 2) + 1));
  } finally {
    await handle.close();
  }
  let rest = '';
  for await (const chunk of createReadStream(file, { encoding: 'utf8', highWaterMark: 1 << 20 })) {
    const text = rest + (chunk as string);
    let start = 0;
    for (let nl = text.indexOf('\n'); nl !== -1; nl = text.indexOf('\n', start)) {
      v.push(text.slice(start, nl), true);
      start = nl + 1;
    }
    rest = text.slice(start);
  }
  if (rest !== '') v.push(rest, false);
  return v.finish();
}

/** Streaming form of {@link verifyExport}: push physical lines (without their newline) in order, then finish. */
export class ExportVerifier {
  private lineNo = 0;
  private format: 'NDJSON' | 'CSV' | null = null;
  private readonly digest = createHash('sha256');
  private manifest: ExportManifest | null = null;
  private manifestLine = 0;
  private failure: Failure | null = null;
  private readonly pending: Entry[] = [];
  private csvRecord: { fields: Array<{ value: string; quoted: boolean }>; line: number; inQuotes: boolean; cell: string; quoted: boolean } | null = null;
  private csvColumns: readonly CsvColumn[] = CSV_COLUMNS;
  // Chain state
  private expectSeq: number | null = null;
  private link: string | null = null;
  private prevLink: string | null = null;
  private prev: Entry | null = null;
  private firstEntry: Entry | null = null;
  private start: { firstSeq: number | null; prevHash: string | null } | null = null;
  private events = 0;
  private omitted = 0;
  private lines = 0;

  constructor(private readonly opts: VerifyExportOptions = {}) {
    if (opts.manifest) {
      try {
        this.manifest = typeof opts.manifest === 'string' ? (JSON.parse(opts.manifest) as ExportManifest) : opts.manifest;
        this.start = { firstSeq: this.manifest.firstSeq, prevHash: this.manifest.prevHash };
      } catch {
        this.failure = new Failure(null, 'the manifest file is not valid JSON');
      }
    }
  }

  /** Takes the chain's start from what may be the NDJSON manifest line (ignored when it is not one). */
  expectStart(lastLine: string): void {
    if (this.start || !lastLine.startsWith('{')) return;
    try {
      const m = JSON.parse(lastLine) as ExportManifest;
      if (m && m.type === 'manifest' && (m.firstSeq === null || typeof m.firstSeq === 'number')) this.start = { firstSeq: m.firstSeq, prevHash: m.prevHash };
    } catch {
      // Not a manifest: the end of the file says so later.
    }
  }

  push(raw: string, hadNewline = true): void {
    this.lineNo += 1;
    if (this.failure) return;
    try {
      this.take(raw, hadNewline);
    } catch (e) {
      if (e instanceof Failure) this.failure = e;
      else throw e;
    }
  }

  private take(raw: string, hadNewline: boolean): void {
    const line = raw;
    if (this.format === null) {
      if (line === '' && !hadNewline) return;
      this.format = line.startsWith('{') ? 'NDJSON' : 'CSV';
      if (this.format === 'CSV') {
        // An export written before events recorded `via` has no such column, and still verifies.
        if (line === CSV_COLUMNS_WITHOUT_VIA.join(',')) this.csvColumns = CSV_COLUMNS_WITHOUT_VIA;
        else if (line !== CSV_HEADER.trimEnd()) throw new Failure(this.lineNo, 'not an audit export: the first line is neither JSON nor the CSV header');
      }
    }
    if (this.format === 'NDJSON') {
      if (this.manifestLine) {
        if (line === '' && !hadNewline) return;
        throw new Failure(this.lineNo, 'a line follows the manifest');
      }
      let obj: Record<string, unknown>;
      try {
        obj = JSON.parse(line);
      } catch {
        throw new Failure(this.lineNo, 'not valid JSON');
      }
      if (obj && obj.type === 'manifest') {
        this.manifestLine = this.lineNo;
        if (this.opts.manifest) throw new Failure(this.lineNo, 'the export carries a manifest and another was given');
        this.manifest = obj as unknown as ExportManifest;
        return;
      }
      this.digest.update(line + (hadNewline ? '\n' : ''));
      this.pending.push(ndjsonEntry(obj, this.lineNo));
    } else {
      this.digest.update(line + (hadNewline ? '\n' : ''));
      if (this.lineNo === 1) return;
      if (line === '' && !hadNewline && !this.csvRecord) return;
      this.csvLine(line, hadNewline);
    }
    this.drain();
  }

  private csvLine(line: string, hadNewline: boolean): void {
    const r = (this.csvRecord ??= { fields: [], line: this.lineNo, inQuotes: false, cell: '', quoted: false });
    for (let i = 0; i < line.length; i++) {
      const c = line[i];
      if (r.inQuotes) {
        if (c === '"') {
          if (line[i + 1] === '"') {
            r.cell += '"';
            i++;
          } else r.inQuotes = false;
        } else r.cell += c;
      } else if (c === '"') {
        if (r.cell !== '' || r.quoted) throw new Failure(r.line, 'malformed CSV (a quote inside an unquoted cell)');
        r.inQuotes = true;
        r.quoted = true;
      } else if (c === ',') {
        r.fields.push({ value: r.cell, quoted: r.quoted });
        r.cell = '';
        r.quoted = false;
      } else {
        if (r.quoted) throw new Failure(r.line, 'malformed CSV (text after a closing quote)');
        r.cell += c;
      }
    }
    if (r.inQuotes) {
      if (!hadNewline) throw new Failure(r.line, 'malformed CSV (unterminated quote)');
      r.cell += '\n';
      return;
    }
    r.fields.push({ value: r.cell, quoted: r.quoted });
    this.csvRecord = null;
    this.pending.push(csvEntry(r.fields, r.line, this.csvColumns));
  }

  private drain(): void {
    for (const e of this.pending.splice(0)) this.check(e);
  }

  private check(e: Entry): void {
    this.firstEntry ??= e;
    this.lines += 1;
    if (this.expectSeq === null) {
      // The manifest gives the start (read ahead for NDJSON); without one, the first line does, and
      // the end compares it with whatever manifest turns up.
      this.expectSeq = this.start ? this.start.firstSeq : e.seq;
      this.link = this.start ? this.start.prevHash : e.prevHash;
      this.prevLink = this.link;
    }
    const prev = this.prev;
    if (e.kind === 'event' && !e.intact) throw new Failure(e.line, `event ${e.seq} was altered (its content no longer matches its hash)`);
    if (e.seq !== this.expectSeq) {
      if (prev && prev.kind === 'omitted' && e.prevHash === prev.hash) {
        throw new Failure(prev.line, `hash-only line for events ${prev.seq}–${prev.seqTo} was altered (the next event follows it, but not its range)`);
      }
      if (prev && e.seq === prev.seq && e.seqTo === prev.seqTo && e.prevHash === this.prevLink && e.hash !== prev.hash) {
        throw new Failure(prev.line, `line does not belong to the chain: event ${e.seq} appears twice, and the next line's is the one the chain continues from`);
      }
      throw new Failure(e.line, `expected event ${this.expectSeq} here, found ${e.seq}: a line was deleted, inserted or moved`);
    }
    if (e.prevHash !== this.link) {
      if (prev && prev.kind === 'omitted') throw new Failure(prev.line, `hash-only line for events ${prev.seq}–${prev.seqTo} was altered (the next event does not follow its hash)`);
      throw new Failure(e.line, `event ${e.seq} does not follow the line before (previous hash differs)`);
    }
    if (e.seqTo < e.seq) throw new Failure(e.line, 'hash-only line with an empty range');
    if (e.kind === 'event') this.events += 1;
    else this.omitted += e.seqTo - e.seq + 1;
    this.prevLink = this.link;
    this.link = e.hash;
    this.expectSeq = e.seqTo + 1;
    this.prev = e;
  }

  finish(): ExportVerification {
    if (!this.failure) {
      try {
        if (this.csvRecord) throw new Failure(this.csvRecord.line, 'malformed CSV (unterminated quote)');
        this.finalChecks();
      } catch (e) {
        if (e instanceof Failure) this.failure = e;
        else throw e;
      }
    }
    const m = this.manifest;
    return {
      ok: !this.failure,
      line: this.failure?.line ?? null,
      problem: this.failure?.message ?? null,
      events: this.events,
      omitted: this.omitted,
      lastSeq: this.expectSeq === null ? null : this.expectSeq - 1,
      lastHash: this.link,
      keyPinned: !!this.opts.publicKeyPem,
      manifest: m,
    };
  }

  private finalChecks(): void {
    const m = this.manifest;
    const endLine = this.lineNo;
    if (!m) {
      throw new Failure(null, this.format === 'CSV' ? 'no manifest: give the .manifest.json that came with the CSV' : 'no manifest line at the end: the export is truncated');
    }
    if (m.type !== 'manifest' || m.version !== 1) throw new Failure(this.manifestLine || null, 'unknown manifest version');
    if (this.format && m.format !== this.format) throw new Failure(this.manifestLine || null, `the manifest describes a ${m.format} export`);
    const last = this.prev;
    const first = this.lines > 0;
    if (!first) {
      if (m.lines !== 0 || m.events !== 0) throw new Failure(this.manifestLine || endLine, `the manifest lists ${m.lines} lines, the export has none`);
    } else {
      if (this.firstSeq() !== m.firstSeq || this.firstPrev() !== m.prevHash) {
        throw new Failure(this.firstLine(), `the first line is not the manifest's first event ${m.firstSeq} (lines before it were deleted, or one was inserted)`);
      }
      if (this.link !== m.lastHash || this.expectSeq! - 1 !== m.lastSeq) {
        if (last && last.kind === 'omitted' && this.expectSeq! - 1 === m.lastSeq) throw new Failure(last.line, `hash-only line for events ${last.seq}–${last.seqTo} was altered (its hash is not the manifest's last hash)`);
        const after = this.manifestLine || endLine + 1;
        throw new Failure(this.expectSeq! - 1 < (m.lastSeq ?? 0) ? after : last!.line, `the export ends at event ${this.expectSeq! - 1}, the manifest at ${m.lastSeq}: lines were removed or added at the end`);
      }
    }
    if (this.lines !== m.lines || this.events !== m.events || this.omitted !== m.omitted) {
      throw new Failure(this.manifestLine || null, `counts differ from the manifest (lines ${this.lines}/${m.lines}, events ${this.events}/${m.events}, hash-only ${this.omitted}/${m.omitted})`);
    }
    if (this.digest.digest('hex') !== m.contentSha256) throw new Failure(null, 'the file\'s bytes differ from the signed digest (white space or line endings changed?)');
    const { signature, ...body } = m;
    if (this.opts.publicKeyPem) {
      let pinned: string;
      try {
        pinned = keyIdOf(createPublicKey(this.opts.publicKeyPem));
      } catch {
        throw new Failure(null, 'the public key given is not a valid PEM key');
      }
      if (pinned !== m.keyId) throw new Failure(this.manifestLine || null, `the manifest was signed with key ${m.keyId}, not with the key given (${pinned})`);
    }
    let embedded: string;
    try {
      embedded = keyIdOf(createPublicKey(m.publicKey));
    } catch {
      throw new Failure(this.manifestLine || null, 'the manifest\'s public key is not a valid key');
    }
    if (embedded !== m.keyId) throw new Failure(this.manifestLine || null, 'the manifest\'s public key does not match its key id');
    if (!verifyCanonical(this.opts.publicKeyPem ?? m.publicKey, body, signature)) throw new Failure(this.manifestLine || null, 'the manifest\'s signature does not verify');
  }

  private firstSeq(): number | null {
    return this.firstEntry?.seq ?? null;
  }
  private firstPrev(): string | null {
    return this.firstEntry?.prevHash ?? null;
  }
  private firstLine(): number | null {
    return this.firstEntry?.line ?? null;
  }
}
