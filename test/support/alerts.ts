import { fromGlobalId } from '../../src/core/global-id';
import { Alert, AlertKind, AlertSeverity, AlertStatus } from '../../src/monitoring/alert.entity';
import type { TestServer } from './harness';

/**
 * An open latency alert of `team` on a deployment and a version (global IDs), written straight into
 * the table: for tests about who sees alerts, not about how monitors raise them.
 */
export function plantLatencyAlert(t: TestServer, team: string, deployment: string, modelVersion: string): Promise<Alert> {
  return plantAlert(t, team, deployment, modelVersion, { kind: AlertKind.LATENCY, severity: AlertSeverity.WARNING, statistic: 'p95_ms', value: 250, threshold: 100 });
}

/** An open alert of any kind, written straight into the table (see {@link plantLatencyAlert}). */
export async function plantAlert(
  t: TestServer,
  team: string,
  deployment: string,
  modelVersion: string,
  what: { kind: AlertKind; severity: AlertSeverity; statistic: string; value: number; threshold: number; feature?: string },
): Promise<Alert> {
  const [{ id: teamId }] = await t.sql(`SELECT id::text AS id FROM team WHERE name = $1`, [team]);
  const now = new Date();
  return t.server.app.db.getRepository(Alert).save(
    Object.assign(new Alert(), {
      teamId,
      createdBy: 'monitor',
      deploymentId: fromGlobalId(deployment).key,
      modelVersionId: fromGlobalId(modelVersion).key,
      status: AlertStatus.OPEN,
      windowStart: new Date(now.getTime() - 60_000),
      windowEnd: now,
      lastSeenAt: now,
      ...what,
    }),
  );
}
