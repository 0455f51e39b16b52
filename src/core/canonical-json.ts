import { createHash } from 'node:crypto';

/**
 * Canonical JSON (RFC 8785 for the values this server stores): object keys sorted by code unit,
 * no insignificant white space, numbers as ECMAScript prints them. Rejects values JSON cannot
 * represent (undefined inside arrays, functions, non-finite numbers, cycles).
 */
export function canonicalJson(value: unknown): string {
  return write(value, new Set());
}

function write(value: unknown, seen: Set<object>): string {
  if (value === null) return 'null';
  switch (typeof value) {
    case 'boolean':
      return value ? 'true' : 'false';
    case 'string':
      return JSON.stringify(value);
    case 'number':
      if (!Number.isFinite(value)) throw new TypeError('non-finite number in JSON');
      return JSON.stringify(value);
    case 'object': {
      if (value instanceof Date) return JSON.stringify(value.toISOString());
      if (seen.has(value)) throw new TypeError('cycle in JSON');
      seen.add(value);
      let out: string;
      if (Array.isArray(value)) {
        out = '[' + value.map((v) => write(v, seen)).join(',') + ']';
      } else {
        const entries = Object.keys(value)
          .filter((k) => (value as Record<string, unknown>)[k] !== undefined)
          .sort()
          .map((k) => JSON.stringify(k) + ':' + write((value as Record<string, unknown>)[k], seen));
        out = '{' + entries.join(',') + '}';
      }
      seen.delete(value);
      return out;
    }
    default:
      throw new TypeError(`${typeof value} is not JSON`);
  }
}

export function sha256Hex(data: string | Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}
