import { readFileSync } from 'node:fs';
import { spawn, type ChildProcess } from 'node:child_process';
import { freeTcpPort } from '../../src/core/free-port';
import Redis from 'ioredis';

export { freeTcpPort };

/** Polls `check` until it returns a value other than undefined, or throws after `ms`. */
export async function eventually<T>(what: string, check: () => Promise<T | undefined>, ms = 60_000, every = 200): Promise<T> {
  const until = Date.now() + ms;
  for (;;) {
    const v = await check();
    if (v !== undefined) return v;
    if (Date.now() > until) throw new Error(`${what} did not happen within ${ms} ms`);
    await new Promise((r) => setTimeout(r, every));
  }
}

/** A redis-server of the test's own, on a free port, keeping nothing on disk. */
export async function startRedis(port?: number): Promise<{ port: number; url: string; stop(): Promise<void> }> {
  const p = port ?? (await freeTcpPort());
  const child: ChildProcess = spawn('redis-server', ['--port', String(p), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
  const url = `redis://127.0.0.1:${p}`;
  await eventually(`redis on port ${p}`, async () => {
    const c = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
    c.on('error', () => undefined);
    try {
      await c.connect();
      return (await c.ping()) === 'PONG' ? true : undefined;
    } catch {
      return undefined;
    } finally {
      c.disconnect();
    }
  }, 10_000, 100);
  return {
    port: p,
    url,
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill('SIGKILL');
      }),
  };
}

/** Whether `pid` is a live process (a zombie waiting for its reaper counts as gone). */
export function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}
