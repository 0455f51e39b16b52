import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { signToken } from '../../src/access/authenticate';
import { JWT_SECRET, removeRedisKeys, TEST_REDIS_URL, testRedisPrefix } from '../support/harness';
import { eventually, freeTcpPort } from '../support/processes';

const ROOT = path.resolve(__dirname, '../../..');
const MAIN = path.join(ROOT, 'dist', 'src', 'main.js');
const WORKER = path.join(ROOT, 'dist', 'jobs', 'worker.js');

/** The processes whose command line names `dir` (the embedded server and its children run `postgres -D <dir>`). */
function processesOf(dir: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0').includes(dir)) pids.push(Number(entry));
    } catch {
      // Gone since the listing.
    }
  }
  return pids;
}

interface Run {
  child: ChildProcess;
  output: () => string;
  exited: Promise<number | null>;
}

describe('zero-setup development database (no DATABASE_URL, no local PostgreSQL)', () => {
  const children: ChildProcess[] = [];
  let dataDir = '';
  let prefix = '';

  after(async () => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    if (dataDir) {
      // Whatever a failed test left: the embedded server is told to stop before its files go.
      for (const pid of processesOf(path.join(dataDir, 'postgres', 'data'))) process.kill(pid, 'SIGQUIT');
      await eventually('the embedded PostgreSQL to end', async () => (processesOf(path.join(dataDir, 'postgres', 'data')).length ? undefined : true), 10_000).catch(() => undefined);
      await rm(dataDir, { recursive: true, force: true });
      await rm(`${dataDir}-secrets`, { recursive: true, force: true });
    }
    if (prefix) await removeRedisKeys(TEST_REDIS_URL, prefix);
  });

  it('starts an embedded PostgreSQL under DATA_DIR, stops it on SIGTERM, and keeps its data for the next start', { timeout: 90_000 }, async () => {
    dataDir = await mkdtemp(path.join(os.tmpdir(), 'modelgov-embedded-'));
    // Run as root, the embedded server runs as the postgres user, which must reach its directory.
    await chmod(dataDir, 0o755);
    prefix = testRedisPrefix(`embedded_${path.basename(dataDir).replace(/\W/g, '')}`);
    const port = await freeTcpPort();
    // The local address probed when DATABASE_URL is unset is libpq's PGHOST:PGPORT; here a closed port.
    const closedPort = await freeTcpPort();
    const env: NodeJS.ProcessEnv = {
      PATH: process.env.PATH ?? '',
      HOME: process.env.HOME ?? os.tmpdir(),
      NODE_ENV: 'test',
      SEED_DEMO: 'true',
      HOST: '127.0.0.1',
      PORT: String(port),
      PGHOST: '127.0.0.1',
      PGPORT: String(closedPort),
      REDIS_URL: TEST_REDIS_URL,
      REDIS_PREFIX: prefix,
      AUTH_JWT_SECRET: JWT_SECRET,
      DATA_DIR: dataDir,
      SECRETS_DIR: `${dataDir}-secrets`,
      LOG_LEVEL: 'info',
      INFERENCE_THREADS: '1',
      INFERENCE_PRODUCTION_THREADS: '1',
    };
    const url = `http://127.0.0.1:${port}`;
    const clusterDir = path.join(dataDir, 'postgres', 'data');
    const admin = signToken(JWT_SECRET, { sub: 'embedded-admin', roles: ['admin'], teams: ['fraud', 'vision'] });

    const start = (program: string): Run => {
      const child = spawn(process.execPath, [program], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
      children.push(child);
      let output = '';
      child.stdout!.on('data', (c: Buffer) => (output += c.toString()));
      child.stderr!.on('data', (c: Buffer) => (output += c.toString()));
      const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
      return { child, output: () => output, exited };
    };
    // Ready, and done with its start (the demo is seeded after the server answers /readyz).
    const ready = (run: Run) =>
      eventually('/readyz', async () => {
        if (run.child.exitCode !== null) assert.fail(`the server exited (${run.child.exitCode}): ${run.output()}`);
        if (!run.output().includes('modelgov listening')) return undefined;
        const res = await fetch(`${url}/readyz`).catch(() => null);
        return res?.status === 200 ? true : undefined;
      }, 60_000);
    const teams = async (): Promise<string[]> => {
      const res = await fetch(`${url}/graphql`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${admin}` },
        body: JSON.stringify({ query: '{ teams(first: 200) { nodes { name } } }' }),
      });
      const body = (await res.json()) as { data?: { teams: { nodes: Array<{ name: string }> } }; errors?: unknown };
      assert.ok(body.data, `teams: ${JSON.stringify(body.errors)}`);
      return body.data.teams.nodes.map((n) => n.name).sort();
    };
    const embeddedLine = (output: string) => {
      const line = output.split('\n').find((l) => l.includes('running an embedded PostgreSQL'));
      assert.ok(line, `the start says that it runs an embedded PostgreSQL:\n${output}`);
      const m = /on 127\.0\.0\.1:(\d+), data in (\S+)"/.exec(line);
      assert.ok(m, line);
      assert.equal(m[2], clusterDir, 'the line says where the data lives');
      assert.notEqual(Number(m[1]), closedPort);
      return Number(m[1]);
    };
    const stop = async (run: Run) => {
      run.child.kill('SIGTERM');
      assert.equal(await run.exited, 0, `exits 0 on SIGTERM:\n${run.output()}`);
      assert.deepEqual(processesOf(clusterDir), [], 'no PostgreSQL process of the data directory is left');
    };

    // First start: the cluster is initialised, the database created, migrated and the demo seeded.
    const first = start(MAIN);
    await ready(first);
    const pgPort = embeddedLine(first.output());
    assert.ok(processesOf(clusterDir).length > 0, 'the embedded server runs');
    assert.match(first.output(), /demo data seeded/);
    assert.deepEqual(await teams(), ['fraud', 'vision']);
    const password = statSync(path.join(dataDir, 'postgres', 'password'));
    assert.equal(password.mode & 0o777, 0o600, 'the superuser password is private');

    // A worker in the same mode attaches to it.
    const worker = start(WORKER);
    await eventually('the worker to run', async () => {
      if (worker.child.exitCode !== null) assert.fail(`the worker exited (${worker.child.exitCode}): ${worker.output()}`);
      return worker.output().includes('modelgov worker running') ? true : undefined;
    }, 30_000);
    worker.child.kill('SIGTERM');
    assert.equal(await worker.exited, 0, worker.output());

    // A second server on the same data directory is refused with a clear line.
    const second = start(MAIN);
    assert.equal(await second.exited, 1);
    assert.match(second.output(), /embedded PostgreSQL in .* is already in use by another process/);

    await stop(first);

    // The worker without the API says that it needs it.
    const alone = start(WORKER);
    assert.equal(await alone.exited, 1);
    assert.match(alone.output(), /embedded PostgreSQL in .* is not running; start the API \(npm start\) first/);

    // Second start: same cluster, same port, data kept, nothing seeded again.
    const again = start(MAIN);
    await ready(again);
    assert.equal(embeddedLine(again.output()), pgPort, 'the recorded port is used again');
    assert.doesNotMatch(again.output(), /initialising the embedded PostgreSQL/);
    assert.doesNotMatch(again.output(), /demo data seeded/);
    assert.deepEqual(await teams(), ['fraud', 'vision']);
    await stop(again);
  });
});
