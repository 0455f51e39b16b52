import Redis from 'ioredis';
import type { Config } from '../config';
import { ArtifactStore } from '../core/artifact-store';
import { DenialRecorder } from '../core/audit/audit-denials';
import type { AppServices } from '../core/context';
import { inPoolTransaction, StatementCounter, withDefaultUser } from '../core/database';
import { Pool } from 'pg';
import { createEventBus } from '../core/events';
import { endpointOf, errorText, type Logger } from '../core/logger';
import { rateLimitedLog, type RateLimitedLog } from '../core/rate-limited-log';
import { OutboxDispatcher } from '../core/queue/dispatcher';
import { Queues } from '../core/queue/queues';
import { registerQueueMetrics } from '../core/queue/queue-metrics';
import { Metrics } from '../core/metrics';
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
import { registerTrainingMetrics } from '../training/training-metrics';
import { openAppDatabase } from './database';
import { seedBaseline } from './seed/baseline';

export interface OpenAppServices extends AppServices {
  statements: StatementCounter;
  /** Folds rollup deltas into their windows' rows (every process runs one). */
  rollupCompactor: RollupCompactor;
  /**
   * Where this process reports Redis and PostgreSQL failing: each outage in a first line, a summary
   * a minute while it lasts and one line when it ends, whichever connections see it.
   */
  connectionLogs: { redis: RateLimitedLog; postgres: RateLimitedLog };
  /** Stops the dispatcher and closes every connection. */
  close(): Promise<void>;
}

/** The shared logs of connection failures (see {@link OpenAppServices.connectionLogs}). */
export function connectionLogsFor(config: Config, log: Logger): OpenAppServices['connectionLogs'] {
  return {
    redis: rateLimitedLog(log, 'redis', { subject: 'Redis', fields: { setting: 'REDIS_URL', target: endpointOf(config.redisUrl) } }),
    postgres: rateLimitedLog(log, 'postgres', { subject: 'PostgreSQL', fields: { setting: 'DATABASE_URL', target: endpointOf(config.databaseUrl) } }),
  };
}

/**
 * The long-lived parts a process needs, API or worker: the database (migrated), Redis, the
 * artifact store, the training executor, the queues and the outbox dispatcher, the event bus.
 */
export async function openAppServices(config: Config, log: Logger): Promise<OpenAppServices> {
  const statements = new StatementCounter();
  const db = await openAppDatabase(config.databaseUrl, statements);
  const connectionLogs = connectionLogsFor(config, log);
  const redis = new Redis(config.redisUrl, { keyPrefix: config.redisPrefix, lazyConnect: true, maxRetriesPerRequest: 1, enableOfflineQueue: false });
  // The first attempt's failure is told once, as the start's own line; later ones go to the shared log.
  let starting = true;
  let startError: unknown = null;
  redis.on('error', (e) => (starting ? (startError ??= e) : connectionLogs.redis.warn('cache', { err: e.message }, 'Redis connection error')));
  redis.on('ready', () => connectionLogs.redis.clear('cache'));
  await redis.connect().catch((e) => {
    const err = errorText(startError ?? e);
    connectionLogs.redis.warn(
      'cache',
      { err },
      `Redis not reachable at start (REDIS_URL points to ${endpointOf(config.redisUrl)}: ${err}); running without it until it answers: queued work waits in the outbox, change events are not delivered`,
    );
  });
  starting = false;
  const queues = new Queues(config, connectionLogs.redis);
  const dispatcher = new OutboxDispatcher(config.databaseUrl, queues, log, { jobAttempts: config.trainingAttempts, connectionLogs });
  const metrics = new Metrics();
  registerQueueMetrics(metrics, queues);
  registerTrainingMetrics(metrics);
  const bus = createEventBus(config, log, connectionLogs.redis);
  const denials = new DenialRecorder(db, log, config.auditDenials);
  const principalCache = new PrincipalCache(config.principalCache);
  principalCache.follow(bus);
  // Housekeeping on connections of its own: never queued behind requests, nor counted with them.
  const housekeeping = new Pool({ connectionString: withDefaultUser(config.databaseUrl), max: 1, application_name: 'modelgov-rollups' });
  housekeeping.on('error', (e) => connectionLogs.postgres.warn('rollups', { err: e.message }, 'PostgreSQL connection of the rollup fold lost'));
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
    metrics,
    principalCache,
    statements,
    rollupCompactor,
    connectionLogs,
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
      connectionLogs.redis.close();
      connectionLogs.postgres.close();
    },
  };
  await seedBaseline(app);
  await dispatcher.start();
  rollupCompactor.start();
  return app;
}
