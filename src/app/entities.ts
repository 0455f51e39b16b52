import { ApiKey } from '../access/api-key.entity';
import { Role } from '../access/role.entity';
import { Team } from '../access/team.entity';
import { AuditChainIdentity, AuditEvent, AuditHead } from '../core/audit/audit-event.entity';
import { AuditCheckpoint, AuditExport } from '../audit/audit-export.entity';
import { CodeVersion } from '../lineage/code-version.entity';
import { Config } from '../lineage/config.entity';
import { Dataset } from '../lineage/dataset.entity';
import { DatasetVersion, DatasetVersionParent } from '../lineage/dataset-version.entity';
import { DatasetVersionSample } from '../lineage/dataset-version-sample.entity';
import { Environment } from '../lineage/environment.entity';
import { SeedSet } from '../lineage/seed-set.entity';
import { TrainingRun, TrainingRunDataset } from '../lineage/training-run.entity';
import { Approval } from '../registry/approval.entity';
import { Artifact } from '../registry/artifact.entity';
import { Model } from '../registry/model.entity';
import { ModelVersion, ModelVersionAlias } from '../registry/model-version.entity';
import { Deployment, TrafficShare } from '../rollouts/deployment.entity';
import { OutboxEntry } from '../core/queue/outbox.entity';
import { Rollout, ShadowShare } from '../rollouts/rollout.entity';
import { PredictionRecord } from '../inference/prediction-log.entity';
import { PredictionOutcome } from '../inference/prediction-outcome.entity';
import { PredictionRollup, PredictionRollupDelta } from '../inference/prediction-rollup.entity';
import { QuarantinedPrediction } from '../inference/prediction-quarantine.entity';
import { Alert, MonitorRun } from '../monitoring/alert.entity';
import { NotificationChannel } from '../monitoring/notification-channel.entity';
import { NotificationDelivery } from '../monitoring/notification-delivery.entity';
import { NotificationRule } from '../monitoring/notification-rule.entity';
import { NotificationSilence } from '../monitoring/notification-silence.entity';
import { Notification } from '../core/notify/notification.entity';
import { Iteration, LoopPolicy } from '../monitoring/iteration.entity';
import { DatasetBlob } from '../lineage/dataset-blob.entity';

/** Every persisted entity; the migrations must produce exactly their schema. */
export const ENTITIES = [
  Team,
  Role,
  ApiKey,
  Dataset,
  DatasetVersion,
  DatasetVersionParent,
  DatasetVersionSample,
  CodeVersion,
  Config,
  SeedSet,
  Environment,
  TrainingRun,
  TrainingRunDataset,
  Artifact,
  Model,
  ModelVersion,
  ModelVersionAlias,
  Approval,
  Deployment,
  TrafficShare,
  AuditEvent,
  AuditHead,
  AuditChainIdentity,
  AuditExport,
  AuditCheckpoint,
  OutboxEntry,
  DatasetBlob,
  Rollout,
  ShadowShare,
  PredictionRecord,
  PredictionOutcome,
  PredictionRollup,
  PredictionRollupDelta,
  QuarantinedPrediction,
  Alert,
  NotificationChannel,
  NotificationRule,
  NotificationSilence,
  NotificationDelivery,
  Notification,
  MonitorRun,
  LoopPolicy,
  Iteration,
];
