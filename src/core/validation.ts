import { canonicalJson } from './canonical-json';
import { badInput } from './errors';

/**
 * The reasons a string is refused as storable input (`extensions.reason`, and `reason` in REST
 * bodies), the same on every transport.
 */
export const StorableReason = {
  /** A NUL character or an unpaired UTF-16 surrogate: PostgreSQL cannot store it in text or JSON. */
  MALFORMED_STRING: 'MALFORMED_STRING',
  /** Longer than the field allows. */
  STRING_TOO_LONG: 'STRING_TOO_LONG',
} as const;

/** The longest string any input may hold, in UTF-16 code units, unless its field says less. */
export const MAX_STRING_LENGTH = 100_000;
/** The longest identifier-like string (request keys, request ids, tensor names). */
export const MAX_KEY_LENGTH = 200;

const storable = (s: string) => !s.includes('\u0000') && (s as string & { isWellFormed(): boolean }).isWellFormed();

/**
 * The one check of client input that will be stored or logged, whatever the transport (GraphQL
 * arguments, Open Inference Protocol bodies, upload metadata, export query parameters): every
 * string in `value`, object keys included, at any depth, must be storable by PostgreSQL (no NUL,
 * no unpaired surrogate) and at most `maxLength` long. Throws BAD_USER_INPUT with
 * `reason` MALFORMED_STRING or STRING_TOO_LONG and `field` the path of the first offending string
 * (under `field`; pass `''` for paths from the root).
 */
export function assertStorable(value: unknown, field: string, maxLength = MAX_STRING_LENGTH): void {
  const bad = findUnstorable(value, maxLength);
  if (bad === null) return;
  const at = [field, ...bad.path].filter((p) => p !== '').join('.') || 'input';
  if (bad.tooLong) throw badInput(`${at} is longer than ${maxLength} characters`, { field: at, reason: StorableReason.STRING_TOO_LONG });
  throw badInput(`${at} contains a NUL character or malformed Unicode`, { field: at, reason: StorableReason.MALFORMED_STRING });
}

// The path to the first unstorable string, or null. Paths are built only on failure: inputs can
// hold millions of numbers (prediction inputs), which are skipped without a call.
function findUnstorable(value: unknown, maxLength: number): { path: Array<string | number>; tooLong: boolean } | null {
  if (typeof value === 'string') {
    if (!storable(value)) return { path: [], tooLong: false };
    return value.length > maxLength ? { path: [], tooLong: true } : null;
  }
  if (value === null || typeof value !== 'object' || value instanceof Date) return null;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const v = value[i];
      if (v === null || typeof v === 'number' || typeof v === 'boolean') continue;
      const bad = findUnstorable(v, maxLength);
      if (bad) return { ...bad, path: [i, ...bad.path] };
    }
    return null;
  }
  for (const k of Object.keys(value)) {
    const key = findUnstorable(k, maxLength);
    if (key) return key;
    const bad = findUnstorable((value as Record<string, unknown>)[k], maxLength);
    if (bad) return { ...bad, path: [k, ...bad.path] };
  }
  return null;
}

/** Metric maps: at most 200 names, each a finite number. */
export function validateMetrics(value: unknown, field = 'metrics'): Record<string, number> {
  if (value === null || value === undefined) return {};
  if (typeof value !== 'object' || Array.isArray(value)) throw badInput(`${field} must be an object of name → number`, { field });
  const entries = Object.entries(value as Record<string, unknown>);
  if (entries.length > 200) throw badInput(`${field} may hold at most 200 metrics`, { field });
  for (const [k, v] of entries) {
    if (!/^[A-Za-z0-9_.\-/]{1,100}$/.test(k)) throw badInput(`${field}: "${k.slice(0, 100)}" is not a valid metric name`, { field });
    if (typeof v !== 'number' || !Number.isFinite(v)) throw badInput(`${field}.${k} must be a finite number`, { field });
  }
  return value as Record<string, number>;
}

/** Canonical JSON of client content, bounded in size and depth. */
export function boundedCanonicalJson(value: unknown, field: string, maxBytes = 1024 * 1024, maxDepth = 32): string {
  const depth = (v: unknown, d: number): number => {
    if (d > maxDepth) return d;
    if (v && typeof v === 'object') {
      let m = d;
      for (const x of Object.values(v as object)) m = Math.max(m, depth(x, d + 1));
      return m;
    }
    return d;
  };
  if (depth(value, 0) > maxDepth) throw badInput(`${field} is nested deeper than ${maxDepth} levels`, { field });
  let text: string;
  try {
    text = canonicalJson(value);
  } catch (e) {
    throw badInput(`${field} is not representable as JSON: ${(e as Error).message}`, { field });
  }
  if (Buffer.byteLength(text) > maxBytes) throw badInput(`${field} is larger than ${maxBytes} bytes`, { field });
  return text;
}

export function parseTime(value: string | null | undefined, field: string): Date | null {
  if (!value) return null;
  const d = new Date(value);
  if (Number.isNaN(d.getTime())) throw badInput(`${field} is not a valid time`, { field });
  return d;
}
