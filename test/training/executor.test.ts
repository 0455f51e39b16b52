import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, realpath, rm, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { EntrypointError, LocalProcessExecutor, resolveEntrypoint, type ExecutionHandle, type ExecutionOutcome, type ExecutionRequest } from '../../src/training/executor';

interface Ran {
  outcome: ExecutionOutcome;
  lines: Array<{ line: string; stream: 'stdout' | 'stderr' }>;
  stdout: string[];
}

/**
 * Whether `pid` is still a live process (a zombie waiting for its reaper counts as dead). The kernel
 * answers whether the pid exists; `/proc` tells a zombie from a running process. A live pid whose
 * `/proc` entry cannot be read throws rather than counting as gone, so that no kill check can pass
 * for want of `/proc`.
 */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ESRCH') return false;
    // EPERM: the pid exists but belongs to someone else; /proc still shows its state.
    if ((e as NodeJS.ErrnoException).code !== 'EPERM') throw e;
  }
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch (e) {
    // It may have exited between the two looks; if it still exists, /proc is what failed.
    try {
      process.kill(pid, 0);
    } catch (again) {
      if ((again as NodeJS.ErrnoException).code === 'ESRCH') return false;
    }
    throw new Error(`process ${pid} exists but /proc/${pid}/stat cannot be read: ${(e as Error).message}`);
  }
  return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
}

async function gone(pid: number, ms = 10_000): Promise<boolean> {
  const until = Date.now() + ms;
  while (alive(pid)) {
    if (Date.now() > until) return false;
    await new Promise((r) => setTimeout(r, 50));
  }
  return true;
}

/** A shell that starts two sleeping grandchildren (not holding its pipes), prints "<own pid> <pid> <pid>" and waits. */
const TREE = 'sleep 30 </dev/null >/dev/null 2>&1 &\na=$!\nsleep 30 </dev/null >/dev/null 2>&1 &\nb=$!\necho "$$ $a $b"\nwait';

