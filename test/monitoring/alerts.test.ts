import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import WebSocket from 'ws';
import { startServer, type RunningServer } from '../../src/app/server';
import { expectId } from '../../src/core/global-id';
import { createLogger } from '../../src/core/logger';
import { startTestServer, type TestServer } from '../support/harness';
import { fraudRow, registerOnnx } from '../support/inference';
import { buildFaultyOnnx } from '../support/onnx-models';
import { eventually } from '../support/processes';
import { connect, subscribe, type Socket, type Subscription } from '../support/subscriptions';
import { syntheticCsv } from '../../jobs/trainers/synthetic-data';
import { Alert as AlertEntity, AlertKind, AlertSeverity, AlertStatus } from '../../src/monitoring/alert.entity';
import { publishAlert } from '../../src/monitoring/alerts';
import { SKETCH_RELATIVE_ACCURACY } from '../../src/inference/latency-sketch';

const PREDICT = `mutation($d: ID!, $inputs: JSONObject!) { predict(deployment: $d, inputs: $inputs) { fallback } }`;
const ALERT = 'id kind severity status feature statistic value threshold occurrences resolvedBy deployment { name }';
const ALERTS = `subscription { alerts(filter: { minSeverity: WARNING }) { ${ALERT} } }`;
const REPORT = (field: 'driftReport' | 'latencyReport') => `subscription($d: ID!) { ${field}(deployment: $d) { windowStart windowSeconds latency drift deployment { name } } }`;
const row = fraudRow;

/** An alert subscription of one team's member. */
interface AlertWatch {
  team: string;
  sub: Subscription<any>;
}

