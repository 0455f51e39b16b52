import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Worker } from 'node:worker_threads';
import { createLogger } from '../../src/core/logger';
import { createExternalDataSandbox, removeExternalDataSandbox } from '../../src/inference/external-data-sandbox';
import type { OrtWorkerOptions, WorkerReply, WorkerRequest } from '../../src/inference/ort-worker';
import type { WireTensor } from '../../src/inference/tensors';
import { InferencePool } from '../../src/inference/worker-pool';
import { buildLoopOnnx } from '../support/onnx-models';

const warmup: WireTensor[] = [{ name: 'features', type: 'float32', dims: [1, 4], data: new Float32Array(4) }];
/** Resolves once the pool has handed every waiting request to a thread. */
async function dispatched(pool: InferencePool): Promise<void> {
  while (pool.queued > 0) await new Promise((resolve) => setTimeout(resolve, 5));
}
const feeds = (x: number): WireTensor[] => [{ name: 'features', type: 'float32', dims: [1, 4], data: new Float32Array([x, x, x, x]) }];

/**
 * How a version leaves the inference threads when the routes stop naming it while requests still
 * wait for it, and when messages about it cross: real threads, real onnxruntime sessions.
 */
describe('retiring and unloading a version on the inference threads', () => {
  let dir: string;
  let slowModel: string;
  let quickModel: string;
  const pools: InferencePool[] = [];
  const newPool = () => {
    const pool = new InferencePool({
      name: 'test',
      size: 1,
      providers: ['cpu'],
      intraOpNumThreads: 1,
      maxBatchRows: 1,
      batchWaitUs: 0,
      runBudgetMs: 60_000,
      runBudgetPerRowMs: 0,
      stuckAfterMs: 300_000,
      log: createLogger('silent'),
    });
    pools.push(pool);
    return pool;
  };

  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'modelgov-pool-'));
    slowModel = path.join(dir, 'slow.onnx');
    quickModel = path.join(dir, 'quick.onnx');
    // As slow as its inputs say: all-zero rows answer at once, rows of 1,000 take seconds.
    await writeFile(slowModel, buildLoopOnnx(1000));
    await writeFile(quickModel, buildLoopOnnx(1));
  });
  after(async () => {
    // The pool's threads and its grace timer do not hold the process open: this does, while they exit.
    const keepAlive = setInterval(() => undefined, 1_000);
    for (const p of pools) await p.close(5_000);
    clearInterval(keepAlive);
    await rm(dir, { recursive: true, force: true });
  });

  it('a reload that fails leaves the version retiring: it still goes once its requests are answered', async () => {
    const pool = newPool();
    await pool.load('slow', 'team-a', slowModel, warmup, true);
    await pool.load('v1', 'team-a', quickModel, warmup, true);
    // The only thread is busy: v1's requests wait.
    const holding = pool.run('slow', feeds(1000), 1, 60_000);
    await dispatched(pool);
    const waiting = [pool.run('v1', feeds(0), 1, 60_000), pool.run('v1', feeds(0), 1, 60_000)];
    pool.retire('v1');
    assert.equal(pool.queued, 2, 'retiring keeps what waits');
    // Routed again, but the reload fails (its file is gone).
    await assert.rejects(pool.load('v1', 'team-a', path.join(dir, 'missing.onnx'), warmup, true), /loading model version v1 failed/);
    await holding;
    for (const w of waiting) assert.equal((await w).length, 1, 'answered by the version they were routed to');
    // Once they are answered, the version is gone from the threads.
    await assert.rejects(pool.run('v1', feeds(0), 1, 5_000), /is not loaded/);
  });

  it('a reload that succeeds keeps the version, after its waiting requests too', async () => {
    const pool = newPool();
    await pool.load('slow', 'team-a', slowModel, warmup, true);
    await pool.load('v1', 'team-a', quickModel, warmup, true);
    const holding = pool.run('slow', feeds(1000), 1, 60_000);
    await dispatched(pool);
    const waiting = pool.run('v1', feeds(0), 1, 60_000);
    pool.retire('v1');
    const reloaded = pool.load('v1', 'team-a', quickModel, warmup, true);
    await holding;
    assert.equal((await waiting).length, 1);
    await reloaded;
    assert.equal((await pool.run('v1', feeds(0), 1, 5_000)).length, 1, 'still served');
  });

  it('a thread told to unload a version while still loading it does not keep the session', async () => {
    const sandbox = createExternalDataSandbox();
    const worker = new Worker(path.join(__dirname, '../../src/inference/ort-worker.js'), {
      workerData: { providers: ['cpu'], intraOpNumThreads: 1, externalDataDir: sandbox } satisfies OrtWorkerOptions,
      env: {},
    });
    // Each request's reply, by its id (an unload has none).
    const replies = new Map<number, WorkerReply>();
    const waiters = new Map<number, (r: WorkerReply) => void>();
    worker.on('message', (r: WorkerReply) => {
      const w = waiters.get(r.id);
      if (w) w(r);
      else replies.set(r.id, r);
    });
    const reply = (id: number) =>
      new Promise<WorkerReply>((resolve) => {
        const r = replies.get(id);
        if (r) resolve(r);
        else waiters.set(id, resolve);
      });
    const send = (m: WorkerRequest) => worker.postMessage(m);
    try {
      // The unload arrives while the load waits for the runtime (session creation, warm-up run).
      send({ op: 'load', id: 1, versionId: 'v', modelPath: quickModel, warmup });
      send({ op: 'unload', versionId: 'v' });
      assert.equal((await reply(1)).op, 'loaded');
      send({ op: 'run', id: 2, versionId: 'v', feeds: feeds(0) });
      const refused = await reply(2);
      assert.equal(refused.op, 'failed', 'the unloaded version does not run');
      assert.match((refused as { error: string }).error, /model version v is not loaded/);
      // A load asked for after the unload keeps its session.
      send({ op: 'load', id: 3, versionId: 'v', modelPath: quickModel, warmup });
      assert.equal((await reply(3)).op, 'loaded');
      send({ op: 'run', id: 4, versionId: 'v', feeds: feeds(0) });
      assert.equal((await reply(4)).op, 'result');
    } finally {
      send({ op: 'close' });
      await new Promise((resolve) => worker.once('exit', resolve));
      removeExternalDataSandbox(sandbox);
    }
  });
});
