import '../src/core/hold-termination';
import 'reflect-metadata';
import { loadConfigOrExit } from '../src/config';
import { createLogger, errorText } from '../src/core/logger';
import { localDatabase } from '../src/core/embedded-postgres';
import { CLOSE_ALLOWANCE_MS, exitOnTermination } from '../src/core/termination';
import { openAppServices } from '../src/app/services';
import { startWorkers } from '../src/app/workers';

// `npm run worker`: queue workers (and an outbox dispatcher) without the HTTP API, to scale out.
async function main(): Promise<void> {
  const config = loadConfigOrExit('modelgov worker');
  const log = createLogger(config.logLevel);
  const starting = (async () => {
    // Without DATABASE_URL: the local PostgreSQL, or the embedded one the API process runs (a worker
    // never starts one: it would stop with the worker, under the API's feet).
    const { url } = await localDatabase(config, log, 'attach');
    const app = await openAppServices({ ...config, databaseUrl: url }, log);
    return { app, workers: startWorkers(app) };
  })();
  exitOnTermination({
    log,
    deadlineMs: config.shutdownGraceMs + CLOSE_ALLOWANCE_MS,
    // Running jobs finish within the grace period or go back to the queue; then the pools close.
    stop: async () => {
      const { app, workers } = await starting;
      await workers.close();
      await app.close();
    },
  });
  await starting;
  log.info({ pid: process.pid }, 'modelgov worker running');
}

main().catch((e) => {
  // One line, whatever the error's message holds.
  process.stderr.write(`modelgov worker: failed to start: ${errorText(e).replace(/\s*\n\s*/g, ' ')}\n`);
  process.exit(1);
});
