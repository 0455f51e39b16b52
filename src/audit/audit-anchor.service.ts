import { readFile } from 'node:fs/promises';
import type { DataSource, EntityManager } from 'typeorm';
import type { Config } from '../config';
import { readAnchor, signAnchor, type AnchorHead, type AuditAnchor } from './audit-anchor.format';
import type { RequestContext } from '../core/context';
import { anchorPublishers, type AuditAnchorPublisher } from './audit-anchor.publisher';
import { publicKeyOf } from './audit-signing';

// Publishers of one database take turns: the newest anchor is read and the next one written
// under this lock, so two processes never publish the same head twice to one place.
const ANCHOR_LOCK = 0x6d67616e; // "mgan"

type Queryable = Pick<EntityManager, 'query'>;

/** The outcome of one publication. */
export interface AnchorPublication {
  target: string;
  /** false: the head had not moved since the newest anchor there (or the chain is empty). */
  published: boolean;
  /** The anchor written, or the newest one already there; null for an empty chain. */
  anchor: AuditAnchor | null;
}

/** Why an anchor was not published: the chain or the publisher's newest anchor is not as it should be. */
export class AnchorRefusedError extends Error {}

/**
 * Signs the chain head and publishes it, unless the newest anchor at that publisher already
 * vouches for the same head. Refuses (throws {@link AnchorRefusedError}) when the head does not
 * match its newest event, when the newest anchor there is not signed by the audit key or is of
 * another database, and when the chain no longer holds the event that anchor vouches for: a
 * truncated or rewritten chain is reported, never anchored.
 */
export async function publishAnchor(
  app: { db: DataSource; config: Pick<Config, 'auditSigningKeyPem'> },
  publisher: AuditAnchorPublisher,
  now: Date = new Date(),
): Promise<AnchorPublication> {
  const publicKeyPem = publicKeyOf(app.config.auditSigningKeyPem).pem;
  return app.db.transaction(async (em) => {
    await em.query('SELECT pg_advisory_xact_lock($1)', [ANCHOR_LOCK]);
    const head = await chainHead(em);
    if (!head) return { target: publisher.target, published: false, anchor: null };
    const line = await publisher.latest();
    if (line !== null) {
      const last = readAnchor(line, publicKeyPem);
      if (!last.ok) throw new AnchorRefusedError(`the newest anchor in ${publisher.target} ${last.problem}; after a change of audit key, move the file aside`);
      if (last.anchor.database.id !== head.database.id) {
        throw new AnchorRefusedError(`${publisher.target} holds anchors of another database (${describeDatabase(last.anchor.database)}), not of this one (${describeDatabase(head.database)})`);
      }
      if (last.anchor.seq === head.seq && last.anchor.hash === head.hash) return { target: publisher.target, published: false, anchor: last.anchor };
      const { findings } = await compareWithChain(em, [{ file: publisher.target, line: 0, anchor: last.anchor }], head.seq);
      if (findings.length) throw new AnchorRefusedError(`not anchoring a chain that lost an anchored event: ${findings[0].message}`);
    }
    const anchor = signAnchor(app.config.auditSigningKeyPem, head, now);
    await publisher.publish(anchor);
    return { target: publisher.target, published: true, anchor };
  });
}

/**
 * The periodic anchor (the anchor job's work, as the named principal the schedule gives it): signs
 * the chain head and publishes it wherever the configuration says. Idempotent: a head already
 * published there is not published again. A refusal (the chain lost an anchored event) is logged as
 * an error and thrown, at every run until someone looks.
 */
export async function publishAnchors(ctx: RequestContext): Promise<void> {
  for (const publisher of anchorPublishers(ctx.app.config)) {
    try {
      const r = await publishAnchor(ctx.app, publisher);
      if (r.published) ctx.log.info({ seq: r.anchor!.seq, hash: r.anchor!.hash, target: r.target }, 'audit chain head anchored');
    } catch (e) {
      if (e instanceof AnchorRefusedError) ctx.log.error({ target: publisher.target, problem: e.message }, 'audit chain not anchored');
      throw e;
    }
  }
}

