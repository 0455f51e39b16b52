import type { AppServices } from '../core/context';
import { METRIC_PREFIX, type Metrics } from '../core/metrics';
import { TrainingRunStatus } from '../lineage/training-run.entity';

const FINISHED_RUNS = {
  name: `${METRIC_PREFIX}training_runs_finished_total`,
  help: 'Training runs this process ended, by status (SUCCEEDED, FAILED, CANCELLED)',
  labelNames: ['status'] as const,
};

/** Registers the training metrics, each status at 0, so that they are exposed before the first run ends. */
export function registerTrainingMetrics(metrics: Metrics): void {
  const finished = metrics.counter(FINISHED_RUNS);
  for (const status of [TrainingRunStatus.SUCCEEDED, TrainingRunStatus.FAILED, TrainingRunStatus.CANCELLED]) finished.inc({ status }, 0);
}

/** Counts a run this process ended (after its transaction committed). */
export function countFinishedRun(app: AppServices, status: TrainingRunStatus): void {
  app.metrics?.counter(FINISHED_RUNS).inc({ status });
}
