import { canonicalJson, sha256Hex } from '../core/canonical-json';
import { publicKeyOf, signCanonical } from './audit-signing';

// This module knows nothing of the database or the server: the offline verifier (CLI, client
// examples) imports it from the build output on its own.

/** The columns of a CSV export, in order. Strings are always quoted; an empty unquoted cell is null. */
export const CSV_COLUMNS = [
  'kind',
  'seq',
  'seq_to',
  'occurred_at',
  'actor_id',
  'actor_kind',
  'action',
  'subject_type',
  'subject_id',
  'decision',
  'reason',
  'before',
  'after',
  'request_id',
  'via',
  'prev_hash',
  'hash',
  'withheld',
] as const;
export const CSV_HEADER = CSV_COLUMNS.join(',') + '\n';
export type CsvColumn = (typeof CSV_COLUMNS)[number];
/** The columns of CSV exports written before events recorded `via`: such files still verify. */
export const CSV_COLUMNS_WITHOUT_VIA: readonly CsvColumn[] = CSV_COLUMNS.filter((c) => c !== 'via');

/**
 * The signed summary of an export. `prevHash` is the hash of the event just before `firstSeq`
 * (the genesis hash, or a retention checkpoint's); `contentSha256` covers every byte of the export
 * before the manifest (NDJSON) or the whole CSV file.
 */
export interface ExportManifest {
  type: 'manifest';
  version: 1;
  format: 'NDJSON' | 'CSV';
  exportId: string;
  generatedAt: string;
  filter: Record<string, unknown>;
  firstSeq: number | null;
  lastSeq: number | null;
  prevHash: string | null;
  lastHash: string | null;
  /** Lines that show an event. */
  events: number;
  /** Events in the range that are represented by their hash only (outside the filter, or withheld). */
  omitted: number;
  /** Of those, events that matched the filter but hold fields the exporter may not read. */
  withheld: number;
  /** Data lines (event and hash-only lines; header and manifest excluded). */
  lines: number;
  contentSha256: string;
  algorithm: 'Ed25519';
  keyId: string;
  /** SPKI PEM, for convenience: trust it only once its keyId matches a key obtained separately. */
  publicKey: string;
  signature: string;
}

export type UnsignedManifest = Omit<ExportManifest, 'type' | 'version' | 'algorithm' | 'keyId' | 'publicKey' | 'signature'>;

export function signManifest(privateKeyPem: string, unsigned: UnsignedManifest): ExportManifest {
  const { pem, keyId } = publicKeyOf(privateKeyPem);
  const body = { type: 'manifest' as const, version: 1 as const, ...unsigned, algorithm: 'Ed25519' as const, keyId, publicKey: pem };
  return { ...body, signature: signCanonical(privateKeyPem, body) };
}

/** Hash-chain helpers shared with the server's own chain (same formula as appendAudit). */
export function eventHash(prevHash: string, payload: Record<string, unknown>): string {
  return sha256Hex(prevHash + canonicalJson(payload));
}

// ---------------------------------------------------------------------------------------------
// Writing: lines for hash-only runs (event lines are rendered from the rows of a binary COPY, see
// audit-export.render).

/**
 * A run of consecutive events shown by hashes only: the hash before the first and the hash of the
 * last are all the chain needs to go on. `withheld` says why an event that matched the filter is
 * not shown (a single-event run).
 */
export function omittedLine(format: 'NDJSON' | 'CSV', seq: number, seqTo: number, prevHash: string, hash: string, withheld: string | null): string {
  if (format === 'NDJSON') return JSON.stringify({ type: 'omitted', seq, seqTo, prevHash, hash, withheld }) + '\n';
  return `omitted,${seq},${seqTo},,,,,,,,,,,,,${csvQuote(prevHash)},${csvQuote(hash)},${withheld === null ? '' : csvQuote(withheld)}\n`;
}

export function csvQuote(s: string): string {
  return '"' + s.replace(/"/g, '""') + '"';
}
