// A closed-loop HTTP load generator in a process of its own, so that neither the server under test
// nor the peer it is compared with shares an event loop with the client: `concurrency` lanes, each
// on a keep-alive connection, send the same request back to back for a fixed duration and record
// each answer's latency. Started by the inference bench over IPC, one process per measurement.
import http from 'node:http';
import { fork } from 'node:child_process';
import path from 'node:path';
import { performance } from 'node:perf_hooks';

/** What to send, how hard and for how long. */
export interface LoadSpec {
  url: string;
  headers: Record<string, string>;
  /** The request body, base64 (the same bytes for every request). */
  bodyBase64: string;
  concurrency: number;
  seconds: number;
  /** A response body containing this text counts as a failure even with status 200 (GraphQL errors). */
  failureText?: string;
}

/** Answered requests and their latencies, sorted ascending, in ms. */
export interface LoadResult {
  requests: number;
  seconds: number;
  sorted: number[];
}

/** Runs `spec` in a fresh child process; rejects when any request fails. */
export function runLoad(spec: LoadSpec): Promise<LoadResult> {
  const child = fork(path.join(__dirname, 'load-generator.js'), [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  return new Promise<LoadResult>((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`load generator exited with ${code}`)));
    child.once('message', (m: { ok: true; result: LoadResult } | { ok: false; error: string }) => {
      child.removeAllListeners('exit');
      child.disconnect();
      if (m.ok) resolve(m.result);
      else reject(new Error(m.error));
    });
    child.send(spec);
  });
}

async function drive(spec: LoadSpec): Promise<LoadResult> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: spec.concurrency });
  const target = new URL(spec.url);
  const body = Buffer.from(spec.bodyBase64, 'base64');
  const headers = { ...spec.headers, 'content-length': String(body.length) };
  const once = () =>
    new Promise<void>((resolve, reject) => {
      const req = http.request({ host: target.hostname, port: target.port, path: target.pathname, method: 'POST', headers, agent }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('latin1');
          if (res.statusCode !== 200 || (spec.failureText !== undefined && text.includes(spec.failureText))) reject(new Error(`request failed: ${res.statusCode} ${text.slice(0, 300)}`));
          else resolve();
        });
      });
      req.on('error', reject);
      req.end(body);
    });
  const durations: number[] = [];
  const started = performance.now();
  const until = started + spec.seconds * 1000;
  const lane = async () => {
    while (performance.now() < until) {
      const t0 = performance.now();
      await once();
      durations.push(performance.now() - t0);
    }
  };
  await Promise.all(Array.from({ length: spec.concurrency }, lane));
  const seconds = (performance.now() - started) / 1000;
  agent.destroy();
  return { requests: durations.length, seconds, sorted: durations.sort((a, b) => a - b) };
}

if (require.main === module) {
  process.once('message', (spec: LoadSpec) => {
    drive(spec).then(
      (result) => process.send!({ ok: true, result }, () => process.exit(0)),
      (e: Error) => process.send!({ ok: false, error: e.message }, () => process.exit(1)),
    );
  });
}
