#!/usr/bin/env node
import 'reflect-metadata';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { isEnumType, lexicographicSortSchema, printSchema, printType } from 'graphql';
import { Client } from 'pg';
import { signToken } from './access/authenticate';
import { DEFAULT_ROLES } from './access/policy-rules';
import { verifyChain } from './audit/audit-chain.verify';
import { applyRetention } from './audit/audit-retention.service';
import { AnchorRefusedError, publishAnchor, verifyAnchors } from './audit/audit-anchor.service';
import { anchorPublishers } from './audit/audit-anchor.publisher';
import type { AppServices } from './core/context';
import { closest, runCommandLine, UsageError, type Command, type Program } from './core/command-line';
import { withDefaultUser } from './core/database';
import { createLogger } from './core/logger';
import { systemContext } from './access/system-context';
import { verifyExportFile } from './audit/audit-export.verify';
import { publicKeyOf } from './audit/audit-signing';
import { ConfigError, loadConfig } from './config';
import { openAppDatabase } from './app/database';
import { buildAppSchema } from './app/schema';

/**
 * The SDL `schema` writes, as committed in `schema/schema.graphql`: the app's schema with types,
 * fields and arguments sorted (stable diffs), and each enum's values in their declared order —
 * the order means something (`AlertSeverity` runs from lowest to highest, `IterationStatus`
 * follows the loop).
 */
export async function emittedSchema(): Promise<string> {
  const schema = await buildAppSchema();
  const sorted = lexicographicSortSchema(schema);
  let sdl = printSchema(sorted);
  for (const type of Object.values(schema.getTypeMap())) {
    if (!isEnumType(type) || type.name.startsWith('__')) continue;
    sdl = sdl.replace(printType(sorted.getType(type.name)!), printType(type));
  }
  return sdl + '\n';
}

const SCHEMA_FILE = path.resolve(__dirname, '../../schema/schema.graphql');

