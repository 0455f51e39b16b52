// The inference bench's bare peer: what serving a model over the Open Inference Protocol's JSON
// form costs with nothing else, in a process of its own. node:http, one onnxruntime-node session,
// no authentication, no policy, no validation beyond what the protocol needs, no log. Started by
// inference.bench.ts over IPC with the model file and its input width; answers on a free port.
import http from 'node:http';
import { fork, type ChildProcess } from 'node:child_process';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import * as ort from 'onnxruntime-node';
import { answerLoopDelay } from './loop-delay';

/** A running peer: its infer URL for `model`, its event-loop delay, and how to stop it. */
export interface BarePeer {
  url: string;
  /** Starts the event-loop delay histogram afresh. */
  loopReset(): Promise<void>;
  /** The event-loop delay since the last reset, in ms. */
  loopRead(): Promise<{ p99Ms: number; maxMs: number }>;
  stop(): Promise<void>;
}

/**
 * Starts the peer serving the ONNX file at `modelPath` as model `name`: on its event loop, or with
 * `onThread` on one worker thread that each request's tensor is handed to (transferred) and whose
 * answer comes back as a message, the hop the server makes to keep its event loop free.
 */
export async function startBarePeer(modelPath: string, name: string, onThread = false): Promise<BarePeer> {
  const child: ChildProcess = fork(path.join(__dirname, 'bare-peer.js'), onThread ? [modelPath, 'thread'] : [modelPath], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const port = await new Promise<number>((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`bare peer exited with ${code}`)));
    child.once('message', (m: { port: number }) => resolve(m.port));
  });
  child.removeAllListeners('exit');
  const ask = <T>(op: string) =>
    new Promise<T>((resolve) => {
      const on = (m: { op: string }) => {
        if (m.op !== op) return;
        child.off('message', on);
        resolve(m as T);
      };
      child.on('message', on);
      child.send({ op });
    });
  return {
    url: `http://127.0.0.1:${port}/v2/models/${name}/infer`,
    loopReset: async () => {
      await ask('loop-reset');
    },
    loopRead: () => ask<{ p99Ms: number; maxMs: number }>('loop-read'),
    stop: async () => {
      if (child.exitCode !== null) return;
      const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      child.kill('SIGTERM');
      await exited;
    },
  };
}

type Run = (name: string, data: Float32Array, shape: number[]) => Promise<{ name: string; dims: readonly number[]; data: Float32Array }>;

/** Runs on this thread: onnxruntime-node's `session.run` blocks the event loop while the model runs. */
async function runHere(modelPath: string): Promise<{ run: Run; release(): Promise<void> }> {
  const session = await ort.InferenceSession.create(modelPath, SESSION_OPTIONS);
  return {
    run: async (name, data, shape) => {
      const out = await session.run({ [name]: new ort.Tensor('float32', data, shape) });
      const o = out[session.outputNames[0]];
      return { name: session.outputNames[0], dims: o.dims, data: o.data as Float32Array };
    },
    release: () => session.release(),
  };
}

/** Runs on one worker thread: the input is transferred to it, the output transferred back. */
async function runOnThread(modelPath: string): Promise<{ run: Run; release(): Promise<void> }> {
  const worker = new Worker(__filename, { workerData: { modelPath } });
  await new Promise<void>((resolve, reject) => {
    worker.once('message', () => resolve());
    worker.once('error', reject);
  });
  type Reply = { id: number; name: string; dims: number[]; data: Float32Array; error?: string };
  const pending = new Map<number, { resolve(m: Reply): void; reject(e: Error): void }>();
  let next = 0;
  worker.on('message', (m: Reply) => {
    const waiter = pending.get(m.id);
    pending.delete(m.id);
    if (m.error !== undefined) waiter?.reject(new Error(m.error));
    else waiter?.resolve(m);
  });
  // A thread that dies fails what waits on it (the peer answers 400s) instead of leaving requests hanging.
  worker.on('error', (e) => {
    for (const w of pending.values()) w.reject(e);
    pending.clear();
  });
  return {
    run: (name, data, shape) =>
      new Promise((resolve, reject) => {
        const id = ++next;
        pending.set(id, { resolve, reject });
        worker.postMessage({ id, name, data, shape }, [data.buffer as ArrayBuffer]);
      }),
    release: () => worker.terminate().then(() => undefined),
  };
}

/** The worker thread of {@link runOnThread}. */
async function serveThread(modelPath: string): Promise<void> {
  const session = await ort.InferenceSession.create(modelPath, SESSION_OPTIONS);
  parentPort!.on('message', async (m: { id: number; name: string; data: Float32Array; shape: number[] }) => {
    try {
      const out = await session.run({ [m.name]: new ort.Tensor('float32', m.data, m.shape) });
      const name = session.outputNames[0];
      const data = (out[name].data as Float32Array).slice();
      parentPort!.postMessage({ id: m.id, name, dims: out[name].dims, data }, [data.buffer]);
    } catch (e) {
      parentPort!.postMessage({ id: m.id, error: (e as Error).message });
    }
  });
  parentPort!.postMessage('ready');
}

const SESSION_OPTIONS: ort.InferenceSession.SessionOptions = { executionProviders: ['cpu'], intraOpNumThreads: 1, interOpNumThreads: 1, graphOptimizationLevel: 'all' };

async function main(modelPath: string, onThread: boolean): Promise<void> {
  // On its event loop the peer serves one request at a time, on one core (onnxruntime-node runs
  // the model on the calling thread); on a thread, it pays a message each way for a free loop.
  const model = onThread ? await runOnThread(modelPath) : await runHere(modelPath);
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      void (async () => {
        try {
          const body = JSON.parse(Buffer.concat(chunks).toString()) as { inputs: Array<{ name: string; shape: number[]; data: number[] }> };
          const input = body.inputs[0];
          const out = await model.run(input.name, Float32Array.from(input.data), input.shape);
          const outputs = [{ name: out.name, datatype: 'FP32', shape: out.dims, data: Array.from(out.data) }];
          const text = JSON.stringify({ model_name: 'peer', outputs });
          res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) }).end(text);
        } catch (e) {
          res.writeHead(400, { 'content-type': 'application/json' }).end(JSON.stringify({ error: (e as Error).message }));
        }
      })();
    });
  });
  server.keepAliveTimeout = 60_000;
  // Measured as in the server under test, so the two can be put side by side.
  answerLoopDelay();
  server.listen(0, '127.0.0.1', () => process.send!({ port: (server.address() as AddressInfo).port }));
  process.once('SIGTERM', () => {
    server.close();
    server.closeAllConnections();
    void model.release().then(() => process.exit(0));
  });
}

if (!isMainThread) {
  void serveThread((workerData as { modelPath: string }).modelPath);
} else if (require.main === module) {
  main(process.argv[2], process.argv[3] === 'thread').catch((e) => {
    console.error(e);
    process.exit(1);
  });
}
