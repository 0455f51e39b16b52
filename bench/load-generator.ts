// The inference bench's closed-loop HTTP load, in a process of its own, so that neither the server
// under test nor the peer it is compared with shares a CPU's work with a client on its event loop:
// `concurrency` keep-alive connections each send the same request back to back for a fixed
// duration. `wrk` (C, one thread) drives it where it is installed: it costs the machine least per
// request, which matters on two cores shared by the server, its inference threads and the client.
// Without it (or with BENCH_LOAD=node) a Node.js generator of the same shape runs instead, and the
// bench says so in its tables.
import http from 'node:http';
import { execFile, execFileSync, fork } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
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

/**
 * Answered requests and their latencies in ms, ascending: every request's (Node.js generator) or the
 * 1,000 quantiles 0.1 %, 0.2 %, … 100 % of wrk's histogram, so that a percentile reads the same off both.
 */
export interface LoadResult {
  requests: number;
  seconds: number;
  sorted: number[];
}

let generator: 'wrk' | 'node' | undefined;

/** The generator the bench uses: wrk where it is on the PATH (unless BENCH_LOAD=node). */
export function loadGenerator(): 'wrk' | 'node' {
  if (generator) return generator;
  if (process.env.BENCH_LOAD === 'node') return (generator = 'node');
  try {
    execFileSync('wrk', ['--version'], { stdio: 'ignore' });
    generator = 'wrk';
  } catch (e) {
    // wrk prints its version and exits 1; only a missing binary fails to spawn.
    generator = (e as NodeJS.ErrnoException).code === 'ENOENT' ? 'node' : 'wrk';
  }
  return generator;
}

/** Runs `spec` with wrk, or in a fresh Node.js child process; rejects when any request fails. */
export function runLoad(spec: LoadSpec): Promise<LoadResult> {
  return loadGenerator() === 'wrk' ? runWrk(spec) : runNode(spec);
}

/** A Lua string literal of `text`'s UTF-8 bytes (quotes, backslashes and every byte outside printable ASCII as 3-digit escapes). */
const lua = (text: string) =>
  '"' + [...Buffer.from(text, 'utf8')].map((b) => (b < 0x20 || b > 0x7e || b === 0x22 || b === 0x5c ? '\\' + String(b).padStart(3, '0') : String.fromCharCode(b))).join('') + '"';

/**
 * wrk with one thread and `concurrency` connections, for whole seconds (at least one: wrk takes no
 * fractions). Its script sets the request, counts answers that are not 200 or contain
 * `failureText`, and prints the latency quantiles and counts as one JSON line when done.
 */
async function runWrk(spec: LoadSpec): Promise<LoadResult> {
  const dir = mkdtempSync(path.join(tmpdir(), 'modelgov-load-'));
  try {
    const bodyPath = path.join(dir, 'body');
    writeFileSync(bodyPath, Buffer.from(spec.bodyBase64, 'base64'));
    const check = spec.failureText === undefined ? '' : `
function response(status, headers, body)
  if status ~= 200 or string.find(body, ${lua(spec.failureText)}, 1, true) then failures = failures + 1 end
end`;
    const script = `
wrk.method = "POST"
local f = assert(io.open(${lua(bodyPath)}, "rb")); wrk.body = f:read("*a"); f:close()
${Object.entries(spec.headers).map(([k, v]) => `wrk.headers[${lua(k)}] = ${lua(v)}`).join('\n')}
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) failures = 0 end
${check}
function done(summary, latency, requests)
  local failed = 0
  for _, t in ipairs(threads) do failed = failed + (t:get("failures") or 0) end
  local e = summary.errors
  local q = {}
  for i = 1, 1000 do q[i] = string.format("%d", latency:percentile(i / 10)) end
  io.write(string.format('RESULT {"requests":%d,"us":%d,"failed":%d,"status":%d,"socket":%d,"quantiles":[%s]}\\n',
    summary.requests, summary.duration, failed, e.status, e.connect + e.read + e.write + e.timeout, table.concat(q, ",")))
end
`;
    const scriptPath = path.join(dir, 'script.lua');
    writeFileSync(scriptPath, script);
    const { out, err } = await new Promise<{ out: string; err: string }>((resolve, reject) =>
      execFile('wrk', ['-t1', `-c${spec.concurrency}`, `-d${Math.max(1, Math.round(spec.seconds))}s`, '--timeout', '10s', '-s', scriptPath, spec.url], { maxBuffer: 1 << 24 }, (e, stdout, stderr) =>
        e ? reject(new Error(`wrk failed: ${e.message} ${stderr}`)) : resolve({ out: stdout, err: stderr }),
      ),
    );
    const line = out.split('\n').find((l) => l.startsWith('RESULT '));
    if (!line) throw new Error(`wrk printed no result: ${out.slice(0, 500)} ${err.slice(0, 500)}`);
    const r = JSON.parse(line.slice('RESULT '.length)) as { requests: number; us: number; failed: number; status: number; socket: number; quantiles: number[] };
    if (r.failed || r.status || r.socket) throw new Error(`requests failed: ${r.failed} bad answers, ${r.status} not 2xx, ${r.socket} socket errors or timeouts (${spec.url})`);
    if (r.requests === 0) throw new Error(`no request was answered (${spec.url})`);
    return { requests: r.requests, seconds: r.us / 1e6, sorted: r.quantiles.map((us) => us / 1000) };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function runNode(spec: LoadSpec): Promise<LoadResult> {
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
