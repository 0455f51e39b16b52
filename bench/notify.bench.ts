// 1,000 alerts opened on 50 deployments, each routed by its deployment's rule to one of 50 webhook
// channels on local receivers: the whole path (the alert's transaction → outbox → route job →
// delivery job → signed POST) against a floor of the same POSTs sent straight from node:http.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';
import { Agent } from 'node:http';
import { fromGlobalId } from '../src/core/global-id';
import { Alert, AlertKind, AlertSeverity } from '../src/monitoring/alert.entity';
import { notifyAlertChange } from '../src/monitoring/alert-notifications';
import { openAlert } from '../src/monitoring/alerts';
import { startTestServer, type TestServer } from '../test/support/harness';
import { percentile, printTable } from './stats';

const envNumber = (name: string, fallback: number) => Number(process.env[name] ?? fallback);
const ALERTS = envNumber('BENCH_NOTIFY_ALERTS', 1000);
const CHANNELS = envNumber('BENCH_NOTIFY_CHANNELS', 50);
/** Alerts opened per second (each in its own transaction, as monitors open them). */
const RATE = envNumber('BENCH_NOTIFY_RATE', 100);
const TIMEOUT_MS = envNumber('BENCH_NOTIFY_TIMEOUT_SECONDS', 180) * 1000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A receiver: when each idempotency key first arrived, and how often each was sent. */
interface Receiver {
  url: string;
  close(): Promise<void>;
}
const firstSeen = new Map<string, number>();
const seenCount = new Map<string, number>();
const alertOfKey = new Map<string, string>();

