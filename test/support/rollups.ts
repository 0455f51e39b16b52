import { sketchAdd } from '../../src/inference/latency-sketch';
import { addQuality, qualityDelta } from '../../src/inference/quality-stats';
import { emptyRollupStats, rollupParams, rollupUpsert, windowOf } from '../../src/inference/window-rollup';
import type { OpenAppServices } from '../../src/app/services';
import type { TestServer } from './harness';

/**
 * Adds serving figures to a deployment version's rollup for the window that holds now, as the
 * prediction log's writer does (the same upsert): `requests` routed to the version, `errors` of
 * them failed, every one taking `latencyMs`.
 */
export async function plantRollup(
  t: TestServer,
  deploymentId: string,
  modelVersionId: string,
  figures: { requests: number; errors: number; latencyMs: number; shadow?: boolean; windowSeconds?: number; labelled?: { rows: number; correct: number } },
): Promise<void> {
  const windowSeconds = figures.windowSeconds ?? t.config.inference.windowSeconds;
  const [{ team_id: teamId }] = await t.sql(`SELECT team_id FROM deployment WHERE id = $1`, [deploymentId]);
  const stats = emptyRollupStats();
  stats.requests = figures.requests;
  stats.errors = figures.errors;
  sketchAdd(stats.latency, figures.latencyMs, figures.requests);
  // Labelled rows scored 0.9 (predicted positive at 0.5): labelled 1 when decided right, 0 when not.
  if (figures.labelled) {
    stats.labelled = figures.labelled.rows;
    for (let i = 0; i < figures.labelled.rows; i++) stats.quality = addQuality(stats.quality, qualityDelta(0.9, i < figures.labelled.correct ? 1 : 0, 0.5, 1));
  }
  await t.sql(rollupUpsert(1), rollupParams([{ deploymentId, modelVersionId, shadow: figures.shadow ?? false, windowStart: windowOf(Date.now(), windowSeconds), windowSeconds, teamId, stats }]));
}

/** Folds every rollup delta now, as each process's compactor does every second. */
export async function foldRollups(t: { server: { app: unknown } } | { app: unknown }): Promise<number> {
  const app = ('server' in t ? t.server.app : t.app) as OpenAppServices;
  return app.rollupCompactor.compact();
}
