import { subjectOf } from '../core/ability';
import { PROTECTED_FIELDS } from '../core/subjects';
import type { RequestContext } from '../core/context';
import { Classification } from './dataset.entity';

/** The policy attributes of a dataset version a run used: what the decision needs, nothing else. */
interface UsedDatasetVersion {
  id: string;
  teamId: string;
  datasetId: string;
  classification: Classification;
  createdBy: string;
}

// Unscoped on purpose: the decision is about data the caller may not be able to see at all (an
// ml-engineer of another team does not read a confidential dataset version, yet the model version
// trained on it is readable). Only policy attributes are read, and none is returned to a client.
function usedDatasetVersions(ctx: RequestContext) {
  return ctx.loaders.get<UsedDatasetVersion[]>('trainingDataPolicy', async (runIds) => {
    const rows: Array<UsedDatasetVersion & { runId: string }> = await ctx.app.db.query(
      `SELECT l.training_run_id AS "runId", v.id, v.team_id AS "teamId", v.dataset_id AS "datasetId", v.classification, v.created_by AS "createdBy"
         FROM training_run_dataset l JOIN dataset_version v ON v.id = l.dataset_version_id
        WHERE l.training_run_id = ANY($1::uuid[])`,
      [runIds],
    );
    return runIds.map((id) => rows.filter((r) => r.runId === id).map(({ runId: _runId, ...v }) => v));
  });
}

const PROTECTED = PROTECTED_FIELDS.DatasetVersion ?? [];

/**
 * Whether the caller may read what was computed from a model version's training data (its
 * reference profile): the same rule as the protected fields of the data itself. The caller must be
 * allowed to read every protected field of every dataset version the version's training run used.
 * A version without recorded training data (no run, or a run without dataset links) is judged as
 * if it had been trained on RESTRICTED data of its own team. Batched per request: one statement
 * for all the runs a response touches.
 */
export async function mayReadTrainingData(ctx: RequestContext, version: { teamId: string; trainingRunId: string | null }): Promise<boolean> {
  const used = version.trainingRunId ? await usedDatasetVersions(ctx).load(version.trainingRunId) : [];
  const judged = used.length > 0 ? used : [{ teamId: version.teamId, classification: Classification.RESTRICTED }];
  return judged.every((v) => {
    const row = subjectOf('DatasetVersion', v);
    return ctx.ability.can('read', row) && PROTECTED.every((field) => ctx.ability.can('read', row, field));
  });
}
