import { Arg, Ctx, ID, Query, Resolver } from 'type-graphql';
import { ApiKey } from '../access/api-key.entity';
import { Role } from '../access/role.entity';
import { Team } from '../access/team.entity';
import { AuditEvent } from '../core/audit/audit-event.entity';
import type { RequestContext } from '../core/context';
import { badInput } from '../core/errors';
import { fromGlobalId, isUuid } from '../core/global-id';
import { Node } from '../core/node';
import { Policy } from '../core/policy';
import type { SubjectName } from '../core/subjects';
import { CodeVersion } from '../lineage/code-version.entity';
import { Config } from '../lineage/config.entity';
import { Dataset } from '../lineage/dataset.entity';
import { DatasetVersion } from '../lineage/dataset-version.entity';
import { Environment } from '../lineage/environment.entity';
import { SeedSet } from '../lineage/seed-set.entity';
import { TrainingRun } from '../lineage/training-run.entity';
import { Alert } from '../monitoring/alert.entity';
import { Model } from '../registry/model.entity';
import { ModelVersion } from '../registry/model-version.entity';
import { Deployment } from '../rollouts/deployment.entity';
import { Rollout } from '../rollouts/rollout.entity';

// A Map: the type part of an id is client text, and must never find `constructor` or `__proto__`.
interface NodeSpec {
  entity: Function;
  subject: SubjectName;
  key: 'id' | 'name' | 'seq';
}
const NODE_TYPES = new Map(Object.entries<NodeSpec>({
  Team: { entity: Team, subject: 'Team', key: 'id' },
  Dataset: { entity: Dataset, subject: 'Dataset', key: 'id' },
  DatasetVersion: { entity: DatasetVersion, subject: 'DatasetVersion', key: 'id' },
  CodeVersion: { entity: CodeVersion, subject: 'CodeVersion', key: 'id' },
  Config: { entity: Config, subject: 'Config', key: 'id' },
  SeedSet: { entity: SeedSet, subject: 'SeedSet', key: 'id' },
  Environment: { entity: Environment, subject: 'Environment', key: 'id' },
  TrainingRun: { entity: TrainingRun, subject: 'TrainingRun', key: 'id' },
  Model: { entity: Model, subject: 'Model', key: 'id' },
  ModelVersion: { entity: ModelVersion, subject: 'ModelVersion', key: 'id' },
  Deployment: { entity: Deployment, subject: 'Deployment', key: 'id' },
  Rollout: { entity: Rollout, subject: 'Rollout', key: 'id' },
  Alert: { entity: Alert, subject: 'Alert', key: 'id' },
  Role: { entity: Role, subject: 'Role', key: 'name' },
  ApiKey: { entity: ApiKey, subject: 'ApiKey', key: 'id' },
  AuditEvent: { entity: AuditEvent, subject: 'AuditEvent', key: 'seq' },
}));

/** `node(id:)`: any object by its global ID, through the caller's read scope. */
@Resolver()
export class NodeResolver {
  @Query(() => Node, { nullable: true, description: 'Any object by global ID; null when it does not exist or the caller may not read it' })
  @Policy({ action: 'read', subject: 'any' })
  async node(@Ctx() ctx: RequestContext, @Arg('id', () => ID) id: string) {
    const { type, key } = fromGlobalId(id);
    const spec = NODE_TYPES.get(type);
    if (!spec) throw badInput(`id is not the ID of an object this API serves`, { field: 'id', reason: 'WRONG_ID_TYPE' });
    if (spec.key === 'id' && !isUuid(key)) throw badInput('id is not a valid ID', { field: 'id', reason: 'MALFORMED_ID' });
    if (spec.key === 'seq' && !/^\d{1,15}$/.test(key)) throw badInput('id is not a valid ID', { field: 'id', reason: 'MALFORMED_ID' });
    return ctx.loaders.byId(spec.entity as never, spec.subject, spec.key).load(key);
  }
}
