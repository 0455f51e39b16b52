import { ErrorCode } from '../core/errors';
import type { ReasonCatalogue } from '../core/error-reasons';

/** Domain codes of monitoring and alerts, carried in `extensions.reason` beside the general code. */
export enum MonitoringReason {
  /** Only an OPEN alert can be acknowledged: read its `status` first. */
  ALERT_NOT_OPEN = 'ALERT_NOT_OPEN',
  /** The alert is already resolved: nothing to do. */
  ALERT_RESOLVED = 'ALERT_RESOLVED',
  /** A time range (of a report, of a rebuild) is empty, reversed or longer than allowed: the message gives the limit, `field` the bound to change. */
  INVALID_RANGE = 'INVALID_RANGE',
  /** Quality settings must keep 0 < warning ≤ critical < 1, minLabelled 1 to 1,000,000 and lookbackSeconds 60 to 7,776,000: `field` names the one out of range. */
  QUALITY_SETTINGS = 'QUALITY_SETTINGS',
  /** `holdoutShare` must be above 0 and at most 0.5: the held-out part is the latest rows, never most of them. */
  HOLDOUT_SHARE = 'HOLDOUT_SHARE',
  /** The range holds fewer usable labelled rows than a production sample needs (the message gives both counts and the unusable rows by cause): sample a longer range or record more outcomes. */
  SAMPLE_TOO_SMALL = 'SAMPLE_TOO_SMALL',
  /** The serving version's input columns cannot head a CSV (a name with other characters than letters, digits, "_", ".", "-", or one named `label`): a production sample of it cannot be taken. */
  SAMPLE_COLUMNS = 'SAMPLE_COLUMNS',
  /** A challenge policy value is out of range (minRows 1 to 1,000,000; 0 ≤ maxAccuracyDrop < 1; 0 < alpha ≤ 0.5; 0 < decisionThreshold < 1): `field` names it. */
  CHALLENGE_POLICY = 'CHALLENGE_POLICY',
  /** The candidate and the champion are the same version (or the candidate holds the `champion` alias): name another champion. */
  CHALLENGE_SAME_VERSION = 'CHALLENGE_SAME_VERSION',
  /** The holdout cannot be judged on: its content is not stored here, is too large, lacks a `label` column or a model's input column, or holds a value that is not a number (a label other than 0 or 1): the message says which. */
  CHALLENGE_HOLDOUT = 'CHALLENGE_HOLDOUT',
  /** A model cannot be run on CSV columns: it needs one float input of shape [rows, columns]; the message names the version. */
  CHALLENGE_MODEL_INPUT = 'CHALLENGE_MODEL_INPUT',
  /** A notification channel's URL cannot be sent to: not http(s), credentials in it, or a host that is (or resolves only to) a loopback, private, link-local or other internal address not in NOTIFY_ALLOWED_HOSTS; the message says which. */
  NOTIFICATION_URL_REFUSED = 'NOTIFICATION_URL_REFUSED',
  /** A loop policy value is out of range, or an enabled retrain policy names no trigger: `field` names the value, the message its range. */
  LOOP_POLICY = 'LOOP_POLICY',
  /** An EMAIL channel cannot be created: no SMTP server is configured (SMTP_URL and SMTP_FROM): an operator sets them, or choose another kind. */
  NOTIFICATION_EMAIL_NOT_CONFIGURED = 'NOTIFICATION_EMAIL_NOT_CONFIGURED',
  /** An EMAIL channel's recipients cannot be accepted: not 1 to 20 addresses `local@domain` (a domain name, no IP literal), or a `mailto:` URI with header fields; the message says which. */
  NOTIFICATION_RECIPIENTS_REFUSED = 'NOTIFICATION_RECIPIENTS_REFUSED',
  /** A notification rule value is out of range or inconsistent (digestSeconds 10 to 86,400; escalateAfterSeconds 10 to 86,400, given with an escalation channel and only then; a channel or deployment of another team): `field` names it. */
  NOTIFICATION_RULE = 'NOTIFICATION_RULE',
  /** A silence cannot be set: it must end after it starts and after now, start within 90 days, last at most 90 days, and carry a comment of 1 to 500 characters: `field` names the value. */
  NOTIFICATION_SILENCE = 'NOTIFICATION_SILENCE',
  /** A channel that routing rules send to (or escalate to) cannot be deleted: the message names the rules; delete them or point them at another channel first. */
  NOTIFICATION_CHANNEL_IN_USE = 'NOTIFICATION_CHANNEL_IN_USE',
}

declare module '../core/error-reasons' {
  interface ErrorReasons extends Record<MonitoringReason, true> {}
}

