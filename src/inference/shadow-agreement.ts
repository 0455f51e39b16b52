import type { ShadowAgreement } from '../rollouts/rollout-health';

/** The decision threshold on a row's score (its last output value: the positive class's probability). */
export const SHADOW_DECISION_THRESHOLD = 0.5;

/** Additive agreement counts of a shadow's outputs with the served ones (kept in the shadow's window rollups). */
export interface AgreementCounts {
  /** Output rows compared. */
  rows: number;
  /** Rows where both sides decide alike at the threshold. */
  agreed: number;
  /** Σ |shadow score − served score|. */
  absDiff: number;
}

/** The first output as PostgreSQL's jsonb orders an object's keys (shorter first, then by bytes): raw and live paths pick alike. */
export function firstOutput(outputs: Record<string, unknown>): unknown {
  const keys = Object.keys(outputs).sort((a, b) => Buffer.byteLength(a) - Buffer.byteLength(b) || Buffer.compare(Buffer.from(a), Buffer.from(b)));
  return keys.length ? outputs[keys[0]] : undefined;
}

const score = (row: unknown): number | null => {
  const v = Array.isArray(row) ? row[row.length - 1] : row;
  return typeof v === 'number' && Number.isFinite(v) ? v : null;
};

/**
 * Row by row, the shadow's first output against the served first output (each row's last value is
 * its score): how many rows were compared, agreed in their decision at
 * {@link SHADOW_DECISION_THRESHOLD}, and the sum of the absolute differences. Null when nothing pairs.
 */
export function agreementOf(served: Record<string, unknown> | null, shadow: Record<string, unknown> | null): AgreementCounts | null {
  if (!served || !shadow) return null;
  const a = firstOutput(shadow);
  const b = firstOutput(served);
  if (!Array.isArray(a) || !Array.isArray(b)) return null;
  const out: AgreementCounts = { rows: 0, agreed: 0, absDiff: 0 };
  for (let i = 0; i < Math.min(a.length, b.length); i++) {
    const x = score(a[i]);
    const y = score(b[i]);
    if (x === null || y === null) continue;
    out.rows += 1;
    if (x >= SHADOW_DECISION_THRESHOLD === y >= SHADOW_DECISION_THRESHOLD) out.agreed += 1;
    out.absDiff += Math.abs(x - y);
  }
  return out.rows ? out : null;
}

/** The agreement figures a rollout step reads, from merged counts; null when no row was compared. */
export function shadowAgreementOf(counts: Partial<AgreementCounts> | null | undefined): ShadowAgreement | null {
  if (!counts?.rows) return null;
  return { rows: counts.rows, decisionAgreement: (counts.agreed ?? 0) / counts.rows, meanAbsoluteDifference: (counts.absDiff ?? 0) / counts.rows, threshold: SHADOW_DECISION_THRESHOLD };
}
