// Prediction quality from outcomes: the report a deployment's team reads, and the conditions the
// monitor turns into QUALITY alerts. Both read window rollups only, never the prediction log.
import { In, type DataSource } from 'typeorm';
import type { RequestContext } from '../core/context';
import { badInput } from '../core/errors';
import { fromGlobalId, toGlobalId } from '../core/global-id';
import { decisionThreshold } from '../inference/quality-source';
import { ModelVersion } from '../registry/model-version.entity';
import { loadReadable } from '../lineage/lineage.service';
import { Deployment } from '../rollouts/deployment.entity';
import { AlertKind, AlertSeverity } from './alert.entity';
import type { Condition } from './condition';
import { MonitoringReason } from './monitoring.errors';
import {
  baselineFigures,
  labelDelays,
  metricChanges,
  onlineFigures,
  PeerQuality,
  QualityReport,
  VersionQuality,
  type QualityMetricName,
  HIGHER_IS_BETTER,
} from './quality-report';
import { readRollups } from './rollup-read';

const REGRESSION_METRICS = new Set(['mae', 'rmse', 'bias', 'r2']);

/** How a deployment's monitor judges quality. */
export interface QualitySettings {
  /** Relative degradation of a metric against its offline baseline that opens a WARNING alert. */
  warning: number;
  /** Relative degradation that makes it CRITICAL. */
  critical: number;
  /** Scored labelled rows a metric needs over the lookback to be judged (classification metrics count classification rows, regression metrics regression rows; no alert opened or resolved with fewer). */
  minLabelled: number;
  /** Labels arrive late: quality is judged over this many seconds ending at the judged window's end. */
  lookbackSeconds: number;
}

/** The defaults every deployment's quality settings are merged over. */
export const DEFAULT_QUALITY: Readonly<QualitySettings> = { warning: 0.05, critical: 0.1, minLabelled: 100, lookbackSeconds: 86_400 };

/** The longest lookback a setting or a report range may span. */
export const MAX_QUALITY_LOOKBACK_SECONDS = 90 * 86_400;

/** Stored quality overrides merged over {@link DEFAULT_QUALITY}. */
export function qualitySettingsOf(stored: unknown): QualitySettings {
  const s = (stored ?? {}) as Partial<QualitySettings>;
  return {
    warning: s.warning ?? DEFAULT_QUALITY.warning,
    critical: s.critical ?? DEFAULT_QUALITY.critical,
    minLabelled: s.minLabelled ?? DEFAULT_QUALITY.minLabelled,
    lookbackSeconds: s.lookbackSeconds ?? DEFAULT_QUALITY.lookbackSeconds,
  };
}

/**
 * The stored quality overrides after a change (settings given replace the stored ones), checked
 * as a whole with the defaults filled in — a change to `warning` alone is checked against the
 * `critical` in force: 0 < warning ≤ critical < 1, minLabelled 1 to 1,000,000, lookbackSeconds 60
 * to 90 days. BAD_USER_INPUT with reason QUALITY_SETTINGS otherwise.
 */
export function checkedQualitySettings(current: unknown, patch: Partial<QualitySettings>): Partial<QualitySettings> {
  const given = Object.fromEntries(Object.entries(patch).filter(([, v]) => v !== undefined && v !== null));
  const stored = { ...((current ?? {}) as Partial<QualitySettings>), ...given };
  const next = qualitySettingsOf(stored);
  const refuse = (message: string, field: string) => badInput(message, { field: `quality.${field}`, reason: MonitoringReason.QUALITY_SETTINGS });
  const fraction = (v: number) => Number.isFinite(v) && v > 0 && v < 1;
  if (!fraction(next.warning)) throw refuse('quality.warning must be above 0 and below 1', 'warning');
  if (!fraction(next.critical)) throw refuse('quality.critical must be above 0 and below 1', 'critical');
  if (next.warning > next.critical) throw refuse(`quality.warning (${next.warning}) must not exceed quality.critical (${next.critical})`, Object.hasOwn(given, 'warning') ? 'warning' : 'critical');
  if (!Number.isInteger(next.minLabelled) || next.minLabelled < 1 || next.minLabelled > 1_000_000) throw refuse('quality.minLabelled must be a whole number from 1 to 1000000', 'minLabelled');
  if (!Number.isInteger(next.lookbackSeconds) || next.lookbackSeconds < 60 || next.lookbackSeconds > MAX_QUALITY_LOOKBACK_SECONDS) {
    throw refuse(`quality.lookbackSeconds must be a whole number from 60 to ${MAX_QUALITY_LOOKBACK_SECONDS}`, 'lookbackSeconds');
  }
  return stored;
}

/**
 * Per served (non-shadow) version with rows in the rollup windows starting in [from, to): rows,
 * labels, label delay, online metrics at the version's decision threshold beside its offline
 * baseline, and the other served versions over the same windows.
 */
