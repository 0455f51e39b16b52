import { ErrorCode } from '../core/errors';
import type { ReasonCatalogue } from '../core/error-reasons';

/** Domain codes of the audit trail and its exports, carried in `extensions.reason` beside the general code. */
export enum AuditReason {
  /** An export filter names a parameter the export does not know (`field`): remove it. */
  UNKNOWN_PARAMETER = 'UNKNOWN_PARAMETER',
  /** An export parameter was given more than once or not as text (`field`): give it once. */
  REPEATED_PARAMETER = 'REPEATED_PARAMETER',
  /** `from` or `to` is not an ISO 8601 date or time: send one such as 2025-01-31T00:00:00Z. */
  MALFORMED_TIME = 'MALFORMED_TIME',
  /** `from` or `to` lies outside 0001-01-01 to 9999-12-31 (UTC): send a time within. */
  TIME_OUT_OF_RANGE = 'TIME_OUT_OF_RANGE',
  /** `from` is after `to`: swap them. */
  TIME_RANGE_REVERSED = 'TIME_RANGE_REVERSED',
  /** The export format is neither ndjson nor csv: ask for one of them. */
  UNKNOWN_FORMAT = 'UNKNOWN_FORMAT',
  /** A download link is malformed (BAD_USER_INPUT) or its signature does not match (FORBIDDEN): use the link from the export's `download`, unchanged. */
  BAD_LINK = 'BAD_LINK',
  /** The download link is past its time: query `auditExport(id)` again for a fresh `download` link. */
  LINK_EXPIRED = 'LINK_EXPIRED',
}

declare module '../core/error-reasons' {
  interface ErrorReasons extends Record<AuditReason, true> {}
}

/** The audit domain's part of the catalogue. */
export const AUDIT_REASONS: ReasonCatalogue<AuditReason> = {
  [AuditReason.UNKNOWN_PARAMETER]: { codes: [ErrorCode.BAD_USER_INPUT], description: 'An export filter names a parameter the export does not know (`field`): remove it.' },
  [AuditReason.REPEATED_PARAMETER]: { codes: [ErrorCode.BAD_USER_INPUT], description: 'An export parameter was given more than once or not as text (`field`): give it once.' },
  [AuditReason.MALFORMED_TIME]: { codes: [ErrorCode.BAD_USER_INPUT], description: '`from` or `to` is not an ISO 8601 date or time: send one such as 2025-01-31T00:00:00Z.' },
  [AuditReason.TIME_OUT_OF_RANGE]: { codes: [ErrorCode.BAD_USER_INPUT], description: '`from` or `to` lies outside 0001-01-01 to 9999-12-31 (UTC): send a time within.' },
  [AuditReason.TIME_RANGE_REVERSED]: { codes: [ErrorCode.BAD_USER_INPUT], description: '`from` is after `to`: swap them.' },
  [AuditReason.UNKNOWN_FORMAT]: { codes: [ErrorCode.BAD_USER_INPUT], description: 'The export format is neither ndjson nor csv: ask for one of them.' },
  [AuditReason.BAD_LINK]: { codes: [ErrorCode.BAD_USER_INPUT, ErrorCode.FORBIDDEN], description: "A download link is malformed (BAD_USER_INPUT) or its signature does not match (FORBIDDEN): use the link from the export's `download`, unchanged." },
  [AuditReason.LINK_EXPIRED]: { codes: [ErrorCode.FORBIDDEN], description: 'The download link is past its time: query `auditExport(id)` again for a fresh `download` link.' },
};
