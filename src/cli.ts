import 'reflect-metadata';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { printSchema, lexicographicSortSchema } from 'graphql';
import { signToken } from './access/authenticate';
import { verifyChain } from './audit/audit-chain.verify';
import { applyRetention } from './audit/audit-retention.service';
import { AnchorRefusedError, publishAnchor, verifyAnchors } from './audit/audit-anchor.service';
import { anchorPublishers } from './audit/audit-anchor.publisher';
import type { AppServices } from './core/context';
import { createLogger } from './core/logger';
import { systemContext } from './access/system-context';
import { verifyExportFile } from './audit/audit-export.verify';
import { publicKeyOf } from './audit/audit-signing';
import { ConfigError, loadConfig } from './config';
import { openAppDatabase } from './app/database';
import { buildAppSchema } from './app/schema';

const USAGE = `usage: npm run cli -- <command>
  migrate                          apply pending migrations to DATABASE_URL
  audit verify [--anchor <file>]...
                                   walk the audit chain; exit 1 and name the first broken link.
                                   With anchor files, also check each anchor's signature and that the
                                   chain still holds what it vouches for: exit 3 a refused (forged,
                                   edited) anchor, 4 another database's, 5 truncated, 6 rewritten
  audit anchor                     sign the chain head and append it to AUDIT_ANCHOR_FILE, unless it is
                                   already there (the worker also does it every AUDIT_ANCHOR_EVERY_SECONDS)
  audit verify-export <file> [--manifest <file>] [--public-key <file>]
                                   check an export offline (chain, counts, digest, signature);
                                   exit 1 and name the first bad line
  audit retention                  roll events older than AUDIT_RETENTION_DAYS into a signed checkpoint
                                   (the worker also does it daily)
  audit public-key                 print the PEM public key that signs exports and checkpoints
  schema [--check]                 write schema/schema.graphql (--check: exit 1 if it is stale)
  token --role R [--team T]... [--sub S] [--hours H]   print a bearer token (development)`;

export async function emittedSchema(): Promise<string> {
  return printSchema(lexicographicSortSchema(await buildAppSchema())) + '\n';
}

async function run(argv: string[]): Promise<number> {
  const [cmd, sub, ...rest] = argv;
  // Offline: needs no configuration, database or server.
  if (cmd === 'audit' && sub === 'verify-export') return verifyExportCommand(rest);
  const config = loadConfig();
  if (cmd === 'audit' && sub === 'public-key') {
    const { pem, keyId } = publicKeyOf(config.auditSigningKeyPem);
    process.stdout.write(`# key id ${keyId}\n${pem}`);
    return 0;
  }
  if (cmd === 'migrate') {
    const db = await openAppDatabase(config.databaseUrl);
    await db.destroy();
    process.stdout.write('migrations applied\n');
    return 0;
  }
  if (cmd === 'audit' && sub === 'verify') {
    const anchorFiles: string[] = [];
    for (let i = 0; i < rest.length; i += 2) {
      if (rest[i] !== '--anchor' || !rest[i + 1]) return usage();
      anchorFiles.push(rest[i + 1]);
    }
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
  }
  if (cmd === 'audit' && sub === 'anchor') {
    if (rest.length) return usage();
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
  }
  if (cmd === 'audit' && sub === 'retention') {
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
  }
  if (cmd === 'schema') {
    const file = path.resolve(__dirname, '../../schema/schema.graphql');
    const sdl = await emittedSchema();
    if (sub === '--check') {
      const { readFile } = await import('node:fs/promises');
      const current = await readFile(file, 'utf8').catch(() => '');
      if (current !== sdl) {
        process.stdout.write('schema/schema.graphql is stale: run npm run schema\n');
        return 1;
      }
      process.stdout.write('schema/schema.graphql is up to date\n');
      return 0;
    }
    await writeFile(file, sdl);
    process.stdout.write(`wrote ${path.relative(process.cwd(), file)}\n`);
    return 0;
  }
  if (cmd === 'token') {
    const args = [sub, ...rest];
    const roles: string[] = [];
    const teams: string[] = [];
    let subject = 'cli-user';
    let hours = 12;
    for (let i = 0; i < args.length; i += 2) {
      const [flag, value] = [args[i], args[i + 1]];
      if (!value) return usage();
      if (flag === '--role') roles.push(value);
      else if (flag === '--team') teams.push(value);
      else if (flag === '--sub') subject = value;
      else if (flag === '--hours') hours = Number(value);
      else return usage();
    }
    if (roles.length === 0 || !(hours > 0)) return usage();
    process.stdout.write(signToken(config.jwtSecret, { sub: subject, roles, teams }, Math.round(hours * 3600)) + '\n');
    return 0;
  }
  return usage();
}

async function verifyExportCommand(args: string[]): Promise<number> {
  const { readFile } = await import('node:fs/promises');
  let file: string | undefined;
  let manifest: string | undefined;
  let publicKey: string | undefined;
  for (let i = 0; i < args.length; i++) {
    if (args[i] === '--manifest' && args[i + 1]) manifest = args[++i];
    else if (args[i] === '--public-key' && args[i + 1]) publicKey = args[++i];
    else if (!file && !args[i].startsWith('--')) file = args[i];
    else return usage();
  }
  if (!file) return usage();
  if (!manifest && file.endsWith('.csv')) {
    const sibling = file.replace(/\.csv$/, '.manifest.json');
    if (await readFile(sibling).then(() => true, () => false)) manifest = sibling;
  }
  const r = await verifyExportFile(file, {
    manifest: manifest ? await readFile(manifest, 'utf8') : null,
    publicKeyPem: publicKey ? await readFile(publicKey, 'utf8') : null,
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

function usage(): number {
  process.stderr.write(USAGE + '\n');
  return 2;
}

if (require.main === module) {
  run(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (e) => {
      process.stderr.write(`modelgov: ${e instanceof ConfigError ? e.message : (e as Error).message}\n`);
      process.exit(1);
    },
  );
}
