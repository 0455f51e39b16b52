import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { startServer, type RunningServer } from '../../src/app/server';
import { createLogger } from '../../src/core/logger';
import { Alert as AlertEntity, AlertKind, AlertSeverity, AlertStatus } from '../../src/monitoring/alert.entity';
import { publishAlert } from '../../src/monitoring/alerts';
import { startTestServer, type TestServer } from '../support/harness';
import { fraudRow } from '../support/inference';
import { eventually } from '../support/processes';
import { connect, subscribe, type Socket, type Subscription } from '../support/subscriptions';

const PREDICT = `mutation($d: ID!, $inputs: JSONObject!) { predict(deployment: $d, inputs: $inputs) { id rows outputs modelVersionId } }`;
const RECORD = `mutation($input: RecordOutcomesInput!) { recordOutcomes(input: $input) { recorded corrected rejected } }`;
const ALERT = 'id kind severity status feature statistic value threshold details resolvedBy modelVersion { id } deployment { name }';
const FIGURES = 'accuracy precision recall f1 rocAuc rocAucBound logLoss brier expectedCalibrationError mae rmse bias r2';
const VERSION = `modelVersionId version rows labelled unscored labelCoverage labelDelayP50Seconds labelDelayP95Seconds labelDelayP99Seconds decisionThreshold
  online { ${FIGURES} } baseline { ${FIGURES} } changes { metric baseline online relativeChange degradation } peers { modelVersionId rows labelled }`;
const REPORT = `query($d: ID!, $from: DateTimeISO, $to: DateTimeISO) { qualityReport(deployment: $d, from: $from, to: $to) { deploymentId from to versions { ${VERSION} } } }`;
const REPORT_LIVE = `subscription($d: ID!) { qualityReport(deployment: $d) { deploymentId versions { modelVersionId labelled online { accuracy } } } }`;
const ALERTS_LIVE = `subscription { alerts(filter: { kinds: [QUALITY] }) { ${ALERT} } }`;
const MONITORING = `mutation($d: ID!, $q: DeploymentQualityInput!) { setDeploymentMonitoring(input: { deployment: $d, quality: $q }) { monitoring } }`;

const PREDICTED = 350;
const LABELLED = 300;
const EPS = 2 ** -52;

/** A labelled row as the test sent it: the model's score and the label given. */
interface Labelled {
  prediction: string;
  row: number;
  score: number;
  label: number;
}

