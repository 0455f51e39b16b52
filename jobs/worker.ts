import 'reflect-metadata';
import { loadConfigOrExit } from '../src/config';
import { createLogger } from '../src/core/logger';
import { openAppServices } from '../src/app/services';
import { startWorkers } from '../src/app/workers';

// `npm run worker`: queue workers (and an outbox dispatcher) without the HTTP API, to scale out.
async function main(): Promise<void> {
  const config = loadConfigOrExit('modelgov worker');
  const log = createLogger(config.logLevel);
  const app = await openAppServices(config, log);
  const workers = startWorkers(app);
  log.info({ pid: process.pid }, 'modelgov worker running');
  const stop = async (signal: string) => {
    log.info({ signal }, 'worker stopping');
    await workers.close();
    await app.close();
    process.exit(0);
  };
  process.once('SIGTERM', () => void stop('SIGTERM'));
  process.once('SIGINT', () => void stop('SIGINT'));
}

main().catch((e) => {
  process.stderr.write(`modelgov worker: failed to start: ${(e as Error).message}\n`);
  process.exit(1);
});
