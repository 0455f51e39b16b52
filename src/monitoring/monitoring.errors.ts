import { ErrorCode } from '../core/errors';
import type { ReasonCatalogue } from '../core/error-reasons';

/** Domain codes of monitoring and alerts, carried in `extensions.reason` beside the general code. */
export enum MonitoringReason {
  /** Only an OPEN alert can be acknowledged: read its `status` first. */
  ALERT_NOT_OPEN = 'ALERT_NOT_OPEN',
  /** The alert is already resolved: nothing to do. */
  ALERT_RESOLVED = 'ALERT_RESOLVED',
  /** Quality settings must keep 0 < warning ≤ critical < 1, minLabelled 1 to 1,000,000 and lookbackSeconds 60 to 7,776,000: `field` names the one out of range. */
  QUALITY_SETTINGS = 'QUALITY_SETTINGS',
  /** A report's range must end after it starts and span at most 90 days: `field` names the bound to change. */
  REPORT_RANGE = 'REPORT_RANGE',
}

declare module '../core/error-reasons' {
  interface ErrorReasons extends Record<MonitoringReason, true> {}
}

/** The monitoring domain's part of the catalogue. */
export const MONITORING_REASONS: ReasonCatalogue<MonitoringReason> = {
  [MonitoringReason.ALERT_NOT_OPEN]: { codes: [ErrorCode.CONFLICT], description: 'Only an OPEN alert can be acknowledged: read its `status` first.' },
  [MonitoringReason.ALERT_RESOLVED]: { codes: [ErrorCode.CONFLICT], description: 'The alert is already resolved: nothing to do.' },
  [MonitoringReason.QUALITY_SETTINGS]: {
    codes: [ErrorCode.BAD_USER_INPUT],
    description: 'Quality settings must keep 0 < warning ≤ critical < 1, minLabelled 1 to 1,000,000 and lookbackSeconds 60 to 7,776,000: `field` names the one out of range.',
  },
  [MonitoringReason.REPORT_RANGE]: { codes: [ErrorCode.BAD_USER_INPUT], description: "A report's range must end after it starts and span at most 90 days: `field` names the bound to change." },
};
