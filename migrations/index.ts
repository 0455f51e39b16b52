import { Init1795298121489 } from './1795298121489-Init';
import { AuditAppendOnly1795298200000 } from './1795298200000-AuditAppendOnly';
import { RoleUpdatedAtMilliseconds1795299480121 } from './1795299480121-RoleUpdatedAtMilliseconds';
import { TrainingQueue1795299664265 } from './1795299664265-TrainingQueue';
import { Rollouts1795301340176 } from './1795301340176-Rollouts';
import { AuditExports1795305382290 } from './1795305382290-AuditExports';
import { PredictionLog1795305680891 } from './1795305680891-PredictionLog';
import { Monitoring1795308532369 } from './1795308532369-Monitoring';
import { AuditChainIdentity1795309200000 } from './1795309200000-AuditChainIdentity';
import { OneOutputPerTrainingRun1795310000000 } from './1795310000000-OneOutputPerTrainingRun';
import { TrainingExecutionHandle1795310100000 } from './1795310100000-TrainingExecutionHandle';
import { RunBudgetAlert1795312000000 } from './1795312000000-RunBudgetAlert';
import { ReferenceProfileAggregates1795312407731 } from './1795312407731-ReferenceProfileAggregates';
import { PredictionLogQuarantine1795312600000 } from './1795312600000-PredictionLogQuarantine';
import { AuditEventVia1795313000000 } from './1795313000000-AuditEventVia';
import { RolloutEvidence1795313400000 } from './1795313400000-RolloutEvidence';
import { PredictionIds1795314000000 } from './1795314000000-PredictionIds';
import { PredictionOutcomes1795314100000 } from './1795314100000-PredictionOutcomes';
import { WindowRollups1795315000000 } from './1795315000000-WindowRollups';
import { ProductionSamples1795316000000 } from './1795316000000-ProductionSamples';
import { ModelVersionChallenge1795316500000 } from './1795316500000-ModelVersionChallenge';
import { IterationLoop1795317000000 } from './1795317000000-IterationLoop';
import { EmailNotificationChannels1795317500000 } from './1795317500000-EmailNotificationChannels';
import { NotificationRouting1795318000000 } from './1795318000000-NotificationRouting';
import { NotificationChannels1795316600000 } from './1795316600000-NotificationChannels';

/** Every migration, in order. Listed as classes (not a glob) so that compiled and test builds load the same set. */
export const MIGRATIONS: Function[] = [
  Init1795298121489,
  AuditAppendOnly1795298200000,
  RoleUpdatedAtMilliseconds1795299480121,
  TrainingQueue1795299664265,
  Rollouts1795301340176,
  AuditExports1795305382290,
  PredictionLog1795305680891,
  Monitoring1795308532369,
  AuditChainIdentity1795309200000,
  OneOutputPerTrainingRun1795310000000,
  TrainingExecutionHandle1795310100000,
  RunBudgetAlert1795312000000,
  ReferenceProfileAggregates1795312407731,
  PredictionLogQuarantine1795312600000,
  AuditEventVia1795313000000,
  RolloutEvidence1795313400000,
  PredictionIds1795314000000,
  PredictionOutcomes1795314100000,
  WindowRollups1795315000000,
  ProductionSamples1795316000000,
  ModelVersionChallenge1795316500000,
  NotificationChannels1795316600000,
  IterationLoop1795317000000,
  EmailNotificationChannels1795317500000,
  NotificationRouting1795318000000,
];
