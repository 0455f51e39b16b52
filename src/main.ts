import 'reflect-metadata';
import { loadConfigOrExit } from './config';
import { createLogger } from './core/logger';
import { startServer } from './app/server';
import { demoTokens, seedDemo } from './app/seed/demo';

async function main(): Promise<void> {
  const config = loadConfigOrExit('modelgov');
  const log = createLogger(config.logLevel);
  const server = await startServer(config, log);
  if (config.seedDemo) {
    const seeded = await seedDemo(server.app);
    if (seeded) log.info('demo data seeded: teams fraud and vision');
  }
  log.info({ url: `${server.url}/graphql` }, 'modelgov listening');
  if (!config.isProduction) {
    const lines = [`\nmodelgov is serving ${server.url}/graphql`, 'Tokens for the default roles (12 h; Authorization: Bearer <token>):'];
    for (const t of demoTokens(config.jwtSecret)) lines.push(`  ${t.role.padEnd(12)} teams=${t.teams.join(',').padEnd(13)} ${t.token}`);
    process.stdout.write(lines.join('\n') + '\n\n');
  }
  let stopping = false;
  // Node waits for every worker thread on exit, and a thread stuck in a native inference run never
  // ends: such a process can only be killed, so it kills itself rather than hang.
  const exit = (code: number) => {
    const left = server.app.inference ? Object.values(server.app.inference.status().pools).reduce((n, p) => n + p.running, 0) : 0;
    if (left > 0) {
      log.error({ threads: left }, 'inference threads still in runs that cannot be stopped; ending the process with SIGKILL');
      process.kill(process.pid, 'SIGKILL');
    }
    process.exit(code);
  };
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'draining');
    const timer = setTimeout(() => {
      log.error('shutdown grace period over; exiting');
      exit(1);
    }, config.shutdownGraceMs);
    timer.unref();
    server.stop().then(
      () => {
        log.info('stopped');
        exit(0);
      },
      (e) => {
        log.error({ err: e }, 'error while stopping');
        exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

main().catch((e) => {
  process.stderr.write(`modelgov: failed to start: ${(e as Error).message}\n`);
  process.exit(1);
});
