// The event-loop delay of a bench child process (a server under test, or the bare peer), answered
// over IPC: `loop-reset` starts the histogram afresh, `loop-read` answers with its p99 and maximum.
import { monitorEventLoopDelay } from 'node:perf_hooks';

/** Starts measuring this process's event-loop delay and answers the parent's `loop-reset` and `loop-read`; returns a stop. */
export function answerLoopDelay(): () => void {
  const loop = monitorEventLoopDelay({ resolution: 1 });
  loop.enable();
  const on = (m: { op?: string }) => {
    if (m.op === 'loop-reset') {
      loop.reset();
      process.send!({ op: 'loop-reset' });
    } else if (m.op === 'loop-read') {
      process.send!({ op: 'loop-read', p99Ms: loop.percentile(99) / 1e6, maxMs: loop.max / 1e6 });
    }
  };
  process.on('message', on);
  return () => {
    loop.disable();
    process.off('message', on);
  };
}
