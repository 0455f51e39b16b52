import type { EntityManager } from 'typeorm';
import type { Deployment } from './deployment.entity';
import { RolloutStrategy, type Rollout } from './rollout.entity';

/** What a step's check decided. */
export type VerdictKind = 'advance' | 'hold' | 'pause' | 'rollback';

/** A version's serving figures over a step, from the window rollups of the windows the step overlaps. */
export interface StepFigures {
  requests: number;
  errors: number;
  errorRate: number | null;
  /** The step's own p95, from the merged latency sketches (within their 1 % relative accuracy). */
  p95LatencyMs: number | null;
  driftScore: number | null;
  /** Mean prediction (element 0 of each answered row), from the rollup histograms' sums; null without binned predictions. */
  meanPrediction: number | null;
  /** Labelled classification rows, those decided right at the version's decision threshold, and their share, when outcomes exist. */
  labelled: number;
  correct: number;
  accuracy: number | null;
}

/** Labelled rows each side needs before their accuracies are compared. */
export const MIN_LABELLED_FOR_COMPARISON = 30;

/** The one-sided two-proportion z-test of "the new version's error rate is higher than the baseline's". */
export interface ErrorRateComparison {
  test: 'two-proportion z-test (one-sided)';
  z: number;
  pValue: number;
  alpha: number;
  significant: boolean;
}

/**
 * A step's health verdict, as audited and as `Rollout.lastVerdict` shows it: what was observed for
 * the new version and for the baseline over the same windows, and which test decided.
 */
export interface StepVerdict {
  verdict: VerdictKind;
  /** The test that decided: `slo:errorRate`, `slo:p95LatencyMs`, `slo:drift`, `accuracy two-proportion z-test`, `two-proportion z-test`, `minimum sample`, `shadow agreement`, or `all checks passed`. */
  decidedBy: string;
  reasons: string[];
  step: number;
  percent: number;
  observed: StepFigures;
  /** The baseline version(s) over the windows in which the new version served; null when none served then. */
  baseline: (StepFigures & { versions: string[] }) | null;
  comparison: ErrorRateComparison | null;
  /**
   * Online quality against the baseline's over the same windows, when both have at least
   * {@link MIN_LABELLED_FOR_COMPARISON} labelled rows: the same one-sided test on their
   * misclassification rates (a significantly worse accuracy rolls back).
   */
  qualityComparison: ErrorRateComparison | null;
  /** The new version's p95 over the baseline's (merged sketches); null without both. */
  p95Ratio: number | null;
  /** The new version's mean prediction minus the baseline's; null without both. */
  meanPredictionShift: number | null;
  /** The drift report behind `observed.driftScore`, when the deployment has a drift SLO. */
  drift: StepDrift | null;
  /** SHADOW: the shadow's outputs against the served ones over the step. */
  agreement: ShadowAgreement | null;
  minRequests: number;
  /** Seconds the step had run when judged. */
  elapsedSeconds: number;
  /** Seconds past its bake time the step may still be held (0 once the hold is over). */
  holdLeftSeconds: number;
  judgedAt: string;
}

/** Standard normal upper tail, P(Z > z) (Abramowitz & Stegun 7.1.26 for erfc: absolute error below 1.5e-7). */
export function normalUpperTail(z: number): number {
  const x = Math.abs(z) / Math.SQRT2;
  const t = 1 / (1 + 0.3275911 * x);
  const erfc = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429)))) * Math.exp(-x * x);
  return z >= 0 ? erfc / 2 : 1 - erfc / 2;
}

/**
 * One-sided two-proportion z-test (pooled variance) of H1: the candidate's error rate exceeds the
 * baseline's. Not significant when either side has no requests or the pooled rate is 0 or 1.
 */
export function compareErrorRates(candidate: { requests: number; errors: number }, baseline: { requests: number; errors: number }, alpha: number): ErrorRateComparison {
  const n1 = candidate.requests;
  const n0 = baseline.requests;
  let z = 0;
  if (n1 > 0 && n0 > 0) {
    const pooled = (candidate.errors + baseline.errors) / (n1 + n0);
    const se = Math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n0));
    if (se > 0) z = (candidate.errors / n1 - baseline.errors / n0) / se;
  }
  const pValue = normalUpperTail(z);
  return { test: 'two-proportion z-test (one-sided)', z, pValue, alpha, significant: z > 0 && pValue < alpha };
}

const pText = (p: number) => (p < 1e-3 ? p.toExponential(2) : p.toPrecision(3));

/**
 * Judges the current step of a rollout from the evidence recorded since it began: the new version
 * against the deployment's absolute SLOs (the drift SLO on the step's drift report) and against the
 * baseline version(s) over the same windows (any breach or a significantly worse error rate rolls
 * back, whatever the sample); then the minimum sample: without it the step holds until its hold
 * runs out, then pauses; then, for a SHADOW, its agreement with the served answers (too low rolls
 * back). It never advances on no evidence.
 */