describe('monitoring: prediction quality against the offline baseline, live on every instance', () => {
  let t: TestServer;
  let second: RunningServer;
  let engineer: string;
  let service: string;
  let production: string;
  let v1: string;
  let baselineAccuracy: number;
  let fraudTeamId: string;
  const sockets: Socket[] = [];
  const labelled: Labelled[] = [];
  const flipped: Labelled[] = [];

  const open = (url: string, token: string) => {
    const socket = connect(url, token);
    sockets.push(socket);
    return socket;
  };
  const runMonitor = async () => {
    const r = await t.gql(engineer, `mutation($d: ID!) { runMonitor(deployment: $d) { windowStart } }`, { d: production });
    assert.equal(r.errors, undefined, JSON.stringify(r.errors));
  };
  const qualityAlerts = async () =>
    (await t.gql(engineer, `query($d: ID!) { alerts(filter: { deployment: $d, kinds: [QUALITY] }) { nodes { ${ALERT} } } }`, { d: production })).data.alerts.nodes as any[];
  const record = async (outcomes: unknown[]) => {
    const r = await t.gql(service, RECORD, { input: { deployment: production, outcomes } });
    assert.equal(r.errors, undefined, JSON.stringify(r.errors));
    return r.data.recordOutcomes;
  };

  before(async () => {
    t = await startTestServer({ demo: true, env: { INFERENCE_THREADS: '2' } });
    // A second API instance on the same database and Redis: its subscribers must hear of alerts raised through the first.
    second = await startServer(t.config, createLogger(t.config.logLevel));
    await second.app.inference!.reconcile();
    engineer = t.token(['ml-engineer'], ['fraud'], 'mona');
    service = t.token(['service'], ['fraud'], 'svc-fraud');
    const d = await t.gql(engineer, `{ deployments(filter: { team: "fraud", environment: PRODUCTION }) { nodes { id trafficSplit { modelVersion { id metrics } } } } }`);
    assert.equal(d.errors, undefined, JSON.stringify(d.errors));
    production = d.data.deployments.nodes[0].id;
    const served = d.data.deployments.nodes[0].trafficSplit[0].modelVersion;
    v1 = served.id;
    baselineAccuracy = served.metrics.accuracy;
    [{ id: fraudTeamId }] = await t.sql(`SELECT id::text AS id FROM team WHERE name = 'fraud'`);
  });
  after(async () => {
    for (const s of sockets) await s.client.dispose();
    await second?.stop();
    await t?.stop();
  });

  it("reports labels, coverage and metrics equal to those of the labels sent, beside the version's offline metrics", async () => {
    const answered: Array<{ id: string; outputs: { probability: number[][] } }> = [];
    for (let batch = 0; batch < PREDICTED / 50; batch++) {
      const r = await t.gql(service, PREDICT, { d: production, inputs: { features: Array.from({ length: 50 }, (_, i) => fraudRow(batch * 50 + i)) } });
      assert.equal(r.errors, undefined, JSON.stringify(r.errors));
      assert.equal(r.data.predict.modelVersionId, v1);
      answered.push(r.data.predict);
    }
    await t.server.app.inference!.log.flush();
    // The model's own decisions as labels, every fifth one flipped: 20 % of the labelled rows are wrong.
    const rows = answered.flatMap((p) => p.outputs.probability.map((row, i) => ({ prediction: p.id, row: i, score: row[row.length - 1] })));
    for (const [i, r] of rows.slice(0, LABELLED).entries()) {
      const decision = r.score >= 0.5 ? 1 : 0;
      const entry = { ...r, label: i % 5 === 0 ? 1 - decision : decision };
      labelled.push(entry);
      if (i % 5 === 0) flipped.push(entry);
    }
    const out = await record(labelled.map(({ prediction, row, label }) => ({ prediction, row, label })));
    assert.deepEqual([out.recorded, out.rejected], [LABELLED, 0]);

    const r = await t.gql(engineer, REPORT, { d: production });
    assert.equal(r.errors, undefined, JSON.stringify(r.errors));
    const report = r.data.qualityReport;
    assert.equal(report.deploymentId, production);
    assert.equal(new Date(report.to).getTime() - new Date(report.from).getTime(), 86_400_000, 'by default the last day');
    assert.equal(report.versions.length, 1);
    const v = report.versions[0];
    assert.deepEqual([v.modelVersionId, v.version, v.rows, v.labelled, v.unscored, v.decisionThreshold], [v1, 1, PREDICTED, LABELLED, 0, 0.5]);
    assert.equal(v.labelCoverage, LABELLED / PREDICTED);
    assert.ok(v.labelDelayP50Seconds !== null && v.labelDelayP50Seconds >= 0 && v.labelDelayP50Seconds < 600, `label delay ${v.labelDelayP50Seconds}`);
    assert.ok(v.labelDelayP50Seconds <= v.labelDelayP95Seconds && v.labelDelayP95Seconds <= v.labelDelayP99Seconds);

    // The same metrics, computed here from the scores returned and the labels sent.
    const n = labelled.length;
    const predicted = labelled.map((x) => (x.score >= 0.5 ? 1 : 0));
    const tp = labelled.filter((x, i) => x.label === 1 && predicted[i] === 1).length;
    const fp = labelled.filter((x, i) => x.label === 0 && predicted[i] === 1).length;
    const fn = labelled.filter((x, i) => x.label === 1 && predicted[i] === 0).length;
    const accuracy = labelled.filter((x, i) => x.label === predicted[i]).length / n;
    assert.equal(accuracy, 0.8);
    const logLoss = labelled.reduce((s, x) => {
      const c = Math.min(1 - EPS, Math.max(EPS, x.score));
      return s - Math.log(x.label === 1 ? c : 1 - c);
    }, 0) / n;
    const brier = labelled.reduce((s, x) => s + (x.score - x.label) ** 2, 0) / n;
    const close = (actual: number | null, expected: number, what: string) => assert.ok(actual !== null && Math.abs(actual - expected) < 1e-9, `${what}: ${actual} vs ${expected}`);
    close(v.online.accuracy, accuracy, 'accuracy');
    close(v.online.precision, tp + fp ? tp / (tp + fp) : 0, 'precision');
    close(v.online.recall, tp + fn ? tp / (tp + fn) : 0, 'recall');
    close(v.online.logLoss, logLoss, 'log loss');
    close(v.online.brier, brier, 'brier');
    assert.deepEqual([v.online.mae, v.online.rmse, v.online.r2], [null, null, null], 'no regression rows');

    // The offline baseline is the version's training evaluation, under the report's names.
    assert.equal(v.baseline.accuracy, baselineAccuracy);
    assert.equal(typeof v.baseline.rocAuc, 'number', "the trainer's auc");
    assert.equal(typeof v.baseline.logLoss, 'number', "the trainer's logLoss");
    const change = v.changes.find((c: { metric: string }) => c.metric === 'accuracy');
    close(change.relativeChange, (accuracy - baselineAccuracy) / baselineAccuracy, 'relative change');
    close(change.degradation, (baselineAccuracy - accuracy) / baselineAccuracy, 'degradation');
    assert.deepEqual(v.changes.map((c: { metric: string }) => c.metric), ['accuracy', 'rocAuc', 'logLoss']);
    assert.deepEqual(v.peers, [], 'no other version serves the production deployment');

    // A range without those windows has no versions.
    const old = await t.gql(engineer, REPORT, { d: production, from: '2026-01-01T00:00:00Z', to: '2026-01-02T00:00:00Z' });
    assert.deepEqual(old.data.qualityReport.versions, []);
    const backwards = await t.gql(engineer, REPORT, { d: production, from: '2026-01-02T00:00:00Z', to: '2026-01-01T00:00:00Z' });
    assert.deepEqual([backwards.errors?.[0].extensions.code, backwards.errors?.[0].extensions.reason], ['BAD_USER_INPUT', 'INVALID_RANGE']);
  });

  it('opens a QUALITY alert naming the degraded metric, streams it to the owning team on the other instance, and resolves it once the labels are corrected', async () => {
    assert.equal(labelled.length, LABELLED, 'the labels of the first test');
    const degradation = (baselineAccuracy - 0.8) / baselineAccuracy;
    assert.ok(degradation >= 0.05, `the baseline accuracy ${baselineAccuracy} is far enough above 0.8 for a default WARNING`);
    const viewer = open(second.url, t.token(['viewer'], ['fraud'], 'vic'));
    await viewer.acknowledged;
    const alerts = subscribe<any>(viewer, 'alerts', ALERTS_LIVE);
    const reports = subscribe<any>(viewer, 'qualityReport', REPORT_LIVE, { d: production });
    // Live before the monitor runs: a probe published through the first instance reaches the subscriber.
    const probe = `probe-${randomUUID()}`;
    await eventually('the subscriber on the second instance hears the first', async () => {
      const now = new Date();
      publishAlert(t.server.app, Object.assign(new AlertEntity(), {
        id: randomUUID(), teamId: fraudTeamId, createdBy: 'test', createdAt: now, deploymentId: '00000000-0000-4000-8000-000000000000',
        modelVersionId: '00000000-0000-4000-8000-000000000000', kind: AlertKind.QUALITY, severity: AlertSeverity.WARNING, status: AlertStatus.OPEN,
        feature: probe, statistic: probe, value: 0, threshold: 0, pValue: null, windowStart: now, windowEnd: now, lastSeenAt: now, occurrences: 1, details: {},
      }));
      return alerts.events.some((a) => a.feature === probe) ? true : undefined;
    }, 20_000, 100);
    const real = (s: Subscription<any>) => s.events.filter((a) => a.feature !== probe);

    await runMonitor();
    const [opened] = (await qualityAlerts()).filter((a) => a.feature === 'accuracy');
    assert.ok(opened, 'an accuracy alert opened');
    assert.deepEqual(
      [opened.kind, opened.status, opened.statistic, opened.severity, opened.modelVersion.id, opened.deployment.name],
      ['QUALITY', 'OPEN', 'accuracy', degradation >= 0.1 ? 'CRITICAL' : 'WARNING', v1, 'fraud-detector-production'],
    );
    assert.ok(Math.abs(opened.value - 0.8) < 1e-12);
    assert.ok(Math.abs(opened.threshold - baselineAccuracy * 0.95) < 1e-12, 'the accuracy at which the warning starts');
    assert.deepEqual([opened.details.baseline, opened.details.labelled], [baselineAccuracy, LABELLED]);
    assert.ok(Math.abs(opened.details.relativeChange + degradation) < 1e-12);

    await eventually('the alert on the second instance', async () => (real(alerts).some((a) => a.id === opened.id && a.status === 'OPEN') ? true : undefined), 10_000, 50);
    await eventually("the pass's quality report on the second instance", async () => (reports.events.length ? true : undefined), 10_000, 50);
    assert.deepEqual(
      reports.events.at(-1).versions.map((v: any) => [v.modelVersionId, v.labelled, v.online.accuracy]),
      [[v1, LABELLED, 0.8]],
    );

    // The labels were wrong, not the model: corrected, the same pass finds accuracy back and closes the alert.
    const fixed = await record(flipped.map(({ prediction, row, label }) => ({ prediction, row, label: 1 - label, correct: true })));
    assert.deepEqual([fixed.corrected, fixed.rejected], [flipped.length, 0]);
    await runMonitor();
    const [resolved] = (await qualityAlerts()).filter((a) => a.id === opened.id);
    assert.deepEqual([resolved.status, resolved.resolvedBy], ['RESOLVED', 'monitor']);
    await eventually('the resolution on the second instance', async () => (real(alerts).some((a) => a.id === opened.id && a.status === 'RESOLVED') ? true : undefined), 10_000, 50);
    assert.deepEqual([alerts.errors, reports.errors], [[], []]);
    const again = await t.gql(engineer, REPORT, { d: production });
    assert.equal(again.data.qualityReport.versions[0].online.accuracy, 1);
  });

  it("reads a canary's quality beside the champion's over the windows both served", async () => {
    const d = await t.gql(engineer, `{ deployments(filter: { team: "fraud", environment: STAGING }) { nodes { id } } }`);
    const staging = d.data.deployments.nodes[0].id as string;
    const sent: Array<{ prediction: string; version: string; calledFraud: boolean; window: number }> = [];
    // 90/10 split, one row per request: both versions answer some of 120 requests.
    for (let i = 0; i < 120; i++) {
      const r = await t.gql(service, PREDICT, { d: staging, inputs: { features: [fraudRow(1000 + i)] } });
      assert.equal(r.errors, undefined, JSON.stringify(r.errors));
      sent.push({ prediction: r.data.predict.id, version: r.data.predict.modelVersionId, calledFraud: r.data.predict.outputs.probability[0].at(-1) >= 0.5, window: 0 });
    }
    await t.server.app.inference!.log.flush();
    // The rollup window each prediction fell in, from when its log record says it happened.
    const span = t.config.inference.windowSeconds * 1000;
    const logged = await t.sql(`SELECT id::text AS id, occurred_at FROM prediction_log WHERE deployment_id = $1`, [Buffer.from(staging, 'base64url').toString().split(':')[1]]);
    const windowOf = new Map(logged.map((l) => [l.id, Math.floor(new Date(l.occurred_at).getTime() / span)]));
    for (const s of sent) s.window = windowOf.get(Buffer.from(s.prediction, 'base64url').toString().split(':')[1])!;
    // Every label says fraud: accuracy is the share of rows a version called fraud.
    const recorded = await t.gql(service, RECORD, { input: { deployment: staging, outcomes: sent.map((s) => ({ prediction: s.prediction, row: 0, label: 1 })) } });
    assert.equal(recorded.data.recordOutcomes.recorded, sent.length);
    const versions = [...new Set(sent.map((s) => s.version))].sort();
    assert.equal(versions.length, 2, 'both versions answered');
    const accuracy = (rows: typeof sent) => rows.filter((s) => s.calledFraud).length / rows.length;

    const r = await t.gql(engineer, REPORT, { d: staging });
    assert.equal(r.errors, undefined, JSON.stringify(r.errors));
    const report = r.data.qualityReport.versions as any[];
    assert.deepEqual(report.map((v) => v.modelVersionId).sort(), versions);
    for (const v of report) {
      const mine = sent.filter((s) => s.version === v.modelVersionId);
      const windows = new Set(mine.map((s) => s.window));
      const beside = sent.filter((s) => s.version !== v.modelVersionId && windows.has(s.window));
      assert.deepEqual([v.labelled, v.online.accuracy], [mine.length, accuracy(mine)]);
      assert.deepEqual(
        v.peers.map((p: any) => [p.modelVersionId, p.labelled]),
        beside.length ? [[versions.find((x) => x !== v.modelVersionId), beside.length]] : [],
      );
    }
    const canary = report.find((v) => v.version === 2);
    const champion = sent.filter((s) => s.version !== canary.modelVersionId && sent.some((c) => c.version === canary.modelVersionId && c.window === s.window));
    const figures = await t.gql(engineer, `query($d: ID!) { qualityReport(deployment: $d) { versions { version peers { online { accuracy } } } } }`, { d: staging });
    const [peer] = figures.data.qualityReport.versions.find((v: any) => v.version === 2).peers;
    assert.equal(peer.online.accuracy, accuracy(champion), "the champion's accuracy over the canary's windows");
  });

  it("keeps the report from another team's members, on the query and the subscription", async () => {
    const vision = t.token(['viewer'], ['vision'], 'val');
    const r = await t.gql(vision, REPORT, { d: production });
    assert.deepEqual(r.data, { qualityReport: null });
    assert.equal(r.errors?.[0].extensions.code, 'NOT_FOUND');
    assert.ok(!JSON.stringify(r.errors).includes('fraud-detector'), JSON.stringify(r.errors));
    const socket = open(second.url, vision);
    await socket.acknowledged;
    const live = subscribe<any>(socket, 'qualityReport', REPORT_LIVE, { d: production });
    await eventually('the subscription refused', async () => (live.completed ? true : undefined), 10_000, 50);
    assert.deepEqual(live.events, []);
    assert.deepEqual(live.errors.map((e) => (e as { extensions: { code: string } }).extensions.code), ['NOT_FOUND']);
  });

  it('refuses quality settings out of range with the reason and the field, and audits the ones it takes', async () => {
    const refused = async (q: Record<string, unknown>, field: string) => {
      const r = await t.gql(engineer, MONITORING, { d: production, q });
      assert.equal(r.errors?.[0].extensions.code, 'BAD_USER_INPUT', JSON.stringify(r));
      assert.deepEqual([r.errors?.[0].extensions.reason, r.errors?.[0].extensions.field], ['QUALITY_SETTINGS', field], JSON.stringify(r.errors));
    };
    await refused({ warning: 0.2, critical: 0.1 }, 'quality.warning');
    await refused({ warning: 0 }, 'quality.warning');
    await refused({ critical: 1 }, 'quality.critical');
    await refused({ critical: 0.04 }, 'quality.critical');
    await refused({ minLabelled: 0 }, 'quality.minLabelled');
    await refused({ lookbackSeconds: 10 }, 'quality.lookbackSeconds');
    const before = await t.gql(engineer, `query($d: ID!) { node(id: $d) { ... on Deployment { monitoring } } }`, { d: production });
    assert.deepEqual(before.data.node.monitoring.quality, { warning: 0.05, critical: 0.1, minLabelled: 100, lookbackSeconds: 86400 }, 'refusals changed nothing');

    const ok = await t.gql(engineer, MONITORING, { d: production, q: { warning: 0.02, minLabelled: 50 } });
    assert.equal(ok.errors, undefined, JSON.stringify(ok.errors));
    assert.deepEqual(ok.data.setDeploymentMonitoring.monitoring.quality, { warning: 0.02, critical: 0.1, minLabelled: 50, lookbackSeconds: 86400 });
    const [event] = await t.sql(`SELECT action, after FROM audit_event WHERE action = 'setDeploymentMonitoring' ORDER BY seq DESC LIMIT 1`);
    assert.deepEqual(event.after.quality, { warning: 0.02, minLabelled: 50 });
    const viewer = await t.gql(t.token(['viewer'], ['fraud'], 'vic'), MONITORING, { d: production, q: { warning: 0.03 } });
    assert.equal(viewer.errors?.[0].extensions.code, 'FORBIDDEN', 'a viewer reads the settings but cannot change them');
  });
});
