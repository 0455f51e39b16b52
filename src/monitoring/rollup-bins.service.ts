import type { AppServices } from '../core/context';
import { rollupBinsOf, type RollupBins } from '../inference/rollup-bins';
import { ModelVersion } from '../registry/model-version.entity';
import { referenceOf } from './drift-monitor';

const cache = new WeakMap<AppServices, Map<string, Promise<RollupBins | null>>>();

/**
 * A version's rollup bins: stored on the version once (the first instance to need them derives
 * them from the version's reference and stores them; every instance then reads the stored ones, so
 * all bin alike), cached per process. Null when the version has no reference (its rows are counted
 * but not binned); a failure to read is not cached and is thrown (the write is retried).
 */
export function rollupBinsFor(app: AppServices, modelVersionId: string): Promise<RollupBins | null> {
  let byVersion = cache.get(app);
  if (!byVersion) cache.set(app, (byVersion = new Map()));
  let found = byVersion.get(modelVersionId);
  if (!found) {
    found = loadBins(app, modelVersionId);
    byVersion.set(modelVersionId, found);
    // A missing reference may be a passing failure (the drift reference keeps final absences itself): asked again next time.
    found.then((bins) => bins === null && byVersion!.delete(modelVersionId)).catch(() => byVersion!.delete(modelVersionId));
  }
  return found;
}

async function loadBins(app: AppServices, modelVersionId: string): Promise<RollupBins | null> {
  const repo = app.db.getRepository(ModelVersion);
  const stored = await repo.findOne({ where: { id: modelVersionId }, select: { id: true, rollupBins: true } });
  if (!stored) return null;
  if (stored.rollupBins) return stored.rollupBins as unknown as RollupBins;
  const reference = await referenceOf(app, modelVersionId);
  if (!reference) return null;
  const bins = rollupBinsOf(reference.profile, reference.samples);
  await app.db.query(`UPDATE model_version SET rollup_bins = $2 WHERE id = $1 AND rollup_bins IS NULL`, [modelVersionId, JSON.stringify(bins)]);
  const [row] = await app.db.query(`SELECT rollup_bins FROM model_version WHERE id = $1`, [modelVersionId]);
  return (row?.rollup_bins as RollupBins | null) ?? bins;
}
