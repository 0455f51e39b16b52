import { ErrorCode } from '../core/errors';
import type { ReasonCatalogue } from '../core/error-reasons';

/** Domain codes of training runs, carried in `extensions.reason` beside the general code. */
export enum TrainingReason {
  /** The server holds no content for a dataset version of the run: upload it to POST /datasets/content first. */
  DATA_NOT_STORED = 'TRAINING_DATA_NOT_STORED',
  /** The code version's repository or entrypoint is not one the server can run (the message says why): name code in a repository the server runs (TRAINER_REPOSITORIES). */
  CODE_NOT_RUNNABLE = 'TRAINING_CODE_NOT_RUNNABLE',
  /** The run has already finished (succeeded, failed or cancelled): nothing to cancel. */
  RUN_FINISHED = 'TRAINING_RUN_FINISHED',
}

declare module '../core/error-reasons' {
  interface ErrorReasons extends Record<TrainingReason, true> {}
}

/** The training domain's part of the catalogue. */
export const TRAINING_REASONS: ReasonCatalogue<TrainingReason> = {
  [TrainingReason.DATA_NOT_STORED]: { codes: [ErrorCode.BAD_USER_INPUT], description: 'The server holds no content for a dataset version of the run: upload it to POST /datasets/content first.' },
  [TrainingReason.CODE_NOT_RUNNABLE]: { codes: [ErrorCode.BAD_USER_INPUT], description: "The code version's repository or entrypoint is not one the server can run (the message says why): name code in a repository the server runs (TRAINER_REPOSITORIES)." },
  [TrainingReason.RUN_FINISHED]: { codes: [ErrorCode.CONFLICT], description: 'The run has already finished (succeeded, failed or cancelled): nothing to cancel.' },
};
