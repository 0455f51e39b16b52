import { resolveTeam } from '../access/team.service';
import { audit } from '../core/audit/audit-chain';
import { assertCan } from '../core/authz';
import { inTransaction, type RequestContext } from '../core/context';
import { badInput } from '../core/errors';
import { toGlobalId } from '../core/global-id';
import { parseTime, validateMetrics } from '../core/validation';
import { CodeVersion } from '../lineage/code-version.entity';
import { Config } from '../lineage/config.entity';
import { Environment } from '../lineage/environment.entity';
import type { RecordTrainingRunInput } from '../lineage/lineage.inputs';
import { loadReadable, loadRunDatasets } from '../lineage/lineage.service';
import { SeedSet } from '../lineage/seed-set.entity';
import { TrainingRun, TrainingRunDataset, TrainingRunStatus } from '../lineage/training-run.entity';
import { ModelVersion } from '../registry/model-version.entity';

const FINISHED = [TrainingRunStatus.SUCCEEDED, TrainingRunStatus.FAILED, TrainingRunStatus.CANCELLED];

/** Records a run done elsewhere (finished already), linking its inputs and the version it started from. */
export async function recordTrainingRun(ctx: RequestContext, input: RecordTrainingRunInput): Promise<TrainingRun> {
  if (!FINISHED.includes(input.status)) throw badInput('a recorded run must be SUCCEEDED, FAILED or CANCELLED', { field: 'status' });
  const metrics = validateMetrics(input.metrics);
  const startedAt = parseTime(input.startedAt, 'startedAt');
  const finishedAt = parseTime(input.finishedAt, 'finishedAt');
  if (startedAt && finishedAt && finishedAt < startedAt) throw badInput('finishedAt is before startedAt', { field: 'finishedAt' });
  return inTransaction(ctx, async (em, ctx) => {
    const team = await resolveTeam(ctx, input.team);
    const datasets = await loadRunDatasets(ctx, em, input.datasets);
    const code = await loadReadable(ctx, em, CodeVersion, 'CodeVersion', input.codeVersion, 'codeVersion');
    const config = await loadReadable(ctx, em, Config, 'Config', input.config, 'config');
    const seeds = await loadReadable(ctx, em, SeedSet, 'SeedSet', input.seedSet, 'seedSet');
    const env = await loadReadable(ctx, em, Environment, 'Environment', input.environment, 'environment');
    const base = input.baseModelVersion ? await loadReadable(ctx, em, ModelVersion, 'ModelVersion', input.baseModelVersion, 'baseModelVersion') : null;
    const run = em.create(TrainingRun, {
      teamId: team.id,
      name: input.name ?? null,
      status: input.status,
      codeVersionId: code.id,
      configId: config.id,
      seedSetId: seeds.id,
      environmentId: env.id,
      baseModelVersionId: base?.id ?? null,
      startedAt,
      finishedAt,
      metrics,
      createdBy: ctx.principal!.id,
    });
    assertCan(ctx, 'create', 'TrainingRun', run);
    await em.insert(TrainingRun, run);
    await em.insert(
      TrainingRunDataset,
      input.datasets.map((d, i) => ({ trainingRunId: run.id, datasetVersionId: datasets[i].id, role: d.role })),
    );
    await audit(ctx, {
      action: 'recordTrainingRun',
      subjectType: 'TrainingRun',
      subjectId: toGlobalId('TrainingRun', run.id),
      after: { ...run, datasets: input.datasets },
    });
    return run;
  });
}
