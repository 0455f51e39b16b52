import type { AppServices } from '../core/context';
import type { ShadowAgreement, StepFigures } from '../rollouts/rollout-health';
import { shadowAgreementOf } from '../inference/shadow-agreement';
import { decisionThreshold } from '../inference/quality-source';
import { ModelVersion } from '../registry/model-version.entity';
import { qualityMetrics } from './quality-metrics';
import { latencyPercentiles, readRollups, type RollupPart, type VersionRollup } from './rollup-read';
import { emptyRollupStats, mergeRollupStats } from '../inference/window-rollup';
import { In } from 'typeorm';

// What a step's figures read of the rollups.
const FIGURES: RollupPart[] = ['latency', 'prediction', 'quality'];

function figuresOf(r: VersionRollup | null, threshold: number): StepFigures {
  const requests = r?.requests ?? 0;
  const errors = r?.errors ?? 0;
  const prediction = r?.prediction ?? null;
  const c = r?.quality.classification;
  const labelled = c?.n ?? 0;
  return {
    requests,
    errors,
    errorRate: requests > 0 ? errors / requests : null,
    p95LatencyMs: r ? latencyPercentiles(r).p95Ms : null,
    driftScore: null,
    meanPrediction: prediction && prediction.n > 0 ? prediction.s.reduce((a, b) => a + b, 0) / prediction.n : null,
    labelled,
    correct: c ? c.tp + c.tn : 0,
    accuracy: r && labelled > 0 ? (qualityMetrics(r.quality, threshold).classification?.accuracy ?? null) : null,
  };
}

function merged(rows: VersionRollup[]): VersionRollup | null {
  if (!rows.length) return null;
  const out: VersionRollup = { ...rows[0], ...emptyRollupStats(), windows: 0 };
  for (const r of rows) {
    mergeRollupStats(out, r);
    out.windows += r.windows;
  }
  return out;
}

/**
 * A rollout step's figures from the window rollups: the new version over the windows overlapping
 * the step (its shadow rows for a SHADOW step, its served rows otherwise), the baseline versions'
 * served rows over the windows in which the new version has rows.
 */
export async function stepFigures(app: AppServices, deploymentId: string, modelVersionId: string, baselineIds: string[], shadow: boolean, start: Date, end: Date): Promise<{ observed: StepFigures; baseline: StepFigures | null }> {
  const versions = await app.db.getRepository(ModelVersion).find({ where: { id: In([modelVersionId, ...baselineIds]) }, select: { id: true, metrics: true } });
  const threshold = (id: string) => decisionThreshold(versions.find((v) => v.id === id)?.metrics ?? null);
  const range = { from: start, to: end, match: 'overlap' as const };
  const own = (await readRollups(app.db, deploymentId, { ...range, versions: [modelVersionId], parts: FIGURES })).filter((r) => r.shadow === shadow);
  const observed = figuresOf(merged(own), threshold(modelVersionId));
  if (!baselineIds.length || observed.requests === 0) return { observed, baseline: null };
  const rows = (await readRollups(app.db, deploymentId, { ...range, versions: baselineIds, windowsOf: modelVersionId, parts: FIGURES })).filter((r) => !r.shadow);
  const b = merged(rows);
  return { observed, baseline: b && b.requests > 0 ? figuresOf(b, threshold(baselineIds[0])) : null };
}

/** A shadow's agreement with the served answers over the windows overlapping [start, end), from its shadow rollups. */
export async function stepAgreement(app: AppServices, deploymentId: string, modelVersionId: string, start: Date, end: Date): Promise<ShadowAgreement | null> {
  const rows = (await readRollups(app.db, deploymentId, { from: start, to: end, match: 'overlap', versions: [modelVersionId], parts: ['agreement'] })).filter((r) => r.shadow);
  return shadowAgreementOf(merged(rows)?.agreement);
}
