import { ErrorCode } from '../core/errors';
import type { ReasonCatalogue } from '../core/error-reasons';

/** Domain codes of deployments and rollouts, carried in `extensions.reason` beside the general code. */
export enum RolloutsReason {
  /** The model version belongs to another team than the deployment: name a version of the deployment's team. */
  FOREIGN_VERSION = 'ROLLOUT_FOREIGN_VERSION',
  /** The model version is ARCHIVED or REJECTED and cannot serve: choose another version. */
  VERSION_NOT_SERVABLE = 'ROLLOUT_VERSION_NOT_SERVABLE',
  /** Only APPROVED versions may serve PRODUCTION (shadow traffic excepted): have the version approved first. */
  VERSION_NOT_APPROVED = 'ROLLOUT_VERSION_NOT_APPROVED',
  /** The deployment has a rollout in progress or paused: promote, abort or roll it back first. */
  IN_PROGRESS = 'ROLLOUT_IN_PROGRESS',
  /** A canary needs traffic to take from, and the deployment serves no other version: use BLUE_GREEN. */
  NOTHING_TO_SHIFT = 'ROLLOUT_NOTHING_TO_SHIFT',
  /** The version already serves all of the deployment's traffic: nothing to roll out. */
  NOTHING_TO_DO = 'ROLLOUT_NOTHING_TO_DO',
  /** The rollout has finished (succeeded, aborted or rolled back): start a new one to change traffic. */
  FINISHED = 'ROLLOUT_FINISHED',
  /** The rollout is already paused: resume it, or leave it. */
  PAUSED = 'ROLLOUT_PAUSED',
  /** Only a paused rollout can be resumed: read its `status` first. */
  NOT_PAUSED = 'ROLLOUT_NOT_PAUSED',
  /** No version has held all of the deployment's traffic yet, or the last stable one already does: nothing to roll back to. */
  NOTHING_TO_ROLL_BACK = 'ROLLOUT_NOTHING_TO_ROLL_BACK',
  /** The weights of a traffic split do not sum to 100: correct them. */
  WEIGHTS_NOT_100 = 'WEIGHTS_NOT_100',
}

declare module '../core/error-reasons' {
  interface ErrorReasons extends Record<RolloutsReason, true> {}
}

/** The rollouts' part of the catalogue. */
export const ROLLOUTS_REASONS: ReasonCatalogue<RolloutsReason> = {
  [RolloutsReason.FOREIGN_VERSION]: { codes: [ErrorCode.BAD_USER_INPUT], description: "The model version belongs to another team than the deployment: name a version of the deployment's team." },
  [RolloutsReason.VERSION_NOT_SERVABLE]: { codes: [ErrorCode.CONFLICT], description: 'The model version is ARCHIVED or REJECTED and cannot serve: choose another version.' },
  [RolloutsReason.VERSION_NOT_APPROVED]: { codes: [ErrorCode.CONFLICT], description: 'Only APPROVED versions may serve PRODUCTION (shadow traffic excepted): have the version approved first.' },
  [RolloutsReason.IN_PROGRESS]: { codes: [ErrorCode.CONFLICT], description: 'The deployment has a rollout in progress or paused: promote, abort or roll it back first.' },
  [RolloutsReason.NOTHING_TO_SHIFT]: { codes: [ErrorCode.BAD_USER_INPUT], description: 'A canary needs traffic to take from, and the deployment serves no other version: use BLUE_GREEN.' },
  [RolloutsReason.NOTHING_TO_DO]: { codes: [ErrorCode.CONFLICT], description: "The version already serves all of the deployment's traffic: nothing to roll out." },
  [RolloutsReason.FINISHED]: { codes: [ErrorCode.CONFLICT], description: 'The rollout has finished (succeeded, aborted or rolled back): start a new one to change traffic.' },
  [RolloutsReason.PAUSED]: { codes: [ErrorCode.CONFLICT], description: 'The rollout is already paused: resume it, or leave it.' },
  [RolloutsReason.NOT_PAUSED]: { codes: [ErrorCode.CONFLICT], description: 'Only a paused rollout can be resumed: read its `status` first.' },
  [RolloutsReason.NOTHING_TO_ROLL_BACK]: { codes: [ErrorCode.CONFLICT], description: "No version has held all of the deployment's traffic yet, or the last stable one already does: nothing to roll back to." },
  [RolloutsReason.WEIGHTS_NOT_100]: { codes: [ErrorCode.BAD_USER_INPUT], description: 'The weights of a traffic split do not sum to 100: correct them.' },
};