async function startReceiver(): Promise<Receiver> {
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const at = performance.now();
      const key = String(req.headers['idempotency-key'] ?? '');
      if (!firstSeen.has(key)) firstSeen.set(key, at);
      seenCount.set(key, (seenCount.get(key) ?? 0) + 1);
      try {
        const alert = JSON.parse(Buffer.concat(chunks).toString('utf8')).data?.alert;
        if (alert) alertOfKey.set(key, alert);
      } catch {
        // The floor's bodies are the product's bodies: always JSON.
      }
      res.end('ok');
    });
  });
  server.keepAliveTimeout = 30_000;
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`, close: () => new Promise<void>((r) => server.close(() => r())) };
}

/** The floor: the same number of POSTs of a delivered body, `concurrency` at a time, from node:http with keep-alive. */
async function barePosts(urls: string[], body: string, count: number, concurrency: number): Promise<{ seconds: number; latencies: number[] }> {
  const agent = new Agent({ keepAlive: true, maxSockets: concurrency });
  const latencies: number[] = [];
  let next = 0;
  const started = performance.now();
  const worker = async () => {
    for (;;) {
      const i = next++;
      if (i >= count) return;
      const t0 = performance.now();
      await new Promise<void>((resolve, reject) => {
        const req = http.request(urls[i % urls.length], { method: 'POST', agent, headers: { 'content-type': 'application/json', 'idempotency-key': `floor-${i}` } }, (res) => {
          res.resume();
          res.on('end', resolve);
        });
        req.on('error', reject);
        req.end(body);
      });
      latencies.push(performance.now() - t0);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  agent.destroy();
  return { seconds: (performance.now() - started) / 1000, latencies: latencies.sort((a, b) => a - b) };
}

async function setUp(t: TestServer, receivers: Receiver[]): Promise<{ deployments: Array<{ id: string; teamId: string }>; version: string }> {
  const engineer = t.token(['ml-engineer'], ['fraud'], 'bench-oncall');
  const gql = async (query: string, variables?: Record<string, unknown>) => {
    const r = await t.gql(engineer, query, variables);
    if (r.errors) throw new Error(JSON.stringify(r.errors));
    return r.data;
  };
  const models = await gql('{ models(filter: { name: "fraud-detector" }) { nodes { versions { id version } } } }');
  const version = models.models.nodes[0].versions.find((v: { version: number }) => v.version === 1).id as string;
  const deployments: Array<{ id: string; teamId: string }> = [];
  for (let i = 0; i < CHANNELS; i++) {
    const d = (await gql(`mutation($v: ID!, $n: String!) { createDeployment(input: { team: "fraud", name: $n, environment: DEVELOPMENT, trafficSplit: [{ modelVersion: $v, weight: 100 }] }) { id } }`, { v: version, n: `notify-bench-${i}` })).createDeployment.id;
    const c = (await gql(`mutation($input: CreateNotificationChannelInput!) { createNotificationChannel(input: $input) { channel { id } } }`, { input: { team: 'fraud', name: `bench hook ${i}`, kind: 'WEBHOOK', url: receivers[i].url } })).createNotificationChannel.channel.id;
    await gql(`mutation($input: CreateNotificationRuleInput!) { createNotificationRule(input: $input) { id } }`, { input: { team: 'fraud', name: `bench rule ${i}`, channel: c, deployment: d, action: 'IMMEDIATE' } });
    const [{ team_id: teamId }] = await t.sql(`SELECT team_id::text FROM deployment WHERE id = $1`, [fromGlobalId(d).key]);
    deployments.push({ id: fromGlobalId(d).key, teamId });
  }
  return { deployments, version: fromGlobalId(version).key };
}

export async function notifyBench(): Promise<void> {
  const receivers = await Promise.all(Array.from({ length: CHANNELS }, startReceiver));
  const t = await startTestServer({ demo: true, env: { NOTIFY_ALLOWED_HOSTS: '127.0.0.1' } });
  try {
    const { deployments, version } = await setUp(t, receivers);
    const opened = new Map<string, number>();
    const db = t.server.app.db;
    // Alerts opened at RATE per second, each committed with its notification as a monitor pass does.
    const started = performance.now();
    const pending: Array<Promise<void>> = [];
    for (let i = 0; i < ALERTS; i++) {
      const due = started + (i * 1000) / RATE;
      const wait = due - performance.now();
      if (wait > 0) await sleep(wait);
      const d = deployments[i % deployments.length];
      pending.push(
        db.transaction(async (em) => {
          const now = new Date();
          const alert = openAlert(em, {
            teamId: d.teamId, createdBy: 'system:monitor', deploymentId: d.id, modelVersionId: version, kind: AlertKind.DRIFT, severity: AlertSeverity.CRITICAL,
            feature: `bench-${i}`, statistic: 'psi', value: 0.5, threshold: 0.2, pValue: null, windowStart: now, windowEnd: now, lastSeenAt: now, details: {},
          });
          await em.insert(Alert, alert);
          await notifyAlertChange(em, alert, 'opened');
          return alert.nodeId;
        }).then((id) => void opened.set(id, performance.now())),
      );
    }
    await Promise.all(pending);
    const openedSeconds = (performance.now() - started) / 1000;
    const deadline = performance.now() + TIMEOUT_MS;
    while (alertOfKey.size < ALERTS && performance.now() < deadline) await sleep(100);
    const lastReceived = Math.max(...firstSeen.values());
    const latencies = [...alertOfKey].map(([key, alert]) => firstSeen.get(key)! - opened.get(alert)!).sort((a, b) => a - b);
    const duplicates = [...seenCount.values()].filter((n) => n > 1).length;
    const statuses: Array<{ status: string; n: number; attempts: number }> = await t.sql(`SELECT status, count(*)::int AS n, sum(attempts)::int AS attempts FROM notification_delivery GROUP BY status`);
    const productSeconds = (lastReceived - started) / 1000;

    // The floor, in the same run: the same count of POSTs of a delivered body, as many at once as the notifier sends.
    const sample = await t.sql(`SELECT n.summary FROM notification n WHERE n.alert_id IS NOT NULL LIMIT 1`);
    const body = JSON.stringify({ specversion: '1.0', id: 'floor', type: 'io.modelgov.alert.opened', data: { summary: sample[0]?.summary ?? 'x', severity: 'CRITICAL' } });
    const floor = await barePosts(receivers.map((r) => r.url), body, ALERTS, t.config.notify.workerConcurrency);

    const delivered = alertOfKey.size;
    printTable(`Notification fan-out: ${ALERTS} CRITICAL alerts opened at ${RATE}/s (over ${openedSeconds.toFixed(1)} s) on ${CHANNELS} deployments, each rule → its own webhook channel (${CHANNELS} local receivers)`, [
      { path: 'bare POST, node:http keep-alive (floor)', deliveries: ALERTS, 'deliveries/s': ALERTS / floor.seconds, 'p50 ms': percentile(floor.latencies, 50), 'p99 ms': percentile(floor.latencies, 99), note: `${t.config.notify.workerConcurrency} at a time, no alert, no queue` },
      {
        path: 'alert opened → received (product)',
        deliveries: delivered,
        'deliveries/s': delivered / productSeconds,
        'p50 ms': percentile(latencies, 50),
        'p99 ms': percentile(latencies, 99),
        note: `open → last received ${productSeconds.toFixed(1)} s; max ${latencies.length ? latencies[latencies.length - 1].toFixed(0) : '–'} ms`,
      },
    ]);
    printTable('Deliveries by status', statuses.map((s) => ({ status: s.status, deliveries: s.n, attempts: s.attempts })));
    const sustained = delivered / productSeconds >= RATE * 0.95;
    printTable('Targets', [
      { target: 'every alert delivered', goal: '100 %', measured: `${((100 * delivered) / ALERTS).toFixed(1)} % (${delivered} of ${ALERTS})`, result: delivered === ALERTS ? 'PASS' : 'FAIL' },
      { target: 'exactly once per idempotency key', goal: '0 repeats', measured: `${duplicates} repeated`, result: duplicates === 0 ? 'PASS' : 'FAIL' },
      { target: 'keeps up with the rate alerts open', goal: `≥ ${RATE}/s × 0.95`, measured: `${(delivered / productSeconds).toFixed(1)}/s`, result: sustained ? 'PASS' : 'FAIL' },
    ]);
  } finally {
    await t.stop();
    await Promise.all(receivers.map((r) => r.close()));
  }
}
