import type { GraphQLSchema } from 'graphql';
import { buildSchema } from 'type-graphql';
import { AccessResolver } from '../access/access.resolver';
import { TeamOwnedFieldResolver } from '../access/team-owned.resolver';
import { AuditExportResolver } from '../audit/audit-export.resolver';
import { AuditResolver } from '../audit/audit.resolver';
import { createPubSub, type PubSub } from '../core/events';
import { rootFieldPolicies } from '../core/policy';
import { DeploymentServingResolver, InferenceResolver, PredictionFieldResolver, ServingVersionFieldResolver } from '../inference/inference.resolver';
import { OutcomeResolver } from '../inference/outcome.resolver';
import { DatasetFieldResolver, DatasetVersionFieldResolver, LineageMutationResolver, LineageQueryResolver, TrainingRunFieldResolver } from '../lineage/lineage.resolver';
import { NotificationChannelResolver } from '../monitoring/notification-channel.resolver';
import { AlertNotificationsResolver, NotificationDeliveryResolver, NotificationRuleResolver, NotificationSilenceResolver } from '../monitoring/notification-rule.resolver';
import { AlertFieldResolver, DeploymentMonitoringResolver, MonitoringResolver, MonitorRunFieldResolver } from '../monitoring/monitoring.resolver';
import { RollupResolver } from '../monitoring/rollup.resolver';
import { DeploymentLoopResolver, IterationFieldResolver, IterationResolver } from '../monitoring/iteration.resolver';
import { ApprovalFieldResolver, ModelFieldResolver, ModelVersionFieldResolver, RegistryMutationResolver, RegistryQueryResolver } from '../registry/registry.resolver';
import { DeploymentFieldResolver, ModelVersionDeploymentsResolver, RolloutFieldResolver, RolloutResolver, RolloutsResolver, TrafficShareFieldResolver } from '../rollouts/rollouts.resolver';
import { TrainingResolver, TrainingRunVersionsResolver } from '../training/training.resolver';
import { ErrorCatalogueResolver } from './error-catalogue';
import { NodeResolver } from './node.resolver';

/** Every resolver of the API, domain by domain; the schema is built from them. */
export const RESOLVERS = [
  AccessResolver,
  NodeResolver,
  AuditResolver,
  AuditExportResolver,
  LineageQueryResolver,
  LineageMutationResolver,
  TrainingResolver,
  TrainingRunVersionsResolver,
  TeamOwnedFieldResolver,
  DatasetFieldResolver,
  DatasetVersionFieldResolver,
  TrainingRunFieldResolver,
  RegistryQueryResolver,
  RegistryMutationResolver,
  ModelFieldResolver,
  ModelVersionFieldResolver,
  ApprovalFieldResolver,
  RolloutsResolver,
  RolloutResolver,
  RolloutFieldResolver,
  DeploymentFieldResolver,
  TrafficShareFieldResolver,
  ModelVersionDeploymentsResolver,
  InferenceResolver,
  OutcomeResolver,
  PredictionFieldResolver,
  ServingVersionFieldResolver,
  DeploymentServingResolver,
  MonitoringResolver,
  NotificationChannelResolver,
  NotificationRuleResolver,
  NotificationSilenceResolver,
  NotificationDeliveryResolver,
  AlertNotificationsResolver,
  RollupResolver,
  AlertFieldResolver,
  MonitorRunFieldResolver,
  DeploymentMonitoringResolver,
  IterationResolver,
  IterationFieldResolver,
  DeploymentLoopResolver,
  ErrorCatalogueResolver,
] as const;

/** The root types' descriptions (type-graphql names the root types but does not describe them). */
const ROOT_DESCRIPTIONS = {
  query: 'Reads: each field answers null with its error when refused, while the others answer',
  mutation: 'Changes, run in order: a refused one answers null with its error, and the next still runs',
  subscription: 'Live updates over GraphQL over WebSocket (graphql-ws) at /graphql; a subscription ends when its credential stops authenticating',
} as const;

function describeRootTypes(schema: GraphQLSchema): void {
  const roots = { query: schema.getQueryType(), mutation: schema.getMutationType(), subscription: schema.getSubscriptionType() };
  for (const [kind, type] of Object.entries(roots)) if (type && !type.description) type.description = ROOT_DESCRIPTIONS[kind as keyof typeof ROOT_DESCRIPTIONS];
}

const schemas = new WeakMap<PubSub, Promise<GraphQLSchema>>();
const schemaOnly = createPubSub();

/**
 * The executable schema, bound to an event bus for its subscriptions (one per server; without
 * one, a process-local bus, for emitting the SDL). Refuses (throws) when any root field has no
 * declared policy.
 */
export function buildAppSchema(pubSub: PubSub = schemaOnly): Promise<GraphQLSchema> {
  let built = schemas.get(pubSub);
  if (!built) {
    built = (async () => {
      const schema = await buildSchema({
        resolvers: RESOLVERS as unknown as [Function, ...Function[]],
        validate: { forbidUnknownValues: false, whitelist: false },
        pubSub,
      });
      rootFieldPolicies(schema);
      describeRootTypes(schema);
      return schema;
    })();
    schemas.set(pubSub, built);
  }
  return built;
}
