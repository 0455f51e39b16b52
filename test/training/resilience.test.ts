import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { JWT_SECRET, startTestServer, type TestServer } from '../support/harness';
import { alive, eventually, startRedis } from '../support/processes';
import { storedDatasetVersion, trainerInputs, waitForRun } from '../support/training';

const START = `mutation($i: StartTrainingRunInput!) { startTrainingRun(input: $i) { id status } }`;
const WORKER = path.resolve(__dirname, '../../jobs/worker.js');
const uuidOf = (id: string) => Buffer.from(id, 'base64url').toString().split(':')[1];
const TABULAR_TRAINER = path.resolve(__dirname, '../../jobs/trainers/tabular-trainer.js');


function processGroupOf(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[2]);
}

// A trainer with a sidecar process beside it: it starts `sleep` (holding none of its output), runs the
// built-in trainer as its own child, writes the three pids to `pidFile` (the run's log tail is
// bounded: progress lines soon push a printed line out of it), and exits as the built-in trainer
// does, leaving the sidecar behind: nothing but the server ends it.
const trainerWithSidecar = (pidFile: string) => `const { spawn } = require('node:child_process');
const sidecar = spawn('sleep', ['600'], { stdio: 'ignore' });
const trainer = spawn(process.execPath, [${JSON.stringify(TABULAR_TRAINER)}], { stdio: ['ignore', 'inherit', 'inherit'] });
require('node:fs').writeFileSync(${JSON.stringify(pidFile)}, process.pid + ' ' + sidecar.pid + ' ' + trainer.pid);
trainer.on('exit', (code) => process.exit(code ?? 1));
`;

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
    const r = await t.gql(token, START, { i: input({ model: 'mlp', hidden: [64, 64], epochs: 1500 }) });
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

  it('ends the killed worker’s trainer and the processes it started once another worker takes over; the run finishes once', async () => {
    const redis = await startRedis();
    cleanup.push(() => redis.stop());
    const repo = await mkdtemp(path.join(os.tmpdir(), 'modelgov-trainers-'));
    cleanup.push(() => rm(repo, { recursive: true, force: true }));
    const pidFile = path.join(repo, 'pids');
    await writeFile(path.join(repo, 'train-with-sidecar.js'), trainerWithSidecar(pidFile));
    const repositories = JSON.stringify({ 'https://git.example.com/sidecars': repo });
    const env = { REDIS_URL: redis.url, WORKERS_IN_PROCESS: 'false', WORKER_LOCK_MS: '3000', TRAINER_REPOSITORIES: repositories };
    const t = await startTestServer({ env });
    cleanup.push(() => t.stop());
    const token = t.token(['ml-engineer'], ['orphan-team'], 'olga');
    const input = await prepare(t, token, 'orphan-team');
    const code = await t.gql(token, 'mutation($c: RegisterCodeVersionInput!) { registerCodeVersion(input: $c) { id } }', {
      c: { team: 'orphan-team', repositoryUrl: 'https://git.example.com/sidecars', commitSha: 'c'.repeat(40), branch: 'main', dirty: false, entrypoint: 'train-with-sidecar.js' },
    });
    assert.equal(code.errors, undefined, JSON.stringify(code.errors));
    const workerEnv = {
      PATH: process.env.PATH ?? '',
      NODE_ENV: 'test',
      DATABASE_URL: t.databaseUrl,
      REDIS_URL: redis.url,
      REDIS_PREFIX: t.config.redisPrefix,
      AUTH_JWT_SECRET: JWT_SECRET,
      DATA_DIR: t.config.dataDir,
      WORKER_LOCK_MS: '3000',
      TRAINER_REPOSITORIES: repositories,
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
    const r = await t.gql(token, START, { i: { ...input({ model: 'mlp', hidden: [64, 64], epochs: 1500 }), codeVersion: code.data.registerCodeVersion.id } });
    assert.equal(r.errors, undefined, JSON.stringify(r.errors));
    const runId = uuidOf(r.data.startTrainingRun.id);
    const pids = await eventually('the trainer and its sidecar to be running', async () => {
      const [row] = await t.sql(`SELECT status, progress FROM training_run WHERE id = $1`, [runId]);
      const line = /^(\d+) (\d+) (\d+)$/.exec(await readFile(pidFile, 'utf8').catch(() => ''));
      return row.status === 'RUNNING' && row.progress > 0.05 && line ? line.slice(1).map(Number) : undefined;
    }, 60_000, 50);
    cleanup.push(async () => {
      for (const pid of pids) if (alive(pid)) process.kill(pid, 'SIGKILL');
    });
    assert.ok(pids.every(alive), `trainer ${pids[0]}, sidecar ${pids[1]} and built-in trainer ${pids[2]} are running`);
    // The run records where its execution runs: the process group all three belong to.
    const [{ handle }] = await t.sql(`SELECT execution_handle AS handle FROM training_run WHERE id = $1`, [runId]);
    assert.equal(handle.host, os.hostname());
    for (const pid of pids) assert.equal(processGroupOf(pid), handle.pid, `${pid} is in the recorded group`);
    first.kill('SIGKILL');
    await new Promise((resolve) => first.once('exit', resolve));

    startWorker();
    await eventually('another worker to take the run over', async () => {
      const [row] = await t.sql(`SELECT attempts FROM training_run WHERE id = $1`, [runId]);
      return row.attempts >= 2 ? true : undefined;
    }, 120_000);
    await eventually('the first execution’s processes to be gone', async () => (pids.some(alive) ? undefined : true), 30_000);

    const run = await waitForRun(t, token, r.data.startTrainingRun.id, 180_000);
    assert.equal(run.status, 'SUCCEEDED', JSON.stringify(run));
    const [{ n }] = await t.sql(`SELECT count(*)::int AS n FROM model_version WHERE training_run_id = $1`, [runId]);
    assert.equal(n, 1, 'exactly one model version for the run');
    const [{ completed }] = await t.sql(`SELECT count(*)::int AS completed FROM audit_event WHERE action = 'completeTrainingRun' AND subject_id = $1`, [r.data.startTrainingRun.id]);
    assert.equal(completed, 1, 'the run completed once');
    // The execution that took over named the one it stopped; nothing is left to stop once the run is over.
    const begins = await t.sql(`SELECT before FROM audit_event WHERE action = 'beginTrainingRun' AND subject_id = $1 ORDER BY seq`, [r.data.startTrainingRun.id]);
    assert.equal(begins[1].before.execution.pid, handle.pid, JSON.stringify(begins));
    const [{ left }] = await t.sql(`SELECT execution_handle AS left FROM training_run WHERE id = $1`, [runId]);
    assert.equal(left, null);
  });
});
