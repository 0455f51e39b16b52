import type { AppServices } from '../core/context';
import { ModelVersion } from '../registry/model-version.entity';
import { AlertKind, AlertSeverity } from './alert.entity';
import { computeDriftReport, type DriftReport, type DriftThresholds, type FeatureDrift } from './drift.service';
import { driftReportFromRollup } from './rollup-drift';
import { readRollups } from './rollup-read';
import type { Condition } from './condition';
import type { StepDrift } from '../rollouts/rollout-health';
import { computeReference, ReferenceProfileUnavailableError } from './reference-profile.service';
import { isReferenceProfile, type ReferenceProfile, type ReferenceSamples } from '../registry/reference-profile';

/** Drift of one serving version over a window. */
export interface VersionDrift {
  modelVersionId: string;
  shadow: boolean;
  report: DriftReport;
}

interface Reference {
  profile: ReferenceProfile;
  samples: ReferenceSamples;
}

// References by version, built once per process: a version's training data and stored profile
// never change (dataset content is addressed by its hash).
const references = new WeakMap<AppServices, Map<string, Reference | null>>();

// The input columns are judged against the stored TRAIN content (every row, with the samples the
// exact statistics need, read here and never stored with the profile); the prediction against the
// trainer's profile of the model's outputs and the sample kept beside it.
export async function referenceOf(app: AppServices, versionId: string): Promise<Reference | null> {
  let cache = references.get(app);
  if (!cache) references.set(app, (cache = new Map()));
  if (cache.has(versionId)) return cache.get(versionId) ?? null;
  const version = await app.db.getRepository(ModelVersion).findOneBy({ id: versionId });
  if (!version) return null;
  const stored = isReferenceProfile(version.referenceProfile) ? version.referenceProfile : null;
  let reference: Reference | null = null;
  try {
    const data = await computeReference(app.db, app.artifacts, versionId, stored ? { inputColumns: stored.inputColumns } : {});
    reference = {
      profile: stored ? { ...data.profile, inputName: stored.inputName, outputName: stored.outputName, prediction: stored.prediction } : data.profile,
      samples: { features: data.samples, prediction: version.predictionReferenceSample },
    };
  } catch (e) {
    app.log.warn({ modelVersion: versionId, err: (e as Error).message }, 'no reference: drift is not judged for this version');
    // Only a missing reference is final; anything else is tried again on the next pass.
    if (!(e instanceof ReferenceProfileUnavailableError)) return null;
  }
  cache.set(versionId, reference);
  return reference;
}

/**
 * The drift report of a version over a window against its reference; null without one or without
 * binned rows. A served version's window of at most `exactDriftRows` logged rows is read raw
 * (exact, as scipy computes); a larger one, and a shadow's, from the window rollups.
 */
export async function driftForVersion(
  app: AppServices,
  deploymentId: string,
  versionId: string,
  shadow: boolean,
  start: Date,
  end: Date,
  thresholds: Record<string, number>,
  match: 'start' | 'overlap' = 'start',
): Promise<VersionDrift | null> {
  const bins = await app.rollupBins(versionId);
  if (!bins) return null;
  const [rollup] = (await readRollups(app.db, deploymentId, { from: start, to: end, versions: [versionId], match, parts: ['features', 'prediction'] })).filter((r) => r.shadow === shadow);
  const binned = rollup ? rollup.rows - rollup.unbinned : 0;
  if (binned === 0) return null;
  let report: DriftReport;
  if (!shadow && binned <= app.config.monitoring.exactDriftRows) {
    const reference = await referenceOf(app, versionId);
    if (!reference) return null;
    report = await computeDriftReport(app.db, { deploymentId, modelVersionId: versionId, windowStart: start, windowEnd: end, ...reference, thresholds: thresholds as Partial<DriftThresholds> });
  } else {
    report = driftReportFromRollup({ deploymentId, modelVersionId: versionId, windowStart: start, windowEnd: end, bins, rollup: { ...rollup, rows: binned }, thresholds: thresholds as Partial<DriftThresholds> });
  }
  if (report.rows === 0) return null;
  return { modelVersionId: versionId, shadow, report };
}

/**
 * A rollout step's drift score: the largest PSI over the version's input features and its
 * prediction, from the drift report of the step's logged predictions; null without a reference or rows.
 */
export async function stepDrift(app: AppServices, deploymentId: string, versionId: string, shadow: boolean, start: Date, end: Date): Promise<StepDrift | null> {
  // The windows the step overlaps: the one it began in counts too.
  const drift = await driftForVersion(app, deploymentId, versionId, shadow, start, end, {}, 'overlap');
  if (!drift) return null;
  const all = [...drift.report.features, ...(drift.report.prediction ? [drift.report.prediction] : [])];
  if (!all.length) return null;
  const worst = all.reduce((a, b) => (b.psi > a.psi ? b : a));
  return { score: worst.psi, feature: worst.feature, rows: drift.report.rows };
}

const condition = (versionId: string, kind: AlertKind, f: FeatureDrift, rows: number): Condition => ({
  versionId,
  kind,
  feature: f.feature,
  statistic: f.method,
  value: f.value,
  threshold: f.threshold,
  pValue: f.adjustedPValue ?? f.pValue,
  severity: f.severity as AlertSeverity,
  details: { ...f, rows },
});

/** DRIFT for each drifted feature, PREDICTION_DRIFT for a drifted output (shadow versions are not alerted on). */
export function driftConditions(d: VersionDrift): Condition[] {
  if (d.shadow) return [];
  const out = d.report.features.filter((f) => f.drifted).map((f) => condition(d.modelVersionId, AlertKind.DRIFT, f, d.report.rows));
  if (d.report.prediction?.drifted) out.push(condition(d.modelVersionId, AlertKind.PREDICTION_DRIFT, d.report.prediction, d.report.rows));
  return out;
}
