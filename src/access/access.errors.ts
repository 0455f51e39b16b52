import { ErrorCode } from '../core/errors';
import type { ReasonCatalogue } from '../core/error-reasons';

/** Domain codes of principals, roles and API keys, carried in `extensions.reason` beside the general code. */
export enum AccessReason {
  /** The bearer token verifies but its sub, exp, roles or teams (as its issuer's claims are mapped) are missing or malformed: have a token issued with valid claims. */
  TOKEN_CLAIMS_INVALID = 'TOKEN_CLAIMS_INVALID',
  /** The bearer token has expired (its exp, with the allowed clock skew, is past): have a new one issued. */
  TOKEN_EXPIRED = 'TOKEN_EXPIRED',
  /** The bearer token is not valid yet (its nbf is ahead, beyond the allowed clock skew): check the clocks, or wait. */
  TOKEN_NOT_YET_VALID = 'TOKEN_NOT_YET_VALID',
  /** The bearer token's signature does not verify: it was altered, or signed with another key or secret; send it as issued. */
  TOKEN_SIGNATURE_INVALID = 'TOKEN_SIGNATURE_INVALID',
  /** The bearer token is not a well-formed signed JWT: send the token as issued. */
  TOKEN_MALFORMED = 'TOKEN_MALFORMED',
  /** The bearer token is signed with an algorithm its issuer may not use (HS256 or none for an OIDC issuer): have it issued as configured. */
  TOKEN_ALGORITHM_NOT_ALLOWED = 'TOKEN_ALGORITHM_NOT_ALLOWED',
  /** The bearer token is signed with a key pair but its iss is not an issuer this server trusts (OIDC_ISSUERS): use a token of a trusted issuer. */
  TOKEN_ISSUER_UNKNOWN = 'TOKEN_ISSUER_UNKNOWN',
  /** The bearer token's aud does not name this server's audience: have a token issued for it. */
  TOKEN_AUDIENCE_MISMATCH = 'TOKEN_AUDIENCE_MISMATCH',
  /** No key of the issuer's JWKS matches the bearer token (its kid), even after fetching the set again: use a token signed with a current key. */
  TOKEN_KEY_UNKNOWN = 'TOKEN_KEY_UNKNOWN',
  /** The keys of the bearer token's issuer could not be fetched (its JWKS or discovery document did not answer): try again later. */
  TOKEN_ISSUER_UNREACHABLE = 'TOKEN_ISSUER_UNREACHABLE',
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
  [AccessReason.TOKEN_CLAIMS_INVALID]: { codes: [ErrorCode.UNAUTHENTICATED], description: "The bearer token verifies but its sub, exp, roles or teams (as its issuer's claims are mapped) are missing or malformed: have a token issued with valid claims." },
  [AccessReason.TOKEN_EXPIRED]: { codes: [ErrorCode.UNAUTHENTICATED], description: "The bearer token has expired (its exp, with the allowed clock skew, is past): have a new one issued." },
  [AccessReason.TOKEN_NOT_YET_VALID]: { codes: [ErrorCode.UNAUTHENTICATED], description: "The bearer token is not valid yet (its nbf is ahead, beyond the allowed clock skew): check the clocks, or wait." },
  [AccessReason.TOKEN_SIGNATURE_INVALID]: { codes: [ErrorCode.UNAUTHENTICATED], description: "The bearer token's signature does not verify: it was altered, or signed with another key or secret; send it as issued." },
  [AccessReason.TOKEN_MALFORMED]: { codes: [ErrorCode.UNAUTHENTICATED], description: "The bearer token is not a well-formed signed JWT: send the token as issued." },
  [AccessReason.TOKEN_ALGORITHM_NOT_ALLOWED]: { codes: [ErrorCode.UNAUTHENTICATED], description: "The bearer token is signed with an algorithm its issuer may not use (HS256 or none for an OIDC issuer): have it issued as configured." },
  [AccessReason.TOKEN_ISSUER_UNKNOWN]: { codes: [ErrorCode.UNAUTHENTICATED], description: "The bearer token is signed with a key pair but its iss is not an issuer this server trusts (OIDC_ISSUERS): use a token of a trusted issuer." },
  [AccessReason.TOKEN_AUDIENCE_MISMATCH]: { codes: [ErrorCode.UNAUTHENTICATED], description: "The bearer token's aud does not name this server's audience: have a token issued for it." },
  [AccessReason.TOKEN_KEY_UNKNOWN]: { codes: [ErrorCode.UNAUTHENTICATED], description: "No key of the issuer's JWKS matches the bearer token (its kid), even after fetching the set again: use a token signed with a current key." },
  [AccessReason.TOKEN_ISSUER_UNREACHABLE]: { codes: [ErrorCode.UNAUTHENTICATED], description: "The keys of the bearer token's issuer could not be fetched (its JWKS or discovery document did not answer): try again later." },
  [AccessReason.BUILT_IN_ROLE]: { codes: [ErrorCode.CONFLICT], description: 'A built-in role cannot be deleted: edit its rules instead.' },
  [AccessReason.ALREADY_REVOKED]: { codes: [ErrorCode.CONFLICT], description: 'The API key is already revoked: nothing to do.' },
};
