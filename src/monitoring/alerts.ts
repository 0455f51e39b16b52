// Opening and announcing alerts, shared by the monitor, the iteration loop and the engine's hooks.
import type { EntityManager } from 'typeorm';
import type { AppServices } from '../core/context';
import { TOPICS } from '../core/events';
import { Alert, AlertStatus } from './alert.entity';

/** The named principal deployments' monitors run as, each on behalf of its deployment's creator. */
export const MONITOR_PRINCIPAL = 'system:monitor';

/** What an alert is about when it opens; the rest of a new alert is fixed (see {@link openAlert}). */
export type AlertOpening = Pick<
  Alert,
  'teamId' | 'createdBy' | 'deploymentId' | 'modelVersionId' | 'kind' | 'severity' | 'feature' | 'statistic' | 'value' | 'threshold' | 'pValue' | 'windowStart' | 'windowEnd' | 'lastSeenAt' | 'details'
>;

/** A new OPEN alert, seen once: nobody has acknowledged or resolved it, and no retraining was started for it. */
export function openAlert(em: EntityManager, opening: AlertOpening): Alert {
  return em.create(Alert, {
    ...opening,
    status: AlertStatus.OPEN,
    occurrences: 1,
    acknowledgedBy: null,
    acknowledgedAt: null,
    resolvedBy: null,
    resolvedAt: null,
    resolution: null,
    retrainRunId: null,
  });
}

/** Alerts travel between instances whole (ids, team, deployment, kind…): subscribers filter them without a query. */
export function publishAlert(app: AppServices, alert: Alert): void {
  app.events?.publish(TOPICS.alertChanged, { id: 'all', alert });
}

