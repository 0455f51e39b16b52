import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startTestServer, workerEnv, type TestServer } from '../support/harness';
import { eventually } from '../support/processes';
import { Traffic } from '../support/traffic';
import { storedDatasetVersion, trainerInputs, waitForRun } from '../support/training';

const WORKER = path.resolve(__dirname, '../../jobs/worker.js');
const PREDICT = `mutation($d: ID!, $inputs: JSONObject!) { predict(deployment: $d, inputs: $inputs) { id } }`;
const MONITORING = `mutation($input: DeploymentMonitoringInput!) { setDeploymentMonitoring(input: $input) { id } }`;
const RETRAIN = `mutation($input: SetRetrainPolicyInput!) { setRetrainPolicy(input: $input) { id } }`;
const PROMOTION = `mutation($input: SetPromotionPolicyInput!) { setPromotionPolicy(input: $input) { id } }`;
const ITERATIONS = `query($d: ID!) { iterations(deployment: $d) { id status message } }`;
const ITERATION = `query($id: ID!) { iteration(id: $id) {
  id status message requestId
  candidate { id } trainingRun { id status }
  canaryRollout { id status }
  steps { step auditEvent }
} }`;
const SPLIT = `query($id: ID!) { node(id: $id) { ... on Deployment { trafficSplit { weight modelVersion { id } } } } }`;
const AUDIT = `query($r: String!) { auditEvents(first: 200, filter: { requestId: $r }) { nodes { action } } }`;

const FINISHED = new Set(['PROMOTED', 'HANDED_OFF', 'REJECTED', 'ROLLED_BACK', 'FAILED']);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const uuidOf = (id: string) => Buffer.from(id, 'base64url').toString().split(':')[1];
const count = <T>(xs: T[], x: T) => xs.filter((y) => y === x).length;