/** The head, read with its event and the database's identity in one statement; null for an empty chain. */
async function chainHead(em: Queryable): Promise<AnchorHead | null> {
  const [row]: Array<{ seq: string; hash: string; event_hash: string | null; occurred_at: Date | null; max_seq: string | null; database_id: string | null; name: string }> = await em.query(
    `SELECT h.seq::text AS seq, h.hash, e.hash AS event_hash, e.occurred_at, (SELECT max(seq) FROM audit_event)::text AS max_seq,
            (SELECT database_id::text FROM audit_chain_identity WHERE id = 1) AS database_id, current_database() AS name
       FROM audit_head h LEFT JOIN audit_event e ON e.seq = h.seq WHERE h.id = 1`,
  );
  if (!row) return null;
  if (row.event_hash !== row.hash || row.max_seq !== row.seq || !row.occurred_at) {
    throw new AnchorRefusedError(`the chain head (event ${row.seq}) does not match the newest event (${row.max_seq ?? 'none'}); run audit verify`);
  }
  if (!row.database_id) throw new AnchorRefusedError('the audit chain identity of this database is missing (audit_chain_identity was emptied)');
  return { seq: Number(row.seq), hash: row.hash, occurredAt: row.occurred_at.toISOString(), database: { id: row.database_id, name: row.name } };
}

function describeDatabase(d: { id: string; name: string }): string {
  return `"${d.name}", id ${d.id}`;
}

/** An anchor and where it was read. */
interface LocatedAnchor {
  file: string;
  /** 1-based line in the file; 0: the newest one, read back by a publisher. */
  line: number;
  anchor: AuditAnchor;
}

/** Exit codes of `audit verify --anchor`, beside 0 (all good), 1 (the chain itself is broken) and 2 (usage). */
export const ANCHOR_EXIT = {
  /** A line of an anchor file is not an anchor signed by the audit key (forged, edited, another key), or a file holds none. */
  refused: 3,
  /** An anchor is of another database. */
  otherDatabase: 4,
  /** The chain ends before an anchored event: its newest events were removed. */
  truncated: 5,
  /** The chain holds another hash at an anchored position: its history was rewritten. */
  rewritten: 6,
} as const;

type Problem = keyof typeof ANCHOR_EXIT;
// When several things are wrong, the exit code names the gravest.
const GRAVITY: Problem[] = ['truncated', 'rewritten', 'refused', 'otherDatabase'];

interface Finding {
  kind: 'truncated' | 'rewritten';
  at: LocatedAnchor;
  message: string;
}

/**
 * Compares anchors with the chain that ends at `lastSeq` (verified, or the head): an anchor past
 * the end means the newest events were removed; another hash at an anchored position means the
 * history was rewritten. Anchored events that retention has since rolled into a checkpoint are
 * compared with that checkpoint's hash when it ends exactly there, and are otherwise vouched for
 * by the (signed) checkpoint that covers them.
 */
async function compareWithChain(q: Queryable, anchors: LocatedAnchor[], lastSeq: number): Promise<{ findings: Finding[]; matched: number; rolledUp: number }> {
  const checkpoints = new Map<number, string>(
    (await q.query('SELECT seq::text AS seq, hash FROM audit_checkpoint')).map((c: { seq: string; hash: string }) => [Number(c.seq), c.hash]),
  );
  const rolledUpTo = Math.max(0, ...checkpoints.keys());
  const present = [...new Set(anchors.map((a) => a.anchor.seq).filter((s) => s > rolledUpTo && s <= lastSeq))];
  const events = new Map<number, string>(
    present.length
      ? (await q.query('SELECT seq::text AS seq, hash FROM audit_event WHERE seq = ANY($1::bigint[])', [present])).map((e: { seq: string; hash: string }) => [Number(e.seq), e.hash])
      : [],
  );
  const findings: Finding[] = [];
  let matched = 0;
  let rolledUp = 0;
  for (const at of anchors) {
    const { seq, hash, anchoredAt } = at.anchor;
    const where = `${at.line ? `line ${at.line} of` : 'the newest line of'} ${at.file} (anchored ${anchoredAt})`;
    if (seq > lastSeq) {
      findings.push({
        kind: 'truncated',
        at,
        message: `the chain was truncated: it ends at event ${lastSeq}, but the anchor on ${where} vouches for event ${seq}; events ${lastSeq + 1}–${seq} were removed and the chain head rewritten to match`,
      });
      continue;
    }
    const stored = seq > rolledUpTo ? events.get(seq) : checkpoints.get(seq);
    if (stored === undefined && seq <= rolledUpTo) {
      rolledUp += 1;
      continue;
    }
    if (stored !== hash) {
      findings.push({
        kind: 'rewritten',
        at,
        message: `the history was rewritten: event ${seq} ${stored === undefined ? 'is missing' : `has hash ${stored}`} in the database, but the anchor on ${where} vouches for hash ${hash}`,
      });
      continue;
    }
    matched += 1;
  }
  return { findings, matched, rolledUp };
}

