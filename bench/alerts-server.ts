// One API instance for `npm run bench -- alerts`, in a process of its own. The first creates the
// database (and a team with a deployment); the second joins it (same database, same Redis prefix).
import 'reflect-metadata';
import { randomUUID } from 'node:crypto';
import { createLogger } from '../src/core/logger';
import type { Config } from '../src/config';
import { Alert, AlertKind, AlertSeverity, AlertStatus } from '../src/monitoring/alert.entity';
import { publishAlert } from '../src/monitoring/alerts';
import { startServer } from '../src/app/server';
import { startTestServer } from '../test/support/harness';
import { answerLoopDelay } from './loop-delay';

async function main(): Promise<void> {
  const joined = process.env.BENCH_JOIN_CONFIG ? (JSON.parse(process.env.BENCH_JOIN_CONFIG) as Config) : null;
  const t = joined ? null : await startTestServer({ env: { LOG_LEVEL: 'error', INFERENCE_ENABLED: 'false' } });
  const server = t ? t.server : await startServer(joined!, createLogger('error'));
  const config = t ? t.config : joined!;
  let target: { teamId: string; deploymentId: string; modelVersionId: string } | null = null;
  if (t) {
    const admin = t.token(['admin'], [], 'bench');
    await t.gql(admin, 'mutation { createTeam(input: { name: "alerts-bench" }) { id } }');
    const team = (await t.sql(`SELECT id FROM team WHERE name = 'alerts-bench'`))[0].id as string;
    target = { teamId: team, deploymentId: randomUUID(), modelVersionId: randomUUID() };
  }
  answerLoopDelay();
  process.on('message', async (msg: { op: string; target?: typeof target; seq?: number }) => {
    if (msg.op === 'publish') {
      // The alert as a monitor pass publishes it; lastSeenAt carries the publish time.
      const now = new Date();
      const a = Object.assign(new Alert(), {
        id: randomUUID(),
        teamId: msg.target!.teamId,
        createdBy: 'worker:monitoring',
        createdAt: now,
        deploymentId: msg.target!.deploymentId,
        modelVersionId: msg.target!.modelVersionId,
        kind: AlertKind.DRIFT,
        severity: AlertSeverity.CRITICAL,
        status: AlertStatus.OPEN,
        feature: `feature_${msg.seq}`,
        statistic: 'wasserstein',
        value: 0.4,
        threshold: 0.1,
        pValue: null,
        windowStart: now,
        windowEnd: now,
        lastSeenAt: now,
        occurrences: 1,
        details: { seq: msg.seq },
      });
      publishAlert(server.app, a);
    } else if (msg.op === 'executions') {
      const metric = await server.subscriptionMetrics.getSingleMetric('modelgov_subscription_executions_total')!.get();
      process.send!({ op: 'executions', count: metric.values[0]?.value ?? 0 });
    } else if (msg.op === 'memory') {
      process.send!({ op: 'memory', rss: process.memoryUsage().rss, heap: process.memoryUsage().heapUsed });
    } else if (msg.op === 'stop') {
      if (t) await t.stop();
      else await server.stop();
      process.exit(0);
    }
  });
  process.send!({ op: 'ready', url: server.url, config, target });
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
