import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createClient, type Client } from 'graphql-ws';
import WebSocket from 'ws';
import { startTestServer, type TestServer } from '../support/harness';
import { eventually } from '../support/processes';
import { uploadArtifact } from '../support/http';
import { PREDICT } from '../support/inference';
import { plantRollup } from '../support/rollups';
import { syntheticCsv } from '../../jobs/trainers/synthetic-data';
import { buildLogisticRegressionOnnx } from '../../src/registry/onnx-builders';
import { TOPICS } from '../../src/core/events';
import { QUEUES } from '../../src/core/queue/queues';

const uuidOf = (id: string) => Buffer.from(id, 'base64url').toString().split(':')[1];
const ROLLOUT = 'id status strategy steps currentStep percent reason';
const SPLIT = 'trafficSplit { weight modelVersion { version } }';

describe('rollouts', () => {
  let t: TestServer;
  let engineer: string;
  let service: string;
  let staging: string;
  let production: string;
  let v1: string;
  let v2: string;
  const sockets: Client[] = [];

  before(async () => {
    // Serving statistics in 1 s windows, so that the traffic a step sees is recorded while it bakes.
    t = await startTestServer({ demo: true, env: { INFERENCE_RATE_LIMIT_PER_SECOND: '1000000', SERVING_WINDOW_SECONDS: '1' } });
    engineer = t.token(['ml-engineer'], ['fraud'], 'rolf');
    service = t.token(['service'], ['fraud'], 'svc');
    const r = await t.gql(engineer, `{
      models(filter: { name: "fraud-detector" }) { nodes { versions { id version } } }
      deployments(filter: { team: "fraud" }) { nodes { id environment } }
    }`);
    const versions = r.data.models.nodes[0].versions;
    v1 = versions.find((v: { version: number }) => v.version === 1).id;
    v2 = versions.find((v: { version: number }) => v.version === 2).id;
    staging = r.data.deployments.nodes.find((d: { environment: string }) => d.environment === 'STAGING').id;
    production = r.data.deployments.nodes.find((d: { environment: string }) => d.environment === 'PRODUCTION').id;
  });
  after(async () => {
    for (const s of sockets) await s.dispose();
    await t?.stop();
  });

  const split = async (deployment: string) => {
    const r = await t.gql(engineer, `query($id: ID!) { node(id: $id) { ... on Deployment { ${SPLIT} activeRollout { id } lastStableVersion { version } } } }`, { id: deployment });
    return r.data.node;
  };
  const start = (input: Record<string, unknown>, token = engineer) => t.gql(token, `mutation($i: StartRolloutInput!) { startRollout(input: $i) { ${ROLLOUT} } }`, { i: input });
  const rolloutStatus = (id: string) =>
    t.gql(engineer, `query($id: ID!) { node(id: $id) { ... on Rollout { ${ROLLOUT} } } }`, { id }).then((r) => r.data.node);
  const finished = (id: string, ms = 30_000) =>
    eventually(`rollout ${id} to finish`, async () => {
      const r = await rolloutStatus(id);
      return ['SUCCEEDED', 'ROLLED_BACK', 'ABORTED'].includes(r.status) ? r : undefined;
    }, ms);

  const deploymentOf = async (name: string, slos: Record<string, number>) => {
    const r = await t.gql(engineer, `mutation($n: String!, $v: ID!, $s: JSONObject) { createDeployment(input: { team: "fraud", name: $n, environment: DEVELOPMENT, slos: $s, trafficSplit: [{ modelVersion: $v, weight: 100 }] }) { id } }`, { n: name, v: v1, s: slos });
    assert.equal(r.errors, undefined, JSON.stringify(r.errors));
    return r.data.createDeployment.id as string;
  };
  const trail = (rollout: string) => t.sql(`SELECT action, actor_id, reason, after FROM audit_event WHERE subject_id = $1 ORDER BY seq`, [rollout]);

  it('walks a canary through its steps; the split, the audit trail and the subscription show each one', async () => {
    const client = createClient({ url: t.url.replace(/^http/, 'ws') + '/graphql', webSocketImpl: WebSocket, connectionParams: { authorization: `Bearer ${engineer}` }, retryAttempts: 0, lazy: false });
    sockets.push(client);
    const seen: Array<{ status: string; percent: number }> = [];
    let answered = 0;
    let failed: unknown;
    client.subscribe(
      { query: `subscription($d: ID!) { rolloutUpdated(deployment: $d) { status percent } }`, variables: { d: staging } },
      {
        next: (m) => {
          answered += 1;
          if (m.data?.rolloutUpdated) seen.push(m.data.rolloutUpdated as { status: string; percent: number });
        },
        error: (e) => (failed = e),
        complete: () => undefined,
      },
    );
    // Live once an event of the deployment reaches it: before any rollout it is answered NOT_FOUND.
    await eventually('the subscription to be live', async () => {
      assert.equal(failed, undefined, String(failed));
      if (answered > 0) return true;
      await t.server.app.events!.publish(TOPICS.rolloutUpdated, { id: uuidOf(staging) });
      return undefined;
    }, 30_000, 100);

    // Each step advances only on evidence: what the inference path records for one long window
    // spanning every step, 100 clean requests for v2 (and 400 for v1 beside it).
    const started = await start({ deployment: staging, modelVersion: v2, strategy: 'CANARY', steps: [20, 60, 100], bakeSeconds: 1, minRequests: 100 });
    await plantRollup(t, uuidOf(staging), uuidOf(v2), { requests: 100, errors: 0, latencyMs: 4, windowSeconds: 600 });
    await plantRollup(t, uuidOf(staging), uuidOf(v1), { requests: 400, errors: 0, latencyMs: 4, windowSeconds: 600 });
    assert.equal(started.errors, undefined, JSON.stringify(started.errors));
    assert.equal(started.data.startRollout.percent, 20);
    const first = await split(staging);
    assert.deepEqual(first.trafficSplit, [{ weight: 80, modelVersion: { version: 1 } }, { weight: 20, modelVersion: { version: 2 } }]);

    const blocked = await t.gql(engineer, `mutation($d: ID!, $v: ID!) { setTrafficSplit(input: { deployment: $d, trafficSplit: [{ modelVersion: $v, weight: 100 }] }) { id } }`, { d: staging, v: v1 });
    assert.equal(blocked.errors?.[0].extensions.reason, 'ROLLOUT_IN_PROGRESS', 'no manual split while a rollout runs');

    const done = await finished(started.data.startRollout.id);
    assert.equal(done.status, 'SUCCEEDED', JSON.stringify(done));
    const last = await split(staging);
    assert.deepEqual(last.trafficSplit, [{ weight: 100, modelVersion: { version: 2 } }]);
    assert.equal(last.activeRollout, null);
    assert.equal(last.lastStableVersion.version, 2);

    // (A step judged before the window was recorded held; it advanced once the window was there.)
    const events = (await trail(started.data.startRollout.id)).filter((e: { action: string }) => e.action !== 'holdRollout');
    assert.deepEqual(events.map((e: { action: string }) => e.action), ['startRollout', 'advanceRollout', 'advanceRollout', 'advanceRollout']);
    assert.deepEqual(events.slice(1, 3).map((e: { after: { percent: number } }) => e.after.percent), [60, 100]);
    assert.match(events[1].reason, /health check passed: healthy over 100 requests; error rate not significantly worse than the baseline's/);
    for (const e of events.slice(1)) {
      assert.equal(e.after.verdict.verdict, 'advance');
      assert.equal(e.after.verdict.decidedBy, 'all checks passed');
      assert.deepEqual([e.after.verdict.observed.requests, e.after.verdict.observed.errors, e.after.verdict.minRequests], [100, 0, 100]);
      assert.deepEqual([e.after.verdict.baseline.requests, e.after.verdict.comparison.significant], [400, false]);
    }
    await eventually('the subscriber to see the end', async () => (seen.some((s) => s.status === 'SUCCEEDED') ? true : undefined), 10_000);
    const percents = seen.filter((s) => s.status === 'IN_PROGRESS').map((s) => s.percent);
    for (const p of [20, 60, 100]) assert.ok(percents.includes(p) || (p === 100 && seen.some((s) => s.percent === 100)), `saw ${p} % (${JSON.stringify(seen)})`);
  });

  it('rolls back automatically when the new version breaches an SLO, and says which', async () => {
    const reviewer = t.token(['reviewer'], ['fraud'], 'rita-reviewer');
    const approved = await t.gql(reviewer, `mutation($v: ID!) { approveModelVersion(input: { modelVersion: $v, reason: "ready for canary" }) { status } }`, { v: v2 });
    assert.equal(approved.errors, undefined, JSON.stringify(approved.errors));
    const started = await start({ deployment: production, modelVersion: v2, strategy: 'CANARY', steps: [10, 50, 100], bakeSeconds: 2 });
    assert.equal(started.errors, undefined, JSON.stringify(started.errors));
    // What the inference path will record: 30 errors in 100 requests against an SLO of 1 %.
    await plantRollup(t, uuidOf(production), uuidOf(v2), { requests: 100, errors: 30, latencyMs: 12, windowSeconds: 60 });
    const done = await finished(started.data.startRollout.id);
    assert.equal(done.status, 'ROLLED_BACK');
    assert.match(done.reason, /automatic rollback at step 1 \(10 %\): error rate 0\.3000 > SLO 0\.01/);
    assert.deepEqual((await split(production)).trafficSplit, [{ weight: 100, modelVersion: { version: 1 } }]);
    const [event] = await t.sql(`SELECT actor_id, via, reason FROM audit_event WHERE action = 'rollbackRollout' AND subject_id = $1`, [started.data.startRollout.id]);
    // The step job acts as whoever started the rollout, and says so.
    assert.equal(event.actor_id, 'rolf');
    assert.deepEqual(event.via, { jobs: [`rollouts/${uuidOf(started.data.startRollout.id)}-g1`], onBehalfOf: [] });
    assert.match(event.reason, /error rate/);
  });

  it('switches blue-green at once and rolls the deployment back on request', async () => {
    const started = await start({ deployment: staging, modelVersion: v1, strategy: 'BLUE_GREEN', bakeSeconds: 600 });
    assert.equal(started.errors, undefined, JSON.stringify(started.errors));
    assert.deepEqual((await split(staging)).trafficSplit, [{ weight: 100, modelVersion: { version: 1 } }]);
    const back = await t.gql(engineer, `mutation($d: ID!) { rollbackDeployment(input: { deployment: $d, reason: "bad dashboards" }) { ${SPLIT} } }`, { d: staging });
    assert.equal(back.errors, undefined, JSON.stringify(back.errors));
    assert.deepEqual(back.data.rollbackDeployment.trafficSplit, [{ weight: 100, modelVersion: { version: 2 } }]);
    const r = await rolloutStatus(started.data.startRollout.id);
    assert.equal(r.status, 'ROLLED_BACK');
    assert.equal(r.reason, 'bad dashboards');
  });

  it('mirrors traffic to a shadow without serving it; pause holds a step, promote moves it', async () => {
    const shadow = await start({ deployment: production, modelVersion: v2, strategy: 'SHADOW', bakeSeconds: 600 });
    assert.equal(shadow.errors, undefined, JSON.stringify(shadow.errors));
    const p = await t.gql(engineer, `query($id: ID!) { node(id: $id) { ... on Deployment { ${SPLIT} shadowVersions { version } } } }`, { id: production });
    assert.deepEqual(p.data.node.trafficSplit, [{ weight: 100, modelVersion: { version: 1 } }]);
    assert.deepEqual(p.data.node.shadowVersions, [{ version: 2 }]);
    const aborted = await t.gql(engineer, `mutation($r: ID!) { abortRollout(input: { rollout: $r }) { status } }`, { r: shadow.data.startRollout.id });
    assert.equal(aborted.data.abortRollout.status, 'ABORTED');
    const after = await t.gql(engineer, `query($id: ID!) { node(id: $id) { ... on Deployment { shadowVersions { version } } } }`, { id: production });
    assert.deepEqual(after.data.node.shadowVersions, []);

    const canary = await start({ deployment: production, modelVersion: v2, strategy: 'CANARY', steps: [25, 100], bakeSeconds: 1 });
    const id = canary.data.startRollout.id;
    const paused = await t.gql(engineer, `mutation($r: ID!) { pauseRollout(input: { rollout: $r }) { status } }`, { r: id });
    assert.equal(paused.data.pauseRollout.status, 'PAUSED');
    // The step job scheduled by the start still runs after its bake time: once it has, the pause held.
    const queue = t.server.app.queues!.get(QUEUES.rollouts);
    await eventually('the first step job to run', async () => ((await (await queue.getJob(`${uuidOf(id)}-g1`))?.getState()) === 'completed' ? true : undefined), 30_000);
    assert.deepEqual(await rolloutStatus(id).then((r) => [r.status, r.percent]), ['PAUSED', 25], 'a paused rollout does not advance');
    const PROMOTE = `mutation($r: ID!) { promoteRollout(input: { rollout: $r, reason: "looks good" }) { status percent } }`;
    // The last step (100 %) bakes too; promoting again completes it at once.
    const promoted = await t.gql(engineer, PROMOTE, { r: id });
    assert.deepEqual(promoted.data.promoteRollout, { status: 'IN_PROGRESS', percent: 100 });
    const completed = await t.gql(engineer, PROMOTE, { r: id });
    assert.deepEqual(completed.data.promoteRollout, { status: 'SUCCEEDED', percent: 100 });
    assert.deepEqual((await split(production)).trafficSplit, [{ weight: 100, modelVersion: { version: 2 } }]);
  });

  it('keeps the versions a rollback may return to: they cannot be archived while the rollout runs', async () => {
    // A version that serves one development deployment only, replaced there by a canary of v1.
    const bytes = buildLogisticRegressionOnnx({ weights: [0.3, 0.2, 0.1, 0.4], bias: 0.5 });
    const up = await uploadArtifact(t.url, engineer, bytes);
    const models = await t.gql(engineer, '{ models(filter: { name: "fraud-detector" }) { nodes { id } } }');
    const reg = await t.gql(engineer, 'mutation($m: ID!, $a: String!) { registerModelVersion(input: { model: $m, artifactSha256: $a }) { id } }', {
      m: models.data.models.nodes[0].id,
      a: up.json.sha256,
    });
    const only = reg.data.registerModelVersion.id;
    const dev = await t.gql(engineer, `mutation($v: ID!) { createDeployment(input: { team: "fraud", name: "fraud-dev", environment: DEVELOPMENT, trafficSplit: [{ modelVersion: $v, weight: 100 }] }) { id } }`, { v: only });
    const devId = dev.data.createDeployment.id;
    const r = await start({ deployment: devId, modelVersion: v1, strategy: 'CANARY', steps: [99, 100], bakeSeconds: 600 });
    assert.equal(r.errors, undefined, JSON.stringify(r.errors));
    const promoted = await t.gql(engineer, `mutation($r: ID!) { promoteRollout(input: { rollout: $r }) { percent } }`, { r: r.data.startRollout.id });
    assert.equal(promoted.data.promoteRollout.percent, 100);
    const archived = await t.gql(engineer, `mutation($v: ID!) { archiveModelVersion(input: { modelVersion: $v, reason: "unused?" }) { status } }`, { v: only });
    assert.equal(archived.errors?.[0].extensions.reason, 'REGISTRY_VERSION_SERVING', 'the replaced version is where an abort sends the traffic');
    const aborted = await t.gql(engineer, `mutation($r: ID!) { abortRollout(input: { rollout: $r }) { status } }`, { r: r.data.startRollout.id });
    assert.equal(aborted.data.abortRollout.status, 'ABORTED');
    const back = await t.gql(engineer, `query($id: ID!) { node(id: $id) { ... on Deployment { trafficSplit { weight modelVersion { id } } } } }`, { id: devId });
    assert.deepEqual(back.data.node.trafficSplit, [{ weight: 100, modelVersion: { id: only } }], 'all the traffic is back on the replaced version, and only there');
  });

  it('refuses rollouts to those without rights, and records the attempts', async () => {
    const viewer = t.token(['viewer'], ['fraud'], 'vince');
    const r1 = await start({ deployment: staging, modelVersion: v1, strategy: 'BLUE_GREEN' }, viewer);
    assert.equal(r1.errors?.[0].extensions.code, 'FORBIDDEN');
    const r2 = await t.gql(viewer, `mutation($d: ID!) { rollbackDeployment(input: { deployment: $d }) { id } }`, { d: staging });
    assert.equal(r2.errors?.[0].extensions.code, 'FORBIDDEN');
    const open = await start({ deployment: staging, modelVersion: v1, strategy: 'CANARY', steps: [50, 100], bakeSeconds: 600 });
    assert.equal(open.errors, undefined, JSON.stringify(open.errors));
    const r4 = await t.gql(viewer, `mutation($r: ID!) { promoteRollout(input: { rollout: $r }) { id } }`, { r: open.data.startRollout.id });
    assert.equal(r4.errors?.[0].extensions.code, 'FORBIDDEN');
    await t.gql(engineer, `mutation($r: ID!) { abortRollout(input: { rollout: $r }) { id } }`, { r: open.data.startRollout.id });
    const vision = t.token(['ml-engineer'], ['vision'], 'vic');
    const r3 = await start({ deployment: staging, modelVersion: v1, strategy: 'BLUE_GREEN' }, vision);
    assert.ok(['FORBIDDEN', 'NOT_FOUND'].includes(r3.errors?.[0].extensions.code as string), JSON.stringify(r3.errors));
    const denied = await t.sql(`SELECT actor_id, action FROM audit_event WHERE decision = 'DENIED' AND actor_id IN ('vince', 'vic') ORDER BY seq`);
    assert.deepEqual(denied, [
      { actor_id: 'vince', action: 'startRollout' },
      { actor_id: 'vince', action: 'rollbackDeployment' },
      { actor_id: 'vince', action: 'promoteRollout' },
      { actor_id: 'vic', action: 'startRollout' },
    ]);
  });
  it('never advances a step that saw no traffic: it holds, then pauses with an alert; each verdict is audited with its figures and streamed', async () => {
    const quiet = await deploymentOf('fraud-quiet', { errorRate: 0.01 });
    const client = createClient({ url: t.url.replace(/^http/, 'ws') + '/graphql', webSocketImpl: WebSocket, connectionParams: { authorization: `Bearer ${engineer}` }, retryAttempts: 0, lazy: false });
    sockets.push(client);
    const seen: Array<{ status: string; lastVerdict: { verdict: string } | null }> = [];
    client.subscribe(
      { query: `subscription($d: ID!) { rolloutUpdated(deployment: $d) { status lastVerdict } }`, variables: { d: quiet } },
      { next: (m) => void (m.data?.rolloutUpdated && seen.push(m.data.rolloutUpdated as (typeof seen)[number])), error: () => undefined, complete: () => undefined },
    );
    const started = await start({ deployment: quiet, modelVersion: v2, strategy: 'CANARY', steps: [50, 100], bakeSeconds: 1, maxHoldSeconds: 2 });
    assert.equal(started.errors, undefined, JSON.stringify(started.errors));
    const id = started.data.startRollout.id;
    const paused = await eventually('the rollout to pause', async () => {
      const r = await t.gql(engineer, `query($id: ID!) { node(id: $id) { ... on Rollout { ${ROLLOUT} minRequests maxHoldSeconds lastVerdict } } }`, { id }).then((x) => x.data.node);
      return r.status === 'PAUSED' ? r : undefined;
    }, 30_000);
    assert.equal(paused.percent, 50, 'the step keeps its traffic: it neither advanced nor rolled back');
    assert.equal(paused.minRequests, 200);
    assert.equal(paused.maxHoldSeconds, 2);
    assert.match(paused.reason, /paused at step 1 \(50 %\): 0 of the 200 requests needed after 2 s of hold/);
    assert.equal(paused.lastVerdict.verdict, 'pause');

    const events = await trail(id);
    const actions = events.map((e: { action: string }) => e.action);
    assert.equal(actions[0], 'startRollout');
    assert.equal(actions[actions.length - 1], 'pauseRollout');
    assert.ok(actions.slice(1, -1).length >= 1 && actions.slice(1, -1).every((a: string) => a === 'holdRollout'), JSON.stringify(actions));
    assert.ok(!actions.includes('advanceRollout'));
    for (const e of events.slice(1)) {
      assert.equal(e.actor_id, 'rolf', 'the step acts as whoever started the rollout');
      assert.equal(e.after.verdict.decidedBy, 'minimum sample');
      assert.deepEqual([e.after.verdict.observed.requests, e.after.verdict.minRequests, e.after.verdict.step, e.after.verdict.percent], [0, 200, 0, 50]);
    }
    const hold = events[1];
    assert.equal(hold.after.verdict.verdict, 'hold');
    assert.ok(hold.after.verdict.holdLeftSeconds > 0);
    const pause = events[events.length - 1];
    assert.equal(pause.after.verdict.verdict, 'pause');
    assert.equal(pause.after.verdict.holdLeftSeconds, 0);

    const alerts = await t.gql(engineer, `query($id: ID!) { node(id: $id) { ... on Deployment { openAlerts { id kind severity statistic value threshold modelVersion { id } details } } } }`, { id: quiet });
    assert.equal(alerts.errors, undefined, JSON.stringify(alerts.errors));
    const [alert] = alerts.data.node.openAlerts;
    assert.deepEqual(
      { kind: alert.kind, severity: alert.severity, statistic: alert.statistic, value: alert.value, threshold: alert.threshold, version: alert.modelVersion.id, rollout: alert.details.rollout },
      { kind: 'ROLLOUT_STALLED', severity: 'WARNING', statistic: 'requests', value: 0, threshold: 200, version: v2, rollout: id },
    );
    assert.equal(pause.after.alert, alert.id, 'the pause names its alert');
    await eventually('the subscriber to see the hold and the pause', async () =>
      seen.some((s) => s.lastVerdict?.verdict === 'hold') && seen.some((s) => s.status === 'PAUSED' && s.lastVerdict?.verdict === 'pause') ? true : undefined, 10_000);

    // Paused, it stays where it is: no step job is left to move it.
    await new Promise((r) => setTimeout(r, 1500));
    assert.deepEqual(await rolloutStatus(id).then((r) => [r.status, r.percent]), ['PAUSED', 50]);
    await t.gql(engineer, `mutation($r: ID!) { abortRollout(input: { rollout: $r }) { status } }`, { r: id });
  });

  it('rolls a canary back when its error rate is significantly worse than the baseline\'s over the same windows, though under the absolute SLO', async () => {
    const compared = await deploymentOf('fraud-compare', { errorRate: 0.01 });
    const started = await start({ deployment: compared, modelVersion: v2, strategy: 'CANARY', steps: [10, 100], bakeSeconds: 2, minRequests: 200, significance: 0.05 });
    assert.equal(started.errors, undefined, JSON.stringify(started.errors));
    const id = started.data.startRollout.id;
    // What the inference path records over the same window: the canary fails 3 of 400 (0.75 %, under
    // the 1 % SLO), the baseline 2 of 4000 (0.05 %). z = 3.962, one-sided p = 3.7e-5 (scipy.stats.norm.sf).
    await plantRollup(t, uuidOf(compared), uuidOf(v2), { requests: 400, errors: 3, latencyMs: 5, windowSeconds: 60 });
    await plantRollup(t, uuidOf(compared), uuidOf(v1), { requests: 4000, errors: 2, latencyMs: 5, windowSeconds: 60 });
    const done = await finished(id);
    assert.equal(done.status, 'ROLLED_BACK', JSON.stringify(done));
    assert.match(done.reason, /automatic rollback at step 1 \(10 %\): error rate 0\.0075 is significantly worse than the baseline's 0\.0005 \(z = 3\.96, p = 3\.72e-5 < α = 0\.05\)/);
    assert.deepEqual((await split(compared)).trafficSplit, [{ weight: 100, modelVersion: { version: 1 } }]);
    const [event] = (await trail(id)).filter((e: { action: string }) => e.action === 'rollbackRollout');
    const v = event.after.verdict;
    assert.equal(v.verdict, 'rollback');
    assert.equal(v.decidedBy, 'two-proportion z-test');
    assert.deepEqual([v.observed.requests, v.observed.errors, v.observed.errorRate], [400, 3, 0.0075]);
    assert.deepEqual([v.baseline.requests, v.baseline.errors, v.baseline.versions], [4000, 2, [v1]]);
    assert.equal(v.comparison.test, 'two-proportion z-test (one-sided)');
    assert.ok(Math.abs(v.comparison.z - 3.9620497791909752) < 1e-9, String(v.comparison.z));
    assert.ok(Math.abs(v.comparison.pValue - 3.715452097967761e-5) < 1e-6, String(v.comparison.pValue));
    assert.deepEqual([v.comparison.alpha, v.comparison.significant], [0.05, true]);
  });
  it('rolls a canary back when its online accuracy is significantly worse than the baseline\'s, though its error rate is not', async () => {
    const judged = await deploymentOf('fraud-accuracy', {});
    const started = await start({ deployment: judged, modelVersion: v2, strategy: 'CANARY', steps: [10, 100], bakeSeconds: 2, minRequests: 200, significance: 0.05 });
    assert.equal(started.errors, undefined, JSON.stringify(started.errors));
    const id = started.data.startRollout.id;
    // Outcomes over the same window: the canary decides 140 of 200 labelled rows right (70 %), the
    // baseline 1,800 of 2,000 (90 %). z = 8.35 on the misclassification rates (one-sided).
    await plantRollup(t, uuidOf(judged), uuidOf(v2), { requests: 400, errors: 0, latencyMs: 6, windowSeconds: 60, labelled: { rows: 200, correct: 140 } });
    await plantRollup(t, uuidOf(judged), uuidOf(v1), { requests: 4000, errors: 0, latencyMs: 5, windowSeconds: 60, labelled: { rows: 2000, correct: 1800 } });
    const done = await finished(id);
    assert.equal(done.status, 'ROLLED_BACK', JSON.stringify(done));
    assert.match(done.reason, /online accuracy 0\.7000 over 200 labelled rows is significantly worse than the baseline's 0\.9000 over 2000/);
    const [event] = (await trail(id)).filter((e: { action: string }) => e.action === 'rollbackRollout');
    const v = event.after.verdict;
    assert.equal(v.decidedBy, 'accuracy two-proportion z-test');
    assert.deepEqual([v.observed.labelled, v.observed.correct, v.baseline.labelled, v.baseline.correct], [200, 140, 2000, 1800]);
    assert.equal(v.comparison.significant, false, 'the error rates alone would not have rolled it back');
    assert.ok(v.qualityComparison.significant && Math.abs(v.qualityComparison.z - 8.353794599993101) < 1e-9, JSON.stringify(v.qualityComparison));
    assert.ok(Math.abs(v.p95Ratio - 6 / 5) < 0.03, `p95 ratio ${v.p95Ratio}`);
  });

  it('rolls a canary back when its drift over the step breaches the drift SLO, and names the feature', async () => {
    const drifting = await deploymentOf('fraud-drift', { drift: 0.25 });
    const started = await start({ deployment: drifting, modelVersion: v2, strategy: 'CANARY', steps: [50, 100], bakeSeconds: 2, minRequests: 5 });
    assert.equal(started.errors, undefined, JSON.stringify(started.errors));
    // Rows from the training data's distribution, with merchant_risk shifted by 1.5 sd: real traffic.
    const rows = syntheticCsv({ rows: 1000, seed: 777, features: ['amount', 'hour', 'merchant_risk', 'distance_km'] })
      .trim()
      .split('\n')
      .slice(1)
      .map((line) => line.split(',').slice(0, 4).map(Number))
      .map(([a, h, m, d]) => [a, h, m + 1.5, d]);
    for (let i = 0; i < rows.length; i += 25) {
      const r = await t.gql(service, PREDICT, { d: drifting, inputs: { features: rows.slice(i, i + 25) }, key: `drift-${i}` });
      assert.equal(r.errors, undefined, JSON.stringify(r.errors));
    }
    await t.server.app.inference!.log.flush();
    const done = await finished(started.data.startRollout.id);
    assert.equal(done.status, 'ROLLED_BACK', JSON.stringify(done));
    assert.match(done.reason, /automatic rollback at step 1 \(50 %\): drift \d+\.\d+ \(PSI of merchant_risk over \d+ rows\) > SLO 0\.25/);
    const [event] = (await trail(started.data.startRollout.id)).filter((e: { action: string }) => e.action === 'rollbackRollout');
    assert.equal(event.after.verdict.decidedBy, 'slo:drift');
    assert.equal(event.after.verdict.drift.feature, 'merchant_risk');
    assert.ok(event.after.verdict.drift.score > 0.25 && event.after.verdict.drift.rows > 0, JSON.stringify(event.after.verdict.drift));
    assert.equal(event.after.verdict.observed.driftScore, event.after.verdict.drift.score);
  });
  it('does not promote a SHADOW whose decisions disagree with the served ones: it rolls back with the agreement it measured', async () => {
    const mirrored = await deploymentOf('fraud-mirror', {});
    // A version that calls every row fraud (score ≈ 0.998), shadowing one that mostly does not.
    const up = await uploadArtifact(t.url, engineer, buildLogisticRegressionOnnx({ weights: [0, 0, 0, 0], bias: 6 }));
    const models = await t.gql(engineer, '{ models(filter: { name: "fraud-detector" }) { nodes { id } } }');
    const reg = await t.gql(engineer, 'mutation($m: ID!, $a: String!) { registerModelVersion(input: { model: $m, artifactSha256: $a }) { id } }', { m: models.data.models.nodes[0].id, a: up.json.sha256 });
    const alarmist = reg.data.registerModelVersion.id;
    const started = await start({ deployment: mirrored, modelVersion: alarmist, strategy: 'SHADOW', bakeSeconds: 5, minRequests: 5 });
    assert.equal(started.errors, undefined, JSON.stringify(started.errors));
    await t.server.app.inference!.reconcile();
    const rows = syntheticCsv({ rows: 500, seed: 99, features: ['amount', 'hour', 'merchant_risk', 'distance_km'] })
      .trim()
      .split('\n')
      .slice(1)
      .map((line) => line.split(',').slice(0, 4).map(Number));
    for (let i = 0; i < rows.length; i += 25) {
      const r = await t.gql(service, PREDICT, { d: mirrored, inputs: { features: rows.slice(i, i + 25) }, key: `mirror-${i}` });
      assert.equal(r.errors, undefined, JSON.stringify(r.errors));
    }
    await t.server.app.inference!.log.flush();
    const done = await finished(started.data.startRollout.id);
    assert.equal(done.status, 'ROLLED_BACK', JSON.stringify(done));
    assert.match(done.reason, /automatic rollback at step 1 \(0 %\): decision agreement 0\.\d{4} over \d+ rows \(mean absolute difference 0\.\d{4}\) < 0\.95/);
    const [event] = (await trail(started.data.startRollout.id)).filter((e: { action: string }) => e.action === 'rollbackRollout');
    const { agreement } = event.after.verdict;
    assert.equal(event.after.verdict.decidedBy, 'shadow agreement');
    // The same figures from the prediction log: every row was served (and mirrored) before the bake ended.
    const served = (await t.sql(`SELECT outputs FROM prediction_log WHERE deployment_id = $1 AND NOT shadow`, [uuidOf(mirrored)]))
      .flatMap((r: { outputs: { probability: number[][] } }) => r.outputs.probability.map((p) => p[0]));
    const shadowScore = 1 / (1 + Math.exp(-6));
    assert.equal(agreement.rows, 500);
    assert.equal(served.length, 500);
    assert.ok(Math.abs(agreement.decisionAgreement - served.filter((p: number) => p >= 0.5).length / 500) < 1e-9, JSON.stringify(agreement));
    assert.ok(Math.abs(agreement.meanAbsoluteDifference - served.reduce((a: number, p: number) => a + Math.abs(shadowScore - p), 0) / 500) < 1e-6, JSON.stringify(agreement));
    assert.ok(agreement.decisionAgreement < 0.95, JSON.stringify(agreement));
    assert.equal(agreement.threshold, 0.5);
    const after = await t.gql(engineer, `query($id: ID!) { node(id: $id) { ... on Deployment { shadowVersions { id } } } }`, { id: mirrored });
    assert.deepEqual(after.data.node.shadowVersions, [], 'the shadow no longer receives traffic');
  });
});