describe('LocalProcessExecutor', () => {
  // The search path trainers get comes from the configuration (PATH); here, this process's own.
  const executor = new LocalProcessExecutor(process.env.PATH);
  let dir: string;
  let work: string;
  const started = new Set<number>();
  const strayFiles: string[] = [];

  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'modelgov-executor-'));
    work = path.join(dir, 'work');
    await mkdir(work);
  });
  after(async () => {
    for (const pid of started) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    for (const f of strayFiles) await rm(f, { force: true });
    await rm(dir, { recursive: true, force: true });
  });

  const script = async (name: string, body: string): Promise<string> => {
    const file = path.join(dir, name);
    await writeFile(file, `#!/bin/sh\n${body}\n`);
    await chmod(file, 0o755);
    return file;
  };

  const run = async (request: Partial<ExecutionRequest> & { argv: string[] }, signal = new AbortController().signal, onLine?: (line: string) => void): Promise<Ran> => {
    const lines: Ran['lines'] = [];
    const outcome = await executor.run(
      { cwd: work, env: {}, timeoutMs: 20_000, maxOutputBytes: 1_000_000, ...request },
      (line, stream) => {
        lines.push({ line, stream });
        onLine?.(line);
      },
      signal,
    );
    return { outcome, lines, stdout: lines.filter((l) => l.stream === 'stdout').map((l) => l.line) };
  };

  it('passes every argument literally: no shell ever sees them', async () => {
    const echo = await script('echo-argv.sh', 'for a in "$@"; do printf "%s\\n" "$a"; done');
    const marker = path.join(os.tmpdir(), `pwned-${randomBytes(6).toString('hex')}`);
    strayFiles.push(marker, `${marker}-2`, `${marker}-3`, `${marker}-4`, `${marker}-5`);
    const args = [`; touch ${marker}`, `$(touch ${marker}-2)`, `\`touch ${marker}-3\``, `| touch ${marker}-4`, `&& touch ${marker}-5`, '*', '$HOME', "it's \"quoted\""];
    const r = await run({ argv: [echo, ...args] });
    assert.deepEqual(r.outcome, { kind: 'exited', code: 0 });
    assert.deepEqual(r.stdout, args);
    for (const f of [marker, `${marker}-2`, `${marker}-3`, `${marker}-4`, `${marker}-5`]) assert.equal(existsSync(f), false, `${f} was not created`);

    // The program name is not parsed either: a "command line" in argv[0] is just a file that does not exist.
    const asProgram = await run({ argv: [`true; touch ${marker}`] });
    assert.equal(asProgram.outcome.kind, 'spawn-failed');
    assert.equal(existsSync(marker), false);
  });

  it('gives the process only the given environment and PATH', async () => {
    const secret = `MODELGOV_EXECUTOR_TEST_SECRET_${randomBytes(4).toString('hex').toUpperCase()}`;
    process.env[secret] = 'do-not-pass-me';
    try {
      const r = await run({ argv: [process.execPath, '-e', 'process.stdout.write(JSON.stringify(process.env) + "\\n")'], env: { MODELGOV_RUN_ID: 'run-1', WITH_SPACES: 'a b; c' } });
      assert.deepEqual(r.outcome, { kind: 'exited', code: 0 });
      const env = JSON.parse(r.stdout.join('\n')) as Record<string, string>;
      assert.deepEqual(Object.keys(env).sort(), ['MODELGOV_RUN_ID', 'PATH', 'WITH_SPACES']);
      assert.equal(env.PATH, process.env.PATH);
      assert.equal(env.MODELGOV_RUN_ID, 'run-1');
      assert.equal(env.WITH_SPACES, 'a b; c');
      assert.ok(!JSON.stringify(env).includes('do-not-pass-me'));
    } finally {
      delete process.env[secret];
    }
  });

  it('starts the process in the given work directory', async () => {
    const r = await run({ argv: [process.execPath, '-e', 'console.log(process.cwd())'] });
    assert.deepEqual(r.outcome, { kind: 'exited', code: 0 });
    assert.deepEqual(r.stdout, [await realpath(work)]);
    const other = path.join(dir, 'other');
    await mkdir(other, { recursive: true });
    const r2 = await run({ argv: [process.execPath, '-e', 'console.log(process.cwd())'], cwd: other });
    assert.deepEqual(r2.stdout, [await realpath(other)]);
  });

  it('sees a running process as alive and a reaped one as gone (what the kill checks below rely on)', async () => {
    assert.equal(alive(process.pid), true);
    const child = spawn('sleep', ['30'], { stdio: 'ignore' });
    const exited = new Promise((resolve) => child.once('exit', resolve));
    const pid = child.pid!;
    started.add(pid);
    assert.equal(alive(pid), true, 'a sleeping child is alive');
    child.kill('SIGKILL');
    await exited;
    assert.equal(alive(pid), false, 'a killed and reaped child is gone');
  });

  it('passes exit codes through, and reports lines by stream', async () => {
    for (const code of [0, 1, 2, 7, 255]) {
      const r = await run({ argv: [process.execPath, '-e', `process.exit(${code})`] });
      assert.deepEqual(r.outcome, { kind: 'exited', code });
    }
    const r = await run({ argv: [process.execPath, '-e', 'process.stdout.write("one\\ntwo\\nlast-without-newline"); process.stderr.write("warn\\n"); process.exitCode = 3'] });
    assert.deepEqual(r.outcome, { kind: 'exited', code: 3 });
    assert.deepEqual(r.stdout, ['one', 'two', 'last-without-newline']);
    assert.deepEqual(r.lines.filter((l) => l.stream === 'stderr').map((l) => l.line), ['warn']);
  });

  it('kills the whole process group on timeout, grandchildren included', { timeout: 25_000 }, async () => {
    // The grandchildren let go of the pipes: the outcome comes as soon as the child dies, and only
    // the group kill (not a closed pipe, nor their own end) can have ended them by then.
    const tree = await script('tree.sh', TREE);
    let pids: number[] = [];
    let aliveWhenReported = false;
    const r = await run({ argv: [tree], timeoutMs: 1500 }, undefined, (line) => {
      pids = line.split(' ').map(Number);
      pids.forEach((p) => started.add(p));
      aliveWhenReported = pids.every(alive);
    });
    assert.deepEqual(r.outcome, { kind: 'timeout' });
    assert.equal(pids.length, 3, JSON.stringify(r.lines));
    assert.ok(aliveWhenReported, 'the group was running before the timeout');
    const [child, ...grandchildren] = pids;
    assert.ok(await gone(child), `the child ${child} is gone`);
    for (const g of grandchildren) assert.ok(await gone(g), `the grandchild ${g} is gone`);
  });

  it('ends what a trainer left running in the background when it exits normally', { timeout: 25_000 }, async () => {
    const leaver = await script('leaver.sh', 'sleep 30 </dev/null >/dev/null 2>&1 &\necho "$!"\nexit 0');
    let pid = 0;
    const r = await run({ argv: [leaver] }, undefined, (line) => {
      pid = Number(line);
      started.add(pid);
    });
    assert.deepEqual(r.outcome, { kind: 'exited', code: 0 });
    assert.ok(pid > 0, JSON.stringify(r.lines));
    assert.ok(await gone(pid), `the background process ${pid} is gone`);
  });

  it('stops a process that prints more than maxOutputBytes', async () => {
    const flood = await script('flood.sh', 'echo "$$"\nexec yes 0123456789abcdef');
    let pid = 0;
    const r = await run({ argv: [flood], maxOutputBytes: 64 * 1024 }, undefined, (line) => {
      if (!pid) {
        pid = Number(line);
        started.add(pid);
      }
    });
    assert.deepEqual(r.outcome, { kind: 'output-limit' });
    assert.ok(pid > 0);
    assert.ok(await gone(pid), 'the flooding process is gone');
    const delivered = r.lines.reduce((n, l) => n + Buffer.byteLength(l.line) + 1, 0);
    assert.ok(delivered <= 64 * 1024 + 1, `no more than the limit reached onLine: ${delivered}`);
  });

  it('cancels on abort, killing the group; an already aborted signal cancels at once', { timeout: 25_000 }, async () => {
    const sleeper = await script('sleeper.sh', TREE);
    const abort = new AbortController();
    let pids: number[] = [];
    let aliveWhenReported = false;
    const r = await run({ argv: [sleeper] }, abort.signal, (line) => {
      pids = line.split(' ').map(Number);
      pids.forEach((p) => started.add(p));
      aliveWhenReported = pids.every(alive);
      abort.abort();
    });
    assert.deepEqual(r.outcome, { kind: 'cancelled' });
    assert.equal(pids.length, 3);
    assert.ok(aliveWhenReported, 'the group was running before the abort');
    assert.throws(() => process.kill(pids[0], 0), { code: 'ESRCH' }, 'the trainer was reaped by its guard before the outcome came, not left to PID 1');
    for (const pid of pids) assert.ok(await gone(pid), `${pid} is gone`);

    const pre = new AbortController();
    pre.abort();
    const marker = path.join(dir, 'ran-anyway');
    const r2 = await run({ argv: [await script('late.sh', `sleep 1\ntouch ${marker}`)] }, pre.signal);
    assert.deepEqual(r2.outcome, { kind: 'cancelled' });
    await new Promise((res) => setTimeout(res, 1500));
    assert.equal(existsSync(marker), false, 'the process was killed before it could do its work');
  });

  it('ends the whole group by itself when the process that started it dies', { timeout: 30_000 }, async () => {
    // A stand-in worker: it starts the tree through the executor, reports the pids, and is then killed.
    const tree = await script('orphan-tree.sh', TREE);
    const parentCode = `const { LocalProcessExecutor } = require(${JSON.stringify(require.resolve('../../src/training/executor'))});
      new LocalProcessExecutor().run({ argv: [${JSON.stringify(tree)}], cwd: ${JSON.stringify(work)}, env: {}, timeoutMs: 60000, maxOutputBytes: 100000 },
        (line) => process.stdout.write(line + '\\n'), new AbortController().signal, (h) => process.stdout.write('leader ' + h.pid + '\\n'));`;
    const parent = spawn(process.execPath, ['-e', parentCode], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    const pids = await new Promise<number[]>((resolve, reject) => {
      parent.stdout!.on('data', (c: Buffer) => {
        out += c.toString();
        const leader = /leader (\d+)/.exec(out);
        const tree = /^(\d+) (\d+) (\d+)$/m.exec(out);
        if (leader && tree) resolve([Number(leader[1]), ...tree.slice(1).map(Number)]);
      });
      parent.once('exit', () => reject(new Error(`the stand-in worker exited first: ${out}`)));
    });
    pids.forEach((p) => started.add(p));
    assert.ok(pids.every(alive), 'the group is running');
    parent.kill('SIGKILL');
    for (const pid of pids) assert.ok(await gone(pid), `${pid} is gone once its worker is`);
  });

  it('stops, from another executor, the group an earlier execution left running; a reused pid is left alone', { timeout: 30_000 }, async () => {
    const tree = await script('stale-tree.sh', TREE);
    let handle: ExecutionHandle | null = null;
    let pids: number[] = [];
    const running = run({ argv: [tree], timeoutMs: 60_000 }, new AbortController().signal, (line) => {
      pids = line.split(' ').map(Number);
      pids.forEach((p) => started.add(p));
    });
    // The handle comes through `onStarted`; `run` above has no hook for it, so start a second one that does.
    let stalePids: number[] = [];
    const second = executor.run(
      { argv: [tree], cwd: work, env: {}, timeoutMs: 60_000, maxOutputBytes: 100_000 },
      (line) => {
        stalePids = line.split(' ').map(Number);
        stalePids.forEach((p) => started.add(p));
      },
      new AbortController().signal,
      (h) => (handle = h),
    );
    assert.ok(handle, 'the handle is given as soon as the process exists');
    const h = handle as ExecutionHandle;
    assert.equal(h.host, os.hostname());
    started.add(h.pid as number);
    while (stalePids.length < 3 || pids.length < 3) await new Promise((r) => setTimeout(r, 50));
    const other = new LocalProcessExecutor();

    assert.equal(await other.stopStale({ ...h, host: `not-${os.hostname()}` }), 'unreachable');
    assert.equal(await other.stopStale({ ...h, startTicks: '1' }), 'gone', 'a leader that started at another time is another process');
    assert.ok(alive(h.pid as number), 'and is left running');

    assert.equal(await other.stopStale(h), 'stopped');
    for (const pid of [h.pid as number, ...stalePids]) assert.ok(!alive(pid), `${pid} is gone when stopStale returns`);
    assert.deepEqual(await second, { kind: 'exited', code: -1 });
    assert.equal(await other.stopStale(h), 'gone');

    // The first run was never handed over: stopping someone else's group did not touch it.
    await new Promise((r) => setTimeout(r, 200));
    assert.ok(pids.length === 3 && pids.every(alive), JSON.stringify(pids));
    for (const pid of pids) process.kill(pid, 'SIGKILL');
    assert.equal((await running).outcome.kind, 'exited');
  });

  it('reports a program that cannot start as spawn-failed', async () => {
    const missing = await run({ argv: [path.join(dir, `no-such-program-${randomBytes(4).toString('hex')}`)] });
    assert.equal(missing.outcome.kind, 'spawn-failed');
    assert.match((missing.outcome as { message: string }).message, /ENOENT/);
    const empty = await run({ argv: [] });
    assert.equal(empty.outcome.kind, 'spawn-failed');
    const noCwd = await run({ argv: [process.execPath, '-e', ''], cwd: path.join(dir, 'no-such-dir') });
    assert.equal(noCwd.outcome.kind, 'spawn-failed');
    const notExecutable = path.join(dir, 'plain.sh');
    await writeFile(notExecutable, '#!/bin/sh\necho hi\n');
    const noExec = await run({ argv: [notExecutable] });
    assert.equal(noExec.outcome.kind, 'spawn-failed');
  });
});

