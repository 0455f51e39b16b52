import type { PolicyRule, SubjectName } from '../core/subjects';

const confidential = ['CONFIDENTIAL', 'RESTRICTED'];
const ownTeams = { teamId: { $in: '${user.teamIds}' } };
const teamOwned: SubjectName[] = [
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
  'Alert',
];
// A team's notification settings and what was sent: channels (a URL can carry a credential: Slack's
// does), routing rules, silences and deliveries (errors name receivers). No one reads another team's.
const notificationSettings: SubjectName[] = ['NotificationChannel', 'NotificationRule', 'NotificationSilence'];
const notifications: SubjectName[] = [...notificationSettings, 'NotificationDelivery'];
const hideConfidentialFields: PolicyRule = {
  action: 'read',
  subject: 'DatasetVersion',
  fields: ['uri', 'sourceQuery'],
  inverted: true,
  conditions: { classification: { $in: confidential } },
  reason: 'locations and queries of confidential data need the data-steward grant',
};

/** The roles seeded on an empty database. Admins edit them with `upsertRole`. */
export const DEFAULT_ROLES: Array<{ name: string; description: string; rules: PolicyRule[] }> = [
  {
    name: 'admin',
    description: 'Everything, everywhere',
    rules: [{ action: 'manage', subject: 'all' }],
  },
  {
    name: 'ml-engineer',
    description: "Manage own teams' resources; read other teams' non-confidential ones",
    rules: [
      { action: 'read', subject: 'Team' },
      { action: 'read', subject: teamOwned, conditions: { teamId: { $nin: '${user.teamIds}' } } },
      {
        action: 'read',
        subject: ['Dataset', 'DatasetVersion'],
        inverted: true,
        conditions: { teamId: { $nin: '${user.teamIds}' }, classification: { $in: confidential } },
        reason: "other teams' confidential data",
      },
      { action: ['read', 'create', 'update'], subject: teamOwned, conditions: ownTeams },
      { action: ['predict', 'recordOutcome'], subject: 'Deployment', conditions: ownTeams },
      { action: 'create', subject: 'Artifact' },
      { action: 'read', subject: 'Artifact' },
      // Not with the other team-owned kinds: no one reads another team's notification settings.
      { action: ['read', 'create', 'update', 'delete'], subject: notificationSettings, conditions: ownTeams },
      { action: 'read', subject: 'NotificationDelivery', conditions: ownTeams },
    ],
  },
  {
    name: 'reviewer',
    description: "Approve or reject model versions of own teams",
    rules: [
      { action: 'read', subject: 'Team', conditions: { id: { $in: '${user.teamIds}' } } },
      { action: 'read', subject: teamOwned, conditions: ownTeams },
      { action: ['approve', 'reject'], subject: 'ModelVersion', conditions: ownTeams },
      { action: 'read', subject: notifications, conditions: ownTeams },
    ],
  },
  {
    name: 'viewer',
    description: "Read own teams' resources",
    rules: [
      { action: 'read', subject: 'Team', conditions: { id: { $in: '${user.teamIds}' } } },
      { action: 'read', subject: teamOwned, conditions: ownTeams },
      hideConfidentialFields,
      { action: 'read', subject: notifications, conditions: ownTeams },
    ],
  },
  {
    name: 'auditor',
    description: 'Read everything, including the audit trail; change nothing',
    rules: [{ action: 'read', subject: 'all' }, { action: 'export', subject: 'AuditEvent' }],
  },
  {
    name: 'service',
    description: "Predict on own teams' deployments and record their outcomes; read them and their models",
    rules: [
      { action: 'read', subject: 'Team', conditions: { id: { $in: '${user.teamIds}' } } },
      { action: 'read', subject: ['Deployment', 'Model', 'ModelVersion'], conditions: ownTeams },
      { action: ['predict', 'recordOutcome'], subject: 'Deployment', conditions: ownTeams },
    ],
  },
];

/**
 * Earlier rule sets of built-in roles. A database whose built-in role still holds one of them
 * (nobody edited it) is moved to the current rules at start, with an audit event; an edited role
 * is left as its admins made it.
 */
