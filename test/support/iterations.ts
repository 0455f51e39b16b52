import { randomUUID } from 'node:crypto';
import { fromGlobalId } from '../../src/core/global-id';
import type { TestServer } from './harness';

/**
 * A finished iteration of a deployment's loop (HANDED_OFF, no steps beyond its trigger), written
 * directly: for tests that need one to exist, not a loop that ran. Returns its uuid.
 */
export async function plantIteration(t: TestServer, deployment: string, createdBy = 'test-planted'): Promise<string> {
  const id = randomUUID();
  const deploymentId = fromGlobalId(deployment).key;
  await t.sql(
    `INSERT INTO iteration (id, team_id, created_by, deployment_id, status, trigger_kind, trigger, champion_version_id, policy, steps, actors, finished_at)
     SELECT $1, d.team_id, $3, d.id, 'HANDED_OFF', 'SCHEDULE', '{}', (SELECT model_version_id FROM traffic_share WHERE deployment_id = d.id ORDER BY weight DESC LIMIT 1),
            '{}', '[]', '{"retrain": null, "promotion": null}', now()
       FROM deployment d WHERE d.id = $2`,
    [id, deploymentId, createdBy],
  );
  return id;
}
