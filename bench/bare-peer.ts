// The inference bench's bare peer: what serving a model over the Open Inference Protocol's JSON
// form costs with nothing else, in a process of its own. node:http, one onnxruntime-node session,
// no authentication, no policy, no validation beyond what the protocol needs, no log. Started by
// inference.bench.ts over IPC with the model file and its input width; answers on a free port.
import http from 'node:http';
import { fork, type ChildProcess } from 'node:child_process';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
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

/** Starts the peer serving the ONNX file at `modelPath` as model `name`. */
export async function startBarePeer(modelPath: string, name: string): Promise<BarePeer> {
  const child: ChildProcess = fork(path.join(__dirname, 'bare-peer.js'), [modelPath], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
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

async function main(modelPath: string): Promise<void> {
  // Concurrent runs of one session are what give the peer its parallelism (onnxruntime-node runs
  // off the main thread), as the server's parallelism comes from its inference threads.
  const session = await ort.InferenceSession.create(modelPath, { executionProviders: ['cpu'], intraOpNumThreads: 1, interOpNumThreads: 1, graphOptimizationLevel: 'all' });
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      void (async () => {
        try {
          const body = JSON.parse(Buffer.concat(chunks).toString()) as { inputs: Array<{ name: string; shape: number[]; data: number[] }> };
          const feeds: Record<string, ort.Tensor> = {};
          for (const t of body.inputs) feeds[t.name] = new ort.Tensor('float32', Float32Array.from(t.data), t.shape);
          const out = await session.run(feeds);
          const outputs = session.outputNames.map((n) => ({ name: n, datatype: 'FP32', shape: out[n].dims, data: Array.from(out[n].data as Float32Array) }));
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
    void session.release().then(() => process.exit(0));
  });
}

if (require.main === module) {
  main(process.argv[2]).catch((e) => {
    console.error(e);
    process.exit(1);
  });
}