/** The monitoring domain's part of the catalogue. */
export const MONITORING_REASONS: ReasonCatalogue<MonitoringReason> = {
  [MonitoringReason.ALERT_NOT_OPEN]: { codes: [ErrorCode.CONFLICT], description: 'Only an OPEN alert can be acknowledged: read its `status` first.' },
  [MonitoringReason.ALERT_RESOLVED]: { codes: [ErrorCode.CONFLICT], description: 'The alert is already resolved: nothing to do.' },
  [MonitoringReason.INVALID_RANGE]: { codes: [ErrorCode.BAD_USER_INPUT], description: 'A time range (of a report, of a rebuild) is empty, reversed or longer than allowed: the message gives the limit, `field` the bound to change.' },
  [MonitoringReason.QUALITY_SETTINGS]: {
    codes: [ErrorCode.BAD_USER_INPUT],
    description: 'Quality settings must keep 0 < warning ≤ critical < 1, minLabelled 1 to 1,000,000 and lookbackSeconds 60 to 7,776,000: `field` names the one out of range.',
  },
  [MonitoringReason.HOLDOUT_SHARE]: { codes: [ErrorCode.BAD_USER_INPUT], description: '`holdoutShare` must be above 0 and at most 0.5: the held-out part is the latest rows, never most of them.' },
  [MonitoringReason.SAMPLE_TOO_SMALL]: {
    codes: [ErrorCode.BAD_USER_INPUT],
    description: 'The range holds fewer usable labelled rows than a production sample needs (the message gives both counts and the unusable rows by cause): sample a longer range or record more outcomes.',
  },
  [MonitoringReason.SAMPLE_COLUMNS]: {
    codes: [ErrorCode.BAD_USER_INPUT],
    description: 'The serving version\'s input columns cannot head a CSV (a name with other characters than letters, digits, "_", ".", "-", or one named `label`): a production sample of it cannot be taken.',
  },
  [MonitoringReason.CHALLENGE_POLICY]: {
    codes: [ErrorCode.BAD_USER_INPUT],
    description: 'A challenge policy value is out of range (minRows 1 to 1,000,000; 0 ≤ maxAccuracyDrop < 1; 0 < alpha ≤ 0.5; 0 < decisionThreshold < 1): `field` names it.',
  },
  [MonitoringReason.CHALLENGE_SAME_VERSION]: {
    codes: [ErrorCode.BAD_USER_INPUT],
    description: 'The candidate and the champion are the same version (or the candidate holds the `champion` alias): name another champion.',
  },
  [MonitoringReason.CHALLENGE_HOLDOUT]: {
    codes: [ErrorCode.BAD_USER_INPUT],
    description:
      'The holdout cannot be judged on: its content is not stored here, is too large, lacks a `label` column or a model\'s input column, or holds a value that is not a number (a label other than 0 or 1): the message says which.',
  },
  [MonitoringReason.CHALLENGE_MODEL_INPUT]: {
    codes: [ErrorCode.BAD_USER_INPUT],
    description: 'A model cannot be run on CSV columns: it needs one float input of shape [rows, columns]; the message names the version.',
  },
  [MonitoringReason.NOTIFICATION_URL_REFUSED]: {
    codes: [ErrorCode.BAD_USER_INPUT],
    description:
      "A notification channel's URL cannot be sent to: not http(s), credentials in it, or a host that is (or resolves only to) a loopback, private, link-local or other internal address not in NOTIFY_ALLOWED_HOSTS; the message says which.",
  },
  [MonitoringReason.LOOP_POLICY]: {
    codes: [ErrorCode.BAD_USER_INPUT],
    description: 'A loop policy value is out of range, or an enabled retrain policy names no trigger: `field` names the value, the message its range.',
  },
  [MonitoringReason.NOTIFICATION_EMAIL_NOT_CONFIGURED]: {
    codes: [ErrorCode.BAD_USER_INPUT],
    description: 'An EMAIL channel cannot be created: no SMTP server is configured (SMTP_URL and SMTP_FROM): an operator sets them, or choose another kind.',
  },
  [MonitoringReason.NOTIFICATION_RECIPIENTS_REFUSED]: {
    codes: [ErrorCode.BAD_USER_INPUT],
    description: "An EMAIL channel's recipients cannot be accepted: not 1 to 20 addresses `local@domain` (a domain name, no IP literal), or a `mailto:` URI with header fields; the message says which.",
  },
  [MonitoringReason.NOTIFICATION_RULE]: {
    codes: [ErrorCode.BAD_USER_INPUT],
    description: 'A notification rule value is out of range or inconsistent (digestSeconds 10 to 86,400; escalateAfterSeconds 10 to 86,400, given with an escalation channel and only then; a channel or deployment of another team): `field` names it.',
  },
  [MonitoringReason.NOTIFICATION_SILENCE]: {
    codes: [ErrorCode.BAD_USER_INPUT],
    description: 'A silence cannot be set: it must end after it starts and after now, start within 90 days, last at most 90 days, and carry a comment of 1 to 500 characters: `field` names the value.',
  },
  [MonitoringReason.NOTIFICATION_CHANNEL_IN_USE]: {
    codes: [ErrorCode.CONFLICT],
    description: 'A channel that routing rules send to (or escalate to) cannot be deleted: the message names the rules; delete them or point them at another channel first.',
  },
};
