import { fork, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import * as ort from 'onnxruntime-node';
import { startBarePeer } from './bare-peer';
import type { BenchServerReady } from './inference-server';
import { loadGenerator, runLoad } from './load-generator';
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

/** The median of a list of numbers. */
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

/** One row's measurements over the rounds, shown as the median of each figure. */
function medianOf(ms: Measured[]): Measured & { p50: number; p99: number } {
  const p50 = median(ms.map((m) => percentile(m.sorted, 50)));
  const p99 = median(ms.map((m) => percentile(m.sorted, 99)));
  const perSecond = median(ms.map((m) => m.requests / m.seconds));
  const rowsPerSecond = median(ms.map((m) => m.rows / m.seconds));
  const loops = ms.map((m) => m.loopP99Ms).filter((x): x is number => x !== null);
  // A synthetic sample set whose percentiles are the medians, for the table's row.
  return { requests: perSecond, rows: rowsPerSecond, seconds: 1, sorted: [p50, p99], p50, p99, loopP99Ms: loops.length ? median(loops) : null };
}

function medianRow(workload: string, path: string, concurrency: number | string, rowsPerRequest: number, ms: Measured[]) {
  const m = medianOf(ms);
  return {
    workload,
    path,
    conc: concurrency,
    'rows/req': rowsPerRequest,
    requests: ms.reduce((n, x) => n + x.requests, 0),
    'p50 ms': m.p50,
    'p99 ms': m.p99,
    'req/s': Math.round(m.requests),
    'rows/s': Math.round(m.rows),
    'loop p99 ms': m.loopP99Ms === null ? '—' : m.loopP99Ms.toFixed(2),
  };
}

/**
 * `npm run bench -- inference`: raw onnxruntime in this process (the ceiling), a trivial GraphQL
 * query over the same HTTP server (the floor), a bare node:http + onnxruntime-node server speaking
 * the Open Inference Protocol's JSON form (the peer; also with its model on a worker thread), and
 * `predict` over GraphQL and the Open Inference Protocol (JSON, and binary for 256 rows) at several
 * concurrencies, for the demo logistic regression and a ~1M-parameter MLP; then the MLP at
 * concurrency 64 again on a server with micro-batching off. Every HTTP row is driven by the same
 * load generator, in its own process; the server and the peers each run alone in theirs.
 *
 * The headline comparisons are measured in rounds (`BENCH_ROUNDS`, 3 by default): in each round the
 * server's row and the peer's (or raw onnxruntime's) are measured one right after the other, so that
 * a machine whose speed drifts (a shared one) weighs on both alike; each ratio is taken within its
 * round, and the median ratio is judged. Event-loop delay is measured inside the server and the peers.
 */
export async function inferenceBench(): Promise<void> {
  const seconds = Number(process.env.BENCH_SECONDS ?? 4);
  const rounds = Math.max(1, Number(process.env.BENCH_ROUNDS ?? 3));
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
  const peers: Array<{ stop(): Promise<void> }> = [];
  try {
    const trivial: Target = {
      url: new URL('/graphql', ready.url).href,
      headers: { 'content-type': 'application/json', authorization: `Bearer ${ready.token}` },
      body: Buffer.from(JSON.stringify({ query: TRIVIAL })),
      rowsPerRequest: 0,
      failureText: '"errors"',
    };
    const floor: Record<number, Measured> = {};
    for (const c of [1, 16]) {
      floor[c] = await measure(trivial, c);
      rows.push(row('—', 'GraphQL { __typename }', c, 0, floor[c]));
    }
    const results: Record<string, Measured> = {};
    const workloads = [['logistic regression', ready.lr], ['MLP ~1M params', ready.mlp]] as const;
    // The peers serve the same model files; they wait, idle, while the server is measured.
    const bytes = Object.fromEntries(workloads.map(([name, w]) => [name, readFileSync(w.artifactPath)]));
    const files = Object.fromEntries(workloads.map(([name], i) => [name, path.join(scratch, `model-${i}.onnx`)]));
    for (const [name] of workloads) writeFileSync(files[name], bytes[name]);
    const peerOf: Record<string, { loop: Awaited<ReturnType<typeof startBarePeer>>; thread: Awaited<ReturnType<typeof startBarePeer>> }> = {};
    for (const [name] of workloads) {
      const loop = await startBarePeer(files[name], 'peer');
      peers.push(loop);
      const thread = await startBarePeer(files[name], 'peer', true);
      peers.push(thread);
      peerOf[name] = { loop, thread };
    }
    for (const [name, w] of workloads) {
      for (const c of [1, 16]) {
        const m = await measure(graphql(ready, w.deployment, w.features, 1, c), c);
        results[`${name}/predict/${c}`] = m;
        rows.push(row(name, 'GraphQL predict', c, 1, m));
      }
      for (const c of [1, 4]) {
        const big = await measure(graphql(ready, w.deployment, w.features, 256, 3), c);
        results[`${name}/predict256/${c}`] = big;
        rows.push(row(name, 'GraphQL predict', c, 256, big));
      }
    }

    // The headline pairs, in rounds.
    const round: Record<string, Measured[]> = {};
    const keep = (key: string, m: Measured) => (round[key] ??= []).push(m);
    const onPeer = async (peer: Awaited<ReturnType<typeof startBarePeer>>, target: Target, c: number): Promise<Measured> => {
      await load(target, c, 0.5);
      await peer.loopReset();
      const loaded = await load(target, c, seconds);
      return { ...loaded, loopP99Ms: (await peer.loopRead()).p99Ms };
    };
    for (let r = 0; r < rounds; r++) {
      keep('floor/64', await measure(trivial, 64));
      for (const [name, w] of workloads) keep(`${name}/predict/64`, await measure(graphql(ready, w.deployment, w.features, 1, 64), 64));
      for (const [name, w] of workloads) {
        const inferUrl = new URL(`/v2/models/${encodeURIComponent(w.deployment)}/infer`, ready.url).href;
        for (const c of [1, 64]) {
          const body = oipJsonBody(w.features, 1, c);
          keep(`${name}/oip/${c}`, await measure({ url: inferUrl, headers: { 'content-type': 'application/json', authorization: `Bearer ${ready.token}` }, body, rowsPerRequest: 1 }, c));
          keep(`${name}/peer/${c}`, await onPeer(peerOf[name].loop, { url: peerOf[name].loop.url, headers: { 'content-type': 'application/json' }, body, rowsPerRequest: 1 }, c));
          keep(`${name}/peer-thread/${c}`, await onPeer(peerOf[name].thread, { url: peerOf[name].thread.url, headers: { 'content-type': 'application/json' }, body, rowsPerRequest: 1 }, c));
        }
        for (const c of [1, 2]) keep(`${name}/oip-binary256/${c}`, await measure(oipBinary(inferUrl, ready.token, w.features, 256, 3), c));
        for (const [batch, threads] of [[256, 1], [256, 2], ...(r === 0 ? [[1, 1]] : [])]) {
          keep(`${name}/raw/${batch}/${threads}`, await rawOrt(bytes[name], w.features, batch, threads, seconds / 2));
        }
      }
    }
    await server.stop();
    for (const p of peers) await p.stop();
    peers.length = 0;

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

    const inRounds = `median of ${rounds} round${rounds > 1 ? 's' : ''}`;
    rows.splice(2, 0, medianRow('—', `GraphQL { __typename } (${inRounds})`, 64, 0, round['floor/64']));
    for (const [name] of workloads) {
      const at = rows.findIndex((x) => x.workload === name && x.path === 'GraphQL predict' && x.conc === 16) + 1;
      rows.splice(at, 0, medianRow(name, `GraphQL predict (${inRounds})`, 64, 1, round[`${name}/predict/64`]));
    }
    for (const [name] of workloads) {
      for (const c of [1, 64]) rows.push(medianRow(name, `OIP JSON infer (${inRounds})`, c, 1, round[`${name}/oip/${c}`]));
      for (const c of [1, 2]) rows.push(medianRow(name, `OIP binary infer, binary outputs (${inRounds})`, c, 256, round[`${name}/oip-binary256/${c}`]));
      for (const c of [1, 64]) rows.push(medianRow(name, `bare peer: node:http + ORT, OIP JSON (${inRounds})`, c, 1, round[`${name}/peer/${c}`]));
      for (const c of [1, 64]) rows.push(medianRow(name, `bare peer, model on a worker thread (${inRounds})`, c, 1, round[`${name}/peer-thread/${c}`]));
    }
    for (const [name] of workloads) {
      for (const [batch, threads] of [[1, 1], [256, 1], [256, 2]]) rows.push(medianRow(name, `raw ORT session.run, intraOp ${threads}`, 1, batch, round[`${name}/raw/${batch}/${threads}`]));
    }
    const generator = loadGenerator() === 'wrk' ? 'wrk, one thread' : 'the Node.js load generator (wrk not found)';
    printTable(`Inference (${seconds} s per row; load from ${generator}; server, peers and load generator share this machine's ${require('node:os').availableParallelism()} cores)`, rows);
    const p50 = (m: Measured) => percentile(m.sorted, 50);
    const rps = (m: Measured) => m.requests / m.seconds;
    const rowsPerSecond = (m: Measured) => m.rows / m.seconds;
    /** A ratio taken in each round, shown as its median and the rounds' values. */
    const perRound = (f: (r: number) => number) => {
      const xs = Array.from({ length: rounds }, (_, r) => f(r));
      return `${median(xs).toFixed(2)}${rounds > 1 ? ` (rounds: ${xs.map((x) => x.toFixed(2)).join(', ')})` : ''}`;
    };
    printTable(
      `Headline: OIP against the bare peer (same model, same load generator; each ratio within a round, ${inRounds})`,
      judged(workloads.flatMap(([name]) => [
        { target: `${name}: OIP predict req/s at c64 / bare peer req/s at c64`, value: perRound((r) => rps(round[`${name}/oip/64`][r]) / rps(round[`${name}/peer/64`][r])), goal: '≥ 0.5' },
        { target: `${name}: OIP predict p50 at c1 / bare peer p50 at c1`, value: perRound((r) => p50(round[`${name}/oip/1`][r]) / p50(round[`${name}/peer/1`][r])), goal: '≤ 3' },
        // The server may split a large request across its idle threads, so the ceiling is raw
        // onnxruntime at its best on this machine: the faster of one and two intra-op threads.
        {
          target: `${name}: 256-row OIP binary rows/s at c1 / raw ORT batch-256 rows/s (the faster of intraOp 1 and 2)`,
          value: perRound((r) => rowsPerSecond(round[`${name}/oip-binary256/1`][r]) / Math.max(rowsPerSecond(round[`${name}/raw/256/1`][r]), rowsPerSecond(round[`${name}/raw/256/2`][r]))),
          // The goal is the MLP's: the logistic regression's raw batch of 256 rows takes less than
          // one HTTP round trip of the bare peer, which no HTTP server can reach 0.8 of.
          goal: name === 'logistic regression' ? '(informs: a raw batch is shorter than one HTTP round trip)' : '≥ 0.8',
        },
        {
          // Two requests at a time: one is read, checked and answered while the other runs.
          target: `${name}: 256-row OIP binary rows/s at c2 / raw ORT batch-256 rows/s (the faster of intraOp 1 and 2)`,
          value: perRound((r) => rowsPerSecond(round[`${name}/oip-binary256/2`][r]) / Math.max(rowsPerSecond(round[`${name}/raw/256/1`][r]), rowsPerSecond(round[`${name}/raw/256/2`][r]))),
          goal: '(informs)',
        },
        {
          target: `${name}: bare peer with its model on a worker thread, p50 at c1 / bare peer p50 at c1 (the thread hop alone)`,
          value: perRound((r) => p50(round[`${name}/peer-thread/1`][r]) / p50(round[`${name}/peer/1`][r])),
          goal: '(informs)',
        },
      ])),
    );
    const saturatedLoop = Math.max(...['logistic regression', 'MLP ~1M params'].map((n) => medianOf(round[`${n}/predict/64`]).loopP99Ms ?? 0));
    const graphqlAtFloor = (name: string) =>
      `${perRound((r) => rps(round[`${name}/predict/64`][r]) / rps(round['floor/64'][r]))}; ${Math.round(medianOf(round[`${name}/predict/64`]).requests)} / ${Math.round(medianOf(round['floor/64']).requests)} req/s`;
    const saturatedOipLoop = Math.max(...['logistic regression', 'MLP ~1M params'].map((n) => medianOf(round[`${n}/oip/64`]).loopP99Ms ?? 0));
    const rawBest = (name: string) => Math.max(medianOf(round[`${name}/raw/256/1`]).rows, medianOf(round[`${name}/raw/256/2`]).rows);
    printTable('Targets (ratios within this run)', judged([
      { target: 'LR predict p50 at c1 / trivial p50 at c1', value: (p50(results['logistic regression/predict/1']) / p50(floor[1])).toFixed(2), goal: '≤ 1.5' },
      { target: 'MLP predict p50 at c1 / trivial p50 at c1', value: (p50(results['MLP ~1M params/predict/1']) / p50(floor[1])).toFixed(2), goal: '≤ 1.5' },
      { target: `LR GraphQL predict req/s at c64 / trivial req/s at c64 (${inRounds})`, value: graphqlAtFloor('logistic regression'), goal: '≥ 0.7' },
      { target: `MLP GraphQL predict req/s at c64 / trivial req/s at c64 (${inRounds})`, value: graphqlAtFloor('MLP ~1M params'), goal: '≥ 0.7' },
      ...[1, 4].flatMap((c) => [
        {
          target: `MLP 256-row GraphQL predict at c${c}, rows/s / raw ORT batch-256 rows/s (the faster of intraOp 1 and 2, ${inRounds})`,
          value: (rowsPerSecond(results[`MLP ~1M params/predict256/${c}`]) / rawBest('MLP ~1M params')).toFixed(2),
          goal: '≥ 0.8',
        },
      ]),
      { target: 'micro-batching: MLP req/s at c64, on (median of the rounds) / off', value: (medianOf(round['MLP ~1M params/predict/64']).requests / rps(results['mlp/unbatched'])).toFixed(2), goal: '> 1 to keep it on' },
      { target: `server event-loop delay p99, OIP JSON infer at c64 (worse of LR, MLP; ${inRounds}), ms`, value: saturatedOipLoop.toFixed(2), goal: '≤ 10' },
      { target: `server event-loop delay p99, GraphQL predict at c64 (worse of LR, MLP; ${inRounds}), ms`, value: saturatedLoop.toFixed(2), goal: '≤ 10' },
      { target: `server event-loop delay p99, { __typename } at c64 (${inRounds}), ms`, value: (medianOf(round['floor/64']).loopP99Ms ?? 0).toFixed(2), goal: '(the floor)' },
      {
        target: `bare peer event-loop delay p99 at c64 (worse of LR, MLP; ${inRounds}), ms`,
        value: Math.max(...['logistic regression', 'MLP ~1M params'].map((n) => medianOf(round[`${n}/peer/64`]).loopP99Ms ?? 0)).toFixed(2),
        goal: '(the peer, same machine)',
      },
    ]));
  } finally {
    for (const p of peers) await p.stop();
    await server.stop();
    rmSync(scratch, { recursive: true, force: true });
  }
}
