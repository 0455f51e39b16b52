import { spawn } from 'node:child_process';
import { realpath, stat } from 'node:fs/promises';
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
 * Runs training code. The default runs a local child process; a cluster scheduler (Kubernetes
 * Jobs, say) can take its place by implementing this interface.
 */
export interface TrainingExecutor {
  /**
   * Runs to completion. `onLine` receives each output line; `signal` aborts the run (the outcome
   * is then `cancelled`). Never rejects: every way a run can end is an outcome.
   */
  run(request: ExecutionRequest, onLine: (line: string, stream: 'stdout' | 'stderr') => void, signal: AbortSignal): Promise<ExecutionOutcome>;
}

/** A child process in its own process group, killed as a group on timeout, overflow or cancel. */
export class LocalProcessExecutor implements TrainingExecutor {
  run(request: ExecutionRequest, onLine: (line: string, stream: 'stdout' | 'stderr') => void, signal: AbortSignal): Promise<ExecutionOutcome> {
    return new Promise((resolve) => {
      if (request.argv.length === 0) return resolve({ kind: 'spawn-failed', message: 'empty argument vector' });
      const child = spawn(request.argv[0], request.argv.slice(1), {
        cwd: request.cwd,
        env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...request.env },
        shell: false,
        detached: true,
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let outcome: ExecutionOutcome | null = null;
      let bytes = 0;
      const stop = (why: ExecutionOutcome) => {
        if (outcome) return;
        outcome = why;
        try {
          if (child.pid) process.kill(-child.pid, 'SIGKILL');
        } catch {
          child.kill('SIGKILL');
        }
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
        // Whatever the trainer left running in its group (background processes) ends with it.
        try {
          if (child.pid) process.kill(-child.pid, 'SIGKILL');
        } catch {
          // the group is already gone
        }
        signal.removeEventListener('abort', onAbort);
        resolve(outcome ?? { kind: 'exited', code: code ?? -1 });
      });
    });
  }
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
