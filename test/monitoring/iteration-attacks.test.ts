import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { syntheticPopulation, type Concept } from '../../jobs/trainers/synthetic-data';
import { DEFAULT_ROLES } from '../../src/access/policy-rules';
import { QUEUES } from '../../src/core/queue/queues';
import { codeOf, startTestServer, type TestServer } from '../support/harness';

const PREDICT = `mutation($d: ID!, $inputs: JSONObject!) { predict(deployment: $d, inputs: $inputs) { id } }`;
const RECORD = `mutation($input: RecordOutcomesInput!) { recordOutcomes(input: $input) { recorded } }`;
const MONITORING = `mutation($input: DeploymentMonitoringInput!) { setDeploymentMonitoring(input: $input) { id } }`;
const RETRAIN = `mutation($input: SetRetrainPolicyInput!) { setRetrainPolicy(input: $input) { id retrainPolicy { schedule } } }`;
const PROMOTION = `mutation($input: SetPromotionPolicyInput!) { setPromotionPolicy(input: $input) { id promotionPolicy { approval } } }`;
const ITERATIONS = `query($d: ID!) { iterations(deployment: $d) { id status message steps { step detail } } }`;
const POLICIES = `query($id: ID!) { node(id: $id) { ... on Deployment { retrainPolicy { schedule } } } }`;
const SPLIT = `query($id: ID!) { node(id: $id) { ... on Deployment { trafficSplit { weight modelVersion { id } } } } }`;
const FINISHED = new Set(['PROMOTED', 'HANDED_OFF', 'REJECTED', 'ROLLED_BACK', 'FAILED']);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('the iteration loop under attack', () => {
  let t: TestServer;
  let engineer: string;
  let service: string;
  let champion: string;
  const population = syntheticPopulation({ seed: 4242, nFeatures: 4 });

  const gql = async (token: string, query: string, variables: Record<string, unknown> = {}) => {
    const r = await t.gql(token, query, variables);
    assert.equal(r.errors, undefined, JSON.stringify(r.errors));
    return r.data;
  };
  const batch = async (d: string, concept: Concept, rows = 10) => {
    const drawn = Array.from({ length: rows }, () => population.draw(concept));
    const p = await gql(service, PREDICT, { d, inputs: { features: drawn.map((x) => x.x) } });
    await gql(service, RECORD, { input: { deployment: d, outcomes: drawn.map((x, row) => ({ prediction: p.predict.id, row, label: x.label })) } });
  };
  /** A new deployment of the demo's champion alone, with `batches` of shifted traffic logged. */
  const deployment = async (name: string, batches = 60, environment = 'STAGING') => {
    const d = (
      await gql(engineer, `mutation($v: ID!, $n: String!, $e: DeploymentEnvironment!) { createDeployment(input: { team: "fraud", name: $n, environment: $e, trafficSplit: [{ modelVersion: $v, weight: 100 }] }) { id } }`, { v: champion, n: name, e: environment })
    ).createDeployment.id;
    await gql(engineer, MONITORING, { input: { deployment: d, windowSeconds: 5, everySeconds: 1, minRequests: 5 } });
    for (let i = 0; i < batches; i++) await batch(d, 'shifted');
    return d;
  };
  const latest = async (d: string) => (await gql(engineer, ITERATIONS, { d })).iterations[0] ?? null;
  const waitFor = async (d: string, done: (it: any) => boolean, what: string, timeoutMs = 90_000) => {
    const deadline = Date.now() + timeoutMs;
    let last = null;
    while (Date.now() < deadline) {
      last = await latest(d);
      if (last && done(last)) return last;
      if (last && FINISHED.has(last.status)) assert.fail(`iteration finished ${last.status}: ${last.message}`);
      await sleep(250);
    }
    assert.fail(`${what} not reached in time; last: ${JSON.stringify(last)}`);
  };

  before(async () => {
    t = await startTestServer({ demo: true, env: { LOOP_TICK_SECONDS: '1', MONITOR_WINDOW_SECONDS: '5', MONITOR_EVERY_SECONDS: '1', MONITOR_MIN_REQUESTS: '5' } });
    engineer = t.token(['ml-engineer'], ['fraud'], 'erin-engineer');
    service = t.token(['service'], ['fraud'], 'svc-fraud');
    const list = await gql(engineer, `{ deployments(filter: { team: "fraud" }) { nodes { id environment } } }`);
    const production = list.deployments.nodes.find((d: { environment: string }) => d.environment === 'PRODUCTION').id;
    champion = (await gql(engineer, SPLIT, { id: production })).node.trafficSplit[0].modelVersion.id;
  });
  after(async () => {
    await t?.stop();
  });

  it('refuses a schedule that is not five or six cron fields, writing nothing', async () => {
    const d = (
      await gql(engineer, `mutation($v: ID!) { createDeployment(input: { team: "fraud", name: "fraud-cron", environment: STAGING, trafficSplit: [{ modelVersion: $v, weight: 100 }] }) { id } }`, { v: champion })
    ).createDeployment.id;
    // cron-parser pads short expressions with '*': "0" would retrain every minute of every Sunday.
    for (const schedule of ['0', '5 4', '* * *', '0 3 * *', '* * * * * * *']) {
      const r = await t.gql(engineer, RETRAIN, { input: { deployment: d, schedule } });
      assert.equal(codeOf(r), 'BAD_USER_INPUT', `${schedule}: ${JSON.stringify(r)}`);
      assert.equal(r.errors![0].extensions!.reason, 'LOOP_POLICY');
      assert.equal(r.errors![0].extensions!.field, 'schedule');
    }
    assert.equal((await gql(engineer, POLICIES, { id: d })).node.retrainPolicy, null);
    for (const schedule of ['0 3 * * 1', '*/10 * * * * *', ' 0 3 * * 1 ']) {
      assert.equal((await gql(engineer, RETRAIN, { input: { deployment: d, schedule, enabled: false } })).setRetrainPolicy.retrainPolicy.schedule, schedule.trim());
    }
  });

  it('a rollout a person started first makes the loop wait for it, not fail', async () => {
    const d = await deployment('fraud-busy');
    // A person shadows the serving version for a long while: the deployment is busy.
    const busy = await gql(engineer, `mutation($i: StartRolloutInput!) { startRollout(input: $i) { id status } }`, {
      i: { deployment: d, modelVersion: champion, strategy: 'SHADOW', bakeSeconds: 3600, minRequests: 1000000 },
    });
    assert.equal(busy.startRollout.status, 'IN_PROGRESS');
    await gql(engineer, PROMOTION, { input: { deployment: d, shadowSeconds: 0, steps: [50, 100], bakeSeconds: 2, minRequests: 10 } });
    await gql(engineer, RETRAIN, { input: { deployment: d, schedule: '* * * * * *', cooldownSeconds: 600, sampleWindows: 60, holdoutShare: 0.3, gate: { minRows: 60 } } });
    const waiting = await waitFor(d, (it) => it.status === 'GATING' && /waiting for the rollout already in progress/.test(it.message ?? ''), 'waiting for the busy deployment');
    assert.deepEqual(waiting.steps.map((s: { step: string }) => s.step), ['TRIGGERED', 'SAMPLED', 'TRAINING_STARTED', 'CANDIDATE_REGISTERED']);
    // Once the person's rollout ends, the loop starts its own.
    await gql(engineer, `mutation($r: ID!) { abortRollout(input: { rollout: $r, reason: "done looking" }) { status } }`, { r: busy.startRollout.id });
    const moved = await waitFor(d, (it) => it.steps.some((s: { step: string }) => s.step === 'CANARY_STARTED'), 'the loop\'s canary');
    assert.ok(['CANARY', 'PROMOTED'].includes(moved.status), JSON.stringify(moved));
  });

  it("automatic approval rests on the iteration's own gate verdict, not on a comparison someone recorded on the candidate since", async () => {
    const lead = t.token(['ml-engineer', 'reviewer'], ['fraud'], 'lee-lead');
    const d = await deployment('fraud-swap', 60, 'PRODUCTION');
    await gql(lead, PROMOTION, { input: { deployment: d, shadowSeconds: 6, steps: [50, 100], bakeSeconds: 2, minRequests: 10, approval: 'AUTOMATIC', autoApproveMargin: 0.2 } });
    await gql(engineer, RETRAIN, { input: { deployment: d, schedule: '* * * * * *', cooldownSeconds: 600, sampleWindows: 60, holdoutShare: 0.3, gate: { minRows: 60 } } });
    const shadow = await waitFor(d, (it) => it.status === 'SHADOW', 'the shadow');
    const ITERATION = `query($id: ID!) { iteration(id: $id) { status message candidate { id status } holdout { id } gate { candidateFigures { accuracy } championFigures { accuracy } } steps { step detail } } }`;
    const during = (await gql(engineer, ITERATION, { id: shadow.id })).iteration;
    assert.ok(during.gate.candidateFigures.accuracy - during.gate.championFigures.accuracy >= 0.2, JSON.stringify(during.gate));
    // Meanwhile an engineer (who may not approve) records another comparison on the candidate: a threshold that makes both models alike.
    const other = await gql(engineer, `mutation($i: ChallengeModelVersionInput!) { challengeModelVersion(input: $i) { decision candidateFigures { accuracy } championFigures { accuracy } } }`, {
      i: { candidate: during.candidate.id, champion, holdout: during.holdout.id, policy: { minRows: 1, decisionThreshold: 0.999 } },
    });
    assert.ok(Math.abs(other.challengeModelVersion.candidateFigures.accuracy - other.challengeModelVersion.championFigures.accuracy) < 0.2, JSON.stringify(other));
    let running = true;
    const traffic = (async () => {
      while (running) await batch(d, 'shifted');
    })();
    try {
      const moved = await waitFor(d, (it) => it.status !== 'SHADOW', 'the end of the shadow');
      const approved = moved.steps.find((s: { step: string }) => s.step === 'APPROVED');
      assert.ok(approved, `the policy approved the candidate on its own verdict: ${JSON.stringify(moved)}`);
      assert.ok(approved.detail.margin >= 0.2, JSON.stringify(approved.detail));
    } finally {
      running = false;
      await traffic;
    }
  });

  it('an iteration that ends while awaiting approval closes its approval request', async () => {
    const admin = t.token(['admin'], ['fraud'], 'root');
    const reviewer = t.token(['reviewer'], ['fraud'], 'rae-reviewer');
    const created = (await gql(admin, 'mutation { createApiKey(input: { name: "release-bot", roles: ["ml-engineer"], teams: ["fraud"] }) { key apiKey { id } } }')).createApiKey;
    const d = await deployment('fraud-bot', 60, 'PRODUCTION');
    // The promotion policy is set by an API key, which is revoked while the iteration waits for a reviewer.
    const res = await fetch(`${t.url}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `ApiKey ${created.key}` },
      body: JSON.stringify({ query: PROMOTION, variables: { input: { deployment: d, shadowSeconds: 0, steps: [50, 100], bakeSeconds: 2, minRequests: 10 } } }),
    });
    const set = (await res.json()) as { errors?: unknown };
    assert.equal(set.errors, undefined, JSON.stringify(set.errors));
    await gql(engineer, RETRAIN, { input: { deployment: d, schedule: '* * * * * *', cooldownSeconds: 600, sampleWindows: 60, holdoutShare: 0.3, gate: { minRows: 60 } } });
    const waiting = await waitFor(d, (it) => it.status === 'AWAITING_APPROVAL', 'awaiting approval');
    const ITERATION = `query($id: ID!) { iteration(id: $id) { status message candidate { id } approvalAlert { id status } } }`;
    const before = (await gql(engineer, ITERATION, { id: waiting.id })).iteration;
    assert.equal(before.approvalAlert.status, 'OPEN');
    await gql(admin, 'mutation($id: ID!) { revokeApiKey(input: { apiKey: $id }) { revokedAt } }', { id: created.apiKey.id });
    await gql(reviewer, `mutation($id: ID!) { approveModelVersion(input: { modelVersion: $id, reason: "figures checked" }) { status } }`, { id: before.candidate.id });
    const deadline = Date.now() + 30_000;
    let ended = before;
    while (Date.now() < deadline && !FINISHED.has(ended.status)) {
      await sleep(250);
      ended = (await gql(engineer, ITERATION, { id: waiting.id })).iteration;
    }
    assert.equal(ended.status, 'FAILED', JSON.stringify(ended));
    assert.match(ended.message, /promotion policy's setter cannot be established/);
    // Nobody is left paged for an iteration that is over.
    assert.equal(ended.approvalAlert.status, 'RESOLVED', JSON.stringify(ended));
  });

  it('a setter who may no longer start training runs begins no iteration; restored, the policy acts again', async () => {
    const admin = t.token(['admin'], [], 'ada-admin');
    const engineerRules = DEFAULT_ROLES.find((r) => r.name === 'ml-engineer')!.rules;
    const setRole = (rules: unknown[]) => gql(admin, `mutation($i: UpsertRoleInput!) { upsertRole(input: $i) { name } }`, { i: { name: 'loop-engineer', rules } });
    await setRole(engineerRules);
    const setter = t.token(['loop-engineer'], ['fraud'], 'lou-engineer');
    const d = await deployment('fraud-rights', 30);
    await setRole([...engineerRules, { action: 'create', subject: 'TrainingRun', inverted: true, reason: 'no more training' }]);
    // Allowed when set (checked then) — set before the rights were withdrawn would be the same: the check at each trigger is what counts.
    await setRole(engineerRules);
    // The loop's queue holds the schedule's firings until the rights are withdrawn: one that ran in
    // between would rightly begin an iteration.
    const loopQueue = t.server.app.queues!.get(QUEUES.loop);
    await loopQueue.pause();
    try {
      await gql(setter, RETRAIN, { input: { deployment: d, schedule: '* * * * * *', cooldownSeconds: 600, sampleWindows: 60, holdoutShare: 0.3, gate: { minRows: 60 } } });
      await setRole([...engineerRules, { action: 'create', subject: 'TrainingRun', inverted: true, reason: 'no more training' }]);
    } finally {
      await loopQueue.resume();
    }
    // The schedule fires every second: give it several chances.
    const since = Date.now();
    while (Date.now() - since < 3500) {
      assert.equal(await latest(d), null, 'no iteration begins for a setter without the right to train');
      await sleep(250);
    }
    await setRole(engineerRules);
    const begun = await waitFor(d, () => true, 'an iteration once the rights are back');
    assert.ok(begun.steps.length >= 1);
  });
});
