// The retrain policy's triggers, judged after each monitor pass (drift, quality, label volume) and
// by the policy's cron schedule; the first that fires begins an iteration.
import type { AppServices } from '../core/context';
import { toGlobalId } from '../core/global-id';
import { AlertKind, AlertStatus, SEVERITY_RANK, type AlertSeverity } from './alert.entity';
import { ACTIVE_ITERATION, IterationTriggerKind, LoopPolicy } from './iteration.entity';
import { beginIteration, servingChampion, type IterationTrigger } from './iteration.service';
import type { StoredRetrainPolicy } from './loop-policy';
import type { QualityReport } from './quality-report';

/** What a monitor pass hands the loop: the quality report it computed. */
export interface PassFigures {
  quality: QualityReport;
}

/** The trigger that fires for a deployment now, if any (drift, then quality, then label volume). */
async function firing(app: AppServices, deploymentId: string, policy: StoredRetrainPolicy, pass: PassFigures): Promise<IterationTrigger | null> {
  const champion = await servingChampion(app.db.manager, deploymentId);
  if (!champion) return null;
  if (policy.drift) {
    const minRank = SEVERITY_RANK[policy.drift.minSeverity as AlertSeverity];
    const open: Array<{ id: string; kind: string; feature: string; severity: AlertSeverity; statistic: string; value: number }> = await app.db.query(
      `SELECT id, kind, feature, severity, statistic, value FROM alert
        WHERE deployment_id = $1 AND model_version_id = $2 AND kind = ANY($3::alert_kind[]) AND status = ANY($4::alert_status[]) ORDER BY created_at`,
      [deploymentId, champion, [AlertKind.DRIFT, AlertKind.PREDICTION_DRIFT], [AlertStatus.OPEN, AlertStatus.ACKNOWLEDGED]],
    );
    const hit = open.find((a) => SEVERITY_RANK[a.severity] >= minRank);
    if (hit) {
      return {
        kind: IterationTriggerKind.DRIFT,
        alertId: hit.id,
        detail: { alert: toGlobalId('Alert', hit.id), alertKind: hit.kind, feature: hit.feature, severity: hit.severity, statistic: hit.statistic, value: hit.value },
      };
    }
  }
  if (policy.quality) {
    const q = policy.quality;
    const version = pass.quality.versions.find((v) => v.modelVersionId === toGlobalId('ModelVersion', champion));
    const change = version?.changes.find((c) => c.metric === q.metric);
    if (version && change && version.labelled >= q.minLabelled && change.degradation !== null && change.degradation >= q.maxDrop) {
      return {
        kind: IterationTriggerKind.QUALITY,
        detail: { metric: q.metric, online: change.online, baseline: change.baseline, degradation: change.degradation, threshold: q.maxDrop, labelled: version.labelled, from: pass.quality.from, to: pass.quality.to },
      };
    }
  }
  if (policy.labelVolume) {
    const [row] = await app.db.query(
      `SELECT mv.created_at AS trained_at,
              (SELECT COALESCE(sum(b.row_count), 0) FROM training_run_dataset l JOIN dataset_version dv ON dv.id = l.dataset_version_id JOIN dataset_blob b ON b.sha256 = dv.sha256
                WHERE l.training_run_id = mv.training_run_id AND l.role = 'TRAIN')::bigint AS training_rows
         FROM model_version mv WHERE mv.id = $1`,
      [champion],
    );
    const trainingRows = Number(row?.training_rows ?? 0);
    if (trainingRows > 0) {
      const [labelled] = await app.db.query(
        `SELECT count(*)::bigint AS n FROM prediction_log p JOIN prediction_outcome o ON o.prediction_id = p.id
          WHERE p.deployment_id = $1 AND p.occurred_at >= $2 AND NOT p.shadow`,
        [deploymentId, row.trained_at],
      );
      const n = Number(labelled.n);
      if (n >= policy.labelVolume.minShare * trainingRows) {
        return { kind: IterationTriggerKind.LABEL_VOLUME, detail: { labelledSinceTraining: n, championTrainingRows: trainingRows, share: n / trainingRows, threshold: policy.labelVolume.minShare } };
      }
    }
  }
  return null;
}

/**
 * After a monitor pass: begins an iteration when the deployment's retrain policy is enabled, none
 * is in flight and a trigger fires. Errors are logged: a pass never fails for the loop's sake.
 */
export async function considerRetraining(app: AppServices, deploymentId: string, pass: PassFigures): Promise<void> {
  try {
    const policies = await app.db.getRepository(LoopPolicy).findOneBy({ deploymentId });
    const retrain = policies?.retrain as StoredRetrainPolicy | null | undefined;
    if (!retrain?.enabled) return;
    const busy: unknown[] = await app.db.query(`SELECT 1 FROM iteration WHERE deployment_id = $1 AND status = ANY($2::iteration_status[]) LIMIT 1`, [deploymentId, ACTIVE_ITERATION]);
    if (busy.length) return;
    const trigger = await firing(app, deploymentId, retrain, pass);
    if (trigger) await beginIteration(app, deploymentId, trigger);
  } catch (e) {
    app.log.error({ deploymentId, err: (e as Error).message }, 'retrain triggers not judged');
  }
}

/** The retrain policy's cron schedule fired for a deployment. */
export async function scheduledRetraining(app: AppServices, deploymentId: string, firedAt: Date): Promise<void> {
  await beginIteration(app, deploymentId, { kind: IterationTriggerKind.SCHEDULE, detail: { firedAt: firedAt.toISOString() } });
}
