import type { RequestContext } from '../core/context';
import { TrainingRunDataset } from './training-run.entity';

/** The dataset links of runs (ids only; the dataset versions themselves load through their scoped loader). */
export function runDatasetLinks(ctx: RequestContext) {
  return ctx.loaders.get<TrainingRunDataset[]>('runDatasetLinks', async (ids) => {
    const rows = await ctx.app.db.getRepository(TrainingRunDataset).createQueryBuilder('l').where('l.training_run_id IN (:...ids)', { ids }).getMany();
    return ids.map((id) => rows.filter((x) => x.trainingRunId === id));
  });
}
