/** The closed set of codes a client may branch on, in `extensions.code`. */
export const ErrorCode = {
  UNAUTHENTICATED: 'UNAUTHENTICATED',
  FORBIDDEN: 'FORBIDDEN',
  NOT_FOUND: 'NOT_FOUND',
  BAD_USER_INPUT: 'BAD_USER_INPUT',
  CONFLICT: 'CONFLICT',
  /** Too many requests from this principal; retry later (HTTP 429). */
  RATE_LIMITED: 'RATE_LIMITED',
  /** The server cannot answer now (a model failed and nothing could stand in); retry later (HTTP 503). */
  UNAVAILABLE: 'UNAVAILABLE',
  INTERNAL: 'INTERNAL',
} as const;

/** The HTTP status each code maps to, outside GraphQL (uploads, exports, the Open Inference Protocol). */
export const HTTP_STATUS: Record<ErrorCode, number> = {
  UNAUTHENTICATED: 401,
  FORBIDDEN: 403,
  NOT_FOUND: 404,
  BAD_USER_INPUT: 400,
  CONFLICT: 409,
  RATE_LIMITED: 429,
  UNAVAILABLE: 503,
  INTERNAL: 500,
};
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

/** What each code means to a client (the schema's `ErrorCode` enum carries these). */
export const ERROR_CODE_DESCRIPTIONS: Record<ErrorCode, string> = {
  UNAUTHENTICATED: 'No credential, or a refused one (HTTP 401).',
  FORBIDDEN: 'The policy or the instance does not allow it (HTTP 403); refused mutations are audited.',
  NOT_FOUND: 'The object does not exist, or the caller may not read it (HTTP 404).',
  BAD_USER_INPUT: 'The request or its input is malformed or out of bounds (HTTP 400, 413 for a body too large).',
  CONFLICT: 'A duplicate, or the current state does not allow the change (HTTP 409).',
  RATE_LIMITED: 'Too many requests from this principal; retry later (HTTP 429).',
  UNAVAILABLE: 'The server cannot answer now; retry later (HTTP 503).',
  INTERNAL: 'A bug: quote the request id (HTTP 500).',
};
