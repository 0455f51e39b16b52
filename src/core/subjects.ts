/** Subjects that rules may name (`all` matches every one). */
export const SUBJECTS = [
  'Team',
  'Dataset',
  'DatasetVersion',
  'CodeVersion',
  'Config',
  'SeedSet',
  'Environment',
  'TrainingRun',
  'Model',
  'ModelVersion',
  'Deployment',
  'Rollout',
  'Artifact',
  'AuditEvent',
  'Role',
  'ApiKey',
  'Metrics',
  'Alert',
] as const;
export type SubjectName = (typeof SUBJECTS)[number];

/** Actions that rules may name (`manage` matches every one). */
export const ACTIONS = ['manage', 'read', 'create', 'update', 'delete', 'approve', 'reject', 'export', 'predict', 'deploy'] as const;
export type ActionName = (typeof ACTIONS)[number];

/** The attributes rule conditions may test, per subject; every one is a column the SQL filter can use. */
export const POLICY_ATTRIBUTES: Record<SubjectName, readonly string[]> = {
  Team: ['id', 'teamId', 'name'],
  Dataset: ['id', 'teamId', 'classification', 'createdBy'],
  DatasetVersion: ['id', 'teamId', 'datasetId', 'classification', 'createdBy'],
  CodeVersion: ['id', 'teamId', 'createdBy'],
  Config: ['id', 'teamId', 'createdBy'],
  SeedSet: ['id', 'teamId', 'createdBy'],
  Environment: ['id', 'teamId', 'createdBy'],
  TrainingRun: ['id', 'teamId', 'status', 'createdBy'],
  Model: ['id', 'teamId', 'createdBy'],
  ModelVersion: ['id', 'teamId', 'modelId', 'status', 'createdBy'],
  Deployment: ['id', 'teamId', 'environment', 'createdBy'],
  Rollout: ['id', 'teamId', 'status', 'createdBy'],
  Artifact: ['createdBy'],
  AuditEvent: ['actorId', 'action', 'subjectType', 'decision'],
  Role: ['name', 'builtIn'],
  ApiKey: ['id', 'createdBy'],
  Metrics: [],
  Alert: ['id', 'teamId', 'kind', 'severity', 'status', 'createdBy'],
};

/** Policy attributes that hold uuids (compared as uuid in SQL; every other attribute as text). */
export const UUID_ATTRIBUTES: ReadonlySet<string> = new Set(['id', 'teamId', 'datasetId', 'modelId']);

/** Fields that field-level rules may name (others are always readable once the row is). */
export const PROTECTED_FIELDS: Partial<Record<SubjectName, readonly string[]>> = {
  DatasetVersion: ['uri', 'sourceQuery'],
};

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