/** The outcome of checking anchor files against the database's chain. */
export interface AnchorVerification {
  /** 0 when every anchor is signed, of this database and held by its chain; otherwise one of {@link ANCHOR_EXIT}. */
  exitCode: number;
  anchors: number;
  /** Anchors whose (seq, hash) the chain (or a checkpoint ending there) still holds. */
  matched: number;
  /** Anchors of events since rolled into a retention checkpoint. */
  rolledUp: number;
  /** The anchor that vouches for the newest event, among the valid ones. */
  newest: AuditAnchor | null;
  /** What is wrong, gravest first, one sentence each. */
  problems: string[];
}

const LISTED = 10;

/**
 * Checks every line of the anchor files: its signature against the audit key (`publicKeyPem`), its
 * database, and that the chain, which ends at `lastSeq` and has been verified link by link, still
 * holds the (seq, hash) it vouches for.
 */
export async function verifyAnchors(db: DataSource, files: string[], publicKeyPem: string, lastSeq: number): Promise<AnchorVerification> {
  const problems = new Map<Problem, string[]>(GRAVITY.map((p) => [p, []]));
  const [identity]: Array<{ id: string | null; name: string }> = await db.query(
    `SELECT (SELECT database_id::text FROM audit_chain_identity WHERE id = 1) AS id, current_database() AS name`,
  );
  if (!identity.id) problems.get('rewritten')!.push('the audit chain identity of this database is missing (audit_chain_identity was emptied)');
  const valid: LocatedAnchor[] = [];
  const foreign: LocatedAnchor[] = [];
  for (const file of files) {
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (e) {
      problems.get('refused')!.push(`cannot read ${file}: ${(e as Error).message}`);
      continue;
    }
    let count = 0;
    text.split('\n').forEach((line, i) => {
      if (line.trim() === '') return;
      count += 1;
      const r = readAnchor(line, publicKeyPem);
      if (!r.ok) problems.get('refused')!.push(`line ${i + 1} of ${file} is refused: it ${r.problem}`);
      else if (identity.id && r.anchor.database.id !== identity.id) {
        problems.get('otherDatabase')!.push(`line ${i + 1} of ${file} is an anchor of another database (${describeDatabase(r.anchor.database)}), not of this one (${describeDatabase({ id: identity.id, name: identity.name })})`);
        foreign.push({ file, line: i + 1, anchor: r.anchor });
      } else valid.push({ file, line: i + 1, anchor: r.anchor });
    });
    if (count === 0) problems.get('refused')!.push(`${file} holds no anchor`);
  }
  // Another database's chain cannot hold the same hash at the same position: if this one does, its identity was changed.
  const sameChain = (await compareWithChain(db, foreign, lastSeq)).matched;
  if (sameChain) problems.get('rewritten')!.push(`the audit chain identity of this database was changed: ${sameChain} anchor(s) of "another database" vouch for events this chain holds`);
  const { findings, matched, rolledUp } = await compareWithChain(db, valid, lastSeq);
  // The anchor furthest past the end says how much was removed; the earliest rewritten one, where rewriting began.
  const truncated = findings.filter((f) => f.kind === 'truncated').sort((a, b) => b.at.anchor.seq - a.at.anchor.seq);
  const rewritten = findings.filter((f) => f.kind === 'rewritten').sort((a, b) => a.at.anchor.seq - b.at.anchor.seq);
  if (truncated.length) problems.get('truncated')!.push(truncated[0].message + (truncated.length > 1 ? ` (${truncated.length} anchors point past the end)` : ''));
  if (rewritten.length) problems.get('rewritten')!.push(rewritten[0].message + (rewritten.length > 1 ? ` (${rewritten.length} anchors disagree with the database)` : ''));
  const worst = GRAVITY.find((p) => problems.get(p)!.length > 0);
  const listed = GRAVITY.flatMap((p) => {
    const all = problems.get(p)!;
    return all.length > LISTED ? [...all.slice(0, LISTED), `… and ${all.length - LISTED} more like it`] : all;
  });
  const newest = valid.reduce<AuditAnchor | null>((n, a) => (!n || a.anchor.seq > n.seq ? a.anchor : n), null);
  return { exitCode: worst ? ANCHOR_EXIT[worst] : 0, anchors: valid.length, matched, rolledUp, newest, problems: listed };
}
