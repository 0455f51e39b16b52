import type { ErrorCode } from './error-codes';

/**
 * Every `extensions.reason` the server may send, by name: an open registry. Core declares its own
 * reasons here; each domain declares its reasons in its `<domain>.errors.ts` by module augmentation,
 *
 * ```ts
 * declare module '../core/error-reasons' {
 *   interface ErrorReasons extends Record<RolloutsReason, true> {}
 * }
 * ```
 *
 * so that {@link ErrorReason} is the union of all of them while core imports no domain. Beside its
 * enum, each declares its part of the catalogue ({@link ReasonCatalogue}); `src/app/error-catalogue.ts`
 * assembles the parts into the schema's `ErrorReason` enum and the `errorReasons` query.
 */
export interface ErrorReasons extends Record<CoreReason, true> {}

/** A declared reason; `AppError.details.reason` accepts nothing else. */
export type ErrorReason = keyof ErrorReasons;

/** What a client learns of a reason: the codes it comes with, and when it happens and what to do. */
export interface ReasonInfo {
  /** The `extensions.code` it is sent with; more than one only where the same reason answers different cases. */
  readonly codes: readonly [ErrorCode, ...ErrorCode[]];
  /** One line: when it happens and what the client should do; the reason's TSDoc says the same (a test compares them). */
  readonly description: string;
}

/**
 * A domain's part of the catalogue: one entry for each of its reasons. `Codes` narrows what every
 * entry may name (`readonly [ErrorCode]`: exactly one code, for a domain whose reasons pick their code).
 */
export type ReasonCatalogue<R extends ErrorReason, Codes extends ReasonInfo['codes'] = ReasonInfo['codes']> = {
  readonly [K in R]: ReasonInfo & { readonly codes: Codes };
};

/**
 * Reasons of the request itself, whatever the domain: IDs, paging, input checks, query limits,
 * GraphQL and HTTP request failures, database constraints, subscriptions.
 */
export enum CoreReason {
  /** The principal was refused too often: wait `retryAfterSeconds` (HTTP `Retry-After`) before trying again. */
  DENIALS_RATE_LIMITED = 'DENIALS_RATE_LIMITED',
  /** An ID argument is not an ID this server issued: send an `id` taken from a response, unchanged. */
  MALFORMED_ID = 'MALFORMED_ID',
  /** The ID names another type than the argument takes: send the ID of an object of that type. */
  WRONG_ID_TYPE = 'WRONG_ID_TYPE',
  /** `after` is not a cursor this server issued for this list: pass `pageInfo.endCursor` unchanged. */
  MALFORMED_CURSOR = 'MALFORMED_CURSOR',
  /** `first` is not between 1 and 200: ask for smaller pages and follow `pageInfo`. */
  PAGE_SIZE = 'PAGE_SIZE',
  /** The operation nests fields deeper than the server allows (`limit`): split it into shallower operations. */
  QUERY_TOO_DEEP = 'QUERY_TOO_DEEP',
  /** The operation uses more aliases than the server allows (`limit`): send fewer aliased fields per operation. */
  TOO_MANY_ALIASES = 'TOO_MANY_ALIASES',
  /** The operation's estimated cost (`cost`, lists times page sizes) exceeds `limit`: ask for smaller pages or fewer nested lists. */
  QUERY_TOO_COSTLY = 'QUERY_TOO_COSTLY',
  /** A variable's value does not fit its declared type: fix the value. */
  BAD_VARIABLE = 'BAD_VARIABLE',
  /** A JSON value or an input nests deeper than `limit` levels (64 for a JSON value): flatten it. */
  JSON_TOO_DEEP = 'JSON_TOO_DEEP',
  /** A JSON value holds more than 5,000,000 values (`limit`): send less in one request. */
  JSON_TOO_LARGE = 'JSON_TOO_LARGE',
  /** A string (at `field`) holds a NUL character or an unpaired UTF-16 surrogate, which cannot be stored: remove or encode it. */
  MALFORMED_STRING = 'MALFORMED_STRING',
  /** A string (at `field`) is longer than its field allows: shorten it. */
  STRING_TOO_LONG = 'STRING_TOO_LONG',
  /** An object with the same unique name or content already exists: use that one or choose another name. */
  DUPLICATE = 'DUPLICATE',
  /** The change would break a reference between records: create what it refers to, or remove what refers to it, first. */
  REFERENCE = 'REFERENCE',
  /** The document is not valid GraphQL syntax: fix the query text. */
  GRAPHQL_PARSE_FAILED = 'GRAPHQL_PARSE_FAILED',
  /** The document does not validate against the schema (unknown field or argument, wrong type): fix it against the schema. */
  GRAPHQL_VALIDATION_FAILED = 'GRAPHQL_VALIDATION_FAILED',
  /** The HTTP request is not a GraphQL request (no query, wrong method or content type): POST a JSON body with `query`. */
  BAD_REQUEST = 'BAD_REQUEST',
  /** The request body exceeds the server's size limit (HTTP 413): send a smaller body. */
  BODY_TOO_LARGE = 'BODY_TOO_LARGE',
  /** The request body is not valid JSON (HTTP 400): send valid JSON. */
  MALFORMED_JSON = 'MALFORMED_JSON',
  /** A subscription was sent over HTTP: open a graphql-transport-ws WebSocket at /graphql instead. */
  SUBSCRIPTION_OVER_HTTP = 'SUBSCRIPTION_OVER_HTTP',
  /** The subscription ended: the caller may no longer read what it follows. Subscribe again only once access is restored. */
  SUBSCRIPTION_RIGHT_LOST = 'SUBSCRIPTION_RIGHT_LOST',
}

