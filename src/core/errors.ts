import { GraphQLError, type GraphQLFormattedError } from 'graphql';
import { CoreReason, type ErrorReason } from './error-reasons';

export { ERROR_CODE_DESCRIPTIONS, ErrorCode, HTTP_STATUS } from './error-codes';
import { ErrorCode } from './error-codes';

/**
 * Every expected failure is an AppError. `code` is one of {@link ErrorCode}; `reason` is an
 * optional reason from the catalogue (for example `REGISTRY_INVALID_TRANSITION`) that narrows it:
 * only a declared {@link ErrorReason} type-checks.
 */
export class AppError extends GraphQLError {
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly details: { reason?: ErrorReason; field?: string; [k: string]: unknown } = {},
  ) {
    super(message, { extensions: { code, ...details } });
    this.name = 'AppError';
  }
}

export const unauthenticated = (message = 'Authentication required') =>
  new AppError(ErrorCode.UNAUTHENTICATED, message);
export const forbidden = (message = 'Not allowed') => new AppError(ErrorCode.FORBIDDEN, message);
export const notFound = (what: string) => new AppError(ErrorCode.NOT_FOUND, `${what} not found`);
export const badInput = (message: string, details: AppError['details'] = {}) =>
  new AppError(ErrorCode.BAD_USER_INPUT, message, details);
export const conflict = (message: string, details: AppError['details'] = {}) =>
  new AppError(ErrorCode.CONFLICT, message, details);

// graphql-js's and Apollo's request failures a client sees as BAD_USER_INPUT, with their own code as the reason.
const REQUEST_FAILURES: Readonly<Record<string, ErrorReason>> = {
  GRAPHQL_PARSE_FAILED: CoreReason.GRAPHQL_PARSE_FAILED,
  GRAPHQL_VALIDATION_FAILED: CoreReason.GRAPHQL_VALIDATION_FAILED,
  BAD_REQUEST: CoreReason.BAD_REQUEST,
};

const PASS_THROUGH_CODES = new Set<string>([
  ...Object.values(ErrorCode),
  // graphql-js and Apollo's own request-level failures: they describe the request, not the server.
  'GRAPHQL_PARSE_FAILED',
  'GRAPHQL_VALIDATION_FAILED',
  'BAD_REQUEST',
  'PERSISTED_QUERY_NOT_FOUND',
  'PERSISTED_QUERY_NOT_SUPPORTED',
  'OPERATION_RESOLUTION_FAILURE',
]);

/**
 * The one mapping from anything thrown to what a client sees: known codes pass with their
 * message; anything else becomes INTERNAL with a fixed message. Never a stack trace.
 */
export function toClientError(formatted: GraphQLFormattedError, requestId: string | undefined): GraphQLFormattedError {
  const ext = { ...(formatted.extensions ?? {}) } as Record<string, unknown>;
  delete ext.stacktrace;
  delete ext.exception;
  delete ext.http;
  let code = typeof ext.code === 'string' ? ext.code : undefined;
  // type-graphql's argument validation reports BAD_USER_INPUT with class-validator details.
  if (code === 'BAD_USER_INPUT' || (code && PASS_THROUGH_CODES.has(code))) {
    if (Object.hasOwn(REQUEST_FAILURES, code)) {
      ext.reason = ext.reason ?? REQUEST_FAILURES[code];
      code = ErrorCode.BAD_USER_INPUT;
    }
    return { ...formatted, extensions: { ...sanitize(ext), code, requestId } };
  }
  return {
    message: 'Internal server error',
    locations: formatted.locations,
    path: formatted.path,
    extensions: { code: ErrorCode.INTERNAL, requestId },
  };
}

function sanitize(ext: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(ext)) {
    if (k === 'validationErrors' && Array.isArray(v)) {
      out[k] = flattenValidation(v as ValidationNode[]);
    } else {
      out[k] = v;
    }
  }
  return out;
}

interface ValidationNode {
  property?: string;
  constraints?: Record<string, string>;
  children?: ValidationNode[];
}

/** class-validator nests errors of list items and nested inputs; clients get one flat list of paths. */
function flattenValidation(nodes: ValidationNode[], prefix = ''): Array<{ property: string; constraints: Record<string, string> }> {
  const out: Array<{ property: string; constraints: Record<string, string> }> = [];
  for (const n of nodes) {
    const property = prefix ? `${prefix}.${n.property}` : String(n.property);
    if (n.constraints && Object.keys(n.constraints).length) out.push({ property, constraints: n.constraints });
    if (n.children?.length) out.push(...flattenValidation(n.children, property));
  }
  return out;
}
