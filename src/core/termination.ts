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

/**
 * Makes `stop` the one response to SIGTERM and SIGINT. The first signal runs it, and the process
 * exits 0 when it resolves, 1 when it rejects or outlasts `deadlineMs`; a second signal exits 1 at
 * once.
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
}

/** Beyond the grace period for in-flight work: time to write the logs and close threads and pools. */
export const CLOSE_ALLOWANCE_MS = 5000;