/** Every command `modelgov` answers, in the order its help lists them. */
export const COMMANDS: readonly Command[] = [
  {
    name: 'migrate',
    summary: 'apply pending migrations to DATABASE_URL (the database is created when missing)',
    examples: ['migrate', 'migrate  # with DATABASE_URL=postgres://127.0.0.1:5432/modelgov'],
    async run() {
      const db = await openAppDatabase(loadConfig().databaseUrl);
      await db.destroy();
      process.stdout.write('migrations applied\n');
      return 0;
    },
  },
  {
    name: 'schema',
    summary: 'write schema/schema.graphql from the code (with --check, only compare)',
    details: 'With --check nothing is written: exit 1 if the committed file is stale, 0 if it is up to date.',
    options: { check: { type: 'boolean', help: 'exit 1 if schema/schema.graphql differs from the code; write nothing' } },
    examples: ['schema', 'schema --check'],
    async run({ options }) {
      const sdl = await emittedSchema();
      if (options.check) {
        const current = await readFile(SCHEMA_FILE, 'utf8').catch(() => '');
        if (current !== sdl) {
          process.stdout.write('schema/schema.graphql is stale: run npm run schema\n');
          return 1;
        }
        process.stdout.write('schema/schema.graphql is up to date\n');
        return 0;
      }
      await writeFile(SCHEMA_FILE, sdl);
      process.stdout.write(`wrote ${path.relative(process.cwd(), SCHEMA_FILE)}\n`);
      return 0;
    },
  },
  {
    name: 'token',
    summary: 'print a bearer token signed with AUTH_JWT_SECRET (development)',
    details:
      `Each --role must be a built-in role (${DEFAULT_ROLES.map((r) => r.name).join(', ')}) or a role stored in\n` +
      'the DATABASE_URL database; each --team must be a team stored there. The database is read (never\n' +
      'created or migrated) only when a role is not built in or a team is given. An unknown role or team\n' +
      'exits 2 and prints no token.',
    options: {
      role: { type: 'string', multiple: true, value: '<role>', help: 'a role the token holds (at least one)' },
      team: { type: 'string', multiple: true, value: '<team>', help: 'a team name the token belongs to' },
      sub: { type: 'string', value: '<subject>', help: 'the subject (default cli-user)' },
      hours: { type: 'string', value: '<hours>', help: 'lifetime in hours (default 12)' },
    },
    examples: ['token --role ml-engineer --team fraud --sub alice', 'token --role admin --hours 1'],
    async run({ options }) {
      const roles = (options.role as string[] | undefined) ?? [];
      const teams = (options.team as string[] | undefined) ?? [];
      const hours = options.hours === undefined ? 12 : Number(options.hours);
      if (roles.length === 0) throw new UsageError('"token" needs at least one --role', TOKEN);
      if (!(hours > 0)) throw new UsageError(`--hours must be a positive number of hours, not "${options.hours}"`, TOKEN);
      const config = loadConfig();
      await checkRolesAndTeams(config.databaseUrl, roles, teams);
      const subject = (options.sub as string | undefined) ?? 'cli-user';
      process.stdout.write(signToken(config.jwtSecret, { sub: subject, roles, teams }, Math.round(hours * 3600)) + '\n');
      return 0;
    },
  },
  {
    name: 'audit verify',
    summary: 'walk the audit chain; exit 1 and name the first broken link',
    details:
      'With anchor files, also check each anchor\'s signature and that the chain still holds what it\n' +
      'vouches for: exit 3 a refused (forged, edited) anchor, 4 another database\'s, 5 truncated, 6 rewritten.',
    options: { anchor: { type: 'string', multiple: true, value: '<file>', help: 'an anchor file to check against the chain' } },
    examples: ['audit verify', 'audit verify --anchor /var/lib/modelgov/anchors.jsonl'],
    async run({ options }) {
      const anchorFiles = (options.anchor as string[] | undefined) ?? [];
      const config = loadConfig();
      const db = await openAppDatabase(config.databaseUrl);
      try {
        const publicKeyPem = publicKeyOf(config.auditSigningKeyPem).pem;
        const r = await verifyChain(db, 5000, publicKeyPem);
        if (!r.ok) {
          process.stdout.write(`audit chain BROKEN at event ${r.firstBreak!.seq}: ${r.firstBreak!.problem} (${r.checked} events verified before it)\n`);
          return 1;
        }
        process.stdout.write(`audit chain intact: ${r.checked} events, last hash ${r.lastHash}\n`);
        if (anchorFiles.length === 0) return 0;
        const a = await verifyAnchors(db, anchorFiles, publicKeyPem, r.lastSeq);
        if (a.exitCode === 0) {
          const newest = a.newest!;
          process.stdout.write(
            `anchors verified: ${a.anchors} signed by the audit key; ${a.matched} held by the chain, ${a.rolledUp} inside retention checkpoints; ` +
              `the newest vouches for event ${newest.seq} (anchored ${newest.anchoredAt})\n`,
          );
          return 0;
        }
        process.stdout.write(`anchors FAILED:\n${a.problems.map((p) => `- ${p}\n`).join('')}`);
        return a.exitCode;
      } finally {
        await db.destroy();
      }
    },
  },
  {
    name: 'audit anchor',
    summary: 'sign the chain head and append it to AUDIT_ANCHOR_FILE, unless it is already there',
    details: 'The worker also does it every AUDIT_ANCHOR_EVERY_SECONDS. Exit 1 if a target refused the anchor.',
    examples: ['audit anchor'],
    async run() {
      const config = loadConfig();
      const db = await openAppDatabase(config.databaseUrl);
      try {
        let refused = false;
        for (const publisher of anchorPublishers(config)) {
          try {
            const p = await publishAnchor({ db, config }, publisher);
            process.stdout.write(
              !p.anchor
                ? `nothing to anchor: the audit chain is empty\n`
                : p.published
                  ? `anchored event ${p.anchor.seq} (${p.anchor.hash}) to ${p.target}\n`
                  : `already anchored: event ${p.anchor.seq} is the newest anchor in ${p.target}\n`,
            );
          } catch (e) {
            if (!(e instanceof AnchorRefusedError)) throw e;
            process.stdout.write(`NOT anchored to ${publisher.target}: ${e.message}\n`);
            refused = true;
          }
        }
        return refused ? 1 : 0;
      } finally {
        await db.destroy();
      }
    },
  },
  {
    name: 'audit verify-export',
    summary: 'check an audit export offline (chain, counts, digest, signature); exit 1 and name the first bad line',
    details: 'Needs no configuration, database or server. A <file>.manifest.json beside a CSV export is used when --manifest is not given.',
    positionals: [{ name: 'file', required: true, help: 'the exported CSV or NDJSON file' }],
    options: {
      manifest: { type: 'string', value: '<file>', help: 'the export\'s manifest (default: the .manifest.json beside a .csv)' },
      'public-key': { type: 'string', value: '<file>', help: 'the server\'s PEM public key, to pin the signer' },
    },
    examples: ['audit verify-export audit.csv --public-key audit-public.pem'],
    async run({ options, positionals }) {
      return verifyExportCommand(positionals.file!, options.manifest as string | undefined, options['public-key'] as string | undefined);
    },
  },
  {
    name: 'audit retention',
    summary: 'roll events older than AUDIT_RETENTION_DAYS into a signed checkpoint',
    details: 'The worker also does it daily.',
    examples: ['audit retention'],
    async run() {
      const config = loadConfig();
      const db = await openAppDatabase(config.databaseUrl);
      try {
        const log = createLogger('silent');
        const app = { config, db, log } as unknown as AppServices;
        const r = await applyRetention(systemContext(app, { id: 'cli:audit-retention', kind: 'system' }, 'cli-audit-retention'));
        process.stdout.write(
          r.checkpoint
            ? `removed ${r.removed} events older than ${r.cutoff.toISOString()}; the chain now starts after checkpoint ${r.checkpoint.seq} (${r.checkpoint.hash})\n`
            : `nothing older than ${r.cutoff.toISOString()} to remove\n`,
        );
        return 0;
      } finally {
        await db.destroy();
      }
    },
  },
  {
    name: 'audit public-key',
    summary: 'print the PEM public key that signs exports and checkpoints',
    examples: ['audit public-key > audit-public.pem'],
    async run() {
      const { pem, keyId } = publicKeyOf(loadConfig().auditSigningKeyPem);
      process.stdout.write(`# key id ${keyId}\n${pem}`);
      return 0;
    },
  },
];

