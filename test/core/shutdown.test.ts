import assert from 'node:assert/strict';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { request } from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { databaseUrlFor, dropDatabase, JWT_SECRET, removeRedisKeys, TEST_REDIS_URL, testDatabaseName, testRedisPrefix } from '../support/harness';
import { alive, eventually, freeTcpPort } from '../support/processes';

const ROOT = path.resolve(__dirname, '../../..');
const MAIN = path.join(ROOT, 'dist', 'src', 'main.js');
const WORKER = path.join(ROOT, 'dist', 'jobs', 'worker.js');
// The spec's bound for an idle stop is 2 s; a machine busy with other work gets more.
const EXIT_BOUND_MS = 5000;

const cleanups: Array<() => Promise<void>> = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

/** A process environment of its own: database, Redis prefix, data directory, port. */
async function ownEnvironment(): Promise<{ env: NodeJS.ProcessEnv; url: string }> {
  const db = testDatabaseName('shutdown');
  const prefix = testRedisPrefix(db);
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'modelgov-shutdown-'));
  const port = await freeTcpPort();
  cleanups.push(async () => {
    await dropDatabase(db);
    await removeRedisKeys(TEST_REDIS_URL, prefix);
    await rm(dataDir, { recursive: true, force: true });
    await rm(`${dataDir}-secrets`, { recursive: true, force: true });
  });
  const env = {
    PATH: process.env.PATH ?? '',
    HOME: process.env.HOME ?? os.tmpdir(),
    NODE_ENV: 'test',
    HOST: '127.0.0.1',
    PORT: String(port),
    DATABASE_URL: databaseUrlFor(db),
    REDIS_URL: TEST_REDIS_URL,
    REDIS_PREFIX: prefix,
    AUTH_JWT_SECRET: JWT_SECRET,
    DATA_DIR: dataDir,
    SECRETS_DIR: `${dataDir}-secrets`,
    LOG_LEVEL: 'warn',
    INFERENCE_THREADS: '1',
    INFERENCE_PRODUCTION_THREADS: '1',
  };
  return { env, url: `http://127.0.0.1:${port}` };
}

function started(command: string, args: string[], env: NodeJS.ProcessEnv): { child: ChildProcess; exited: Promise<number | null> } {
  const child = spawn(command, args, { cwd: ROOT, env, stdio: 'ignore' });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  cleanups.push(async () => {
    for (const pid of descendants(child.pid!)) kill(pid);
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  return { child, exited };
}

const ready = (url: string) =>
  eventually(`${url}/readyz`, async () => {
    const res = await fetch(`${url}/readyz`).catch(() => null);
    return res?.status === 200 ? true : undefined;
  });

/** Every process below `pid`, nearest first. */
function descendants(pid: number): number[] {
  let out = '';
  try {
    out = execFileSync('ps', ['-o', 'pid=', '--ppid', String(pid)], { encoding: 'utf8' });
  } catch {
    return [];
  }
  const children = out.split('\n').map((l) => Number(l.trim())).filter((n) => n > 0);
  return children.flatMap((c) => [c, ...descendants(c)]);
}

function kill(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // already gone
  }
}

async function exitWithin(exited: Promise<number | null>, ms: number): Promise<number | null> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<'late'>((resolve) => (timer = setTimeout(() => resolve('late'), ms)));
  const r = await Promise.race([exited, late]).finally(() => clearTimeout(timer));
  assert.notEqual(r, 'late', `the process did not exit within ${ms} ms of SIGTERM`);
  return r as number | null;
}

/** A POST /graphql whose body arrives in two parts, the second when `finish` is called. */
function slowRequest(url: string): { finish(): void; response: Promise<{ status: number; body: string }> } {
  const body = JSON.stringify({ query: '{ __typename }' });
  let finish = () => undefined as void;
  const response = new Promise<{ status: number; body: string }>((resolve, reject) => {
    const req = request(`${url}/graphql`, { method: 'POST', headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
    });
    req.on('error', reject);
    req.write(body.slice(0, 10));
    finish = () => req.end(body.slice(10));
  });
  return { finish, response };
}

