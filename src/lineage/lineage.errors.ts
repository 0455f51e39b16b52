import { ErrorCode } from '../core/errors';
import type { ReasonCatalogue } from '../core/error-reasons';

/** Domain codes of lineage records and dataset content, carried in `extensions.reason` beside the general code. */
export enum LineageReason {
  /** The uploaded dataset content is not a CSV the server can train on (the message says why): fix the file and upload it again. */
  DATASET_NOT_CSV = 'DATASET_NOT_CSV',
  /** A production sample would be larger than a dataset may be (the message gives the limit): sample a shorter range. */
  SAMPLE_TOO_LARGE = 'SAMPLE_TOO_LARGE',
}

declare module '../core/error-reasons' {
  interface ErrorReasons extends Record<LineageReason, true> {}
}

/** The lineage domain's part of the catalogue. */
export const LINEAGE_REASONS: ReasonCatalogue<LineageReason> = {
  [LineageReason.DATASET_NOT_CSV]: { codes: [ErrorCode.BAD_USER_INPUT], description: 'The uploaded dataset content is not a CSV the server can train on (the message says why): fix the file and upload it again.' },
  [LineageReason.SAMPLE_TOO_LARGE]: { codes: [ErrorCode.BAD_USER_INPUT], description: 'A production sample would be larger than a dataset may be (the message gives the limit): sample a shorter range.' },
};
