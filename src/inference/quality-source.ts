import { isReferenceProfile } from '../registry/reference-profile';

/** The decision threshold when a version's metrics name none. */
export const DEFAULT_DECISION_THRESHOLD = 0.5;

/**
 * A version's decision threshold on its score: `metrics.threshold` when it is a number in (0, 1),
 * else 0.5. Accuracy, precision, recall and F1 are judged at it.
 */
export function decisionThreshold(metrics: unknown): number {
  const t = (metrics as Record<string, unknown> | null)?.threshold;
  return typeof t === 'number' && t > 0 && t < 1 ? t : DEFAULT_DECISION_THRESHOLD;
}

/** The output whose rows quality and prediction drift read: the reference profile's `outputName`, or null (the first output). */
export function outputNameOf(referenceProfile: unknown): string | null {
  return isReferenceProfile(referenceProfile) ? referenceProfile.outputName : null;
}
