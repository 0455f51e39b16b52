/** How one kind of object appears across the product. */
export interface KindSpec {
  /** A CASL subject: the attributes rule conditions may test (each a column the SQL filter can use). */
  readonly subject?: readonly string[];
  /** Fields that field-level rules may name (others are always readable once the row is). */
  readonly protectedFields?: readonly string[];
  /** Answered by `node(id:)`: the column its global ID's key is. */
  readonly node?: 'id' | 'name' | 'seq';
  /** A node of the lineage graph, read from this table. */
  readonly lineage?: string;
}

/**
 * The one subject table: every kind of object the product names. A kind's name is at once its
 * GraphQL type, its CASL subject, its global-ID prefix, its lineage node kind and the subject type
 * of its audit events; what each kind is for is declared here and nowhere else.
 */
export const KINDS = {
  Team: { subject: ['id', 'teamId', 'name'], node: 'id' },
  Dataset: { subject: ['id', 'teamId', 'classification', 'createdBy'], node: 'id' },
  DatasetVersion: { subject: ['id', 'teamId', 'datasetId', 'classification', 'createdBy'], protectedFields: ['uri', 'sourceQuery'], node: 'id', lineage: 'dataset_version' },
  CodeVersion: { subject: ['id', 'teamId', 'createdBy'], node: 'id', lineage: 'code_version' },
  Config: { subject: ['id', 'teamId', 'createdBy'], node: 'id', lineage: 'config' },
  SeedSet: { subject: ['id', 'teamId', 'createdBy'], node: 'id', lineage: 'seed_set' },
  Environment: { subject: ['id', 'teamId', 'createdBy'], node: 'id', lineage: 'environment' },
  TrainingRun: { subject: ['id', 'teamId', 'status', 'createdBy'], node: 'id', lineage: 'training_run' },
  Model: { subject: ['id', 'teamId', 'createdBy'], node: 'id' },
  ModelVersion: { subject: ['id', 'teamId', 'modelId', 'status', 'createdBy'], node: 'id', lineage: 'model_version' },
  Deployment: { subject: ['id', 'teamId', 'environment', 'createdBy'], node: 'id', lineage: 'deployment' },
  Rollout: { subject: ['id', 'teamId', 'status', 'createdBy'], node: 'id' },
  Artifact: { subject: ['createdBy'] },
  AuditEvent: { subject: ['actorId', 'action', 'subjectType', 'decision'], node: 'seq' },
  Role: { subject: ['name', 'builtIn'], node: 'name' },
  ApiKey: { subject: ['id', 'createdBy'], node: 'id' },
  Metrics: { subject: [] },
  Alert: { subject: ['id', 'teamId', 'kind', 'severity', 'status', 'createdBy'], node: 'id' },
  NotificationChannel: { subject: ['id', 'teamId', 'kind', 'createdBy'], node: 'id' },
  NotificationRule: { subject: ['id', 'teamId', 'createdBy'], node: 'id' },
  NotificationSilence: { subject: ['id', 'teamId', 'createdBy'], node: 'id' },
  NotificationDelivery: { subject: ['id', 'teamId', 'kind', 'status'], node: 'id' },
  // Not subjects of their own: readable with their model version, and by the requester or an exporter.
  Approval: { node: 'id' },
  AuditExport: { node: 'id' },
  // A turn of a deployment's iteration loop: readable with its deployment.
  Iteration: { node: 'id' },
  // A global-ID prefix only: a logged prediction, named in answers and by outcomes; read and
  // written through its deployment (`predict`, `recordOutcome`).
  Prediction: {},
  // Audit subject types only: a retention checkpoint, uploaded dataset bytes, and a refused
  // mutation or subscription that named no object.
  AuditCheckpoint: {},
  DatasetContent: {},
  Mutation: {},
  Subscription: {},
} as const satisfies Record<string, KindSpec>;

export type KindName = keyof typeof KINDS;
type KindsWith<P extends keyof KindSpec> = { [K in KindName]: (typeof KINDS)[K] extends Record<P, unknown> ? K : never }[KindName];
const kindsWith = <P extends keyof KindSpec>(p: P) => (Object.keys(KINDS) as KindName[]).filter((k) => p in KINDS[k]) as KindsWith<P>[];

/** Subjects that rules may name (`all` matches every one). */
export type SubjectName = KindsWith<'subject'>;
export const SUBJECTS: readonly SubjectName[] = kindsWith('subject');

/** Kinds answered by `node(id:)`. */
export type NodeKind = KindsWith<'node'>;
export const NODE_KINDS: readonly NodeKind[] = kindsWith('node');

/** Kinds that are nodes of the lineage graph. */
export type LineageKind = KindsWith<'lineage'>;
export const LINEAGE_KINDS: readonly LineageKind[] = kindsWith('lineage');

/** Whether `name` (client text, e.g. a global ID's type) is a kind; own properties only, never `constructor`. */
export function isKind(name: string): name is KindName {
  return Object.prototype.hasOwnProperty.call(KINDS, name);
}

/** Actions that rules may name (`manage` matches every one). */
export const ACTIONS = ['manage', 'read', 'create', 'update', 'delete', 'approve', 'reject', 'export', 'predict', 'deploy', 'recordOutcome'] as const;
export type ActionName = (typeof ACTIONS)[number];

/** The attributes rule conditions may test, per subject; every one is a column the SQL filter can use. */
export const POLICY_ATTRIBUTES = Object.fromEntries(SUBJECTS.map((s) => [s, KINDS[s].subject])) as unknown as Record<SubjectName, readonly string[]>;

/** Policy attributes that hold uuids (compared as uuid in SQL; every other attribute as text). */
export const UUID_ATTRIBUTES: ReadonlySet<string> = new Set(['id', 'teamId', 'datasetId', 'modelId']);

/** Fields that field-level rules may name (others are always readable once the row is). */
export const PROTECTED_FIELDS = Object.fromEntries(
  SUBJECTS.filter((s) => 'protectedFields' in KINDS[s]).map((s) => [s, (KINDS[s] as KindSpec).protectedFields]),
) as Partial<Record<SubjectName, readonly string[]>>;

/**
 * A rule as stored in a role. Conditions are CASL (Mongo-style) queries over the subject's
 * policy attributes; string values may name principal attributes as `${user.id}`,
 * `${user.teamIds}`, `${user.teams}` (the whole value is then replaced, arrays included).
 */
export interface PolicyRule {
  action: ActionName | ActionName[];
  subject: SubjectName | 'all' | Array<SubjectName | 'all'>;
  // any: a Mongo-style query (checked by validateRules); TypeORM's partial-entity types reject unknown
  conditions?: Record<string, any>;
  fields?: string[];
  inverted?: boolean;
  reason?: string;
}
