// One inference thread: holds an onnxruntime session per loaded model version and runs one batch
// at a time. `session.run` blocks this thread, never the API's event loop.
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { parentPort, workerData } from 'node:worker_threads';
import * as ort from 'onnxruntime-node';
import { scanForExternalData } from '../registry/onnx-external-data';
import { sandboxedSessionConfig } from './external-data-sandbox';
import type { TensorData, WireTensor } from './tensors';

export interface OrtWorkerOptions {
  /** Execution providers to try, in order; each failure falls back to the rest of the list. */
  providers: string[];
  intraOpNumThreads: number;
  /** An empty directory of the pool's own: external-data references resolve there, never against the working directory. */
  externalDataDir: string;
}

export type WorkerRequest =
  | { op: 'load'; id: number; versionId: string; modelPath: string; warmup: WireTensor[] }
  | { op: 'unload'; versionId: string }
  | { op: 'close' }
  | { op: 'run'; id: number; versionId: string; feeds: WireTensor[] };

export type WorkerReply =
  | { op: 'loaded'; id: number; versionId: string; provider: string; fellBack: string[] }
  | { op: 'loadFailed'; id: number; versionId: string; error: string }
  | { op: 'result'; id: number; outputs: WireTensor[]; runMs: number }
  | { op: 'failed'; id: number; error: string };

const options = workerData as OrtWorkerOptions;
const port = parentPort!;
const sessions = new Map<string, ort.InferenceSession>();
/**
 * Per version, the latest load or unload asked for. A load waits for the runtime (creating the
 * session, the warm-up run) and messages keep arriving meanwhile: a load keeps its session only if
 * no unload or later load of the version came after it, so an unload is never undone by a load that
 * was already under way.
 */
const latest = new Map<string, number>();
let asked = 0;
// The provider library's own failure message goes to stderr before the exception we handle.
ort.env.logLevel = 'fatal';

async function createSession(bytes: Uint8Array): Promise<{ session: ort.InferenceSession; provider: string; fellBack: string[] }> {
  const fellBack: string[] = [];
  for (let i = 0; i < options.providers.length; i++) {
    const providers = options.providers.slice(i);
    try {
      const session = await ort.InferenceSession.create(bytes, {
        executionProviders: providers,
        intraOpNumThreads: options.intraOpNumThreads,
        interOpNumThreads: 1,
        graphOptimizationLevel: 'all',
        // Without the arena a run's working memory goes back to the system when the run ends,
        // instead of staying reserved at the largest run any version ever made on this thread.
        enableCpuMemArena: false,
        extra: sandboxedSessionConfig(options.externalDataDir),
      });
      return { session, provider: providers[0], fellBack };
    } catch (e) {
      // A provider whose library is missing throws instead of falling back: try the next one.
      if (i === options.providers.length - 1) throw e;
      fellBack.push(`${providers[0]}: ${(e as Error).message.split('\n')[0].slice(0, 300)}`);
    }
  }
  throw new Error('no execution provider configured');
}

const toOrt = (t: WireTensor) => new ort.Tensor(t.type, t.data as never, t.dims);

function fromOrt(name: string, t: ort.Tensor): WireTensor {
  const type = t.type as WireTensor['type'];
  // Copy into a buffer of our own: the tensor's may be shared with the runtime.
  const data = (t.data as TensorData).slice() as TensorData;
  return { name, type, dims: [...t.dims], data };
}

port.on('message', async (msg: WorkerRequest) => {
  if (msg.op === 'load') {
    const mine = ++asked;
    latest.set(msg.versionId, mine);
    try {
      const bytes = readFileSync(msg.modelPath);
      // Checked again here: the store may hold bytes that never went through an upload.
      const finding = scanForExternalData(bytes);
      if (finding) throw new Error(finding.message);
      const { session, provider, fellBack } = await createSession(bytes);
      const feeds = Object.fromEntries(msg.warmup.map((t) => [t.name, toOrt(t)]));
      await session.run(feeds);
      if (latest.get(msg.versionId) !== mine) {
        // Unloaded, or loaded again, while this load was under way.
        await session.release();
      } else {
        const previous = sessions.get(msg.versionId);
        sessions.set(msg.versionId, session);
        await previous?.release();
      }
      port.postMessage({ op: 'loaded', id: msg.id, versionId: msg.versionId, provider, fellBack } satisfies WorkerReply);
    } catch (e) {
      port.postMessage({ op: 'loadFailed', id: msg.id, versionId: msg.versionId, error: (e as Error).message.split('\n')[0] } satisfies WorkerReply);
    }
    return;
  }
  if (msg.op === 'close') {
    // Messages wait for a run in progress, so this never interrupts native code (terminating a
    // thread inside a run aborts the whole process).
    for (const session of sessions.values()) await session.release();
    sessions.clear();
    process.exit(0);
  }
  if (msg.op === 'unload') {
    // A load still under way no longer matches: it drops its session when done.
    latest.delete(msg.versionId);
    const session = sessions.get(msg.versionId);
    sessions.delete(msg.versionId);
    await session?.release();
    return;
  }
  const session = sessions.get(msg.versionId);
  try {
    if (!session) throw new Error(`model version ${msg.versionId} is not loaded`);
    const feeds: Record<string, ort.Tensor> = {};
    for (const t of msg.feeds) feeds[t.name] = toOrt(t);
    const started = performance.now();
    const result = await session.run(feeds);
    const runMs = performance.now() - started;
    const outputs = session.outputNames.map((name) => fromOrt(name, result[name]));
    port.postMessage({ op: 'result', id: msg.id, outputs, runMs } satisfies WorkerReply, outputs.map((o) => o.data.buffer as ArrayBuffer));
  } catch (e) {
    port.postMessage({ op: 'failed', id: msg.id, error: (e as Error).message.split('\n')[0].slice(0, 500) } satisfies WorkerReply);
  }
});
