import { spawn } from 'node:child_process';
import { constants } from 'node:os';

// The leader of a trainer's process group, started by LocalProcessExecutor as
// `node trainer-guard.js <program> <args…>` with an IPC channel to the worker. It runs the trainer in
// its own group and passes its exit status through. When the channel closes without the trainer
// having exited, the worker is gone (killed, crashed): the guard then kills the whole group, itself
// included, so no trainer outlives the worker that would have registered its output. The trainer
// itself needs no cooperation for this (it may block its event loop, or not be Node at all).

let exiting = false;

function killGroup(): void {
  if (exiting) return;
  exiting = true;
  try {
    process.kill(-process.pid, 'SIGKILL');
  } catch {
    process.exit(137);
  }
}

process.on('disconnect', killGroup);
if (!process.connected) killGroup();

// The channel's own variables are the guard's, not the trainer's.
delete process.env.NODE_CHANNEL_FD;
delete process.env.NODE_CHANNEL_SERIALIZATION_MODE;

const [program, ...args] = process.argv.slice(2);
const child = spawn(program, args, { stdio: ['ignore', 'inherit', 'inherit'], env: process.env, shell: false });

child.once('error', (e) => {
  exiting = true;
  // Reported as the executor's `spawn-failed`, with the message spawn gave.
  if (process.send) process.send({ spawnError: e.message }, () => process.exit(127));
  else process.exit(127);
});

child.once('exit', (code, signal) => {
  exiting = true;
  if (signal) {
    // Dies of the same signal; a signal Node survives (SIGPIPE, say) still ends it, as a shell would report it.
    process.removeAllListeners(signal);
    process.kill(process.pid, signal);
    setTimeout(() => process.exit(128 + (constants.signals[signal] ?? 0)), 100);
    return;
  }
  process.exit(code ?? 1);
});