const TOKEN = COMMANDS.find((c) => c.name === 'token')!;

/** The command line: `modelgov <command> [options]`. */
export const PROGRAM: Program = {
  name: 'modelgov',
  description: 'modelgov administration: migrations, the GraphQL schema file, development tokens and the audit chain.',
  commands: COMMANDS,
};

/**
 * Refuses (a usage error, exit 2) a role that is neither built in nor stored in the database, and a
 * team the database does not hold. A database that does not exist yet, or is not migrated, holds
 * neither; one that cannot be reached is an error of its own.
 */
async function checkRolesAndTeams(databaseUrl: string, roles: string[], teams: string[]): Promise<void> {
  const builtIn = DEFAULT_ROLES.map((r) => r.name);
  if (teams.length === 0 && roles.every((r) => builtIn.includes(r))) return;
  const stored = await readRolesAndTeams(databaseUrl);
  const knownRoles = [...new Set([...builtIn, ...stored.roles])];
  const where = stored.note ? ` (${stored.note})` : '';
  for (const role of roles) {
    if (!knownRoles.includes(role)) {
      throw new UsageError(`unknown role "${role}" (did you mean "${closest(role, knownRoles)}"? roles: ${knownRoles.join(', ')})${where}`, TOKEN);
    }
  }
  for (const team of teams) {
    if (!stored.teams.includes(team)) {
      const hint = stored.teams.length ? ` (did you mean "${closest(team, stored.teams)}"? teams: ${stored.teams.join(', ')})` : `: no teams are stored${where}`;
      throw new UsageError(`unknown team "${team}"${hint}`, TOKEN);
    }
  }
}

// A plain read, not openAppDatabase: issuing a token must never create or migrate a database.
async function readRolesAndTeams(databaseUrl: string): Promise<{ roles: string[]; teams: string[]; note?: string }> {
  const client = new Client({ connectionString: withDefaultUser(databaseUrl) });
  client.on('error', () => undefined);
  const name = new URL(databaseUrl).pathname.slice(1);
  try {
    await client.connect();
  } catch (e) {
    if ((e as { code?: string }).code === '3D000') return { roles: [], teams: [], note: `database "${name}" does not exist` };
    throw new Error(`cannot read roles and teams from database "${name}": ${(e as Error).message}`);
  }
  try {
    const roles = await client.query<{ name: string }>('SELECT name FROM role ORDER BY name');
    const teams = await client.query<{ name: string }>('SELECT name FROM team ORDER BY name');
    return { roles: roles.rows.map((r) => r.name), teams: teams.rows.map((r) => r.name) };
  } catch (e) {
    if ((e as { code?: string }).code === '42P01') return { roles: [], teams: [], note: `database "${name}" is not migrated` };
    throw e;
  } finally {
    await client.end();
  }
}

async function verifyExportCommand(file: string, manifestFile: string | undefined, publicKeyFile: string | undefined): Promise<number> {
  let manifest = manifestFile;
  if (!manifest && file.endsWith('.csv')) {
    const sibling = file.replace(/\.csv$/, '.manifest.json');
    if (await readFile(sibling).then(() => true, () => false)) manifest = sibling;
  }
  const r = await verifyExportFile(file, {
    manifest: manifest ? await readFile(manifest, 'utf8') : null,
    publicKeyPem: publicKeyFile ? await readFile(publicKeyFile, 'utf8') : null,
  });
  if (!r.ok) {
    process.stdout.write(`export INVALID${r.line !== null ? ` at line ${r.line}` : ''}: ${r.problem}\n`);
    return 1;
  }
  const m = r.manifest!;
  process.stdout.write(
    `export verified: ${r.events} events shown, ${r.omitted} by hash only, chain ${m.firstSeq ?? '-'}…${m.lastSeq ?? '-'} ending ${m.lastHash ?? '-'}; ` +
      `signed by key ${m.keyId}${r.keyPinned ? '' : ' (the key in the manifest: pass --public-key to pin the server\'s)'}\n`,
  );
  return 0;
}

if (require.main === module) {
  const io = { stdout: (t: string) => process.stdout.write(t), stderr: (t: string) => process.stderr.write(t) };
  runCommandLine(PROGRAM, process.argv.slice(2), io).then(
    (code) => process.exit(code),
    (e) => {
      process.stderr.write(`modelgov: ${e instanceof ConfigError ? e.message : (e as Error).message}\n`);
      process.exit(1);
    },
  );
}
