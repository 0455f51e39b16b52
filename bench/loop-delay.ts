// The event-loop delay of a bench child process (a server under test, or the bare peer), answered
// over IPC: `loop-reset` starts the histogram afresh, `loop-read` answers with its p99 and maximum.
// The histogram samples only between the two (its 1 ms timer would otherwise wake an idle process,
// a peer waiting for its turn, a thousand times a second beside the one being measured).
import { monitorEventLoopDelay } from 'node:perf_hooks';

/** Answers the parent's `loop-reset` and `loop-read`; returns a stop. */
export function answerLoopDelay(): () => void {
  const loop = monitorEventLoopDelay({ resolution: 1 });
  const on = (m: { op?: string }) => {
    if (m.op === 'loop-reset') {
      loop.reset();
      loop.enable();
      process.send!({ op: 'loop-reset' });
    } else if (m.op === 'loop-read') {
      loop.disable();
      process.send!({ op: 'loop-read', p99Ms: loop.percentile(99) / 1e6, maxMs: loop.max / 1e6 });
    }
  };
  process.on('message', on);
  return () => {
    loop.disable();
    process.off('message', on);
  };
}
