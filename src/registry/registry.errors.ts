import { AppError, ErrorCode } from '../core/errors';

/** Domain codes of the registry, carried in `extensions.reason` beside the general code. */
export enum RegistryReason {
  INVALID_TRANSITION = 'REGISTRY_INVALID_TRANSITION',
  SELF_APPROVAL = 'REGISTRY_SELF_APPROVAL',
  ALIAS_REQUIRES_APPROVAL = 'REGISTRY_ALIAS_REQUIRES_APPROVAL',
  VERSION_SERVING = 'REGISTRY_VERSION_SERVING',
  UNKNOWN_ARTIFACT = 'REGISTRY_UNKNOWN_ARTIFACT',
  /** A tensor of the model keeps its data outside the model's bytes (ONNX external data): weights must be embedded. */
  EXTERNAL_DATA = 'MODEL_EXTERNAL_DATA',
  /** The training run belongs to another team than the model. */
  RUN_FOREIGN_TEAM = 'REGISTRY_RUN_FOREIGN_TEAM',
  /** The training run was started for another model of the team. */
  RUN_FOREIGN_MODEL = 'REGISTRY_RUN_FOREIGN_MODEL',
  /** The caller may read the training run but not update it. */
  RUN_NOT_UPDATABLE = 'REGISTRY_RUN_NOT_UPDATABLE',
  /** The run is queued or running: the server registers its output when it finishes. */
  RUN_IN_PROGRESS = 'REGISTRY_RUN_IN_PROGRESS',
  /** The run failed or was cancelled: it has no output to register. */
  RUN_NO_OUTPUT = 'REGISTRY_RUN_NO_OUTPUT',
  /** The run's output is already a model version (a run produces one). */
  RUN_OUTPUT_TAKEN = 'REGISTRY_RUN_OUTPUT_TAKEN',
}

const CODES: Record<RegistryReason, ErrorCode> = {
  [RegistryReason.INVALID_TRANSITION]: ErrorCode.CONFLICT,
  [RegistryReason.SELF_APPROVAL]: ErrorCode.FORBIDDEN,
  [RegistryReason.ALIAS_REQUIRES_APPROVAL]: ErrorCode.CONFLICT,
  [RegistryReason.VERSION_SERVING]: ErrorCode.CONFLICT,
  [RegistryReason.UNKNOWN_ARTIFACT]: ErrorCode.BAD_USER_INPUT,
  [RegistryReason.EXTERNAL_DATA]: ErrorCode.BAD_USER_INPUT,
  [RegistryReason.RUN_FOREIGN_TEAM]: ErrorCode.FORBIDDEN,
  [RegistryReason.RUN_FOREIGN_MODEL]: ErrorCode.FORBIDDEN,
  [RegistryReason.RUN_NOT_UPDATABLE]: ErrorCode.FORBIDDEN,
  [RegistryReason.RUN_IN_PROGRESS]: ErrorCode.CONFLICT,
  [RegistryReason.RUN_NO_OUTPUT]: ErrorCode.CONFLICT,
  [RegistryReason.RUN_OUTPUT_TAKEN]: ErrorCode.CONFLICT,
};

export function registryError(reason: RegistryReason, message: string, details: Record<string, unknown> = {}): AppError {
  return new AppError(CODES[reason], message, { reason, ...details });
}
