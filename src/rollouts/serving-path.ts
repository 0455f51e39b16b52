import type { EntityManager } from 'typeorm';
import type { ServingPathCheck } from '../registry/serving-path';
import { Deployment, TrafficShare } from './deployment.entity';
import { ShadowShare } from './rollout.entity';

/** Whether a version still receives traffic, may get it back from a rollout, or is a deployment's fallback. */
export const servingPathOf: ServingPathCheck = async (em: EntityManager, versionId: string) => {
  const serving = (await em.count(TrafficShare, { where: { modelVersionId: versionId } })) + (await em.count(ShadowShare, { where: { modelVersionId: versionId } }));
  if (serving > 0) return 'The version still receives traffic; take it out of every deployment first';
  const [{ pending }] = await em.query(
    `SELECT count(*)::int AS pending FROM rollout WHERE status IN ('IN_PROGRESS', 'PAUSED')
       AND (model_version_id = $1 OR baseline_split @> jsonb_build_array(jsonb_build_object('modelVersionId', $1::text)))`,
    [versionId],
  );
  if (pending > 0) return 'A rollout in flight may return traffic to this version; finish or abort it first';
  // The last stable version of a deployment is loaded beside its split to answer when the
  // serving versions fail, and rollbackDeployment returns to it: it is still on the serving path.
  if (await em.exists(Deployment, { where: { lastStableVersionId: versionId } })) {
    return "The version is a deployment's last stable version (its fallback, and where a rollback returns); give all of that deployment's traffic to another version first";
  }
  return null;
};
