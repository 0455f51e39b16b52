// What the monitoring API reads: pages of alerts, a deployment's drift reports and latency series,
// monitor runs. Every deployment is read through the caller's scope first.
import type { RequestContext } from '../core/context';
import { badInput, notFound } from '../core/errors';
import { expectId } from '../core/global-id';
import { listConnection, whereTeam } from '../core/list';
import type { PageArgs } from '../core/pagination';
import { loadReadable } from '../lineage/lineage.service';
import { Deployment } from '../rollouts/deployment.entity';
import { Alert, AlertSeverity, MonitorRun, SEVERITY_RANK } from './alert.entity';
import { latencySeries } from './latency';
import { AlertConnection, intIn, type AlertFilter } from './monitoring.inputs';

/** A page of the alerts the caller may read, newest first. */
export function listAlerts(ctx: RequestContext, page: PageArgs, filter?: AlertFilter | null) {
  return listConnection(ctx, AlertConnection, Alert, 'Alert', page, (qb) => {
    whereTeam(qb, filter?.team);
    if (filter?.deployment) qb.andWhere('x.deployment_id = :d', { d: expectId(filter.deployment, 'Deployment', 'filter.deployment') });
    if (filter?.kinds?.length) qb.andWhere('x.kind IN (:...kinds)', { kinds: filter.kinds });
    if (filter?.statuses?.length) qb.andWhere('x.status IN (:...statuses)', { statuses: filter.statuses });
    if (filter?.minSeverity) {
      const allowed = Object.values(AlertSeverity).filter((s) => SEVERITY_RANK[s] >= SEVERITY_RANK[filter.minSeverity!]);
      qb.andWhere('x.severity IN (:...sev)', { sev: allowed });
    }
  });
}

/** The deployment `ref` names, if the caller may read it (NOT_FOUND otherwise, naming `argument`). */
export function readableDeployment(ctx: RequestContext, ref: string, argument: string): Promise<Deployment> {
  return loadReadable(ctx, ctx.app.db.manager, Deployment, 'Deployment', ref, argument);
}

/** The last `last` (1–500) monitor passes over a deployment, newest first. */
export async function driftReports(ctx: RequestContext, deployment: string, last: number): Promise<MonitorRun[]> {
  const d = await readableDeployment(ctx, deployment, 'deployment');
  const n = intIn(last, 1, 500, 'last')!;
  return ctx.app.db.getRepository(MonitorRun).find({ where: { deploymentId: d.id }, order: { windowStart: 'DESC' }, take: n });
}

/** Latency percentiles and errors of a deployment per version and bucket, from `from` to `to` (default now). */
export async function deploymentLatency(ctx: RequestContext, deployment: string, from: Date, to: Date | null, bucketSeconds: number) {
  const d = await readableDeployment(ctx, deployment, 'deployment');
  const end = to ?? new Date();
  intIn(bucketSeconds, 1, 86_400, 'bucketSeconds');
  if (!(end > from)) throw badInput('to must be after from', { field: 'to' });
  if ((end.getTime() - from.getTime()) / 1000 / bucketSeconds > 10_000) throw badInput('at most 10,000 buckets', { field: 'bucketSeconds' });
  return latencySeries(ctx.app.db, d.id, from, end, bucketSeconds);
}

/** A monitor pass by id (subscribers learn of it by event, after their deployment was checked). */
export async function monitorRun(ctx: RequestContext, runId: string): Promise<MonitorRun> {
  const run = await ctx.app.db.getRepository(MonitorRun).findOneBy({ id: runId });
  if (!run) throw notFound('MonitorRun');
  return run;
}