describe('resolveEntrypoint', () => {
  let dir: string;
  let repo: string;
  let realRepo: string;
  const URL = 'https://git.example.com/team/trainers';
  let repos: Record<string, string>;

  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'modelgov-entrypoint-'));
    repo = path.join(dir, 'repo');
    await mkdir(path.join(repo, 'sub', 'dir.js'), { recursive: true });
    realRepo = await realpath(repo);
    await writeFile(path.join(repo, 'train.js'), 'console.log(1)\n', { mode: 0o644 });
    await writeFile(path.join(repo, 'sub', 'train.mjs'), 'console.log(1)\n', { mode: 0o644 });
    await writeFile(path.join(repo, 'run.sh'), '#!/bin/sh\necho hi\n', { mode: 0o755 });
    await writeFile(path.join(repo, 'notes.txt'), 'not a program\n', { mode: 0o644 });
    await writeFile(path.join(repo, 'train.py'), 'print(1)\n', { mode: 0o644 });
    // Outside the repository: a sibling whose name starts like it, and an unrelated directory.
    await mkdir(path.join(dir, 'repo-evil'));
    await writeFile(path.join(dir, 'repo-evil', 'steal.js'), 'console.log(1)\n');
    await writeFile(path.join(dir, 'outside.sh'), '#!/bin/sh\necho out\n', { mode: 0o755 });
    await symlink(path.join(dir, 'outside.sh'), path.join(repo, 'escape.sh'));
    await symlink('../repo-evil/steal.js', path.join(repo, 'sibling.js'));
    await symlink(path.join(dir, 'repo-evil'), path.join(repo, 'linked-dir'));
    await symlink('run.sh', path.join(repo, 'alias.sh'));
    repos = { [URL]: repo };
  });
  after(async () => rm(dir, { recursive: true, force: true }));

  const refused = (entrypoint: string, pattern: RegExp, repositories = repos, url = URL) =>
    assert.rejects(resolveEntrypoint(repositories, url, entrypoint), (e: unknown) => {
      assert.ok(e instanceof EntrypointError, `an EntrypointError for ${entrypoint}, got ${String(e)}`);
      assert.match((e as Error).message, pattern);
      return true;
    });

  it('runs .js files with this Node and executable files directly', async () => {
    assert.deepEqual(await resolveEntrypoint(repos, URL, 'train.js'), [process.execPath, path.join(realRepo, 'train.js')]);
    assert.deepEqual(await resolveEntrypoint(repos, URL, 'sub/train.mjs'), [process.execPath, path.join(realRepo, 'sub', 'train.mjs')]);
    assert.deepEqual(await resolveEntrypoint(repos, URL, './train.js'), [process.execPath, path.join(realRepo, 'train.js')]);
    assert.deepEqual(await resolveEntrypoint(repos, URL, 'run.sh'), [path.join(realRepo, 'run.sh')]);
    // A link that stays inside the repository is followed to its target.
    assert.deepEqual(await resolveEntrypoint(repos, URL, 'alias.sh'), [path.join(realRepo, 'run.sh')]);
  });

  it('refuses a repository the server does not know', async () => {
    await refused('train.js', /not one this server can run/, repos, 'https://git.example.com/other');
    await refused('train.js', /not one this server can run/, {}, URL);
    // Names of Object.prototype members are no repositories either (refused, whatever the message says).
    await refused('train.js', /./, repos, 'constructor');
    await refused('train.js', /./, repos, '__proto__');
  });

  it('refuses paths that are absolute or climb', async () => {
    await refused(path.join(repo, 'train.js'), /relative path inside/);
    await refused('/etc/passwd', /relative path inside/);
    await refused('../repo-evil/steal.js', /relative path inside/);
    await refused('sub/../train.js', /relative path inside/);
    await refused('sub\\..\\..\\outside.sh', /relative path inside/);
    await refused('train.js\nrm -rf /', /relative path inside/);
  });

  it('refuses links that lead outside the repository, even to a look-alike sibling', async () => {
    await refused('escape.sh', /outside its repository/);
    await refused('sibling.js', /outside its repository/);
    await refused('linked-dir/steal.js', /outside its repository/);
  });

  it('refuses what is not a runnable file', async () => {
    await refused('sub', /not a file/);
    await refused('sub/dir.js', /not a file/);
    await refused('.', /outside its repository|not a file/);
    await refused('', /outside its repository|not a file|relative path/);
    await refused('notes.txt', /not executable/);
    await refused('train.py', /not executable/);
    await refused('missing.js', /does not exist/);
  });
});
