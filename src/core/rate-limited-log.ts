import type { Logger } from './logger';

/** A minute: while a condition lasts, at most one line about it per window. */
export const REPEAT_WINDOW_MS = 60_000;

export interface RateLimitedLogOptions {
  /** What is failing, as the lines name it: `Redis`, `PostgreSQL`. */
  subject: string;
  /** At most one line per window while the condition lasts (default {@link REPEAT_WINDOW_MS}). */
  windowMs?: number;
  /** Fields every line carries, e.g. the setting at fault and where it points (never a secret). */
  fields?: Record<string, unknown>;
  now?: () => number;
}

/**
 * One condition (a service that cannot be reached) seen by several sources (its connections),
 * logged as an operator wants to read it: the first warning at once, then at most one summary per
 * window with how many warnings were held back, and one line when every source works again.
 * Held-back warnings still go to the debug level.
 */
export interface RateLimitedLog {
  /** One warning about the condition, seen by `source` (a connection, a component). */
  warn(source: string, fields: Record<string, unknown>, msg: string): void;
  /** `source` works again; once no source is failing, one line says how long it lasted. */
  clear(source: string): void;
  /** At shutdown: a condition still going on is summed up in one last line. */
  close(): void;
  /** Whether some source is failing now. */
  readonly failing: boolean;
}

/** A {@link RateLimitedLog} of `key` (the `condition` field of its lines) on `log`. */
export function rateLimitedLog(log: Logger, key: string, options: RateLimitedLogOptions): RateLimitedLog {
  const windowMs = options.windowMs ?? REPEAT_WINDOW_MS;
  const now = options.now ?? Date.now;
  const base = { condition: key, ...options.fields };
  const failingSources = new Set<string>();
  let since = 0;
  let lastLineAt = 0;
  // Held back since the last line written, and over the whole condition.
  let heldBack = 0;
  let heldBackInAll = 0;
  const seconds = (ms: number) => Math.round(ms / 100) / 10;

  return {
    get failing() {
      return failingSources.size > 0;
    },
    warn(source, fields, msg) {
      const t = now();
      if (failingSources.size === 0) {
        since = t;
        lastLineAt = t;
        heldBack = 0;
        heldBackInAll = 0;
        failingSources.add(source);
        log.warn({ ...base, source, ...fields }, msg);
        return;
      }
      failingSources.add(source);
      if (t - lastLineAt < windowMs) {
        heldBack += 1;
        heldBackInAll += 1;
        log.debug({ ...base, source, ...fields, suppressed: true }, msg);
        return;
      }
      log.warn(
        { ...base, source, ...fields, suppressed: heldBack, downMs: t - since, sources: [...failingSources] },
        `${options.subject} still failing after ${seconds(t - since)} s: ${msg} (${heldBack} similar warnings suppressed in the last ${seconds(t - lastLineAt)} s)`,
      );
      lastLineAt = t;
      heldBack = 0;
    },
    clear(source) {
      if (!failingSources.delete(source) || failingSources.size > 0) return;
      const downMs = now() - since;
      log.info(
        { ...base, downMs, suppressed: heldBackInAll },
        `${options.subject} reachable again after ${seconds(downMs)} s, ${heldBackInAll} warnings suppressed`,
      );
    },
    close() {
      if (failingSources.size === 0) return;
      const downMs = now() - since;
      log.warn(
        { ...base, downMs, suppressed: heldBackInAll, sources: [...failingSources] },
        `${options.subject} still unreachable at shutdown after ${seconds(downMs)} s, ${heldBackInAll} warnings suppressed`,
      );
      failingSources.clear();
    },
  };
}

/** An ioredis client, or anything else that says `error` while it cannot connect and `ready` when it can. */
interface Connection {
  on(event: 'error', listener: (e: Error) => void): unknown;
  on(event: 'ready', listener: () => void): unknown;
}

/** Reports `connection`'s errors to `trouble` as `source`, and its recovery. */
export function followConnection(connection: Connection, trouble: RateLimitedLog, source: string, msg: string): void {
  connection.on('error', (e) => trouble.warn(source, { err: e.message }, msg));
  connection.on('ready', () => trouble.clear(source));
}
