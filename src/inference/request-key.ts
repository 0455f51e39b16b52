import { badInput } from '../core/errors';
import { assertStorable, MAX_KEY_LENGTH } from '../core/validation';

/**
 * A request key as every protocol takes it (GraphQL `requestKey`, the Open Inference Protocol's
 * `parameters.request_key`): a string of 1 to {@link MAX_KEY_LENGTH} storable characters. It is
 * stored with every prediction record, so it passes the shared storable-input check.
 */
export function checkRequestKey(key: unknown, field: string): string {
  if (typeof key !== 'string' || key.length === 0) throw badInput(`${field} must be a string of 1 to ${MAX_KEY_LENGTH} characters`, { field });
  assertStorable(key, field, MAX_KEY_LENGTH);
  return key;
}
