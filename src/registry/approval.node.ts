import type { RequestContext } from '../core/context';
import { Approval } from './approval.entity';
import { ModelVersion } from './model-version.entity';

/**
 * An approval by its key, for `node(id:)`: readable exactly when the model version it decided is
 * (a decision about a version tells what the version is); null otherwise, like a missing one.
 */
export async function readableApproval(ctx: RequestContext, key: string): Promise<Approval | null> {
  const row = await ctx.app.db.getRepository(Approval).findOne({ where: { id: key } });
  if (!row) return null;
  const version = await ctx.loaders.byId(ModelVersion, 'ModelVersion').load(row.modelVersionId);
  return version ? row : null;
}
