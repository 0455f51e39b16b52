import { badInput } from './errors';
import type { KindName } from './subjects';
import { CoreReason } from './error-reasons';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** Opaque global IDs: base64url("Type:key"). Every `id` the API hands out is one. */
export function toGlobalId(type: KindName, key: string): string {
  return Buffer.from(`${type}:${key}`, 'utf8').toString('base64url');
}

export interface DecodedId {
  type: string;
  key: string;
}

/** Decodes without trusting: anything malformed is BAD_USER_INPUT naming the argument. */
export function fromGlobalId(id: string, argument = 'id'): DecodedId {
  if (typeof id !== 'string' || id.length === 0 || id.length > 200 || !/^[A-Za-z0-9_-]+$/.test(id)) {
    throw badInput(`${argument} is not a valid ID`, { field: argument, reason: CoreReason.MALFORMED_ID });
  }
  const text = Buffer.from(id, 'base64url').toString('utf8');
  const sep = text.indexOf(':');
  if (sep <= 0) throw badInput(`${argument} is not a valid ID`, { field: argument, reason: CoreReason.MALFORMED_ID });
  const type = text.slice(0, sep);
  const key = text.slice(sep + 1);
  // The type part is a GraphQL type name; whether this API serves it is the caller's question,
  // answered from own-property lookups only (never `constructor` or `__proto__` off a prototype).
  if (!/^[A-Za-z_][A-Za-z0-9_]{0,99}$/.test(type) || key.length === 0) {
    throw badInput(`${argument} is not a valid ID`, { field: argument, reason: CoreReason.MALFORMED_ID });
  }
  return { type, key };
}

/** Decodes and insists on one type with a uuid key. */
export function expectId(id: string, type: string | readonly string[], argument = 'id'): string {
  const decoded = fromGlobalId(id, argument);
  const types = typeof type === 'string' ? [type] : type;
  if (!types.includes(decoded.type) || !UUID.test(decoded.key)) {
    throw badInput(`${argument} must be the ID of a ${types.join(' or ')}`, { field: argument, reason: CoreReason.WRONG_ID_TYPE });
  }
  return decoded.key;
}

export function isUuid(value: string): boolean {
  return UUID.test(value);
}