export const SUPERSEDED_DEFAULT_RULES: Record<string, PolicyRule[][]> = (() => {
  // The first release's team-owned subjects (no Alert yet).
  const teamOwnedV1: SubjectName[] = ['Dataset', 'DatasetVersion', 'CodeVersion', 'Config', 'SeedSet', 'Environment', 'TrainingRun', 'Model', 'ModelVersion', 'Deployment', 'Rollout'];
  return {
    'ml-engineer': [
      // Before routing rules, silences and deliveries.
      [
        { action: 'read', subject: 'Team' },
        { action: 'read', subject: teamOwned, conditions: { teamId: { $nin: '${user.teamIds}' } } },
        {
          action: 'read',
          subject: ['Dataset', 'DatasetVersion'],
          inverted: true,
          conditions: { teamId: { $nin: '${user.teamIds}' }, classification: { $in: confidential } },
          reason: "other teams' confidential data",
        },
        { action: ['read', 'create', 'update'], subject: teamOwned, conditions: ownTeams },
        { action: ['predict', 'recordOutcome'], subject: 'Deployment', conditions: ownTeams },
        { action: 'create', subject: 'Artifact' },
        { action: 'read', subject: 'Artifact' },
        { action: ['read', 'create', 'update', 'delete'], subject: 'NotificationChannel', conditions: ownTeams },
      ],
      // Before notification channels.
      [
        { action: 'read', subject: 'Team' },
        { action: 'read', subject: teamOwned, conditions: { teamId: { $nin: '${user.teamIds}' } } },
        {
          action: 'read',
          subject: ['Dataset', 'DatasetVersion'],
          inverted: true,
          conditions: { teamId: { $nin: '${user.teamIds}' }, classification: { $in: confidential } },
          reason: "other teams' confidential data",
        },
        { action: ['read', 'create', 'update'], subject: teamOwned, conditions: ownTeams },
        { action: ['predict', 'recordOutcome'], subject: 'Deployment', conditions: ownTeams },
        { action: 'create', subject: 'Artifact' },
        { action: 'read', subject: 'Artifact' },
      ],
      [
        { action: 'read', subject: 'Team' },
        { action: 'read', subject: teamOwnedV1, conditions: { teamId: { $nin: '${user.teamIds}' } } },
        {
          action: 'read',
          subject: ['Dataset', 'DatasetVersion'],
          inverted: true,
          conditions: { teamId: { $nin: '${user.teamIds}' }, classification: { $in: confidential } },
          reason: "other teams' confidential data",
        },
        { action: ['read', 'create', 'update'], subject: teamOwnedV1, conditions: ownTeams },
        { action: 'create', subject: 'Artifact' },
        { action: 'read', subject: 'Artifact' },
      ],
      // Before outcomes: predicting, but no `recordOutcome`.
      [
        { action: 'read', subject: 'Team' },
        { action: 'read', subject: teamOwned, conditions: { teamId: { $nin: '${user.teamIds}' } } },
        {
          action: 'read',
          subject: ['Dataset', 'DatasetVersion'],
          inverted: true,
          conditions: { teamId: { $nin: '${user.teamIds}' }, classification: { $in: confidential } },
          reason: "other teams' confidential data",
        },
        { action: ['read', 'create', 'update'], subject: teamOwned, conditions: ownTeams },
        { action: 'predict', subject: 'Deployment', conditions: ownTeams },
        { action: 'create', subject: 'Artifact' },
        { action: 'read', subject: 'Artifact' },
      ],
    ],
    reviewer: [
      // Before routing rules, silences and deliveries.
      [
        { action: 'read', subject: 'Team', conditions: { id: { $in: '${user.teamIds}' } } },
        { action: 'read', subject: teamOwned, conditions: ownTeams },
        { action: ['approve', 'reject'], subject: 'ModelVersion', conditions: ownTeams },
        { action: 'read', subject: 'NotificationChannel', conditions: ownTeams },
      ],
      // Before notification channels.
      [
        { action: 'read', subject: 'Team', conditions: { id: { $in: '${user.teamIds}' } } },
        { action: 'read', subject: teamOwned, conditions: ownTeams },
        { action: ['approve', 'reject'], subject: 'ModelVersion', conditions: ownTeams },
      ],
      [
        { action: 'read', subject: 'Team', conditions: { id: { $in: '${user.teamIds}' } } },
        { action: 'read', subject: teamOwnedV1, conditions: ownTeams },
        { action: ['approve', 'reject'], subject: 'ModelVersion', conditions: ownTeams },
      ],
    ],
    viewer: [
      // Before routing rules, silences and deliveries.
      [
        { action: 'read', subject: 'Team', conditions: { id: { $in: '${user.teamIds}' } } },
        { action: 'read', subject: teamOwned, conditions: ownTeams },
        hideConfidentialFields,
        { action: 'read', subject: 'NotificationChannel', conditions: ownTeams },
      ],
      // Before notification channels.
      [
        { action: 'read', subject: 'Team', conditions: { id: { $in: '${user.teamIds}' } } },
        { action: 'read', subject: teamOwned, conditions: ownTeams },
        hideConfidentialFields,
      ],
      [
        { action: 'read', subject: 'Team', conditions: { id: { $in: '${user.teamIds}' } } },
        { action: 'read', subject: teamOwnedV1, conditions: ownTeams },
        hideConfidentialFields,
      ],
    ],
    service: [
      [
        { action: 'read', subject: 'Team', conditions: { id: { $in: '${user.teamIds}' } } },
        { action: 'read', subject: 'Deployment', conditions: ownTeams },
      ],
      // Before outcomes: predicting, but no `recordOutcome`.
      [
        { action: 'read', subject: 'Team', conditions: { id: { $in: '${user.teamIds}' } } },
        { action: 'read', subject: ['Deployment', 'Model', 'ModelVersion'], conditions: ownTeams },
        { action: 'predict', subject: 'Deployment', conditions: ownTeams },
      ],
    ],
  };
})();
