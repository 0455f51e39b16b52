// `npm start`: runs the built server, compiling first only when a source file is newer than the
// build, and passes termination signals on to it.
import { spawn, spawnSync } from 'node:child_process';
import { readdirSync, statSync, utimesSync } from 'node:fs';
import { constants } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const entry = path.join(root, 'dist', 'src', 'main.js');
const buildInfo = path.join(root, 'dist', '.tsbuildinfo');
// What the server is compiled from; tests and benchmarks are built too but never run by it.
const sources = ['src', 'jobs', 'migrations', 'tsconfig.json'].map((p) => path.join(root, p));

const mtimeOf = (file) => {
  try {
    return statSync(file).mtimeMs;
  } catch {
    return -Infinity;
  }
};

function newestSource(p) {
  const s = statSync(p, { throwIfNoEntry: false });
  if (!s) return -Infinity;
  if (!s.isDirectory()) return p.endsWith('.ts') || p.endsWith('.json') ? s.mtimeMs : -Infinity;
  let newest = s.mtimeMs;
  for (const name of readdirSync(p)) newest = Math.max(newest, newestSource(path.join(p, name)));
  return newest;
}

// An incremental build rewrites only the outputs that changed, but always its build info.
const built = mtimeOf(entry) === -Infinity ? -Infinity : mtimeOf(buildInfo);
if (Math.max(...sources.map(newestSource)) > built) {
  process.stderr.write('modelgov: sources changed since the last build; compiling\n');
  const tsc = spawnSync(process.execPath, [path.join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', path.join(root, 'tsconfig.json')], { stdio: 'inherit' });
  if (tsc.status !== 0) process.exit(tsc.status ?? 1);
  // An incremental build that found nothing to emit leaves the build info as it was: mark the build
  // as current so that the next start does not compile again.
  const now = new Date();
  utimesSync(buildInfo, now, now);
}

// Its own process group, so that a Ctrl-C in a terminal reaches the server once, through this
// script, rather than also directly from the terminal.
const server = spawn(process.execPath, [...process.execArgv, entry, ...process.argv.slice(2)], { stdio: 'inherit', detached: true });

// npm passes a signal on to this script as well as the terminal sending it, so one keypress can
// arrive two or three times within milliseconds; the server treats a second signal as "exit now",
// so copies that close together are passed on once.
const SAME_SIGNAL_MS = 500;
let lastForwarded = -Infinity;
const forward = (signal) => {
  const now = performance.now();
  if (now - lastForwarded < SAME_SIGNAL_MS) return;
  lastForwarded = now;
  // The server stops cleanly on SIGTERM; a closed terminal means the same.
  server.kill(signal === 'SIGHUP' ? 'SIGTERM' : signal);
};
for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP']) process.on(signal, forward);

server.on('exit', (code, signal) => {
  if (signal) {
    for (const s of ['SIGTERM', 'SIGINT', 'SIGHUP']) process.removeAllListeners(s);
    process.kill(process.pid, signal);
    process.exitCode = 128 + (constants.signals[signal] ?? 0);
    return;
  }
  process.exit(code ?? 1);
});
