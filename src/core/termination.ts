import type { Logger } from './logger';

/** What a process does when it is asked to stop. */
export interface TerminationOptions {
  log: Logger;
  /**
   * How long `stop` may take before the process gives up and exits 1: the grace period `stop`
   * gives in-flight work, plus the time closing the pools takes.
   */
  deadlineMs: number;
  /** Closes everything the process opened (waiting for it to finish starting, if it has not). */
  stop(): Promise<void>;
  /** Ends the process with `code` (default: `process.exit`). */
  exit?(code: number): void;
}

const held: NodeJS.Signals[] = [];
const hold = (signal: NodeJS.Signals) => {
  held.push(signal);
};

/**
 * Keeps a termination signal that arrives while the process is still loading its modules, before
 * `exitOnTermination` is set up, so that it is acted on then instead of killing the process where it
 * stands. Called by `hold-termination`, the first module each entry point imports.
 */
export function holdTerminationSignals(): void {
  process.on('SIGTERM', hold);
  process.on('SIGINT', hold);
}

/**
 * Makes `stop` the one response to SIGTERM and SIGINT. The first signal runs it, and the process
 * exits 0 when it resolves, 1 when it rejects or outlasts `deadlineMs`; a second signal exits 1 at
 * once. A signal held by `holdTerminationSignals` counts as if it came now.
 */
export function exitOnTermination(opts: TerminationOptions): void {
  const { log, deadlineMs, stop, exit = (code: number) => process.exit(code) } = opts;
  let first: NodeJS.Signals | null = null;
  const onSignal = (signal: NodeJS.Signals) => {
    if (first) {
      log.warn({ signal, first }, 'second termination signal; exiting now');
      exit(1);
      return;
    }
    first = signal;
    log.info({ signal }, 'draining');
    const deadline = setTimeout(() => {
      log.error({ deadlineMs }, 'shutdown outlasted its deadline; exiting');
      exit(1);
    }, deadlineMs);
    deadline.unref();
    stop().then(
      () => {
        clearTimeout(deadline);
        log.info('stopped');
        exit(0);
      },
      (e) => {
        clearTimeout(deadline);
        log.error({ err: e }, 'error while stopping');
        exit(1);
      },
    );
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  process.off('SIGTERM', hold);
  process.off('SIGINT', hold);
  // Signals that came while the process was loading, in the order they came.
  for (const signal of held.splice(0)) onSignal(signal);
}

/** Beyond the grace period for in-flight work: time to write the logs and close threads and pools. */
export const CLOSE_ALLOWANCE_MS = 5000;
