import { ErrorCode } from '../core/errors';
import type { ReasonCatalogue } from '../core/error-reasons';

/** Domain codes of predictions, carried in `extensions.reason` (and `reason` in Open Inference Protocol bodies) beside the general code. */
export enum InferenceReason {
  /** Predictions kept arriving in the windows being rebuilt: rebuild windows that have closed. */
  ROLLUPS_BUSY = 'ROLLUPS_BUSY',
  /** Windows of another length overlap the range to rebuild (the window length was changed): rebuild a range of one length. */
  ROLLUP_WINDOW_LENGTH = 'ROLLUP_WINDOW_LENGTH',
  /** This server process does not serve predictions (HTTP 503): send predictions to a process that does. */
  DISABLED = 'INFERENCE_DISABLED',
  /** The deployment has no model version serving traffic: set its traffic split or start a rollout first. */
  NOT_SERVING = 'INFERENCE_NOT_SERVING',
  /** More predictions per second than the server allows one principal (HTTP 429): slow down and retry. */
  RATE_LIMITED = 'INFERENCE_RATE_LIMITED',
  /** The model version failed and no fallback version could answer (HTTP 503): retry later; the deployment's `serving` says why. */
  FAILED = 'INFERENCE_FAILED',
  /** A value (at `field`) is not of the input's type, or out of its range: send values of the type the model's signature names. */
  INPUT_TYPE = 'INFERENCE_INPUT_TYPE',
  /** A value (at `field`) is NaN or infinite: send finite numbers. */
  NON_FINITE = 'INFERENCE_NON_FINITE',
  /** An input's shape (rank, dimensions, nesting, row count across inputs) does not fit the model's signature: reshape it. */
  INPUT_SHAPE = 'INFERENCE_INPUT_SHAPE',
  /** More rows in one request than the server allows: split the request. */
  TOO_MANY_ROWS = 'INFERENCE_TOO_MANY_ROWS',
  /** An input holds more values than the server allows in one request: split the request. */
  TOO_LARGE = 'INFERENCE_TOO_LARGE',
  /** The request names an input the model does not take: send only the inputs of its signature. */
  UNKNOWN_INPUT = 'INFERENCE_UNKNOWN_INPUT',
  /** The request lacks an input the model takes: send every input of its signature. */
  MISSING_INPUT = 'INFERENCE_MISSING_INPUT',
  /** The model name matches deployments of several teams: name it as team:deployment or by its ID. */
  AMBIGUOUS_MODEL = 'INFERENCE_AMBIGUOUS_MODEL',
  /** `Inference-Header-Content-Length` is not a whole number, exceeds the body, or does not delimit a JSON object: send the JSON header's length in bytes. */
  BINARY_HEADER = 'INFERENCE_BINARY_HEADER',
  /** An input's `parameters.binary_data_size` (at `field`) is not its shape × datatype size in bytes, or the input also carries `data`: send exactly its raw bytes. */
  BINARY_SIZE = 'INFERENCE_BINARY_SIZE',
  /** The bytes after the JSON header are not the inputs' `binary_data_size`s added up (bytes missing or trailing): send each binary input's bytes, in order, and nothing after them. */
  BINARY_LENGTH = 'INFERENCE_BINARY_LENGTH',
  /** A requested output is not one the model gives: ask for the outputs its metadata lists (or none, for all). */
  UNKNOWN_OUTPUT = 'INFERENCE_UNKNOWN_OUTPUT',
  /** No Open Inference Protocol route has this method and path: see the protocol's paths under /v2. */
  NO_ROUTE = 'INFERENCE_NO_ROUTE',
  /** The model version named in the path is not one the deployment serves: name one of the `versions` its metadata lists. */
  UNKNOWN_VERSION = 'INFERENCE_UNKNOWN_VERSION',
  /** No answered prediction of this deployment has the given id or request key (yet: records are written within the log's flush interval): check it, or send it again later. */
  UNKNOWN_PREDICTION = 'OUTCOME_UNKNOWN_PREDICTION',
  /** Several predictions of the deployment carry the request key: name the prediction by its id. */
  AMBIGUOUS_REQUEST_KEY = 'OUTCOME_AMBIGUOUS_REQUEST_KEY',
  /** The row is missing (the prediction has several rows) or past the prediction's last row: send the row index, from 0. */
  OUTCOME_ROW = 'OUTCOME_ROW',
  /** The row already has a different label: send `correct: true` to replace it (audited). */
  LABEL_CONFLICT = 'OUTCOME_LABEL_CONFLICT',
  /** An outcome is malformed (at `field`): send a prediction id or request key, a label, and well-formed optional fields. */
  INVALID_OUTCOME = 'OUTCOME_INVALID',
  /** More outcomes in one call than allowed: send at most 1,000 per call, or use `POST /outcomes` for backfills. */
  TOO_MANY_OUTCOMES = 'OUTCOME_TOO_MANY',
}

declare module '../core/error-reasons' {
  interface ErrorReasons extends Record<InferenceReason, true> {}
}

