import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { JWT_SECRET, startTestServer, type TestServer } from '../support/harness';
import { eventually, startRedis } from '../support/processes';
import { storedDatasetVersion, trainerInputs, waitForRun } from '../support/training';

const START = `mutation($i: StartTrainingRunInput!) { startTrainingRun(input: $i) { id status } }`;
const WORKER = path.resolve(__dirname, '../../jobs/worker.js');
const uuidOf = (id: string) => Buffer.from(id, 'base64url').toString().split(':')[1];

async function prepare(t: TestServer, token: string, team: string) {
  await t.gql(t.token(['admin'], []), 'mutation($n: String!) { createTeam(input: { name: $n }) { id } }', { n: team });
  const model = await t.gql(token, 'mutation($t: String!) { createModel(input: { team: $t, name: "resilient" }) { id } }', { t: team });
  const dataset = await storedDatasetVersion(t, token, { team, name: 'resilience-data' });
  const inputs = await trainerInputs(t, token, team);
  return (config: Record<string, unknown>) => ({
    model: model.data.createModel.id,
    datasets: [{ datasetVersion: dataset, role: 'TRAIN' }],
    codeVersion: inputs.codeVersion,
    environment: inputs.environment,
    configContent: config,
    seeds: { split: 1, init: 2, shuffle: 3 },
  });
}

describe('training survives its infrastructure failing', () => {
  const cleanup: Array<() => Promise<void>> = [];
  after(async () => {
    for (const c of cleanup.reverse()) await c().catch(() => undefined);
  });

  it('accepts a run while Redis is down, loses nothing, and runs it when Redis returns', async () => {
    const redis = await startRedis();
    cleanup.push(() => redis.stop());
    const t = await startTestServer({ env: { REDIS_URL: redis.url } });
    cleanup.push(() => t.stop());
    const token = t.token(['ml-engineer'], ['redis-team'], 'rhea');
    const input = await prepare(t, token, 'redis-team');

    await redis.stop();
    const r = await t.gql(token, START, { i: input({ model: 'logistic_regression', epochs: 5 }) });
    assert.equal(r.errors, undefined, JSON.stringify(r.errors));
    assert.equal(r.data.startTrainingRun.status, 'QUEUED');
    const runId = uuidOf(r.data.startTrainingRun.id);
    // The dispatcher tried, failed, and kept the entry.
    const waiting = await eventually('a refused dispatch', async () => {
      const rows = await t.sql(`SELECT dispatched_at, dispatch_attempts, last_error FROM outbox_entry WHERE job_id = $1`, [runId]);
      return rows[0]?.dispatch_attempts > 0 ? rows[0] : undefined;
    }, 20_000);
    assert.equal(waiting.dispatched_at, null);
    assert.ok(waiting.last_error);
    const [{ status }] = await t.sql(`SELECT status FROM training_run WHERE id = $1`, [runId]);
    assert.equal(status, 'QUEUED');

    const back = await startRedis(redis.port);
    // Stopped last: the server shuts down while its Redis still answers.
    cleanup.unshift(() => back.stop());
    const run = await waitForRun(t, token, r.data.startTrainingRun.id, 90_000);
    assert.equal(run.status, 'SUCCEEDED', JSON.stringify(run));
    assert.equal(run.outputs.length, 1);
    const [{ n }] = await t.sql(`SELECT count(*)::int AS n FROM outbox_entry WHERE job_id = $1 AND dispatched_at IS NOT NULL`, [runId]);
    assert.equal(n, 1);
  });

  it('finishes a run whose worker was killed mid-training, with exactly one model version', async () => {
    const redis = await startRedis();
    cleanup.push(() => redis.stop());
    // The API process runs no workers: the worker is a separate process this test kills.
    const env = { REDIS_URL: redis.url, WORKERS_IN_PROCESS: 'false', WORKER_LOCK_MS: '3000' };
    const t = await startTestServer({ env });
    cleanup.push(() => t.stop());
    const token = t.token(['ml-engineer'], ['kill-team'], 'kim');
    const input = await prepare(t, token, 'kill-team');
    const workerEnv = {
      PATH: process.env.PATH ?? '',
      NODE_ENV: 'test',
      DATABASE_URL: t.databaseUrl,
      REDIS_URL: redis.url,
      REDIS_PREFIX: t.config.redisPrefix,
      AUTH_JWT_SECRET: JWT_SECRET,
      DATA_DIR: t.config.dataDir,
      SECRETS_DIR: t.config.secretsDir,
      WORKER_LOCK_MS: '3000',
      LOG_LEVEL: 'warn',
    };
    const startWorker = () => {
      const child: ChildProcess = spawn(process.execPath, [WORKER], { env: workerEnv, stdio: 'ignore' });
      cleanup.push(async () => {
        if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      });
      return child;
    };
    const first = startWorker();
    const r = await t.gql(token, START, { i: input({ model: 'mlp', hidden: [64, 64], epochs: 400 }) });
    assert.equal(r.errors, undefined, JSON.stringify(r.errors));
    const runId = uuidOf(r.data.startTrainingRun.id);
    await eventually('the run to be training', async () => {
      const [row] = await t.sql(`SELECT status, progress FROM training_run WHERE id = $1`, [runId]);
      return row.status === 'RUNNING' && row.progress > 0.05 ? true : undefined;
    }, 60_000, 50);
    first.kill('SIGKILL');
    await new Promise((resolve) => first.once('exit', resolve));
    const [mid] = await t.sql(`SELECT status FROM training_run WHERE id = $1`, [runId]);
    assert.equal(mid.status, 'RUNNING', 'nobody finished it');

    startWorker();
    const run = await waitForRun(t, token, r.data.startTrainingRun.id, 120_000);
    assert.equal(run.status, 'SUCCEEDED', JSON.stringify(run));
    assert.ok(run.attempts >= 2, `executed again after the kill (attempts ${run.attempts})`);
    const [{ n }] = await t.sql(`SELECT count(*)::int AS n FROM model_version WHERE training_run_id = $1`, [runId]);
    assert.equal(n, 1, 'exactly one model version for the run');
  });
});
