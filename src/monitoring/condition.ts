import type { AlertKind, AlertSeverity } from './alert.entity';

/** A condition found in a window, before it becomes (or updates) an alert. */
export interface Condition {
  versionId: string;
  kind: AlertKind;
  feature: string;
  statistic: string;
  value: number;
  threshold: number;
  pValue: number | null;
  severity: AlertSeverity;
  details: Record<string, unknown>;
}