/** The inference domain's part of the catalogue. */
export const INFERENCE_REASONS: ReasonCatalogue<InferenceReason> = {
  [InferenceReason.DISABLED]: { codes: [ErrorCode.UNAVAILABLE], description: 'This server process does not serve predictions (HTTP 503): send predictions to a process that does.' },
  [InferenceReason.NOT_SERVING]: { codes: [ErrorCode.CONFLICT], description: 'The deployment has no model version serving traffic: set its traffic split or start a rollout first.' },
  [InferenceReason.RATE_LIMITED]: { codes: [ErrorCode.RATE_LIMITED], description: 'More predictions per second than the server allows one principal (HTTP 429): slow down and retry.' },
  [InferenceReason.FAILED]: { codes: [ErrorCode.UNAVAILABLE], description: "The model version failed and no fallback version could answer (HTTP 503): retry later; the deployment's `serving` says why." },
  [InferenceReason.INPUT_TYPE]: { codes: [ErrorCode.BAD_USER_INPUT], description: "A value (at `field`) is not of the input's type, or out of its range: send values of the type the model's signature names." },
  [InferenceReason.NON_FINITE]: { codes: [ErrorCode.BAD_USER_INPUT], description: 'A value (at `field`) is NaN or infinite: send finite numbers.' },
  [InferenceReason.INPUT_SHAPE]: { codes: [ErrorCode.BAD_USER_INPUT], description: "An input's shape (rank, dimensions, nesting, row count across inputs) does not fit the model's signature: reshape it." },
  [InferenceReason.TOO_MANY_ROWS]: { codes: [ErrorCode.BAD_USER_INPUT], description: 'More rows in one request than the server allows: split the request.' },
  [InferenceReason.TOO_LARGE]: { codes: [ErrorCode.BAD_USER_INPUT], description: 'An input holds more values than the server allows in one request: split the request.' },
  [InferenceReason.UNKNOWN_INPUT]: { codes: [ErrorCode.BAD_USER_INPUT], description: 'The request names an input the model does not take: send only the inputs of its signature.' },
  [InferenceReason.MISSING_INPUT]: { codes: [ErrorCode.BAD_USER_INPUT], description: 'The request lacks an input the model takes: send every input of its signature.' },
  [InferenceReason.AMBIGUOUS_MODEL]: { codes: [ErrorCode.BAD_USER_INPUT], description: 'The model name matches deployments of several teams: name it as team:deployment or by its ID.' },
  [InferenceReason.BINARY_HEADER]: {
    codes: [ErrorCode.BAD_USER_INPUT],
    description: '`Inference-Header-Content-Length` is not a whole number, exceeds the body, or does not delimit a JSON object: send the JSON header\'s length in bytes.',
  },
  [InferenceReason.BINARY_SIZE]: {
    codes: [ErrorCode.BAD_USER_INPUT],
    description: "An input's `parameters.binary_data_size` (at `field`) is not its shape × datatype size in bytes, or the input also carries `data`: send exactly its raw bytes.",
  },
  [InferenceReason.UNKNOWN_OUTPUT]: { codes: [ErrorCode.BAD_USER_INPUT], description: 'A requested output is not one the model gives: ask for the outputs its metadata lists (or none, for all).' },
  [InferenceReason.NO_ROUTE]: { codes: [ErrorCode.NOT_FOUND], description: 'No Open Inference Protocol route has this method and path: see the protocol\'s paths under /v2.' },
  [InferenceReason.UNKNOWN_VERSION]: {
    codes: [ErrorCode.NOT_FOUND],
    description: 'The model version named in the path is not one the deployment serves: name one of the `versions` its metadata lists.',
  },
  [InferenceReason.BINARY_LENGTH]: {
    codes: [ErrorCode.BAD_USER_INPUT],
    description: "The bytes after the JSON header are not the inputs' `binary_data_size`s added up (bytes missing or trailing): send each binary input's bytes, in order, and nothing after them.",
  },
  [InferenceReason.UNKNOWN_PREDICTION]: {
    codes: [ErrorCode.NOT_FOUND],
    description: "No answered prediction of this deployment has the given id or request key (yet: records are written within the log's flush interval): check it, or send it again later.",
  },
  [InferenceReason.AMBIGUOUS_REQUEST_KEY]: { codes: [ErrorCode.CONFLICT], description: 'Several predictions of the deployment carry the request key: name the prediction by its id.' },
  [InferenceReason.OUTCOME_ROW]: { codes: [ErrorCode.BAD_USER_INPUT], description: "The row is missing (the prediction has several rows) or past the prediction's last row: send the row index, from 0." },
  [InferenceReason.LABEL_CONFLICT]: { codes: [ErrorCode.CONFLICT], description: 'The row already has a different label: send `correct: true` to replace it (audited).' },
  [InferenceReason.INVALID_OUTCOME]: {
    codes: [ErrorCode.BAD_USER_INPUT],
    description: 'An outcome is malformed (at `field`): send a prediction id or request key, a label, and well-formed optional fields.',
  },
  [InferenceReason.ROLLUP_WINDOW_LENGTH]: { codes: [ErrorCode.CONFLICT], description: 'Windows of another length overlap the range to rebuild (the window length was changed): rebuild a range of one length.' },
  [InferenceReason.ROLLUPS_BUSY]: { codes: [ErrorCode.CONFLICT], description: 'Predictions kept arriving in the windows being rebuilt: rebuild windows that have closed.' },
  [InferenceReason.TOO_MANY_OUTCOMES]: { codes: [ErrorCode.BAD_USER_INPUT], description: 'More outcomes in one call than allowed: send at most 1,000 per call, or use `POST /outcomes` for backfills.' },
};
