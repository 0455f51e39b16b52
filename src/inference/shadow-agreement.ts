import type { DataSource } from 'typeorm';
import type { ShadowAgreement } from '../rollouts/rollout-health';

/** The decision threshold on a row's score (its last output value: the positive class's probability). */
export const SHADOW_DECISION_THRESHOLD = 0.5;

/**
 * Compares the outputs a shadow version logged over [start, end) with the answers served for the
 * same requests (same request id and input hash), row by row, on each side's first output and that
 * output's last value per row. Null when no pair was logged.
 */
export async function shadowAgreement(db: DataSource, deploymentId: string, shadowVersionId: string, start: Date, end: Date): Promise<ShadowAgreement | null> {
  const score = (alias: string) => `(CASE jsonb_typeof(${alias}.v) WHEN 'array' THEN (${alias}.v->>-1)::float8 ELSE (${alias}.v#>>'{}')::float8 END)`;
  const [row] = await db.query(
    `WITH pairs AS (
       SELECT s.outputs -> (SELECT k FROM jsonb_object_keys(s.outputs) k LIMIT 1) AS so,
              p.outputs -> (SELECT k FROM jsonb_object_keys(p.outputs) k LIMIT 1) AS po
         FROM prediction_log s
         JOIN prediction_log p ON p.deployment_id = s.deployment_id AND p.request_id = s.request_id AND p.inputs_sha256 = s.inputs_sha256
                              AND NOT p.shadow AND p.outputs IS NOT NULL AND p.occurred_at > $3::timestamptz - interval '1 minute' AND p.occurred_at < $4
        WHERE s.deployment_id = $1 AND s.model_version_id = $2 AND s.shadow AND s.outputs IS NOT NULL AND s.occurred_at >= $3 AND s.occurred_at < $4
     ), scores AS (
       SELECT ${score('sa')} AS a, ${score('pa')} AS b
         FROM pairs
         CROSS JOIN LATERAL jsonb_array_elements(CASE jsonb_typeof(so) WHEN 'array' THEN so ELSE '[]'::jsonb END) WITH ORDINALITY sa(v, i)
         JOIN LATERAL jsonb_array_elements(CASE jsonb_typeof(po) WHEN 'array' THEN po ELSE '[]'::jsonb END) WITH ORDINALITY pa(v, i) ON pa.i = sa.i
     )
     SELECT count(*)::int AS rows, avg(((a >= $5) = (b >= $5))::int)::float8 AS agreement, avg(abs(a - b))::float8 AS mad FROM scores WHERE a IS NOT NULL AND b IS NOT NULL`,
    [deploymentId, shadowVersionId, start, end, SHADOW_DECISION_THRESHOLD],
  );
  if (!row || row.rows === 0) return null;
  return { rows: row.rows, decisionAgreement: Number(row.agreement), meanAbsoluteDifference: Number(row.mad), threshold: SHADOW_DECISION_THRESHOLD };
}
