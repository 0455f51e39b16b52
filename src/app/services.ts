import Redis from 'ioredis';
import type { Config } from '../config';
import { ArtifactStore } from '../core/artifact-store';
import { DenialRecorder } from '../core/audit/audit-denials';
import type { AppServices } from '../core/context';
import { inPoolTransaction, StatementCounter, withDefaultUser } from '../core/database';
import { Pool } from 'pg';
import { createEventBus } from '../core/events';
import type { Logger } from '../core/logger';
import { OutboxDispatcher } from '../core/queue/dispatcher';
import { Queues } from '../core/queue/queues';
import { principalResolver } from '../access/principal-resolver';
import { PrincipalCache } from '../access/principal-cache';
import { scheduleMonitor } from '../monitoring/monitor.service';
import { raiseRolloutStalledAlert } from '../monitoring/rollout-alert.service';
import { stepDrift } from '../monitoring/drift-monitor';
import { rollupBinsFor } from '../monitoring/rollup-bins.service';
import { RollupCompactor } from '../inference/rollup-compactor';
import { stepAgreement, stepFigures } from '../monitoring/rollout-evidence';
import { servingPathOf } from '../rollouts/serving-path';
import { LocalProcessExecutor } from '../training/executor';
import { openAppDatabase } from './database';
import { seedBaseline } from './seed/baseline';

export interface OpenAppServices extends AppServices {
  statements: StatementCounter;
  /** Folds rollup deltas into their windows' rows (every process runs one). */
  rollupCompactor: RollupCompactor;
  /** Stops the dispatcher and closes every connection. */
  close(): Promise<void>;
}

/**
 * The long-lived parts a process needs, API or worker: the database (migrated), Redis, the
 * artifact store, the training executor, the queues and the outbox dispatcher, the event bus.
 */
export async function openAppServices(config: Config, log: Logger): Promise<OpenAppServices> {
  const statements = new StatementCounter();
  const db = await openAppDatabase(config.databaseUrl, statements);
  const redis = new Redis(config.redisUrl, { keyPrefix: config.redisPrefix, lazyConnect: true, maxRetriesPerRequest: 1, enableOfflineQueue: false });
  redis.on('error', (e) => log.warn({ err: e.message }, 'redis error'));
  await redis.connect().catch((e) => log.warn({ err: (e as Error).message }, 'redis not reachable at start'));
  const queues = new Queues(config);
  const dispatcher = new OutboxDispatcher(config.databaseUrl, queues, log, { jobAttempts: config.trainingAttempts });
  const bus = createEventBus(config, log);
  const denials = new DenialRecorder(db, log, config.auditDenials);
  const principalCache = new PrincipalCache(config.principalCache);
  principalCache.follow(bus);
  // Housekeeping on connections of its own: never queued behind requests, nor counted with them.
  const housekeeping = new Pool({ connectionString: withDefaultUser(config.databaseUrl), max: 1, application_name: 'modelgov-rollups' });
  housekeeping.on('error', (e) => log.warn({ err: e.message }, 'rollup fold connection error'));
  const rollupCompactor = new RollupCompactor((work) => inPoolTransaction(housekeeping, work), log);
  const app: OpenAppServices = {
    config,
    db,
    redis,
    log,
    artifacts: new ArtifactStore(config.artifactRoot, config.artifactMaxBytes),
    executor: new LocalProcessExecutor(config.trainerPath),
    queues,
    dispatcher,
    events: bus,
    denials,
    principalCache,
    statements,
    rollupCompactor,
    principals: principalResolver(db),
    servingPath: servingPathOf,
    rollupBins: (id) => rollupBinsFor(app, id),
    deploymentMonitors: { schedule: (deployment) => scheduleMonitor(app, deployment) },
    rolloutAlerts: { stalled: (em, stall) => raiseRolloutStalledAlert(app, em, stall) },
    rolloutEvidence: {
      stepFigures: (...args) => stepFigures(app, ...args),
      stepDrift: (...args) => stepDrift(app, ...args),
      shadowAgreement: (...args) => stepAgreement(app, ...args),
    },
    async close() {
      // Folded refusals still being counted are written before the database closes.
      await denials.close().catch((e) => log.error({ err: e }, 'could not write folded audit events at shutdown'));
      await rollupCompactor.close();
      await housekeeping.end();
      await dispatcher.stop();
      await queues.close();
      principalCache.close();
      bus.close();
      await db.destroy();
      redis.disconnect();
    },
  };
  await seedBaseline(app);
  await dispatcher.start();
  rollupCompactor.start();
  return app;
}