describe('monitoring: latency and error-rate alerts, live on every instance', () => {
  let t: TestServer;
  let second: RunningServer;
  let engineer: string;
  let service: string;
  let model: string;
  let v1: string;
  const teams = new Map<string, string>();
  const sockets: Socket[] = [];
  // Probe alerts by feature, with the team each was published for.
  const probes = new Map<string, string>();

  const register = (bytes: Buffer) => registerOnnx(t, engineer, model, bytes);
  const deploy = async (name: string, version: string, slos: Record<string, number>) => {
    const r = await t.gql(engineer, `mutation($v: ID!, $n: String!, $s: JSONObject!) { createDeployment(input: { team: "fraud", name: $n, environment: DEVELOPMENT, slos: $s, trafficSplit: [{ modelVersion: $v, weight: 100 }] }) { id } }`, { v: version, n: name, s: slos });
    assert.equal(r.errors, undefined, JSON.stringify(r.errors));
    const d = r.data.createDeployment.id as string;
    const m = await t.gql(engineer, `mutation($d: ID!) { setDeploymentMonitoring(input: { deployment: $d, minRequests: 5, cooldownSeconds: 3600 }) { monitoring } }`, { d });
    assert.equal(m.data.setDeploymentMonitoring.monitoring.minRequests, 5);
    await t.server.app.inference!.reconcile();
    await second.app.inference!.reconcile();
    return d;
  };
  const traffic = async (d: string, n: number) => {
    for (let i = 0; i < n; i++) {
      const r = await t.gql(service, PREDICT, { d, inputs: { features: [row(i)] } });
      assert.equal(r.errors, undefined, JSON.stringify(r.errors));
    }
    await t.server.app.inference!.log.flush();
  };
  const runMonitor = async (d: string, windowSeconds: number) => {
    const r = await t.gql(engineer, `mutation($d: ID!, $w: Int) { runMonitor(deployment: $d, windowSeconds: $w) { windowSeconds alertsRaised latency } }`, { d, w: windowSeconds });
    assert.equal(r.errors, undefined, JSON.stringify(r.errors));
    return r.data.runMonitor;
  };
  const alertsOf = async (d: string, kinds = ['LATENCY', 'ERROR_RATE']) =>
    (await t.gql(engineer, `query($d: ID!, $k: [AlertKind!]) { alerts(filter: { deployment: $d, kinds: $k }) { totalCount nodes { ${ALERT} } } }`, { d, k: kinds })).data.alerts;
  /**
   * Requests `version` answered on deployment `d` `secondsAgo` before now, taking `latencies` ms each,
   * written by the prediction log's writer (with their window rollups), inputs kept by hash only.
   */
  const logServed = async (d: string, version: string, latencies: number[], secondsAgo: number) => {
    const deploymentId = expectId(d, 'Deployment');
    const [{ team_id: teamId }] = await t.sql(`SELECT team_id FROM deployment WHERE id = $1`, [deploymentId]);
    const log = t.server.app.inference!.log;
    for (const latencyMs of latencies) {
      await log.append({
        id: randomUUID(), occurredAt: new Date(Date.now() - secondsAgo * 1000), deploymentId, teamId, modelVersionId: expectId(version, 'ModelVersion'),
        requestId: `logged-${randomUUID()}`, requestKey: null, principalId: 'svc', principalKind: 'user', source: 'graphql', rows: 1, inputs: null,
        inputsSha256: 'not kept', outputs: { probability: [[0.5]] }, latencyMs, fallback: false, shadow: false, failedVersionId: null, error: null,
      });
    }
    await log.flush(true);
  };
  /** An alert no monitor raised, of one team's deployment that does not exist, published like a real one by the caller. */
  const syntheticAlert = (team: string, feature: string, details: Record<string, unknown> = {}) => {
    const now = new Date();
    return Object.assign(new AlertEntity(), {
      id: randomUUID(), teamId: teams.get(team)!, createdBy: 'test', createdAt: now, deploymentId: '00000000-0000-4000-8000-000000000000',
      modelVersionId: '00000000-0000-4000-8000-000000000000', kind: AlertKind.DRIFT, severity: AlertSeverity.WARNING, status: AlertStatus.OPEN,
      feature, statistic: 'psi', value: 1, threshold: 0.1, pValue: null, windowStart: now, windowEnd: now, lastSeenAt: now, occurrences: 1, details,
    });
  };
  const open = (url: string, token: string | null) => {
    const socket = connect(url, token);
    sockets.push(socket);
    return socket;
  };
  /**
   * Publishes probe alerts of the watch's team (from the first instance) until one reaches it. Alerts
   * reach a subscriber in the order they were published, so every alert published before the probe
   * has then been judged for this subscriber: sent, or held back.
   */
  const heard = async (w: AlertWatch, what: string) => {
    const feature = `probe-${randomUUID()}`;
    probes.set(feature, w.team);
    await eventually(what, async () => {
      publishAlert(t.server.app, syntheticAlert(w.team, feature));
      return w.sub.events.some((a) => a.feature === feature) ? true : undefined;
    }, 20_000, 100);
  };
  /** Alerts a watch received that are not probes. */
  const realAlerts = (w: AlertWatch) => w.sub.events.filter((a) => !probes.has(a.feature));
  /** Everything a watch received but its own team's probes. */
  const foreign = (w: AlertWatch) => w.sub.events.filter((a) => probes.get(a.feature) !== w.team);
  /** An alert subscription proven live: the server acknowledged its socket, and it received its own team's probe, without errors. */
  const liveAlerts = async (url: string, token: string, team: string): Promise<AlertWatch> => {
    const socket = open(url, token);
    await socket.acknowledged;
    const w = { team, sub: subscribe(socket, 'alerts', ALERTS) };
    await heard(w, `a ${team} subscriber receives its own team's alert`);
    assert.deepEqual(w.sub.errors, [], `the ${team} subscriber got no errors`);
    return w;
  };

  before(async () => {
    t = await startTestServer({ demo: true, env: { INFERENCE_THREADS: '2' } });
    // A second API instance on the same database and Redis: alerts must reach its subscribers too.
    second = await startServer(t.config, createLogger(t.config.logLevel));
    engineer = t.token(['ml-engineer'], ['fraud'], 'mona');
    service = t.token(['service'], ['fraud'], 'svc');
    const r = await t.gql(engineer, '{ models(filter: { name: "fraud-detector" }) { nodes { id versions { id version } } } }');
    model = r.data.models.nodes[0].id;
    v1 = r.data.models.nodes[0].versions.find((v: { version: number }) => v.version === 1).id;
    for (const team of await t.sql(`SELECT id, name FROM team`)) teams.set(team.name, team.id);
  });
  after(async () => {
    for (const s of sockets) await s.client.dispose();
    await second?.stop();
    await t?.stop();
  });

  it('raises a LATENCY alert against the SLO, streams it to the owning team on either instance (not to others), dedups it, and closes it on recovery', async () => {
    const fraudOnFirst = await liveAlerts(t.url, engineer, 'fraud');
    const fraudOnSecond = await liveAlerts(second.url, t.token(['viewer'], ['fraud'], 'vic'), 'fraud');
    // A vision viewer reads only vision's deployments (ml-engineers read other teams' too, by design).
    const visionOnSecond = await liveAlerts(second.url, t.token(['viewer'], ['vision'], 'val'), 'vision');
    const anonymous = open(second.url, null);
    const anonymousAlerts = subscribe(anonymous, 'alerts', ALERTS);
    await assert.rejects(anonymous.acknowledged);
    assert.equal(anonymous.closeCode, 4403, 'an anonymous socket is refused');

    const d = await deploy('fraud-slow', v1, { p95LatencyMs: 20 });
    // Half an hour ago: six requests at 10 ms, two at 50 ms. The p95 is 50 ms (read from the merged
    // latency sketches: within their stated relative accuracy), more than twice the objective.
    await logServed(d, v1, [10, 10, 10, 10, 10, 10, 50, 50], 1800);
    const pass = await runMonitor(d, 3600);
    assert.equal(pass.alertsRaised, 1);
    const alerts = await alertsOf(d);
    assert.equal(alerts.totalCount, 1);
    const alert = alerts.nodes[0];
    assert.deepEqual([alert.kind, alert.status, alert.statistic, alert.threshold], ['LATENCY', 'OPEN', 'p95LatencyMs', 20]);
    assert.equal(alert.severity, 'CRITICAL');
    assert.ok(Math.abs(alert.value - 50) <= SKETCH_RELATIVE_ACCURACY * 50, `p95 ${alert.value} is 50 ms within the sketch's accuracy`);

    await eventually('the alert on both instances', async () => (realAlerts(fraudOnFirst).length && realAlerts(fraudOnSecond).length ? true : undefined), 10_000, 50);
    assert.equal(realAlerts(fraudOnFirst)[0].id, alert.id);
    assert.equal(realAlerts(fraudOnSecond)[0].id, alert.id);
    assert.equal(realAlerts(fraudOnSecond)[0].deployment.name, 'fraud-slow');
    await heard(visionOnSecond, 'the vision subscriber receives a probe published after the alert');
    assert.deepEqual(foreign(visionOnSecond), [], 'another team hears nothing');
    assert.deepEqual(visionOnSecond.sub.errors, []);
    assert.deepEqual(anonymousAlerts.events, []);
    assert.ok(anonymous.errors.length + anonymousAlerts.errors.length > 0, 'the anonymous client was told');

    // The condition persists: the same alert, counted again, nothing new streamed.
    await logServed(d, v1, [50, 50, 50], 1800);
    const again = await runMonitor(d, 3601);
    assert.equal(again.alertsRaised, 0);
    const persisted = await alertsOf(d);
    assert.equal(persisted.totalCount, 1);
    assert.equal(persisted.nodes[0].occurrences, 2);

    // Recovery: a window whose requests all meet the objective (the slow ones are older) clears the alert.
    await logServed(d, v1, [10, 10, 10, 10, 10, 10, 10, 10], 1);
    await runMonitor(d, 600);
    const cleared = (await alertsOf(d)).nodes[0];
    assert.deepEqual([cleared.status, cleared.resolvedBy], ['RESOLVED', 'monitor']);
    const resolved = (await t.gql(engineer, `query($d: ID!) { alerts(filter: { deployment: $d }) { nodes { id resolution } } }`, { d })).data.alerts.nodes;
    assert.deepEqual(resolved.map((a: { id: string }) => a.id), [alert.id]);
    assert.match(resolved[0].resolution, /^cleared in the window from /, 'its own condition cleared (the version still serves)');
    await eventually('the resolution streamed', async () => (realAlerts(fraudOnSecond).some((a) => a.id === alert.id && a.status === 'RESOLVED') ? true : undefined), 10_000, 50);
    await heard(visionOnSecond, 'the vision subscriber receives a probe published after the resolution');
    assert.deepEqual(foreign(visionOnSecond), [], 'nor of the resolution');
    const audited = await t.sql(`SELECT after FROM audit_event WHERE action = 'runMonitor' AND subject_id = $1 ORDER BY seq`, [d]);
    assert.equal(audited.length, 3, 'one event per pass asked for, with what it changed: opened, seen again, resolved');
    assert.deepEqual(
      audited.map((a) => a.after.alerts.filter((x: { alert: string }) => x.alert === alert.id).map((x: { change: string }) => x.change)),
      [['opened'], ['seen again'], ['resolved']],
    );
  });

  it('raises an ERROR_RATE alert, lets people acknowledge and resolve it (audited), and keeps quiet during the cool-down', async () => {
    const faulty = await register(buildFaultyOnnx());
    const d = await deploy('fraud-errors', faulty, { errorRate: 0.05 });
    // No fallback: each request fails (UNAVAILABLE) and is logged as an error.
    for (let i = 0; i < 6; i++) await t.gql(service, PREDICT, { d, inputs: { features: [row(i + 3)] } });
    await t.server.app.inference!.log.flush();
    await runMonitor(d, 60);
    const [alert] = (await alertsOf(d)).nodes;
    assert.deepEqual([alert.kind, alert.statistic, alert.value, alert.severity], ['ERROR_RATE', 'errorRate', 1, 'CRITICAL']);
    const ack = await t.gql(engineer, `mutation($id: ID!) { acknowledgeAlert(id: $id, note: "looking") { status } }`, { id: alert.id });
    assert.equal(ack.data.acknowledgeAlert.status, 'ACKNOWLEDGED');
    const viewer = await t.gql(t.token(['viewer'], ['fraud']), `mutation($id: ID!) { resolveAlert(id: $id, reason: "x") { status } }`, { id: alert.id });
    assert.equal(viewer.errors?.[0].extensions.code, 'FORBIDDEN');
    const resolved = await t.gql(engineer, `mutation($id: ID!) { resolveAlert(id: $id, reason: "rolled back by hand") { status resolvedBy } }`, { id: alert.id });
    assert.deepEqual(resolved.data.resolveAlert, { status: 'RESOLVED', resolvedBy: 'mona' });
    const actions = await t.sql(`SELECT action FROM audit_event WHERE subject_id = $1 ORDER BY seq`, [alert.id]);
    assert.deepEqual(actions.map((a) => a.action), ['acknowledgeAlert', 'resolveAlert']);
    // Still failing, but within the cool-down: no new alert.
    await runMonitor(d, 120);
    assert.equal((await alertsOf(d)).totalCount, 1);
  });

  it('raises a DRIFT alert naming the shifted feature of a demo deployment, live to the owning team only', async () => {
    const fraudOnSecond = await liveAlerts(second.url, t.token(['viewer'], ['fraud'], 'dora'), 'fraud');
    const visionOnFirst = await liveAlerts(t.url, t.token(['viewer'], ['vision'], 'vince'), 'vision');
    const prod = (await t.gql(engineer, '{ deployments(filter: { team: "fraud", environment: PRODUCTION }) { nodes { id } } }')).data.deployments.nodes[0].id;
    // Fresh rows from the training data's distribution, with merchant_risk shifted by 1.5 sd.
    const columns = ['amount', 'hour', 'merchant_risk', 'distance_km'];
    const rows = syntheticCsv({ rows: 1000, seed: 4242, features: columns })
      .trim()
      .split('\n')
      .slice(1)
      .map((line) => line.split(',').slice(0, 4).map(Number))
      .map(([a, h, m, d]) => [a, h, m + 1.5, d]);
    for (let i = 0; i < rows.length; i += 50) {
      const r = await t.gql(service, PREDICT, { d: prod, inputs: { features: rows.slice(i, i + 50) } });
      assert.equal(r.errors, undefined, JSON.stringify(r.errors));
    }
    await t.server.app.inference!.log.flush();
    // Retrain policy: a CRITICAL drift alert starts a run on the team's newest clean data.
    const versions = (await t.gql(engineer, '{ datasetVersions(filter: { team: "fraud" }) { nodes { id version dataset { name } } } }')).data.datasetVersions.nodes;
    const fresh = versions.find((v: { version: number }) => v.version === 2).id;
    const policy = await t.gql(engineer, `mutation($d: ID!, $v: ID!) { setDeploymentMonitoring(input: { deployment: $d, retrainDatasetVersion: $v }) { monitoring } }`, { d: prod, v: fresh });
    assert.equal(policy.data.setDeploymentMonitoring.monitoring.retrainDatasetVersion, fresh);
    assert.equal(policy.data.setDeploymentMonitoring.monitoring.retrainPolicySetBy, undefined, 'who set it is kept, not shown');
    // Someone who may tune the monitor but not start training runs cannot set a policy that would
    // start them; tuning other settings leaves the policy acting as whoever set it.
    const tunerRole = await t.gql(t.token(['admin'], []), 'mutation { upsertRole(input: { name: "monitor-tuner", rules: [{ action: ["read", "update"], subject: "Deployment" }, { action: "read", subject: "DatasetVersion" }] }) { name } }');
    assert.equal(tunerRole.errors, undefined, JSON.stringify(tunerRole.errors));
    const tuner = t.token(['monitor-tuner'], ['fraud'], 'tuner');
    const refused = await t.gql(tuner, `mutation($d: ID!, $v: ID!) { setDeploymentMonitoring(input: { deployment: $d, retrainDatasetVersion: $v }) { monitoring } }`, { d: prod, v: fresh });
    assert.equal(refused.errors?.[0].extensions.code, 'FORBIDDEN', JSON.stringify(refused));
    const cooldown = policy.data.setDeploymentMonitoring.monitoring.cooldownSeconds;
    const tuned = await t.gql(tuner, `mutation($d: ID!, $c: Int!) { setDeploymentMonitoring(input: { deployment: $d, cooldownSeconds: $c }) { monitoring } }`, { d: prod, c: cooldown });
    assert.equal(tuned.errors, undefined, JSON.stringify(tuned.errors));
    // A change to one setting keeps the others (it once cleared every setting it did not name).
    assert.equal(tuned.data.setDeploymentMonitoring.monitoring.retrainDatasetVersion, fresh);
    const pass = await runMonitor(prod, 120);
    assert.ok(pass.alertsRaised >= 1);
    const drift = (await t.gql(engineer, `query($d: ID!) { alerts(filter: { deployment: $d, kinds: [DRIFT] }) { nodes { ${ALERT} pValue details } } }`, { d: prod })).data.alerts.nodes;
    const shifted = drift.find((a: { feature: string }) => a.feature === 'merchant_risk');
    assert.ok(shifted, JSON.stringify(drift.map((a: { feature: string; statistic: string; value: number }) => [a.feature, a.statistic, a.value])));
    assert.equal(shifted.status, 'OPEN');
    assert.ok(shifted.value > shifted.threshold, `${shifted.statistic} ${shifted.value} vs ${shifted.threshold}`);
    assert.ok(shifted.details.currentCount >= 1000);
    assert.equal(shifted.severity, 'CRITICAL');
    const linked = await t.gql(engineer, `query($d: ID!) { alerts(filter: { deployment: $d, kinds: [DRIFT], minSeverity: CRITICAL }) { nodes { feature retrainRun { status createdBy datasets { role datasetVersion { id } } codeVersion { entrypoint } } } } }`, { d: prod });
    const run = linked.data.alerts.nodes.find((a: { feature: string }) => a.feature === 'merchant_risk').retrainRun;
    assert.ok(run, 'the retrain policy started a run');
    // Started as whoever set the policy (their rights re-checked), never as the all-powerful monitor.
    assert.equal(run.createdBy, 'mona');
    assert.ok(['QUEUED', 'RUNNING', 'SUCCEEDED'].includes(run.status), run.status);
    assert.deepEqual(run.datasets.map((x: { role: string; datasetVersion: { id: string } }) => [x.role, x.datasetVersion.id]), [['TRAIN', fresh]]);
    assert.equal(run.codeVersion.entrypoint, 'tabular-trainer.js', "the drifted version's own code");
    await eventually('the drift alert on the second instance', async () => (realAlerts(fraudOnSecond).some((a) => a.kind === 'DRIFT' && a.feature === 'merchant_risk') ? true : undefined), 10_000, 50);
    assert.deepEqual(fraudOnSecond.sub.errors, []);
    await heard(visionOnFirst, 'the vision subscriber receives a probe published after the drift alerts');
    assert.deepEqual(foreign(visionOnFirst), [], 'the other team hears nothing');
    assert.deepEqual(visionOnFirst.sub.errors, []);
    const reports = await t.gql(engineer, `query($d: ID!) { driftReports(deployment: $d, last: 1) { windowSeconds drift latency } }`, { d: prod });
    const features = reports.data.driftReports[0].drift.versions[0].report.features.map((f: { feature: string }) => f.feature).sort();
    assert.deepEqual(features, [...columns].sort());
  });

  it('ends the subscription of a consumer that stops reading, and keeps serving the others', async () => {
    const token = t.token(['viewer'], ['fraud'], 'stalled');
    const slow = new WebSocket(t.url.replace(/^http/, 'ws') + '/graphql', 'graphql-transport-ws');
    const messages: any[] = [];
    slow.on('message', (m) => messages.push(JSON.parse(m.toString())));
    await new Promise<void>((resolve) => slow.on('open', () => resolve()));
    slow.send(JSON.stringify({ type: 'connection_init', payload: { authorization: `Bearer ${token}` } }));
    await eventually('ack', async () => (messages.some((m) => m.type === 'connection_ack') ? true : undefined), 5000, 20);
    slow.send(JSON.stringify({ id: 's', type: 'subscribe', payload: { query: 'subscription { alerts { id feature details } }' } }));
    const probe = `probe-${randomUUID()}`;
    probes.set(probe, 'fraud');
    await eventually('the stalled subscriber receives its team\'s alert', async () => {
      publishAlert(t.server.app, syntheticAlert('fraud', probe));
      return messages.some((m) => m.type === 'next' && m.payload.data?.alerts?.feature === probe) ? true : undefined;
    }, 20_000, 100);
    (slow as unknown as { _socket: { pause(): void; resume(): void } })._socket.pause();
    const healthy = await liveAlerts(t.url, token, 'fraud');
    const numbered = (features: Array<string | undefined>) => features.filter((f) => /^f\d+$/.test(f ?? '')).length;
    const healthyGot = () => numbered(healthy.sub.events.map((a) => a.feature));
    // Large events, more than a subscriber may have waiting once the socket's buffers are full. The
    // healthy subscriber is never let fall more than 125 behind (its queue holds 256).
    for (let i = 0; i < 500; i++) {
      publishAlert(t.server.app, syntheticAlert('fraud', `f${i}`, { padding: 'x'.repeat(32 * 1024) }));
      if (i % 25 === 24) await eventually('the healthy subscriber keeps up', async () => (healthyGot() >= i + 1 - 100 ? true : undefined), 20_000, 20);
    }
    await eventually('the healthy subscriber got every alert', async () => (healthyGot() === 500 ? true : undefined), 20_000, 100);
    (slow as unknown as { _socket: { resume(): void } })._socket.resume();
    await eventually('the stalled subscription ended', async () => (messages.some((m) => m.type === 'error') || slow.readyState === WebSocket.CLOSED ? true : undefined), 10_000, 50);
    const error = messages.find((m) => m.type === 'error');
    if (error) assert.match(error.payload[0].message, /Slow consumer/);
    assert.ok(numbered(messages.filter((m) => m.type === 'next').map((m) => m.payload.data?.alerts?.feature)) < 500, 'it did not get everything buffered for it');
    slow.terminate();
    const alive = await t.gql(engineer, '{ viewer { id } }');
    assert.equal(alive.errors, undefined);
  });

  it("streams each monitor pass's drift and latency report to the deployment's team on either instance, and refuses another team's subscriber", async () => {
    const d = await deploy('fraud-reports', v1, { p95LatencyMs: 1000 });
    const fraudViewer = t.token(['viewer'], ['fraud'], 'rita');
    const visionViewer = t.token(['viewer'], ['vision'], 'vera');
    const visionEngineer = t.token(['ml-engineer'], ['vision'], 'vlad');
    const visionProd = (await t.gql(visionViewer, '{ deployments(filter: { team: "vision", environment: PRODUCTION }) { nodes { id name } } }')).data.deployments.nodes[0];
    const onFirst = open(t.url, fraudViewer);
    const onSecond = open(second.url, fraudViewer);
    const vision = open(second.url, visionViewer);
    await Promise.all([onFirst.acknowledged, onSecond.acknowledged, vision.acknowledged]);
    const driftOnSecond = subscribe<any>(onSecond, 'driftReport', REPORT('driftReport'), { d });
    const latencyOnFirst = subscribe<any>(onFirst, 'latencyReport', REPORT('latencyReport'), { d });
    const visionOwn = subscribe<any>(vision, 'driftReport', REPORT('driftReport'), { d: visionProd.id });
    const visionOnFraud = [subscribe<any>(vision, 'driftReport', REPORT('driftReport'), { d }), subscribe<any>(vision, 'latencyReport', REPORT('latencyReport'), { d })];

    // Live: monitor passes (each over a window of its own) until every subscriber has one of its own deployment's reports.
    let seconds = 100;
    const pass = async (token: string, deployment: string) => {
      const r = await t.gql(token, `mutation($d: ID!, $w: Int) { runMonitor(deployment: $d, windowSeconds: $w) { windowStart windowSeconds } }`, { d: deployment, w: seconds++ });
      assert.equal(r.errors, undefined, JSON.stringify(r.errors));
      return r.data.runMonitor as { windowStart: string; windowSeconds: number };
    };
    const got = (sub: Subscription<any>, run: { windowStart: string; windowSeconds: number }) => sub.events.find((r) => r.windowStart === run.windowStart && r.windowSeconds === run.windowSeconds);
    await eventually('the fraud subscribers receive a report of their deployment', async () => {
      await pass(engineer, d);
      return driftOnSecond.events.length && latencyOnFirst.events.length ? true : undefined;
    }, 20_000, 100);
    await eventually("the vision subscriber receives a report of its team's deployment", async () => {
      await pass(visionEngineer, visionProd.id);
      return visionOwn.events.length ? true : undefined;
    }, 20_000, 100);
    assert.deepEqual([driftOnSecond.errors, latencyOnFirst.errors, visionOwn.errors], [[], [], []]);

    // Another team's subscriber is answered as if the deployment did not exist, and hears nothing of it.
    await eventually("the other team's subscriptions end", async () => (visionOnFraud.every((s) => s.completed) ? true : undefined), 10_000, 50);
    for (const s of visionOnFraud) {
      assert.deepEqual(s.events, []);
      assert.deepEqual(s.errors.map((e) => (e as { extensions: { code: string } }).extensions.code), ['NOT_FOUND']);
      assert.ok(!JSON.stringify(s.errors).includes('fraud-reports'), JSON.stringify(s.errors));
    }

    // The report of a pass over real traffic reaches both instances' subscribers.
    await traffic(d, 8);
    const run = await pass(engineer, d);
    await eventually('the report on both instances', async () => (got(driftOnSecond, run) && got(latencyOnFirst, run) ? true : undefined), 10_000, 50);
    for (const report of [got(driftOnSecond, run), got(latencyOnFirst, run)]) {
      assert.equal(report.deployment.name, 'fraud-reports');
      assert.deepEqual(report.latency.versions.map((v: { modelVersionId: string; requests: number; errors: number }) => [v.modelVersionId, v.requests, v.errors]), [[expectId(v1, 'ModelVersion'), 8, 0]]);
      assert.deepEqual(report.drift.versions[0].report.features.map((f: { feature: string }) => f.feature).sort(), ['amount', 'distance_km', 'hour', 'merchant_risk']);
    }
    assert.ok(driftOnSecond.events.every((r) => r.deployment.name === 'fraud-reports'));
    assert.deepEqual([driftOnSecond.errors, latencyOnFirst.errors], [[], []]);
    // A vision report after it: the vision subscriber has had every event before it, none of them fraud's.
    const last = await pass(visionEngineer, visionProd.id);
    await eventually('the vision subscriber receives the newest vision report', async () => (got(visionOwn, last) ? true : undefined), 10_000, 50);
    assert.deepEqual([...new Set(visionOwn.events.map((r) => r.deployment.name))], [visionProd.name]);
    assert.deepEqual(visionOwn.errors, []);
  });

  it("runs each deployment's monitor as a repeatable job on its own schedule", async () => {
    const d = await deploy('fraud-scheduled', v1, { errorRate: 0.5 });
    const set = await t.gql(engineer, `mutation($d: ID!) { setDeploymentMonitoring(input: { deployment: $d, everySeconds: 1, windowSeconds: 1, minRequests: 1 }) { monitoring } }`, { d });
    assert.equal(set.data.setDeploymentMonitoring.monitoring.everySeconds, 1);
    const passes = await eventually('two scheduled passes', async () => {
      const r = await t.gql(engineer, `query($d: ID!) { driftReports(deployment: $d, last: 20) { windowStart windowSeconds } }`, { d });
      // (The schedule with the default settings may have run once before the change.)
      const fast = r.data.driftReports.filter((p: { windowSeconds: number }) => p.windowSeconds === 1);
      return fast.length >= 2 ? fast : undefined;
    }, 20_000, 250);
    const starts = passes.map((p: { windowStart: string }) => p.windowStart);
    assert.equal(new Set(starts).size, starts.length, 'one pass per window');
  });

  it("runs a scheduled pass as the monitor, on behalf of the deployment's creator, and the audit trail says so", async () => {
    const d = await deploy('fraud-scheduled-as', v1, { p95LatencyMs: 10 });
    // Slow requests every 30 s over the last two minutes: whichever minute a scheduled pass judges holds some.
    for (const ago of [5, 35, 65, 95]) await logServed(d, v1, [400, 400, 400, 400, 400], ago);
    const set = await t.gql(engineer, `mutation($d: ID!) { setDeploymentMonitoring(input: { deployment: $d, everySeconds: 1, windowSeconds: 60, minRequests: 1 }) { monitoring } }`, { d });
    assert.equal(set.errors, undefined, JSON.stringify(set.errors));
    const [event] = await eventually('a scheduled pass to open the latency alert', async () => {
      const rows = await t.sql<{ actor_id: string; actor_kind: string; via: { jobs: string[]; onBehalfOf: string[] } }>(
        `SELECT actor_id, actor_kind, via FROM audit_event WHERE action = 'monitorDeployment' AND subject_id = $1 ORDER BY seq`,
        [d],
      );
      return rows.length ? rows : undefined;
    }, 30_000, 250);
    assert.deepEqual([event.actor_id, event.actor_kind], ['system:monitor', 'system']);
    assert.deepEqual(event.via.onBehalfOf, ['mona'], 'the creator of the deployment');
    assert.equal(event.via.jobs.length, 1);
    assert.match(event.via.jobs[0], /^monitors\/repeat:/, 'the repeatable monitor job');
  });
});
