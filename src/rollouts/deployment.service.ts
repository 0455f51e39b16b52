import type { EntityManager } from 'typeorm';
import { audit } from '../core/audit/audit-chain';
import { resolveTeam } from '../access/team.service';
import { assertCan, mapDbError } from '../core/authz';
import { inTransaction, type RequestContext } from '../core/context';
import { badInput, conflict } from '../core/errors';
import { expectId, toGlobalId } from '../core/global-id';
import { validateMetrics } from '../core/validation';
import { loadReadable } from '../lineage/lineage.service';
import { ModelVersion, ModelVersionStatus } from '../registry/model-version.entity';
import { Deployment, DeploymentEnvironment, TrafficShare } from './deployment.entity';
import type { CreateDeploymentInput, SetTrafficSplitInput, TrafficShareInput } from './rollouts.inputs';
import { applySplit, conflictIfRolling } from './rollout.service';
import { RolloutsReason } from './rollouts.errors';

/** Validates a split against its deployment; returns the shares to store. */
async function checkSplit(ctx: RequestContext, em: EntityManager, deployment: Deployment, split: TrafficShareInput[]): Promise<TrafficShare[]> {
  const total = split.reduce((s, x) => s + x.weight, 0);
  if (total !== 100) throw badInput(`trafficSplit weights must sum to 100 (they sum to ${total})`, { field: 'trafficSplit', reason: RolloutsReason.WEIGHTS_NOT_100 });
  const ids = split.map((s) => expectId(s.modelVersion, 'ModelVersion', 'trafficSplit.modelVersion'));
  if (new Set(ids).size !== ids.length) throw badInput('trafficSplit names a model version twice', { field: 'trafficSplit' });
  const shares: TrafficShare[] = [];
  // In id order, so that concurrent splits lock the same versions in the same order.
  const ordered = [...split].sort((a, b) => expectId(a.modelVersion, 'ModelVersion').localeCompare(expectId(b.modelVersion, 'ModelVersion')));
  for (const s of ordered) {
    // FOR SHARE: an archive of this version waits for this split to commit (and then sees it).
    const version = await loadReadable(ctx, em, ModelVersion, 'ModelVersion', s.modelVersion, 'trafficSplit.modelVersion', 'share');
    if (version.teamId !== deployment.teamId) {
      throw badInput(`model version ${s.modelVersion} belongs to another team than the deployment`, { field: 'trafficSplit', reason: RolloutsReason.FOREIGN_VERSION });
    }
    if (version.status === ModelVersionStatus.ARCHIVED || version.status === ModelVersionStatus.REJECTED) {
      throw conflict(`model version ${s.modelVersion} is ${version.status} and cannot serve`, { reason: RolloutsReason.VERSION_NOT_SERVABLE });
    }
    if (deployment.environment === DeploymentEnvironment.PRODUCTION && version.status !== ModelVersionStatus.APPROVED) {
      throw conflict(`only APPROVED versions may serve PRODUCTION (${s.modelVersion} is ${version.status})`, { reason: RolloutsReason.VERSION_NOT_APPROVED });
    }
    shares.push(em.create(TrafficShare, { deploymentId: deployment.id, modelVersionId: version.id, weight: s.weight }));
  }
  return shares;
}

const describeSplit = (shares: Array<{ modelVersionId: string; weight: number }>) =>
  shares.map((s) => ({ modelVersion: toGlobalId('ModelVersion', s.modelVersionId), weight: s.weight })).sort((a, b) => a.modelVersion.localeCompare(b.modelVersion));

export async function createDeployment(ctx: RequestContext, input: CreateDeploymentInput): Promise<Deployment> {
  const slos = validateMetrics(input.slos, 'slos');
  const created = await inTransaction(ctx, async (em, ctx) => {
    const team = await resolveTeam(ctx, input.team);
    const deployment = em.create(Deployment, {
      teamId: team.id,
      name: input.name,
      environment: input.environment,
      description: input.description ?? null,
      slos,
      createdBy: ctx.principal!.id,
    });
    assertCan(ctx, 'create', 'Deployment', deployment);
    await em.insert(Deployment, deployment).catch((e) => mapDbError(e, `Deployment "${input.name}" in team ${team.name}`));
    const shares = input.trafficSplit?.length ? await checkSplit(ctx, em, deployment, input.trafficSplit) : [];
    if (shares.length) await applySplit(em, deployment, shares);
    await audit(ctx, {
      action: 'createDeployment',
      subjectType: 'Deployment',
      subjectId: toGlobalId('Deployment', deployment.id),
      after: { ...deployment, trafficSplit: describeSplit(shares) },
    });
    return deployment;
  });
  // Its monitor runs from now on (workers also reconcile every deployment's schedule at start).
  await ctx.app.deploymentMonitors.schedule(created).catch((e) => ctx.log.warn({ err: (e as Error).message }, 'monitor not scheduled (Redis unavailable)'));
  return created;
}

export async function setTrafficSplit(ctx: RequestContext, input: SetTrafficSplitInput): Promise<Deployment> {
  return inTransaction(ctx, async (em, ctx) => {
    const deployment = await loadReadable(ctx, em, Deployment, 'Deployment', input.deployment, 'deployment', 'update');
    assertCan(ctx, 'update', 'Deployment', deployment);
    await conflictIfRolling(em, deployment.id);
    const shares = await checkSplit(ctx, em, deployment, input.trafficSplit);
    const before = await em.find(TrafficShare, { where: { deploymentId: deployment.id } });
    await applySplit(em, deployment, shares);
    await audit(ctx, {
      action: 'setTrafficSplit',
      subjectType: 'Deployment',
      subjectId: toGlobalId('Deployment', deployment.id),
      reason: input.reason ?? null,
      before: { trafficSplit: describeSplit(before) },
      after: { trafficSplit: describeSplit(shares) },
    });
    return em.findOneByOrFail(Deployment, { id: deployment.id });
  });
}

/** Starts (or re-times) a deployment's monitor; the monitoring domain provides it, the assembly wires it. */
export interface DeploymentMonitors {
  schedule(deployment: Pick<Deployment, 'id' | 'monitoring' | 'createdBy'>): Promise<void>;
}

declare module '../core/context' {
  interface AppServices {
    deploymentMonitors: DeploymentMonitors;
  }
}