// Codes as literals, type-checked against ErrorCode.
export const CORE_REASONS: ReasonCatalogue<CoreReason> = {
  [CoreReason.DENIALS_RATE_LIMITED]: { codes: ['RATE_LIMITED'], description: 'The principal was refused too often: wait `retryAfterSeconds` (HTTP `Retry-After`) before trying again.' },
  [CoreReason.MALFORMED_ID]: { codes: ['BAD_USER_INPUT'], description: 'An ID argument is not an ID this server issued: send an `id` taken from a response, unchanged.' },
  [CoreReason.WRONG_ID_TYPE]: { codes: ['BAD_USER_INPUT'], description: 'The ID names another type than the argument takes: send the ID of an object of that type.' },
  [CoreReason.MALFORMED_CURSOR]: { codes: ['BAD_USER_INPUT'], description: '`after` is not a cursor this server issued for this list: pass `pageInfo.endCursor` unchanged.' },
  [CoreReason.PAGE_SIZE]: { codes: ['BAD_USER_INPUT'], description: '`first` is not between 1 and 200: ask for smaller pages and follow `pageInfo`.' },
  [CoreReason.QUERY_TOO_DEEP]: { codes: ['BAD_USER_INPUT'], description: 'The operation nests fields deeper than the server allows (`limit`): split it into shallower operations.' },
  [CoreReason.TOO_MANY_ALIASES]: { codes: ['BAD_USER_INPUT'], description: 'The operation uses more aliases than the server allows (`limit`): send fewer aliased fields per operation.' },
  [CoreReason.QUERY_TOO_COSTLY]: { codes: ['BAD_USER_INPUT'], description: "The operation's estimated cost (`cost`, lists times page sizes) exceeds `limit`: ask for smaller pages or fewer nested lists." },
  [CoreReason.BAD_VARIABLE]: { codes: ['BAD_USER_INPUT'], description: "A variable's value does not fit its declared type: fix the value." },
  [CoreReason.JSON_TOO_DEEP]: { codes: ['BAD_USER_INPUT'], description: 'A JSON value or an input nests deeper than `limit` levels (64 for a JSON value): flatten it.' },
  [CoreReason.JSON_TOO_LARGE]: { codes: ['BAD_USER_INPUT'], description: 'A JSON value holds more than 5,000,000 values (`limit`): send less in one request.' },
  [CoreReason.MALFORMED_STRING]: { codes: ['BAD_USER_INPUT'], description: 'A string (at `field`) holds a NUL character or an unpaired UTF-16 surrogate, which cannot be stored: remove or encode it.' },
  [CoreReason.STRING_TOO_LONG]: { codes: ['BAD_USER_INPUT'], description: 'A string (at `field`) is longer than its field allows: shorten it.' },
  [CoreReason.DUPLICATE]: { codes: ['CONFLICT'], description: 'An object with the same unique name or content already exists: use that one or choose another name.' },
  [CoreReason.REFERENCE]: { codes: ['CONFLICT'], description: 'The change would break a reference between records: create what it refers to, or remove what refers to it, first.' },
  [CoreReason.GRAPHQL_PARSE_FAILED]: { codes: ['BAD_USER_INPUT'], description: 'The document is not valid GraphQL syntax: fix the query text.' },
  [CoreReason.GRAPHQL_VALIDATION_FAILED]: { codes: ['BAD_USER_INPUT'], description: 'The document does not validate against the schema (unknown field or argument, wrong type): fix it against the schema.' },
  [CoreReason.BAD_REQUEST]: { codes: ['BAD_USER_INPUT'], description: 'The HTTP request is not a GraphQL request (no query, wrong method or content type): POST a JSON body with `query`.' },
  [CoreReason.BODY_TOO_LARGE]: { codes: ['BAD_USER_INPUT'], description: "The request body exceeds the server's size limit (HTTP 413): send a smaller body." },
  [CoreReason.MALFORMED_JSON]: { codes: ['BAD_USER_INPUT'], description: 'The request body is not valid JSON (HTTP 400): send valid JSON.' },
  [CoreReason.SUBSCRIPTION_OVER_HTTP]: { codes: ['BAD_USER_INPUT'], description: 'A subscription was sent over HTTP: open a graphql-transport-ws WebSocket at /graphql instead.' },
  [CoreReason.SUBSCRIPTION_RIGHT_LOST]: { codes: ['FORBIDDEN'], description: 'The subscription ended: the caller may no longer read what it follows. Subscribe again only once access is restored.' },
};
