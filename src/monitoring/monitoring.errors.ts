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
};
