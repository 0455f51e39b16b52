import { spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { realpath, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

/** What to run: an argument vector (never a shell string), where, with which environment and limits. */
export interface ExecutionRequest {
  /** argv[0] is the program; no shell is involved, so nothing in it is interpreted. */
  argv: string[];
  /** The work directory the server chose; the process starts there. */
  cwd: string;
  /** The whole environment of the process (nothing is inherited but PATH). */
  env: Record<string, string>;
  timeoutMs: number;
  /** Output beyond this many bytes (stdout and stderr together) stops the process. */
  maxOutputBytes: number;
}

export type ExecutionOutcome =
  | { kind: 'exited'; code: number }
  | { kind: 'timeout' }
  | { kind: 'output-limit' }
  | { kind: 'cancelled' }
  | { kind: 'spawn-failed'; message: string };

/**
 * What identifies a started execution to the executor that runs it, as plain JSON: stored with the
 * run so that a later execution (another worker, after this one died) can stop what is left of it.
 */
export type ExecutionHandle = Record<string, string | number | null>;

/** What {@link TrainingExecutor.stopStale} found: stopped it, nothing was left, or it is not this executor's to reach. */
export type StaleOutcome = 'stopped' | 'gone' | 'unreachable';

/**
 * Runs training code. The default runs a local child process; a cluster scheduler (Kubernetes
 * Jobs, say) can take its place by implementing this interface.
 */
export interface TrainingExecutor {
  /**
   * Runs to completion. `onLine` receives each output line; `signal` aborts the run (the outcome
   * is then `cancelled`); `onStarted`, when given, receives the execution's handle as soon as it
   * exists. Never rejects: every way a run can end is an outcome.
   */
  run(
    request: ExecutionRequest,
    onLine: (line: string, stream: 'stdout' | 'stderr') => void,
    signal: AbortSignal,
    onStarted?: (handle: ExecutionHandle) => void,
  ): Promise<ExecutionOutcome>;
  /**
   * Stops, and waits for the end of, an execution that an earlier attempt started and can no longer
   * stop itself (its worker died). Never rejects; an execution already over is `gone`.
   */
  stopStale(handle: ExecutionHandle): Promise<StaleOutcome>;
}

const GUARD = path.join(__dirname, 'trainer-guard.js');

/**
 * A child process in its own process group, killed as a group on timeout, overflow or cancel. The
 * group's leader is a small guard (trainer-guard.ts) holding an IPC channel to this process: if this
 * process dies, the channel closes and the guard kills the group, so no trainer outlives its worker.
 */
export class LocalProcessExecutor implements TrainingExecutor {
  /** @param searchPath the `PATH` trainer processes get (from the configuration). */
  constructor(private readonly searchPath = '/usr/local/bin:/usr/bin:/bin') {}

  run(
    request: ExecutionRequest,
    onLine: (line: string, stream: 'stdout' | 'stderr') => void,
    signal: AbortSignal,
    onStarted?: (handle: ExecutionHandle) => void,
  ): Promise<ExecutionOutcome> {
    return new Promise((resolve) => {
      if (request.argv.length === 0) return resolve({ kind: 'spawn-failed', message: 'empty argument vector' });
      const child = spawn(process.execPath, [GUARD, ...request.argv], {
        cwd: request.cwd,
        env: { PATH: this.searchPath, ...request.env },
        shell: false,
        detached: true,
        stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
      });
      let outcome: ExecutionOutcome | null = null;
      child.on('message', (m: { spawnError?: unknown }) => {
        if (typeof m?.spawnError === 'string') outcome = outcome ?? { kind: 'spawn-failed', message: m.spawnError };
      });
      // The channel is the guard's lifeline to this process, not a reason to keep this one running.
      child.channel?.unref();
      if (child.pid && onStarted) onStarted(localHandle(child.pid));
      let bytes = 0;
      let lastResort: NodeJS.Timeout | undefined;
      const stop = (why: ExecutionOutcome) => {
        if (outcome) return;
        outcome = why;
        if (!child.pid) return void child.kill('SIGKILL');
        // The guard's fellow members first: the guard then reaps its trainer and exits, and this
        // process reaps the guard, leaving nothing for PID 1 to reap. 'close' kills what is left.
        const others = groupMembers(child.pid).filter((pid) => pid !== child.pid);
        if (others.length === 0) return killGroup(child.pid, child);
        for (const pid of others) {
          try {
            process.kill(pid, 'SIGKILL');
          } catch {
            // ended meanwhile
          }
        }
        lastResort = setTimeout(() => killGroup(child.pid!, child), 10_000);
      };
      const timer = setTimeout(() => stop({ kind: 'timeout' }), request.timeoutMs);
      const onAbort = () => stop({ kind: 'cancelled' });
      signal.addEventListener('abort', onAbort, { once: true });
      if (signal.aborted) onAbort();
      for (const [stream, name] of [
        [child.stdout!, 'stdout'],
        [child.stderr!, 'stderr'],
      ] as const) {
        let rest = '';
        stream.setEncoding('utf8');
        stream.on('data', (chunk: string) => {
          bytes += Buffer.byteLength(chunk);
          if (bytes > request.maxOutputBytes) return stop({ kind: 'output-limit' });
          const lines = (rest + chunk).split('\n');
          rest = lines.pop() ?? '';
          for (const l of lines) onLine(l, name);
        });
        stream.on('end', () => {
          if (rest) onLine(rest, name);
        });
      }
      child.once('error', (e) => {
        clearTimeout(timer);
        signal.removeEventListener('abort', onAbort);
        resolve(outcome ?? { kind: 'spawn-failed', message: e.message });
        outcome = outcome ?? { kind: 'spawn-failed', message: e.message };
      });
      child.once('close', (code) => {
        clearTimeout(timer);
        clearTimeout(lastResort);
        // Whatever the trainer left running in its group (background processes) ends with it.
        if (child.pid) killGroup(child.pid, null);
        signal.removeEventListener('abort', onAbort);
        resolve(outcome ?? { kind: 'exited', code: code ?? -1 });
      });
    });
  }

  async stopStale(handle: ExecutionHandle): Promise<StaleOutcome> {
    if (handle.kind !== 'local-process' || typeof handle.pid !== 'number') return 'unreachable';
    if (handle.host !== os.hostname() || handle.bootId !== bootId()) return 'unreachable';
    const pgid = handle.pid;
    // A live leader that started at another time is another process with a reused pid: not ours.
    const leaderStart = startTicks(pgid);
    if (leaderStart !== null && leaderStart !== handle.startTicks) return 'gone';
    // Without its leader the group lives on in its members (a pid is not reused while its group exists).
    if (groupMembers(pgid).length === 0) return 'gone';
    try {
      process.kill(-pgid, 'SIGKILL');
    } catch {
      return 'gone';
    }
    const until = Date.now() + 30_000;
    while (groupMembers(pgid).length > 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
    return 'stopped';
  }
}

/** SIGKILL to a whole process group; when the group is already gone, to `child` alone if given. */
function killGroup(pgid: number, child: { kill(signal: NodeJS.Signals): boolean } | null): void {
  try {
    process.kill(-pgid, 'SIGKILL');
  } catch {
    child?.kill('SIGKILL');
  }
}

/** Where a local execution runs, and its group leader's pid and start time (which tell a reused pid apart). */
function localHandle(pid: number): ExecutionHandle {
  return { kind: 'local-process', host: os.hostname(), bootId: bootId(), pid, startTicks: startTicks(pid) };
}

function bootId(): string | null {
  try {
    return readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
  } catch {
    return null;
  }
}

/** The fields of /proc/<pid>/stat after the command name (which may itself hold spaces and parentheses). */
function procStat(pid: number): string[] | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  } catch {
    return null;
  }
}

/** The process's start time in clock ticks since boot (field 22 of /proc/<pid>/stat), or null when it is gone. */
function startTicks(pid: number): string | null {
  return procStat(pid)?.[19] ?? null;
}

/** Live (not zombie) processes of a process group; none where /proc cannot be read. */
function groupMembers(pgid: number): number[] {
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return [];
  }
  const out: number[] = [];
  for (const e of entries) {
    if (!/^\d+$/.test(e)) continue;
    const fields = procStat(Number(e));
    // state is field 3, pgrp field 5: indexes 0 and 2 after the command name.
    if (fields && fields[0] !== 'Z' && Number(fields[2]) === pgid) out.push(Number(e));
  }
  return out;
}

