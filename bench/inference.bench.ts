import { fork, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import * as ort from 'onnxruntime-node';
import { startBarePeer } from './bare-peer';
import type { BenchServerReady } from './inference-server';
import { runLoad } from './load-generator';
import { percentile, printTable } from './stats';

const PREDICT = 'mutation($d: ID!, $inputs: JSONObject!) { predict(deployment: $d, inputs: $inputs) { outputs rows fallback } }';
const TRIVIAL = '{ __typename }';

interface Measured {
  requests: number;
  rows: number;
  seconds: number;
  sorted: number[];
  loopP99Ms: number | null;
}

/** The server in its own process; resolves once it has the demo and the MLP loaded. */
async function startServer(env: Record<string, string>): Promise<{ child: ChildProcess; ready: BenchServerReady; ask(op: string): Promise<any>; stop(): Promise<void> }> {
  const child = fork(path.join(__dirname, 'inference-server.js'), [], { env: { ...process.env, BENCH_SERVER_ENV: JSON.stringify(env) }, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const ready = await new Promise<BenchServerReady>((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`bench server exited with ${code}`)));
    child.on('message', (m: any) => m.op === 'ready' && resolve(m.ready));
  });
  const ask = (op: string) =>
    new Promise<any>((resolve) => {
      const on = (m: any) => {
        if (m.op === op) {
          child.off('message', on);
          resolve(m);
        }
      };
      child.on('message', on);
      child.send({ op });
    });
  const stop = async () => {
    if (child.exitCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.send({ op: 'stop' });
    await exited;
  };
  return { child, ready, ask, stop };
}

/** One request, sent over and over by the load generator. */
interface Target {
  url: string;
  headers: Record<string, string>;
  body: Buffer;
  rowsPerRequest: number;
  failureText?: string;
}

/** Drives `target` from the load generator's own process, `concurrency` requests at a time, for `seconds`. */
async function load(target: Target, concurrency: number, seconds: number): Promise<Omit<Measured, 'loopP99Ms'>> {
  const m = await runLoad({ url: target.url, headers: target.headers, bodyBase64: target.body.toString('base64'), concurrency, seconds, failureText: target.failureText });
  return { ...m, rows: m.requests * target.rowsPerRequest };
}

async function rawOrt(model: Uint8Array, features: number, batch: number, intraOpNumThreads: number, seconds: number): Promise<Measured> {
  const session = await ort.InferenceSession.create(model, { executionProviders: ['cpu'], intraOpNumThreads, interOpNumThreads: 1, graphOptimizationLevel: 'all' });
  const data = Float32Array.from({ length: batch * features }, (_, i) => ((i * 7919) % 1000) / 1000);
  const feeds = { [session.inputNames[0]]: new ort.Tensor('float32', data, [batch, features]) };
  for (let i = 0; i < 20; i++) await session.run(feeds);
  const durations: number[] = [];
  const started = performance.now();
  while (performance.now() - started < seconds * 1000) {
    const t0 = performance.now();
    await session.run(feeds);
    durations.push(performance.now() - t0);
  }
  const total = (performance.now() - started) / 1000;
  await session.release();
  return { requests: durations.length, rows: durations.length * batch, seconds: total, sorted: durations.sort((a, b) => a - b), loopP99Ms: null };
}

const featureRows = (features: number, rows: number, seed: number) =>
  Array.from({ length: rows }, (_, r) => Array.from({ length: features }, (_, j) => Math.round(((r * 31 + j * 17 + seed) % 997) * 1000) / 1000));

const graphql = (ready: BenchServerReady, deployment: string, features: number, rows: number, seed: number): Target => ({
  url: new URL('/graphql', ready.url).href,
  headers: { 'content-type': 'application/json', authorization: `Bearer ${ready.token}` },
  body: Buffer.from(JSON.stringify({ query: PREDICT, variables: { d: deployment, inputs: { features: featureRows(features, rows, seed) } } })),
  rowsPerRequest: rows,
  failureText: '"errors"',
});

const oipJsonBody = (features: number, rows: number, seed: number) =>
  Buffer.from(JSON.stringify({ inputs: [{ name: 'features', shape: [rows, features], datatype: 'FP32', data: featureRows(features, rows, seed).flat() }] }));

/** An Open Inference Protocol request in the binary extension's form, outputs asked for as bytes too. */
function oipBinary(url: string, token: string, features: number, rows: number, seed: number): Target {
  const tensor = Buffer.from(Float32Array.from(featureRows(features, rows, seed).flat()).buffer);
  const header = Buffer.from(JSON.stringify({ inputs: [{ name: 'features', shape: [rows, features], datatype: 'FP32', parameters: { binary_data_size: tensor.length } }], parameters: { binary_data_output: true } }));
  return {
    url,
    headers: { 'content-type': 'application/octet-stream', 'inference-header-content-length': String(header.length), authorization: `Bearer ${token}` },
    body: Buffer.concat([header, tensor]),
    rowsPerRequest: rows,
  };
}

/** PASS or FAIL for a target row whose goal reads `≥ x`, `≤ x` or `> x` (the first number of its value against x); `—` for a row that only informs. */
function judged(rows: Array<{ target: string; value: string; goal: string }>): Array<{ target: string; value: string; goal: string; verdict: string }> {
  return rows.map((r) => {
    const goal = /^(≥|≤|>)\s*([\d.]+)/.exec(r.goal);
    const value = Number.parseFloat(r.value);
    if (!goal || Number.isNaN(value)) return { ...r, verdict: '—' };
    const limit = Number(goal[2]);
    const ok = goal[1] === '≥' ? value >= limit : goal[1] === '≤' ? value <= limit : value > limit;
    return { ...r, verdict: ok ? 'PASS' : 'FAIL' };
  });
}

function row(workload: string, path: string, concurrency: number | string, rowsPerRequest: number, m: Measured) {
  return {
    workload,
    path,
    conc: concurrency,
    'rows/req': rowsPerRequest,
    requests: m.requests,
    'p50 ms': percentile(m.sorted, 50),
    'p99 ms': percentile(m.sorted, 99),
    'req/s': Math.round(m.requests / m.seconds),
    'rows/s': Math.round(m.rows / m.seconds),
    'loop p99 ms': m.loopP99Ms === null ? '—' : m.loopP99Ms.toFixed(2),
  };
}

/**
 * `npm run bench -- inference`: raw onnxruntime in this process (the ceiling), a trivial GraphQL
 * query over the same HTTP server (the floor), a bare node:http + onnxruntime-node server speaking
 * the Open Inference Protocol's JSON form (the peer), and `predict` over GraphQL and the Open
 * Inference Protocol (JSON, and binary for 256 rows) at several concurrencies, for the demo
 * logistic regression and a ~1M-parameter MLP; then the MLP at concurrency 64 again on a server
 * with micro-batching off. Every HTTP row is driven by the same load generator, in its own process;
 * the server and the peer each run alone in theirs. Event-loop delay is measured inside the server.
 */
export async function inferenceBench(): Promise<void> {
  const seconds = Number(process.env.BENCH_SECONDS ?? 4);
  const server = await startServer({});
  const { ready, ask } = server;
  const measure = async (target: Target, concurrency: number) => {
    await load(target, concurrency, 0.5);
    await ask('loop-reset');
    const m = await load(target, concurrency, seconds);
    const loop = await ask('loop-read');
    return { ...m, loopP99Ms: loop.p99Ms as number };
  };
  const rows: Array<ReturnType<typeof row>> = [];
  const scratch = mkdtempSync(path.join(tmpdir(), 'modelgov-bench-'));
  try {
    const trivial: Target = {
      url: new URL('/graphql', ready.url).href,
      headers: { 'content-type': 'application/json', authorization: `Bearer ${ready.token}` },
      body: Buffer.from(JSON.stringify({ query: TRIVIAL })),
      rowsPerRequest: 0,
      failureText: '"errors"',
    };
    const floor: Record<number, Measured> = {};
    for (const c of [1, 16, 64]) {
      floor[c] = await measure(trivial, c);
      rows.push(row('—', 'GraphQL { __typename }', c, 0, floor[c]));
    }
    const results: Record<string, Measured> = {};
    const workloads = [['logistic regression', ready.lr], ['MLP ~1M params', ready.mlp]] as const;
    // The models are run raw and by the peer once the servers are gone, so that nothing else
    // competes for the cores; the artifact store goes with the server.
    const bytes = Object.fromEntries(workloads.map(([name, w]) => [name, readFileSync(w.artifactPath)]));
    const files = Object.fromEntries(workloads.map(([name], i) => [name, path.join(scratch, `model-${i}.onnx`)]));
    for (const [name] of workloads) writeFileSync(files[name], bytes[name]);
    for (const [name, w] of workloads) {
      const inferUrl = new URL(`/v2/models/${encodeURIComponent(w.deployment)}/infer`, ready.url).href;
      for (const c of [1, 16, 64]) {
        const m = await measure(graphql(ready, w.deployment, w.features, 1, c), c);
        results[`${name}/predict/${c}`] = m;
        rows.push(row(name, 'GraphQL predict', c, 1, m));
      }
      for (const c of [1, 64]) {
        const m = await measure({ url: inferUrl, headers: { 'content-type': 'application/json', authorization: `Bearer ${ready.token}` }, body: oipJsonBody(w.features, 1, c), rowsPerRequest: 1 }, c);
        results[`${name}/oip/${c}`] = m;
        rows.push(row(name, 'OIP JSON infer', c, 1, m));
      }
      for (const c of [1, 4]) {
        const big = await measure(graphql(ready, w.deployment, w.features, 256, 3), c);
        results[`${name}/predict256/${c}`] = big;
        rows.push(row(name, 'GraphQL predict', c, 256, big));
      }
      const binary = await measure(oipBinary(inferUrl, ready.token, w.features, 256, 3), 1);
      results[`${name}/oip-binary256/1`] = binary;
      rows.push(row(name, 'OIP binary infer (binary outputs)', 1, 256, binary));
    }
    await server.stop();

    const unbatched = await startServer({ INFERENCE_MAX_BATCH_ROWS: '1' });
    try {
      const target = graphql(unbatched.ready, unbatched.ready.mlp.deployment, 64, 1, 64);
      await load(target, 64, 0.5);
      await unbatched.ask('loop-reset');
      const m = await load(target, 64, seconds);
      const loop = await unbatched.ask('loop-read');
      results['mlp/unbatched'] = { ...m, loopP99Ms: loop.p99Ms };
      rows.push(row('MLP ~1M params', 'GraphQL predict, micro-batching off', 64, 1, results['mlp/unbatched']));
    } finally {
      await unbatched.stop();
    }

    for (const [name, w] of workloads) {
      const peer = await startBarePeer(files[name], 'peer');
      try {
        for (const c of [1, 64]) {
          const target: Target = { url: peer.url, headers: { 'content-type': 'application/json' }, body: oipJsonBody(w.features, 1, c), rowsPerRequest: 1 };
          await load(target, c, 0.5);
          await peer.loopReset();
          const loaded = await load(target, c, seconds);
          const m = { ...loaded, loopP99Ms: (await peer.loopRead()).p99Ms };
          results[`${name}/peer/${c}`] = m;
          rows.push(row(name, 'bare peer: node:http + ORT, OIP JSON', c, 1, m));
        }
      } finally {
        await peer.stop();
      }
    }

    for (const [name, w] of workloads) {
      for (const [batch, threads] of [[1, 1], [256, 1], [256, 2]]) {
        const m = await rawOrt(bytes[name], w.features, batch, threads, seconds / 2);
        results[`${name}/raw/${batch}/${threads}`] = m;
        rows.push(row(name, `raw ORT session.run, intraOp ${threads}`, 1, batch, m));
      }
    }
    printTable(`Inference (${seconds} s per row; server, peer and load generator share this machine's ${require('node:os').availableParallelism()} cores)`, rows);
    const p50 = (m: Measured) => percentile(m.sorted, 50);
    const rps = (m: Measured) => m.requests / m.seconds;
    const rowsPerSecond = (m: Measured) => m.rows / m.seconds;
    printTable(
      'Headline: OIP against the bare peer (same model, same load generator, same run)',
      judged(workloads.flatMap(([name]) => [
        { target: `${name}: OIP predict req/s at c64 / bare peer req/s at c64`, value: (rps(results[`${name}/oip/64`]) / rps(results[`${name}/peer/64`])).toFixed(2), goal: '≥ 0.5' },
        { target: `${name}: OIP predict p50 at c1 / bare peer p50 at c1`, value: (p50(results[`${name}/oip/1`]) / p50(results[`${name}/peer/1`])).toFixed(2), goal: '≤ 3' },
        // The server may split a large request across its idle threads, so the ceiling is raw
        // onnxruntime at its best on this machine: the faster of one and two intra-op threads.
        {
          target: `${name}: 256-row OIP binary rows/s / raw ORT batch-256 rows/s (the faster of intraOp 1 and 2)`,
          value: (rowsPerSecond(results[`${name}/oip-binary256/1`]) / Math.max(rowsPerSecond(results[`${name}/raw/256/1`]), rowsPerSecond(results[`${name}/raw/256/2`]))).toFixed(2),
          goal: '≥ 0.8',
        },
      ])),
    );
    const saturatedLoop = Math.max(...['logistic regression', 'MLP ~1M params'].map((n) => results[`${n}/predict/64`].loopP99Ms ?? 0));
    const saturatedOipLoop = Math.max(...['logistic regression', 'MLP ~1M params'].map((n) => results[`${n}/oip/64`].loopP99Ms ?? 0));
    printTable('Targets (ratios within this run)', judged([
      { target: 'LR predict p50 at c1 / trivial p50 at c1', value: (p50(results['logistic regression/predict/1']) / p50(floor[1])).toFixed(2), goal: '≤ 1.5' },
      { target: 'MLP predict p50 at c1 / trivial p50 at c1', value: (p50(results['MLP ~1M params/predict/1']) / p50(floor[1])).toFixed(2), goal: '≤ 1.5' },
      { target: 'LR GraphQL predict req/s at c64 / trivial req/s at c64', value: `${(rps(results['logistic regression/predict/64']) / rps(floor[64])).toFixed(2)} (${Math.round(rps(results['logistic regression/predict/64']))} / ${Math.round(rps(floor[64]))})`, goal: '≥ 0.7' },
      { target: 'MLP GraphQL predict req/s at c64 / trivial req/s at c64', value: `${(rps(results['MLP ~1M params/predict/64']) / rps(floor[64])).toFixed(2)} (${Math.round(rps(results['MLP ~1M params/predict/64']))} / ${Math.round(rps(floor[64]))})`, goal: '≥ 0.7' },
      ...[1, 4].flatMap((c) => [
        {
          target: `MLP 256-row GraphQL predict at c${c}, rows/s / raw ORT batch-256 rows/s (the faster of intraOp 1 and 2)`,
          value: (rowsPerSecond(results[`MLP ~1M params/predict256/${c}`]) / Math.max(rowsPerSecond(results['MLP ~1M params/raw/256/1']), rowsPerSecond(results['MLP ~1M params/raw/256/2']))).toFixed(2),
          goal: '≥ 0.8',
        },
      ]),
      { target: 'micro-batching: MLP req/s at c64, on / off', value: (rps(results['MLP ~1M params/predict/64']) / rps(results['mlp/unbatched'])).toFixed(2), goal: '> 1 to keep it on' },
      { target: 'server event-loop delay p99, OIP JSON infer at c64 (worse of LR, MLP), ms', value: saturatedOipLoop.toFixed(2), goal: '≤ 10' },
      { target: 'server event-loop delay p99, GraphQL predict at c64 (worse of LR, MLP), ms', value: saturatedLoop.toFixed(2), goal: '≤ 10' },
      { target: 'server event-loop delay p99, { __typename } at c64, ms', value: (floor[64].loopP99Ms ?? 0).toFixed(2), goal: '(the floor)' },
      {
        target: 'bare peer event-loop delay p99 at c64 (worse of LR, MLP), ms',
        value: Math.max(...['logistic regression', 'MLP ~1M params'].map((n) => results[`${n}/peer/64`].loopP99Ms ?? 0)).toFixed(2),
        goal: '(the peer, same machine)',
      },
    ]));
  } finally {
    await server.stop();
    rmSync(scratch, { recursive: true, force: true });
  }
}