export async function judgeStep(em: EntityManager, rollout: Rollout, deployment: Deployment, evidence?: RolloutEvidence, now = new Date()): Promise<StepVerdict> {
  const since = rollout.stepStartedAt;
  const baselineIds = rollout.baselineSplit.map((s) => s.modelVersionId).filter((id) => id !== rollout.modelVersionId);
  const figured = evidence ? await evidence.stepFigures(deployment.id, rollout.modelVersionId, baselineIds, rollout.strategy === RolloutStrategy.SHADOW, since, now) : null;
  const observed: StepFigures = figured?.observed ?? { requests: 0, errors: 0, errorRate: null, p95LatencyMs: null, driftScore: null, meanPrediction: null, labelled: 0, correct: 0, accuracy: null };
  const baseline: StepVerdict['baseline'] = figured?.baseline && figured.baseline.requests > 0 ? { ...figured.baseline, versions: baselineIds } : null;
  const comparison = baseline ? compareErrorRates(observed, baseline, rollout.significance) : null;
  const misclassified = (f: StepFigures) => ({ requests: f.labelled, errors: f.labelled - f.correct });
  const qualityComparison =
    baseline && observed.labelled >= MIN_LABELLED_FOR_COMPARISON && baseline.labelled >= MIN_LABELLED_FOR_COMPARISON
      ? compareErrorRates(misclassified(observed), misclassified(baseline), rollout.significance)
      : null;
  const p95Ratio = baseline && observed.p95LatencyMs !== null && baseline.p95LatencyMs ? observed.p95LatencyMs / baseline.p95LatencyMs : null;
  const meanPredictionShift = baseline && observed.meanPrediction !== null && baseline.meanPrediction !== null ? observed.meanPrediction - baseline.meanPrediction : null;

  const slo = deployment.slos ?? {};
  // The drift SLO is judged on the step's own drift report (its logged predictions against the
  // version's reference), computed only when the deployment sets one.
  let drift: StepDrift | null = null;
  if (typeof slo.drift === 'number' && evidence && observed.requests > 0) {
    drift = await evidence.stepDrift(deployment.id, rollout.modelVersionId, rollout.strategy === RolloutStrategy.SHADOW, since, now);
    if (drift) observed.driftScore = Math.max(observed.driftScore ?? 0, drift.score);
  }
  const breaches: Array<[string, string]> = [];
  if (typeof slo.errorRate === 'number' && observed.errorRate !== null && observed.errorRate > slo.errorRate) {
    breaches.push(['slo:errorRate', `error rate ${observed.errorRate.toFixed(4)} > SLO ${slo.errorRate}`]);
  }
  if (typeof slo.p95LatencyMs === 'number' && observed.p95LatencyMs !== null && observed.p95LatencyMs > slo.p95LatencyMs) {
    breaches.push(['slo:p95LatencyMs', `p95 latency ${observed.p95LatencyMs} ms > SLO ${slo.p95LatencyMs} ms`]);
  }
  if (typeof slo.drift === 'number' && observed.driftScore !== null && observed.driftScore > slo.drift) {
    const which = drift && drift.score === observed.driftScore ? ` (PSI of ${drift.feature} over ${drift.rows} rows)` : '';
    breaches.push(['slo:drift', `drift ${observed.driftScore.toFixed(4)}${which} > SLO ${slo.drift}`]);
  }
  if (qualityComparison?.significant && baseline) {
    breaches.push([
      'accuracy two-proportion z-test',
      `online accuracy ${observed.accuracy!.toFixed(4)} over ${observed.labelled} labelled rows is significantly worse than the baseline's ${baseline.accuracy!.toFixed(4)} over ${baseline.labelled} (z = ${qualityComparison.z.toFixed(2)}, p = ${pText(qualityComparison.pValue)} < α = ${qualityComparison.alpha})`,
    ]);
  }
  if (comparison?.significant && baseline) {
    breaches.push([
      'two-proportion z-test',
      `error rate ${observed.errorRate!.toFixed(4)} is significantly worse than the baseline's ${baseline.errorRate!.toFixed(4)} (z = ${comparison.z.toFixed(2)}, p = ${pText(comparison.pValue)} < α = ${comparison.alpha})`,
    ]);
  }

  const elapsedSeconds = (now.getTime() - since.getTime()) / 1000;
  const holdLeftSeconds = Math.max(0, rollout.bakeSeconds + rollout.maxHoldSeconds - elapsedSeconds);
  const base = {
    step: rollout.currentStep,
    percent: rollout.steps[rollout.currentStep],
    observed,
    baseline,
    comparison,
    qualityComparison,
    p95Ratio,
    meanPredictionShift,
    drift,
    agreement: null as ShadowAgreement | null,
    minRequests: rollout.minRequests,
    elapsedSeconds: Math.round(elapsedSeconds * 1000) / 1000,
    holdLeftSeconds: Math.round(holdLeftSeconds * 1000) / 1000,
    judgedAt: now.toISOString(),
  };
  if (breaches.length) return { verdict: 'rollback', decidedBy: breaches[0][0], reasons: breaches.map(([, r]) => r), ...base };
  if (observed.requests < rollout.minRequests) {
    const reason = `${observed.requests} of the ${rollout.minRequests} requests needed`;
    return holdLeftSeconds > 0
      ? { verdict: 'hold', decidedBy: 'minimum sample', reasons: [`${reason}: held, ${Math.ceil(holdLeftSeconds)} s of hold left`], ...base }
      : { verdict: 'pause', decidedBy: 'minimum sample', reasons: [`${reason} after ${rollout.maxHoldSeconds} s of hold`], ...base };
  }
  // A shadow succeeds only if it decides as the served version does.
  let agreed = '';
  if (rollout.strategy === RolloutStrategy.SHADOW) {
    const agreement = evidence ? await evidence.shadowAgreement(deployment.id, rollout.modelVersionId, since, now) : null;
    base.agreement = agreement;
    if (!agreement) {
      const reason = 'no shadow output could be paired with a served answer';
      return holdLeftSeconds > 0
        ? { verdict: 'hold', decidedBy: 'shadow agreement', reasons: [`${reason}: held, ${Math.ceil(holdLeftSeconds)} s of hold left`], ...base }
        : { verdict: 'pause', decidedBy: 'shadow agreement', reasons: [`${reason} after ${rollout.maxHoldSeconds} s of hold`], ...base };
    }
    const measured = `decision agreement ${agreement.decisionAgreement.toFixed(4)} over ${agreement.rows} rows (mean absolute difference ${agreement.meanAbsoluteDifference.toFixed(4)})`;
    if (agreement.decisionAgreement < rollout.minAgreement) {
      return { verdict: 'rollback', decidedBy: 'shadow agreement', reasons: [`${measured} < ${rollout.minAgreement}`], ...base };
    }
    agreed = `; ${measured}`;
  }
  const compared = comparison ? `; error rate not significantly worse than the baseline's (p = ${pText(comparison.pValue)})` : '; no baseline traffic in the same windows';
  return { verdict: 'advance', decidedBy: 'all checks passed', reasons: [`healthy over ${observed.requests} requests${compared}${agreed}`], ...base };
}

