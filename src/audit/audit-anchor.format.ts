import { createPublicKey } from 'node:crypto';
import { keyIdOf, publicKeyOf, signCanonical, verifyCanonical } from './audit-signing';

// Like the export format, this module knows nothing of the database: an anchor is checked for
// its form and signature before anything is compared with a chain.

/** What an anchor vouches for: the chain's head as it was, in the database it was read from. */
export interface AnchorHead {
  seq: number;
  hash: string;
  /** The head event's own time. */
  occurredAt: string;
  /** `audit_chain_identity.database_id` and the database's name when the anchor was signed. */
  database: { id: string; name: string };
}

/**
 * One published anchor: the chain head, when it was anchored, and an Ed25519 signature by the
 * audit key over the canonical JSON of every other field. Written as one NDJSON line.
 */
export interface AuditAnchor extends AnchorHead {
  type: 'anchor';
  version: 1;
  anchoredAt: string;
  algorithm: 'Ed25519';
  keyId: string;
  signature: string;
}

const KEYS = ['type', 'version', 'seq', 'hash', 'occurredAt', 'database', 'anchoredAt', 'algorithm', 'keyId', 'signature'].sort();
const HEX64 = /^[0-9a-f]{64}$/;
const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

/** Signs the head with the audit key (PKCS#8 PEM). */
export function signAnchor(privateKeyPem: string, head: AnchorHead, anchoredAt: Date): AuditAnchor {
  const body = {
    type: 'anchor' as const,
    version: 1 as const,
    seq: head.seq,
    hash: head.hash,
    occurredAt: head.occurredAt,
    database: { id: head.database.id, name: head.database.name },
    anchoredAt: anchoredAt.toISOString(),
    algorithm: 'Ed25519' as const,
    keyId: publicKeyOf(privateKeyPem).keyId,
  };
  return { ...body, signature: signCanonical(privateKeyPem, body) };
}

/** The NDJSON line of an anchor, newline included. */
export function anchorLine(anchor: AuditAnchor): string {
  return JSON.stringify(anchor) + '\n';
}

/** An anchor read back: the anchor, or why the line is refused. */
export type AnchorReading = { ok: true; anchor: AuditAnchor } | { ok: false; problem: string };

/**
 * Reads one line and checks its form and its signature against `publicKeyPem`. A line with another
 * shape, a key id that is not this key's, or a signature that does not verify (an edited field, or
 * another key) is refused with the reason.
 */
export function readAnchor(line: string, publicKeyPem: string): AnchorReading {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    return { ok: false, problem: 'is not JSON' };
  }
  const a = value as AuditAnchor;
  if (!a || typeof a !== 'object' || Array.isArray(a) || a.type !== 'anchor') return { ok: false, problem: 'is not an anchor' };
  const keys = Object.keys(a).sort();
  if (keys.length !== KEYS.length || keys.some((k, i) => k !== KEYS[i])) return { ok: false, problem: `has other fields than an anchor's (${keys.join(', ')})` };
  const db = a.database as unknown as Record<string, unknown>;
  const wellFormed =
    a.version === 1 &&
    Number.isSafeInteger(a.seq) &&
    a.seq > 0 &&
    typeof a.hash === 'string' &&
    HEX64.test(a.hash) &&
    typeof a.occurredAt === 'string' &&
    ISO.test(a.occurredAt) &&
    typeof a.anchoredAt === 'string' &&
    ISO.test(a.anchoredAt) &&
    !!db &&
    typeof db === 'object' &&
    Object.keys(db).sort().join(',') === 'id,name' &&
    typeof db.id === 'string' &&
    typeof db.name === 'string' &&
    a.algorithm === 'Ed25519' &&
    typeof a.keyId === 'string' &&
    typeof a.signature === 'string';
  if (!wellFormed) return { ok: false, problem: 'is not a well-formed anchor' };
  const keyId = keyIdOf(createPublicKey(publicKeyPem));
  if (a.keyId !== keyId) return { ok: false, problem: `is signed by key ${JSON.stringify(a.keyId)}, not by the audit key ${keyId}` };
  const { signature, ...body } = a;
  if (!verifyCanonical(publicKeyPem, body, signature)) return { ok: false, problem: 'has a signature that does not verify with the audit key (forged or edited)' };
  return { ok: true, anchor: a };
}
