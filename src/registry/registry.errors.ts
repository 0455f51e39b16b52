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
}

const CODES: Record<RegistryReason, ErrorCode> = {
  [RegistryReason.INVALID_TRANSITION]: ErrorCode.CONFLICT,
  [RegistryReason.SELF_APPROVAL]: ErrorCode.FORBIDDEN,
  [RegistryReason.ALIAS_REQUIRES_APPROVAL]: ErrorCode.CONFLICT,
  [RegistryReason.VERSION_SERVING]: ErrorCode.CONFLICT,
  [RegistryReason.UNKNOWN_ARTIFACT]: ErrorCode.BAD_USER_INPUT,
  [RegistryReason.EXTERNAL_DATA]: ErrorCode.BAD_USER_INPUT,
};

export function registryError(reason: RegistryReason, message: string, details: Record<string, unknown> = {}): AppError {
  return new AppError(CODES[reason], message, { reason, ...details });
}
