import { ErrorCode } from '../core/errors';
import type { ReasonCatalogue } from '../core/error-reasons';

/** Domain codes of principals, roles and API keys, carried in `extensions.reason` beside the general code. */
export enum AccessReason {
  /** The bearer token verifies but its sub, exp, roles or teams are missing or malformed: have a token issued with valid claims. */
  TOKEN_CLAIMS_INVALID = 'TOKEN_CLAIMS_INVALID',
  /** A built-in role cannot be deleted: edit its rules instead. */
  BUILT_IN_ROLE = 'ACCESS_BUILT_IN_ROLE',
  /** The API key is already revoked: nothing to do. */
  ALREADY_REVOKED = 'ACCESS_ALREADY_REVOKED',
}

declare module '../core/error-reasons' {
  interface ErrorReasons extends Record<AccessReason, true> {}
}

/** The access domain's part of the catalogue. */
export const ACCESS_REASONS: ReasonCatalogue<AccessReason> = {
  [AccessReason.TOKEN_CLAIMS_INVALID]: { codes: [ErrorCode.UNAUTHENTICATED], description: 'The bearer token verifies but its sub, exp, roles or teams are missing or malformed: have a token issued with valid claims.' },
  [AccessReason.BUILT_IN_ROLE]: { codes: [ErrorCode.CONFLICT], description: 'A built-in role cannot be deleted: edit its rules instead.' },
  [AccessReason.ALREADY_REVOKED]: { codes: [ErrorCode.CONFLICT], description: 'The API key is already revoked: nothing to do.' },
};
