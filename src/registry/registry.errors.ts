import { AppError, ErrorCode } from '../core/errors';
import type { ReasonCatalogue } from '../core/error-reasons';

/** Domain codes of the registry, carried in `extensions.reason` beside the general code. */
export enum RegistryReason {
  /** The version's status does not allow this change (for example approving an ARCHIVED version): read its `status` first. */
  INVALID_TRANSITION = 'REGISTRY_INVALID_TRANSITION',
  /** Whoever registered the version (an API key counts as its accountable person) cannot review it: ask another reviewer. */
  SELF_APPROVAL = 'REGISTRY_SELF_APPROVAL',
  /** Only an APPROVED version may hold this alias (`champion`, `production`): have the version approved first. */
  ALIAS_REQUIRES_APPROVAL = 'REGISTRY_ALIAS_REQUIRES_APPROVAL',
  /** The version still serves, is a deployment's last stable version, or a rollout in flight may return to it: move traffic off it or finish the rollout first. */
  VERSION_SERVING = 'REGISTRY_VERSION_SERVING',
  /** No artifact with this sha256 was uploaded: POST the model to /artifacts first. */
  UNKNOWN_ARTIFACT = 'REGISTRY_UNKNOWN_ARTIFACT',
  /** A tensor of the model keeps its data outside the model's bytes (ONNX external data): embed the weights and upload again. */
  EXTERNAL_DATA = 'MODEL_EXTERNAL_DATA',
  /** The training run belongs to another team than the model: name a run of the model's team. */
  RUN_FOREIGN_TEAM = 'REGISTRY_RUN_FOREIGN_TEAM',
  /** The training run was started for another model of the team: register its output under that model. */
  RUN_FOREIGN_MODEL = 'REGISTRY_RUN_FOREIGN_MODEL',
  /** The caller may read the training run but not update it, so it may not register its output: ask someone who may. */
  RUN_NOT_UPDATABLE = 'REGISTRY_RUN_NOT_UPDATABLE',
  /** The run is queued or running: the server registers its output when it finishes; wait for it. */
  RUN_IN_PROGRESS = 'REGISTRY_RUN_IN_PROGRESS',
  /** The run failed or was cancelled: it has no output to register; start a new run. */
  RUN_NO_OUTPUT = 'REGISTRY_RUN_NO_OUTPUT',
  /** The run's output is already a model version (a run produces one): use that version. */
  RUN_OUTPUT_TAKEN = 'REGISTRY_RUN_OUTPUT_TAKEN',
  /** The uploaded body is empty: send the model's bytes. */
  ARTIFACT_EMPTY = 'ARTIFACT_EMPTY',
  /** The uploaded or stored bytes are not a valid ONNX model: export the model to ONNX and upload it again. */
  ARTIFACT_NOT_ONNX = 'ARTIFACT_NOT_ONNX',
}

declare module '../core/error-reasons' {
  interface ErrorReasons extends Record<RegistryReason, true> {}
}

/** The registry's part of the catalogue. Each of its reasons comes with one code, which {@link registryError} gives it. */
export const REGISTRY_REASONS: ReasonCatalogue<RegistryReason, readonly [ErrorCode]> = {
  [RegistryReason.INVALID_TRANSITION]: { codes: [ErrorCode.CONFLICT], description: "The version's status does not allow this change (for example approving an ARCHIVED version): read its `status` first." },
  [RegistryReason.SELF_APPROVAL]: { codes: [ErrorCode.FORBIDDEN], description: 'Whoever registered the version (an API key counts as its accountable person) cannot review it: ask another reviewer.' },
  [RegistryReason.ALIAS_REQUIRES_APPROVAL]: { codes: [ErrorCode.CONFLICT], description: 'Only an APPROVED version may hold this alias (`champion`, `production`): have the version approved first.' },
  [RegistryReason.VERSION_SERVING]: { codes: [ErrorCode.CONFLICT], description: "The version still serves, is a deployment's last stable version, or a rollout in flight may return to it: move traffic off it or finish the rollout first." },
  [RegistryReason.UNKNOWN_ARTIFACT]: { codes: [ErrorCode.BAD_USER_INPUT], description: 'No artifact with this sha256 was uploaded: POST the model to /artifacts first.' },
  [RegistryReason.EXTERNAL_DATA]: { codes: [ErrorCode.BAD_USER_INPUT], description: "A tensor of the model keeps its data outside the model's bytes (ONNX external data): embed the weights and upload again." },
  [RegistryReason.RUN_FOREIGN_TEAM]: { codes: [ErrorCode.FORBIDDEN], description: "The training run belongs to another team than the model: name a run of the model's team." },
  [RegistryReason.RUN_FOREIGN_MODEL]: { codes: [ErrorCode.FORBIDDEN], description: 'The training run was started for another model of the team: register its output under that model.' },
  [RegistryReason.RUN_NOT_UPDATABLE]: { codes: [ErrorCode.FORBIDDEN], description: 'The caller may read the training run but not update it, so it may not register its output: ask someone who may.' },
  [RegistryReason.RUN_IN_PROGRESS]: { codes: [ErrorCode.CONFLICT], description: 'The run is queued or running: the server registers its output when it finishes; wait for it.' },
  [RegistryReason.RUN_NO_OUTPUT]: { codes: [ErrorCode.CONFLICT], description: 'The run failed or was cancelled: it has no output to register; start a new run.' },
  [RegistryReason.RUN_OUTPUT_TAKEN]: { codes: [ErrorCode.CONFLICT], description: "The run's output is already a model version (a run produces one): use that version." },
  [RegistryReason.ARTIFACT_EMPTY]: { codes: [ErrorCode.BAD_USER_INPUT], description: "The uploaded body is empty: send the model's bytes." },
  [RegistryReason.ARTIFACT_NOT_ONNX]: { codes: [ErrorCode.BAD_USER_INPUT], description: 'The uploaded or stored bytes are not a valid ONNX model: export the model to ONNX and upload it again.' },
};

export function registryError(reason: RegistryReason, message: string, details: AppError['details'] = {}): AppError {
  return new AppError(REGISTRY_REASONS[reason].codes[0], message, { reason, ...details });
}
