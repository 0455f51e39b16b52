import { canonicalJson } from './canonical-json';
import { CoreReason } from './error-reasons';
import { badInput } from './errors';
import { JSON_LIMITS, jsonTooDeep } from './scalars';

/** Names of teams, datasets, models, deployments…: what a URL segment or a CLI argument can hold. */
export const NAME = /^[a-z0-9][a-z0-9._-]{0,62}$/;
export const NAME_MSG = 'must be 1–63 lowercase letters, digits, ".", "_" or "-", starting with a letter or digit';
/** A sha256 digest in lowercase hex. */
export const SHA256 = /^[0-9a-f]{64}$/;

/** The longest string any input may hold, in UTF-16 code units, unless its field says less. */
export const MAX_STRING_LENGTH = 100_000;
/**
 * How deep {@link assertStorable} walks before refusing with `JSON_TOO_DEEP`: a JSON value as deep
 * as its scalar allows ({@link JSON_LIMITS}), inside the arguments or the body that carry it.
 */
export const MAX_INPUT_DEPTH = JSON_LIMITS.maxDepth + 8;
/** The longest identifier-like string (request keys, request ids, tensor names). */
export const MAX_KEY_LENGTH = 200;

const storable = (s: string) => !s.includes('\u0000') && (s as string & { isWellFormed(): boolean }).isWellFormed();

/**
 * The one check of client input that will be stored or logged, whatever the transport (GraphQL
 * arguments, Open Inference Protocol bodies, upload metadata, export query parameters): every
 * string in `value`, object keys included, at any depth, must be storable by PostgreSQL (no NUL,
 * no unpaired surrogate) and at most `maxLength` long. Throws BAD_USER_INPUT with
 * `reason` MALFORMED_STRING or STRING_TOO_LONG and `field` the path of the first offending string
 * (under `field`; pass `''` for paths from the root), or with `reason` JSON_TOO_DEEP when `value`
 * nests deeper than {@link MAX_INPUT_DEPTH}.
 */
export function assertStorable(value: unknown, field: string, maxLength = MAX_STRING_LENGTH): void {
  const bad = findUnstorable(value, maxLength);
  if (bad === null) return;
  const at = [field, ...bad.path].filter((p) => p !== '').join('.') || 'input';
  if (bad.tooLong) throw badInput(`${at} is longer than ${maxLength} characters`, { field: at, reason: CoreReason.STRING_TOO_LONG });
  throw badInput(`${at} contains a NUL character or malformed Unicode`, { field: at, reason: CoreReason.MALFORMED_STRING });
}

// The path to the first unstorable string, or null. Walks with an explicit stack, so that a body
// nested 200,000 deep (express parses it) is refused, not a stack overflow; nesting past
// MAX_INPUT_DEPTH is refused like a JSON scalar nested too deep. Paths are built only on failure:
// inputs can hold millions of numbers (prediction inputs), which are skipped without a frame.
function findUnstorable(value: unknown, maxLength: number): { path: Array<string | number>; tooLong: boolean } | null {
  const check = (s: string) => (!storable(s) ? { tooLong: false } : s.length > maxLength ? { tooLong: true } : null);
  if (typeof value === 'string') {
    const bad = check(value);
    return bad && { path: [], ...bad };
  }
  if (!isContainer(value)) return null;
  // One frame per open container: its entries, the next one to look at, and the step that led to it.
  const frames: Array<{ entries: Array<[string | number, unknown]>; next: number; step: string | number }> = [{ entries: entriesOf(value), next: 0, step: '' }];
  const pathTo = (last: string | number) => [...frames.slice(1).map((f) => f.step), last];
  while (frames.length) {
    const frame = frames[frames.length - 1];
    if (frame.next >= frame.entries.length) {
      frames.pop();
      continue;
    }
    const [step, v] = frame.entries[frame.next++];
    if (typeof step === 'string') {
      const bad = check(step);
      if (bad) return { path: pathTo(step).slice(0, -1), ...bad };
    }
    if (typeof v === 'string') {
      const bad = check(v);
      if (bad) return { path: pathTo(step), ...bad };
    } else if (isContainer(v)) {
      if (frames.length >= MAX_INPUT_DEPTH) throw jsonTooDeep(MAX_INPUT_DEPTH);
      frames.push({ entries: entriesOf(v), next: 0, step });
    }
  }
  return null;
}

const isContainer = (v: unknown): v is object => v !== null && typeof v === 'object' && !(v instanceof Date);

function entriesOf(v: object): Array<[string | number, unknown]> {
  if (!Array.isArray(v)) return Object.entries(v);
  const out: Array<[number, unknown]> = [];
  // Numbers, booleans and nulls hold no string: large numeric tensors cost no entry.
  for (let i = 0; i < v.length; i++) if ((v[i] !== null && typeof v[i] === 'object') || typeof v[i] === 'string') out.push([i, v[i]]);
  return out;
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