export async function computeQualityReport(db: DataSource, deploymentId: string, from: Date, to: Date): Promise<QualityReport> {
  const served = (await readRollups(db, deploymentId, { from, to, parts: ['quality', 'label_delay'] })).filter((r) => !r.shadow && r.rows > 0);
  const versions = served.length ? await db.getRepository(ModelVersion).find({ where: { id: In(served.map((r) => r.modelVersionId)) } }) : [];
  const byId = new Map(versions.map((v) => [v.id, v]));
  const thresholdOf = (id: string) => decisionThreshold(byId.get(id)?.metrics);
  const out: VersionQuality[] = [];
  for (const r of served) {
    const version = byId.get(r.modelVersionId);
    const threshold = thresholdOf(r.modelVersionId);
    const online = onlineFigures(r, threshold);
    const baseline = baselineFigures(version?.metrics);
    const unscored = r.quality.unscored ?? 0;
    const peers = served.length > 1 ? await peersOf(db, deploymentId, from, to, r.modelVersionId, byId, thresholdOf) : [];
    out.push(
      Object.assign(new VersionQuality(), {
        modelVersionId: toGlobalId('ModelVersion', r.modelVersionId),
        version: version?.version ?? 0,
        rows: r.rows,
        labelled: r.labelled,
        unscored,
        classificationRows: r.quality.classification?.n ?? 0,
        regressionRows: r.quality.regression?.n ?? 0,
        labelCoverage: r.rows > 0 ? r.labelled / r.rows : null,
        ...labelDelays(r),
        decisionThreshold: threshold,
        online,
        baseline,
        changes: metricChanges(online, baseline),
        peers,
      }),
    );
  }
  return Object.assign(new QualityReport(), { deploymentId: toGlobalId('Deployment', deploymentId), from, to, versions: out });
}

async function peersOf(db: DataSource, deploymentId: string, from: Date, to: Date, versionId: string, byId: Map<string, ModelVersion>, thresholdOf: (id: string) => number): Promise<PeerQuality[]> {
  const same = await readRollups(db, deploymentId, { from, to, windowsOf: versionId, parts: ['quality'] });
  return same
    .filter((p) => !p.shadow && p.modelVersionId !== versionId && p.rows > 0)
    .map((p) =>
      Object.assign(new PeerQuality(), {
        modelVersionId: toGlobalId('ModelVersion', p.modelVersionId),
        version: byId.get(p.modelVersionId)?.version ?? 0,
        rows: p.rows,
        labelled: p.labelled,
        online: onlineFigures(p, thresholdOf(p.modelVersionId)),
      }),
    );
}

/**
 * The quality report of a deployment the caller may read (NOT_FOUND otherwise), over the rollup
 * windows starting in [from, to); by default the deployment's quality lookback ending now.
 */
export async function qualityReport(ctx: RequestContext, deploymentRef: string, range: { from?: Date | null; to?: Date | null } = {}): Promise<QualityReport> {
  const d = await loadReadable(ctx, ctx.app.db.manager, Deployment, 'Deployment', deploymentRef, 'deployment');
  const to = range.to ?? new Date();
  const from = range.from ?? new Date(to.getTime() - qualitySettingsOf(qualityOverrides(d)).lookbackSeconds * 1000);
  if (!(to > from)) throw badInput('to must be after from', { field: 'to', reason: MonitoringReason.INVALID_RANGE });
  if (to.getTime() - from.getTime() > MAX_QUALITY_LOOKBACK_SECONDS * 1000) throw badInput('a report spans at most 90 days', { field: 'from', reason: MonitoringReason.INVALID_RANGE });
  return computeQualityReport(ctx.app.db, d.id, from, to);
}

/** A deployment's stored quality overrides. */
export function qualityOverrides(d: Pick<Deployment, 'monitoring'>): unknown {
  return (d.monitoring ?? {}).quality;
}

/**
 * QUALITY conditions of a report: per version with at least `minLabelled` labelled rows, each
 * metric with an offline baseline whose relative degradation reaches `warning` (WARNING) or
 * `critical` (CRITICAL). The condition's threshold is the value at which the metric reaches the
 * warning: baseline × (1 ∓ warning). `judged` receives every version with enough labels.
 */
export function qualityConditions(report: QualityReport, settings: QualitySettings, judged: Set<string>): Condition[] {
  const out: Condition[] = [];
  for (const v of report.versions) {
    // Each metric is judged on the rows it is computed over, never on labels it could not score.
    const rowsOf = (metric: string) => (REGRESSION_METRICS.has(metric) ? v.regressionRows : v.classificationRows);
    if (v.classificationRows < settings.minLabelled && v.regressionRows < settings.minLabelled) continue;
    const versionId = fromGlobalId(v.modelVersionId).key;
    judged.add(versionId);
    for (const c of v.changes) {
      if (rowsOf(c.metric) < settings.minLabelled) continue;
      if (c.degradation === null || c.online === null || c.degradation < settings.warning) continue;
      const metric = c.metric as QualityMetricName;
      const limit = HIGHER_IS_BETTER.has(metric) ? c.baseline * (1 - settings.warning) : c.baseline * (1 + settings.warning);
      out.push({
        versionId,
        kind: AlertKind.QUALITY,
        feature: metric,
        statistic: metric,
        value: c.online,
        threshold: limit,
        pValue: null,
        severity: c.degradation >= settings.critical ? AlertSeverity.CRITICAL : AlertSeverity.WARNING,
        details: {
          baseline: c.baseline,
          online: c.online,
          relativeChange: c.relativeChange,
          degradation: c.degradation,
          labelled: v.labelled,
          rows: v.rows,
          decisionThreshold: v.decisionThreshold,
          from: report.from,
          to: report.to,
        },
      });
    }
  }
  return out;
}