describe('a worker killed during training or during a rollout step resumes: one version, one rollout, no step taken twice', () => {
  const TEAM = 'resume-team';
  let t: TestServer;
  let engineer: string;
  let service: string;
  let auditor: string;
  let trainingInput: (config: Record<string, unknown>) => Record<string, unknown>;
  const workers: ChildProcess[] = [];

  const gql = async (token: string, query: string, variables: Record<string, unknown> = {}) => {
    const r = await t.gql(token, query, variables);
    assert.equal(r.errors, undefined, JSON.stringify(r.errors));
    return r.data;
  };

  const startWorker = (): ChildProcess => {
    const env = workerEnv(t, {
      WORKER_LOCK_MS: '3000',
      LOOP_TICK_SECONDS: '1',
      INFERENCE_THREADS: '1',
      INFERENCE_PRODUCTION_THREADS: '1',
      LOG_LEVEL: process.env.TEST_WORKER_LOG_LEVEL ?? 'warn',
    });
    const child = spawn(process.execPath, [WORKER], { env, stdio: ['ignore', 'ignore', process.env.TEST_WORKER_LOG_LEVEL ? 'inherit' : 'ignore'] });
    workers.push(child);
    return child;
  };

  const kill = async (child: ChildProcess): Promise<void> => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGKILL');
    await exited;
  };

  /** A model of the team with one version trained by `config` through the queue; returns the version's ID. */
  const champion = async (name: string, config: Record<string, unknown>): Promise<string> => {
    const model = (await gql(engineer, 'mutation($t: String!, $n: String!) { createModel(input: { team: $t, name: $n }) { id } }', { t: TEAM, n: name })).createModel.id;
    const r = await gql(engineer, `mutation($i: StartTrainingRunInput!) { startTrainingRun(input: $i) { id } }`, { i: { ...trainingInput(config), model } });
    const run = await waitForRun(t, engineer, r.startTrainingRun.id, 180_000);
    assert.equal(run.status, 'SUCCEEDED', JSON.stringify(run));
    return run.outputs[0].id;
  };

  /** A STAGING deployment serving `version` alone, monitored, with `batches` of labelled shifted traffic logged. */
  const deployment = async (name: string, version: string, batches: number): Promise<{ id: string; traffic: Traffic }> => {
    const id = (await gql(engineer, `mutation($t: String!, $v: ID!, $n: String!) { createDeployment(input: { team: $t, name: $n, environment: STAGING, trafficSplit: [{ modelVersion: $v, weight: 100 }] }) { id } }`, { t: TEAM, v: version, n: name })).createDeployment.id;
    await gql(engineer, MONITORING, { input: { deployment: id, windowSeconds: 5, everySeconds: 1, minRequests: 5 } });
    const traffic = new Traffic(t, service, id, 5151).set('shifted');
    await eventually(`deployment ${name} to serve`, async () => ((await t.gql(service, PREDICT, { d: id, inputs: { features: [[0, 0, 0, 0]] } })).errors ? undefined : true), 30_000, 200);
    for (let i = 0; i < batches; i++) await traffic.batch(10);
    return { id, traffic };
  };

  /** The deployment's only iteration, once there is one. */
  const iterationOf = async (deployment: string): Promise<Record<string, any>> =>
    eventually('an iteration to begin', async () => {
      const list = (await gql(engineer, ITERATIONS, { d: deployment })).iterations;
      assert.ok(list.length <= 1, `one iteration at most: ${JSON.stringify(list)}`);
      return list[0];
    }, 30_000, 100);

  const waitForStatus = async (id: string, statuses: string[], ms: number): Promise<Record<string, any>> =>
    eventually(`iteration to reach ${statuses.join('/')}`, async () => {
      const it = (await gql(engineer, ITERATION, { id })).iteration;
      if (statuses.includes(it.status)) return it;
      if (FINISHED.has(it.status)) assert.fail(`iteration finished ${it.status}: ${it.message}`);
      return undefined;
    }, ms, 200);

  const auditedActions = async (requestId: string): Promise<string[]> => (await gql(auditor, AUDIT, { r: requestId })).auditEvents.nodes.map((e: { action: string }) => e.action);

  before(async () => {
    // The API serves and dispatches; every queue job runs in the worker processes this file starts and kills.
    t = await startTestServer({ env: { WORKERS_IN_PROCESS: 'false', WORKER_LOCK_MS: '3000', LOOP_TICK_SECONDS: '1', MONITOR_WINDOW_SECONDS: '5', MONITOR_MIN_REQUESTS: '5' } });
    engineer = t.token(['ml-engineer'], [TEAM], 'rena-engineer');
    service = t.token(['service'], [TEAM], 'svc-resume');
    auditor = t.token(['auditor'], [TEAM], 'aud-resume');
    await gql(t.token(['admin'], []), 'mutation($n: String!) { createTeam(input: { name: $n }) { id } }', { n: TEAM });
    const dataset = await storedDatasetVersion(t, engineer, { team: TEAM, name: 'resume-data' });
    const inputs = await trainerInputs(t, engineer, TEAM);
    trainingInput = (config) => ({
      datasets: [{ datasetVersion: dataset, role: 'TRAIN' }],
      codeVersion: inputs.codeVersion,
      environment: inputs.environment,
      configContent: config,
      seeds: { split: 1, init: 2, shuffle: 3 },
    });
    startWorker();
  });

  after(async () => {
    for (const w of workers) await kill(w).catch(() => undefined);
    await t?.stop();
  });

  it('a worker killed while the retraining run trains: the run is taken over and finishes once, the iteration goes on', async () => {
    // The retraining reuses the champion's config: a slow one, so that there is time to kill it mid-way.
    const slow = await champion('resume-slow', { model: 'mlp', hidden: [64, 64], epochs: 1500 });
    const { id: d } = await deployment('resume-training', slow, 60);
    await gql(engineer, RETRAIN, { input: { deployment: d, schedule: '* * * * * *', cooldownSeconds: 600, sampleWindows: 60, holdoutShare: 0.3, gate: { minRows: 60 } } });

    const begun = await iterationOf(d);
    const training = await waitForStatus(begun.id, ['TRAINING'], 30_000);
    const runId = uuidOf(training.trainingRun.id);
    await eventually('the retraining run to be training', async () => {
      const [row] = await t.sql(`SELECT status, progress FROM training_run WHERE id = $1`, [runId]);
      return row.status === 'RUNNING' && row.progress > 0.05 ? true : undefined;
    }, 60_000, 50);
    for (const w of workers) await kill(w);
    const [mid] = await t.sql(`SELECT status FROM training_run WHERE id = $1`, [runId]);
    assert.equal(mid.status, 'RUNNING', 'nobody finished the run before the kill');
    assert.equal((await gql(engineer, ITERATION, { id: begun.id })).iteration.status, 'TRAINING');

    startWorker();
    // No promotion policy: a candidate that passes the gate is handed off to a person.
    const done = await waitForStatus(begun.id, ['HANDED_OFF'], 120_000);
    assert.equal(done.trainingRun.id, training.trainingRun.id);
    assert.equal(done.trainingRun.status, 'SUCCEEDED');
    const [{ attempts }] = await t.sql(`SELECT attempts FROM training_run WHERE id = $1`, [runId]);
    assert.ok(attempts >= 2, `the run was executed again after the kill (attempts ${attempts})`);

    const [{ versions }] = await t.sql(`SELECT count(*)::int AS versions FROM model_version WHERE training_run_id = $1`, [runId]);
    assert.equal(versions, 1, 'exactly one model version for the run');
    assert.equal(uuidOf(done.candidate.id), (await t.sql(`SELECT id FROM model_version WHERE training_run_id = $1`, [runId]))[0].id);
    const [{ runs }] = await t.sql(`SELECT count(*)::int AS runs FROM training_run WHERE name LIKE $1`, [`iteration ${uuidOf(begun.id)}%`]);
    assert.equal(runs, 1, 'exactly one training run for the iteration');

    const steps = done.steps.map((s: { step: string }) => s.step);
    assert.deepEqual(steps, ['TRIGGERED', 'SAMPLED', 'TRAINING_STARTED', 'CANDIDATE_REGISTERED', 'GATE_PASSED']);
    for (const s of done.steps) assert.ok(s.auditEvent, `step ${s.step} names its audit event`);

    const actions = await auditedActions(done.requestId);
    for (const a of ['beginIteration', 'startTrainingRun', 'registerModelVersion', 'completeTrainingRun', 'finishIteration']) {
      assert.equal(count(actions, a), 1, `${a} once in ${actions.join(', ')}`);
    }
  });

  it('a worker killed while a canary step bakes: the step is judged once by the next worker, one rollout, PROMOTED', async () => {
    const fast = await champion('resume-fast', { model: 'logistic_regression', epochs: 20 });
    const { id: d, traffic } = await deployment('resume-canary', fast, 60);
    await gql(engineer, PROMOTION, { input: { deployment: d, shadowSeconds: 0, steps: [50, 100], bakeSeconds: 5, minRequests: 10 } });
    await gql(engineer, RETRAIN, { input: { deployment: d, schedule: '* * * * * *', cooldownSeconds: 600, sampleWindows: 60, holdoutShare: 0.3, gate: { minRows: 60 } } });

    const begun = await iterationOf(d);
    // The canary's health checks need requests while each step bakes.
    traffic.start();
    try {
      const canary = await waitForStatus(begun.id, ['CANARY'], 90_000);
      const rolloutId = uuidOf(canary.canaryRollout.id);
      const [row] = await t.sql(`SELECT status, current_step FROM rollout WHERE id = $1`, [rolloutId]);
      assert.deepEqual([row.status, row.current_step], ['IN_PROGRESS', 0], 'killed while the first step bakes');
      for (const w of workers) await kill(w);
      await sleep(1000);
      startWorker();

      const done = await waitForStatus(begun.id, ['PROMOTED'], 120_000);
      assert.equal(done.canaryRollout.id, canary.canaryRollout.id);
      assert.equal(done.canaryRollout.status, 'SUCCEEDED');
      const candidate = uuidOf(done.candidate.id);
      const [{ rollouts }] = await t.sql(`SELECT count(*)::int AS rollouts FROM rollout WHERE deployment_id = $1 AND model_version_id = $2 AND strategy = 'CANARY'`, [uuidOf(d), candidate]);
      assert.equal(rollouts, 1, 'exactly one canary rollout of the candidate');

      // Each transition of the rollout once: 0 → 1, then 1 → done.
      const events: Array<{ action: string; before: any; after: any }> = await t.sql(`SELECT action, before, after FROM audit_event WHERE subject_type = 'Rollout' AND subject_id = $1 ORDER BY seq`, [canary.canaryRollout.id]);
      const transitions = events.filter((e) => e.action === 'advanceRollout').map((e) => `${e.before?.step}->${e.after?.step ?? e.after?.status}`);
      assert.deepEqual(transitions, ['0->1', '1->SUCCEEDED'], JSON.stringify(events.map((e) => e.action)));
      assert.equal(count(events.map((e) => e.action), 'startRollout'), 1);

      const steps = done.steps.map((s: { step: string }) => s.step);
      assert.deepEqual(steps, ['TRIGGERED', 'SAMPLED', 'TRAINING_STARTED', 'CANDIDATE_REGISTERED', 'GATE_PASSED', 'CANARY_STARTED', 'PROMOTED']);
      const actions = await auditedActions(done.requestId);
      assert.equal(count(actions, 'finishIteration'), 1, actions.join(', '));
      assert.equal(count(actions, 'startRollout'), 1, actions.join(', '));
      assert.equal(count(actions, 'beginIteration'), 1, actions.join(', '));

      const split = (await gql(engineer, SPLIT, { id: d })).node.trafficSplit;
      assert.deepEqual(split.map((s: { weight: number; modelVersion: { id: string } }) => [s.modelVersion.id, s.weight]), [[done.candidate.id, 100]]);
    } finally {
      await traffic.stop();
    }
  });
});
