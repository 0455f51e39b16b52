import { spawn } from 'node:child_process';
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { databasesOfPrefix, dropDatabase, listTestResources, newTestRunId, removeRedisKeys, runOf, TEST_REDIS_URL, TEST_RUN_VARIABLE, type TestResources } from './test-run';

// `npm test`: runs the test files (all of them, or those named on the command line) under one run
// id, then fails the run if any test database or Redis key of it is left: every test file promises
// to remove what it created, and this is where that promise is checked.

const DIST_TEST = path.resolve(__dirname, '..');

function testFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    return e.isDirectory() ? testFiles(p) : e.name.endsWith('.test.js') ? [p] : [];
  });
}

function runTests(run: string, files: string[]): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--test', '--test-concurrency=2', ...files], { stdio: 'inherit', env: { ...process.env, [TEST_RUN_VARIABLE]: run } });
    child.on('error', reject);
    child.on('exit', (code, signal) => resolve(code ?? (signal ? 1 : 0)));
  });
}

/**
 * What the run left: names carrying its run id, and names carrying none (made by hand by a test
 * file) that did not exist when it began and that no process still uses. Names of other runs (a
 * file run on its own, another suite beside this one) are theirs to remove.
 */
function leftBy(run: string, before: TestResources, after: TestResources): { databases: string[]; redisPrefixes: Array<[string, number]> } {
  // Once this run's files have exited, a database still connected to belongs to a process running beside it.
  const ours = (name: string, existed: boolean, inUse: boolean) => {
    const owner = runOf(name);
    return owner === run || (owner === null && !existed && !inUse);
  };
  return {
    databases: after.databases.filter((d) => ours(d, before.databases.includes(d), after.connected.has(d))),
    redisPrefixes: [...after.redisPrefixes].filter(([p]) => ours(p, before.redisPrefixes.has(p), databasesOfPrefix(p).some((d) => after.connected.has(d)))),
  };
}

async function main(): Promise<void> {
  const named = process.argv.slice(2);
  const files = named.length ? named : testFiles(DIST_TEST).sort();
  const run = newTestRunId();
  const before = await listTestResources();
  const code = await runTests(run, files);
  const left = leftBy(run, before, await listTestResources());
  if (left.databases.length || left.redisPrefixes.length) {
    const lines = [
      `\ntest run ${run} left test resources behind (each test file must remove what it creates):`,
      ...left.databases.map((d) => `  PostgreSQL database ${d}`),
      ...left.redisPrefixes.map(([p, n]) => `  Redis ${n} key(s) under ${p}`),
    ];
    // What carries this run's id is certainly no one else's: removed, so that failures do not pile up.
    // A name without a run id might be another process's, still in use: it is only named.
    for (const d of left.databases.filter((d) => runOf(d) === run)) await dropDatabase(d);
    for (const [p] of left.redisPrefixes.filter(([p]) => runOf(p) === run)) await removeRedisKeys(TEST_REDIS_URL, p);
    process.stderr.write(lines.join('\n') + '\n');
    process.exitCode = 1;
  }
  if (code !== 0) process.exitCode = code;
}

main().catch((e) => {
  process.stderr.write(`test run: ${(e as Error).stack ?? e}\n`);
  process.exit(1);
});
