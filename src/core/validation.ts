import { canonicalJson } from './canonical-json';
import { badInput } from './errors';

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
