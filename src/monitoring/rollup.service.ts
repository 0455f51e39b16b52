import { audit } from '../core/audit/audit-chain';
import { assertCan } from '../core/authz';
import type { RequestContext } from '../core/context';
import { badInput } from '../core/errors';
import { toGlobalId } from '../core/global-id';
import { rebuildRollups as rebuild, type RollupRebuild } from '../inference/rollup-rebuild';
import { loadReadable } from '../lineage/lineage.service';
import { Deployment } from '../rollouts/deployment.entity';
import { MonitoringReason } from './monitoring.errors';

/** The longest range one rebuild covers. */
export const MAX_REBUILD_DAYS = 31;

/**
 * `rebuildRollups`: recomputes (or, with `verifyOnly`, checks) a deployment's window rollups over
 * [from, to) from the raw prediction log and outcomes — after a backfill of labels, or to verify
 * them. Needs `update` on the deployment; audited with what differed.
 */
export async function rebuildDeploymentRollups(ctx: RequestContext, input: { deployment: string; from: Date; to?: Date | null; verifyOnly?: boolean | null }): Promise<RollupRebuild> {
  const deployment = await loadReadable(ctx, ctx.app.db.manager, Deployment, 'Deployment', input.deployment, 'deployment');
  assertCan(ctx, 'update', 'Deployment', deployment);
  const to = input.to ?? new Date();
  if (!(to > input.from)) throw badInput('to must be after from', { field: 'to', reason: MonitoringReason.INVALID_RANGE });
  if (to.getTime() - input.from.getTime() > MAX_REBUILD_DAYS * 86_400_000) {
    throw badInput(`A rebuild covers at most ${MAX_REBUILD_DAYS} days`, { field: 'to', reason: MonitoringReason.INVALID_RANGE });
  }
  const verifyOnly = input.verifyOnly ?? false;
  return rebuild(ctx, deployment.id, { from: input.from, to, verifyOnly }, async (tx, result) => {
    await audit(tx, {
      action: verifyOnly ? 'verifyRollups' : 'rebuildRollups',
      subjectType: 'Deployment',
      subjectId: toGlobalId('Deployment', deployment.id),
      after: {
        from: result.from,
        to: result.to,
        windowSeconds: result.windowSeconds,
        rows: result.rows,
        records: result.records,
        outcomes: result.outcomes,
        differing: result.differing.length,
        written: result.written,
      },
    });
  });
}