/** Raised when a code version cannot be run here; the message says why. */
export class EntrypointError extends Error {}

/**
 * The argument vector for a code version: its repository must be one the server knows
 * (TRAINER_REPOSITORIES), and its entrypoint a file inside that repository's directory — after
 * resolving symbolic links — so no code version can reach outside it. `.js`, `.cjs` and `.mjs`
 * files run with this Node; anything else must itself be executable.
 */
export async function resolveEntrypoint(repositories: Record<string, string>, repositoryUrl: string, entrypoint: string): Promise<string[]> {
  const root = Object.hasOwn(repositories, repositoryUrl) ? repositories[repositoryUrl] : undefined;
  if (!root) throw new EntrypointError(`repository ${repositoryUrl} is not one this server can run (see TRAINER_REPOSITORIES)`);
  if (path.isAbsolute(entrypoint) || entrypoint.split(/[\\/]/).includes('..') || /[\0\n]/.test(entrypoint)) {
    throw new EntrypointError('entrypoint must be a relative path inside the repository');
  }
  let realRoot: string;
  let file: string;
  try {
    realRoot = await realpath(root);
    file = await realpath(path.join(realRoot, entrypoint));
  } catch {
    throw new EntrypointError(`entrypoint ${entrypoint} does not exist in ${repositoryUrl}`);
  }
  if (!file.startsWith(realRoot + path.sep)) throw new EntrypointError('entrypoint resolves outside its repository');
  const info = await stat(file);
  if (!info.isFile()) throw new EntrypointError(`entrypoint ${entrypoint} is not a file`);
  if (/\.(c|m)?js$/.test(file)) return [process.execPath, file];
  if ((info.mode & 0o111) === 0) throw new EntrypointError(`entrypoint ${entrypoint} is not executable`);
  return [file];
}

declare module '../core/context' {
  interface AppServices {
    /** Runs training programs (a local child process by default). */
    executor: TrainingExecutor;
  }
}