describe('stopping the server and the worker', () => {
  it('an idle server exits 0 on SIGTERM and leaves no process behind', async () => {
    const { env, url } = await ownEnvironment();
    const { child, exited } = started(process.execPath, [MAIN], env);
    await ready(url);
    const below = descendants(child.pid!);
    const sent = Date.now();
    child.kill('SIGTERM');
    assert.equal(await exitWithin(exited, EXIT_BOUND_MS), 0);
    process.stdout.write(`# idle server stopped in ${Date.now() - sent} ms\n`);
    assert.deepEqual(below.filter(alive), [], 'processes the server started');
  });

  it('lets an in-flight request finish with 200 and refuses new connections meanwhile', async () => {
    const { env, url } = await ownEnvironment();
    const { child, exited } = started(process.execPath, [MAIN], env);
    await ready(url);
    const slow = slowRequest(url);
    // The first part of the body has reached the server when it has answered another request.
    await ready(url);
    child.kill('SIGTERM');
    await eventually('the server to stop accepting connections', async () => {
      const refused = await fetch(`${url}/healthz`).then(
        () => false,
        (e: { cause?: { code?: string } }) => e.cause?.code === 'ECONNREFUSED',
      );
      return refused ? true : undefined;
    }, 5000, 50);
    assert.equal(child.exitCode, null, 'the server waits for the request in flight');
    slow.finish();
    const res = await slow.response;
    assert.equal(res.status, 200, res.body);
    assert.deepEqual(JSON.parse(res.body).data, { __typename: 'Query' });
    assert.equal(await exitWithin(exited, EXIT_BOUND_MS), 0);
  });

  it('npm start passes SIGTERM to the server: both exit 0 and nothing is orphaned', async () => {
    const { env, url } = await ownEnvironment();
    const { child, exited } = started('npm', ['start', '--silent'], env);
    await ready(url);
    const below = descendants(child.pid!);
    assert.ok(below.length > 0, 'npm started the server');
    child.kill('SIGTERM');
    assert.equal(await exitWithin(exited, EXIT_BOUND_MS), 0);
    await eventually('every process npm started to end', async () => (below.filter(alive).length === 0 ? true : undefined), 2000, 50).catch(() => undefined);
    assert.deepEqual(below.filter(alive), [], 'processes left running after npm ended');
    assert.equal(await fetch(`${url}/healthz`).then(() => 'answered', () => 'refused'), 'refused');
  });

  it('a worker process exits 0 on SIGTERM', async () => {
    const { env, url } = await ownEnvironment();
    // The worker shares the server's database: the API migrates it and the worker joins.
    const api = started(process.execPath, [MAIN], { ...env, WORKERS_IN_PROCESS: 'false' });
    await ready(url);
    // Stopped running, not starting: its log says when its queue workers have started.
    const worker = spawn(process.execPath, [WORKER], { cwd: ROOT, env: { ...env, LOG_LEVEL: 'info' }, stdio: ['ignore', 'pipe', 'ignore'] });
    const exited = new Promise<number | null>((resolve) => worker.once('exit', (code) => resolve(code)));
    cleanups.push(async () => {
      if (worker.exitCode === null && worker.signalCode === null) worker.kill('SIGKILL');
    });
    let logged = '';
    worker.stdout!.setEncoding('utf8').on('data', (c: string) => (logged += c));
    await eventually('the worker to say it is running', async () => (logged.includes('modelgov worker running') ? true : undefined), 60_000, 50);
    worker.kill('SIGTERM');
    assert.equal(await exitWithin(exited, EXIT_BOUND_MS), 0);
    assert.match(logged, /"msg":"stopped"/);
    api.child.kill('SIGTERM');
    assert.equal(await exitWithin(api.exited, EXIT_BOUND_MS), 0);
  });

  it('a signal that comes while a process is still loading its modules is answered by the clean stop, not the default kill', async () => {
    // What an entry point does, with the signal landing between its first import and the setup of
    // its stop: before the first import kept it, this process was ended by SIGTERM itself.
    const script = `
      require(${JSON.stringify(path.join(ROOT, 'dist', 'src', 'core', 'hold-termination.js'))});
      process.kill(process.pid, 'SIGTERM');
      setTimeout(() => {
        const { exitOnTermination } = require(${JSON.stringify(path.join(ROOT, 'dist', 'src', 'core', 'termination.js'))});
        const { createLogger } = require(${JSON.stringify(path.join(ROOT, 'dist', 'src', 'core', 'logger.js'))});
        exitOnTermination({ log: createLogger('info'), deadlineMs: 5000, stop: async () => { process.stderr.write('stopped cleanly\\n'); } });
      }, 300);
    `;
    const child = spawn(process.execPath, ['-e', script], { cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr!.setEncoding('utf8').on('data', (c: string) => (err += c));
    const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve) => child.once('exit', (c, s) => resolve([c, s])));
    assert.deepEqual({ code, signal }, { code: 0, signal: null }, err);
    assert.match(err, /stopped cleanly/);
  });
});