/** A rollout paused because a step lacked evidence (its minimum sample, or a shadow's paired outputs) through its whole hold. */
export interface StalledRollout {
  teamId: string;
  deploymentId: string;
  modelVersionId: string;
  rolloutId: string;
  /** Who paused it (the principal the step ran as). */
  pausedBy: string;
  stepStartedAt: Date;
  /** The new version's requests in the step, and the sample it needed. */
  requests: number;
  minRequests: number;
  /** The verdict as audited (global ids). */
  verdict: Record<string, unknown>;
}

/**
 * Opens (or renews) the alert of a stalled rollout inside the caller's transaction; `announce`
 * streams it once that transaction has committed. The monitoring domain provides it, the assembly
 * wires it.
 */
export interface RolloutAlerts {
  stalled(em: EntityManager, stall: StalledRollout): Promise<{ id: string; announce(): void }>;
}

/** A version's drift over a step: the largest PSI over its input features and its prediction. */
export interface StepDrift {
  score: number;
  /** The feature (or the prediction's output name) with that PSI. */
  feature: string;
  /** Logged prediction rows the report read. */
  rows: number;
}

/** How a shadow version's outputs compare with the served outputs of the same requests. */
export interface ShadowAgreement {
  /** Output rows compared. */
  rows: number;
  /** Share of rows where both sides decide alike (score at or above `threshold` on both, or below on both). */
  decisionAgreement: number;
  meanAbsoluteDifference: number;
  threshold: number;
}

/**
 * The evidence a step's check reads, from later domains (the assembly wires it):
 * - `stepDrift`: the drift of a version's logged predictions over [start, end) against its
 *   reference; null when the version has no reference or logged no rows then;
 * - `shadowAgreement`: a shadow's logged outputs over [start, end) against the served answers to
 *   the same requests; null when none could be paired.
 */
export interface RolloutEvidence {
  /**
   * The new version's figures over the windows overlapping [start, end) — its mirrored runs when
   * `shadow`, its served requests otherwise — and the baseline versions' served figures over the
   * windows in which the new version has rows; null baseline when it has none.
   */
  stepFigures(deploymentId: string, modelVersionId: string, baselineIds: string[], shadow: boolean, start: Date, end: Date): Promise<{ observed: StepFigures; baseline: StepFigures | null }>;
  stepDrift(deploymentId: string, modelVersionId: string, shadow: boolean, start: Date, end: Date): Promise<StepDrift | null>;
  shadowAgreement(deploymentId: string, modelVersionId: string, start: Date, end: Date): Promise<ShadowAgreement | null>;
}

declare module '../core/context' {
  interface AppServices {
    rolloutAlerts: RolloutAlerts;
    rolloutEvidence: RolloutEvidence;
  }
}
