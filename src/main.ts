import './core/hold-termination';
import 'reflect-metadata';
import { loadConfigOrExit } from './config';
import { createLogger, errorText } from './core/logger';
import { CLOSE_ALLOWANCE_MS, exitOnTermination } from './core/termination';
import { localDatabase, type LocalDatabase } from './core/embedded-postgres';
import { startServer, type RunningServer } from './app/server';
import { demoTokens, seedDemo } from './app/seed/demo';

async function main(): Promise<void> {
  const config = loadConfigOrExit('modelgov');
  const log = createLogger(config.logLevel);
  let server: RunningServer | undefined;
  // Without DATABASE_URL, and with no local PostgreSQL, an embedded one (development only); it is
  // stopped after the server, which uses it until then.
  let database: LocalDatabase | undefined;
  const starting = (async () => {
    database = await localDatabase(config, log, 'start');
    return startServer({ ...config, databaseUrl: database.url }, log);
  })();
  // Owned from the start: a signal during startup stops what has started rather than killing the
  // process half-way through a migration or a model load.
  exitOnTermination({
    log,
    deadlineMs: config.shutdownGraceMs + CLOSE_ALLOWANCE_MS,
    stop: async () => {
      try {
        await (await starting).stop();
      } finally {
        await database?.stop();
      }
    },
    // Node waits for every worker thread on exit, and a thread stuck in a native inference run never
    // ends: such a process can only be killed, so it kills itself rather than hang.
    exit: (code) => {
      const inference = server?.app.inference;
      const left = inference ? Object.values(inference.status().pools).reduce((n, p) => n + p.running, 0) : 0;
      if (left > 0) {
        log.error({ threads: left }, 'inference threads still in runs that cannot be stopped; ending the process with SIGKILL');
        process.kill(process.pid, 'SIGKILL');
      }
      process.exit(code);
    },
  });
  try {
    server = await starting;
  } catch (e) {
    await database?.stop();
    throw e;
  }
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
}

main().catch((e) => {
  // One line, whatever the error's message holds.
  process.stderr.write(`modelgov: failed to start: ${errorText(e).replace(/\s*\n\s*/g, ' ')}\n`);
  process.exit(1);
});
