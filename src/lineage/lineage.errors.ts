import { ErrorCode } from '../core/errors';
import type { ReasonCatalogue } from '../core/error-reasons';

/** Domain codes of lineage records and dataset content, carried in `extensions.reason` beside the general code. */
export enum LineageReason {
  /** The uploaded dataset content is not a CSV the server can train on (the message says why): fix the file and upload it again. */
  DATASET_NOT_CSV = 'DATASET_NOT_CSV',
}

declare module '../core/error-reasons' {
  interface ErrorReasons extends Record<LineageReason, true> {}
}

/** The lineage domain's part of the catalogue. */
export const LINEAGE_REASONS: ReasonCatalogue<LineageReason> = {
  [LineageReason.DATASET_NOT_CSV]: { codes: [ErrorCode.BAD_USER_INPUT], description: 'The uploaded dataset content is not a CSV the server can train on (the message says why): fix the file and upload it again.' },
};
