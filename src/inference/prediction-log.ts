import { DatabaseError, type Pool } from 'pg';
import type { Logger } from '../core/logger';
import type { ServingMetrics } from './serving-metrics';
import type { RollupBins } from './rollup-bins';
import type { AgreementCounts } from './shadow-agreement';
import { RollupAccumulator, rollupDeltaInsert, rollupParams } from './window-rollup';

/** A record as the writer takes it; see PredictionRecord for the meaning of each field. */
export interface PredictionEntry {
  /** The prediction id, given out in the answer before the record is written (see newPredictionId). */
  id: string;
  occurredAt: Date;
  deploymentId: string;
  teamId: string;
  modelVersionId: string;
  requestId: string;
  requestKey: string | null;
  principalId: string;
  principalKind: string;
  source: string;
  rows: number;
  inputs: Record<string, unknown> | null;
  inputsSha256: string;
  outputs: Record<string, unknown> | null;
  latencyMs: number;
  fallback: boolean;
  shadow: boolean;
  failedVersionId: string | null;
  error: string | null;
  /** A shadow record's agreement with the served answer it mirrors (kept in the rollups, not in the log). */
  agreement?: AgreementCounts | null;
}

export interface PredictionLogOptions {
  /** Records written per statement, and the buffer size that triggers a write. */
  batchSize: number;
  /** Longest a record waits in the buffer. */
  flushIntervalMs: number;
  /** Records buffered at most: past this, `append` waits for a write (back-pressure, bounded memory). */
  maxBuffered: number;
  /** How long writes may fail (or one write may hang) before the log reports that it cannot write. Default 5 s. */
  unhealthyAfterMs?: number;
  /** Longest pause between attempts after a failed write (the pause doubles from `flushIntervalMs`). Default 5 s. */
  maxRetryDelayMs?: number;
  /** The window rollups written with each batch; without them, only the raw log is written. */
  rollups?: RollupWriter;
}

/** What the log needs to maintain window rollups: their window length and each version's bins. */
export interface RollupWriter {
  windowSeconds: number;
  /** A version's rollup bins (null: the version has no reference, its rows are counted, not binned). */
  binsFor(modelVersionId: string): Promise<RollupBins | null>;
}

/** Whether the log can write, and why not: what readiness reports. */
export interface PredictionLogState {
  /** False while the buffer is full, or while writes have failed (or hung) for longer than `unhealthyAfterMs`. */
  writable: boolean;
  /** Why the log cannot write, or null. */
  reason: string | null;
  buffered: number;
  maxBuffered: number;
  /** When the current run of failed writes began (ISO 8601), or null. */
  failingSince: string | null;
  lastError: string | null;
  /** Records quarantined since the process started. */
  quarantined: number;
}

const COLUMNS = [
  ['id', 'uuid'],
  ['occurred_at', 'timestamptz'],
  ['deployment_id', 'uuid'],
  ['team_id', 'uuid'],
  ['model_version_id', 'uuid'],
  ['request_id', 'text'],
  ['request_key', 'text'],
  ['principal_id', 'text'],
  ['principal_kind', 'text'],
  ['source', 'text'],
  ['rows', 'int'],
  ['inputs', 'jsonb'],
  ['inputs_sha256', 'text'],
  ['outputs', 'jsonb'],
  ['latency_ms', 'float8'],
  ['fallback', 'bool'],
  ['shadow', 'bool'],
  ['failed_version_id', 'uuid'],
  ['error', 'text'],
] as const;

// One statement per batch: each column travels as one array parameter (`unnest`), so the
// statement's text and parameter count do not grow with the batch.
const INSERT = `INSERT INTO prediction_log (${COLUMNS.map(([c]) => c).join(', ')})
  SELECT * FROM unnest(${COLUMNS.map(([, t], i) => `$${i + 1}::${t}[]`).join(', ')})`;
// The batch and its rollup deltas in one statement: both are written, or neither.
const INSERT_WITH_ROLLUPS = `WITH logged AS (${INSERT} RETURNING 1) ${rollupDeltaInsert(COLUMNS.length + 1)}`;

const QUARANTINE = `INSERT INTO prediction_log_quarantine (deployment_id, team_id, request_id, error, record) VALUES ($1, $2, $3, $4, $5)`;

/** A record that could not even be turned into statement parameters (an invalid date, a value JSON cannot hold). */
class RecordEncodingError extends Error {}

/**
 * Whether a failed write is the rows' fault, so that splitting the batch isolates them: a value
 * PostgreSQL refuses (SQLSTATE class 22, data exception; 23, integrity constraint; 54, a limit such
 * as a value too large) or one that cannot be encoded. Anything else (connection lost, server shutting down, out of resources, a
 * missing table) is the database's, and the same rows are written once it recovers.
 */
function isDataError(e: unknown): boolean {
  if (e instanceof RecordEncodingError) return true;
  return e instanceof DatabaseError && typeof e.code === 'string' && ['22', '23', '54'].includes(e.code.slice(0, 2));
}

/** Text PostgreSQL always stores: NUL written as the escape `\u0000`, unpaired surrogates as U+FFFD. */
const storableText = (s: unknown): string =>
  (String(s).replace(/\u0000/g, '\\u0000') as string & { toWellFormed(): string }).toWellFormed();

/** The whole record as JSON text; JSON escapes NUL and unpaired surrogates, so the text itself is storable. */
function encodeRecord(entry: PredictionEntry): string {
  try {
    return JSON.stringify(entry, (_k, v) => (typeof v === 'bigint' ? v.toString() : v));
  } catch (e) {
    return JSON.stringify({ unencodable: (e as Error).message, requestId: storableText(entry.requestId) });
  }
}

/**
 * Buffers prediction records and writes them in batches. Memory is bounded: when `maxBuffered`
 * records wait, `append` waits too. With `rollups`, each batch's window rollup deltas are appended
 * in the same statement (and folded into the windows' rows later), so rollups count exactly the
 * records written.
 *
 * A batch PostgreSQL refuses because of its data is split in halves until the offending records
 * are alone; those are quarantined (`prediction_log_quarantine`, the record as escaped JSON text,
 * counted in `modelgov_prediction_log_quarantined_total` and logged) and every other record is
 * written. Any other failure keeps the records and is retried with a doubling pause; `state()`
 * says when the log cannot write. `close` writes what is left.
 */
export class PredictionLog {
  private buffer: PredictionEntry[] = [];
  private writing: Promise<void> | null = null;
  private timer: NodeJS.Timeout;
  private waiters: Array<() => void> = [];
  /** Records added by {@link appendSoon} and not built yet: they count against `maxBuffered`. */
  private building = 0;
  private closed = false;
  private failures = 0;
  private failingSince: number | null = null;
  private lastError: string | null = null;
  private retryAt = 0;
  private statementSince: number | null = null;
  private quarantined = 0;
  /** The next batch, encoded while the current one is written (null: encoded when its turn comes). */
  private prepared: Promise<Prepared | null> | null = null;
  private readonly bins = new Map<string, { bins: RollupBins | null; at: number }>();

  constructor(
    private readonly db: Pool,
    private readonly opts: PredictionLogOptions,
    private readonly log: Logger,
    private readonly metrics?: ServingMetrics,
  ) {
    this.timer = setInterval(() => void this.flush(), opts.flushIntervalMs);
    this.timer.unref();
  }

  get buffered(): number {
    return this.buffer.length;
  }

  /** Adds a record; resolves at once unless the buffer is full, then once there is room. */
  async append(entry: PredictionEntry): Promise<void> {
    while (this.held >= this.opts.maxBuffered && !this.closed) {
      void this.flush();
      await new Promise<void>((resolve) => this.waiters.push(resolve));
    }
    this.buffer.push(entry);
    if (this.buffer.length >= this.opts.batchSize) void this.flush();
  }

  /**
   * Adds the record `build` makes once the current turn of the event loop is over, that is once the
   * answer it logs has been written, so that building it (the inputs and outputs nested as rows)
   * is not part of the answer's latency. Resolves at once while the buffer has room for it (records
   * still to be built count), otherwise as {@link append} does, with the record built now. `then`
   * gets the record once it is in the buffer. A record that cannot be built is logged as an error
   * and counted as a failed write; the answer it belongs to has gone out already.
   */
  async appendSoon(build: () => PredictionEntry, then?: (entry: PredictionEntry) => void): Promise<void> {
    if (this.closed || this.held >= this.opts.maxBuffered) {
      const entry = this.built(build);
      if (!entry) return;
      await this.append(entry);
      then?.(entry);
      return;
    }
    this.building += 1;
    setImmediate(() => {
      this.building -= 1;
      const entry = this.built(build);
      if (!entry) return;
      this.buffer.push(entry);
      if (this.buffer.length >= this.opts.batchSize) void this.flush();
      then?.(entry);
    });
  }

  /** Records buffered and records still to be built: what the buffer limit counts. */
  private get held(): number {
    return this.buffer.length + this.building;
  }

  /** The record `build` makes, or null (logged, counted) when it cannot be made: its answer is not failed for it. */
  private built(build: () => PredictionEntry): PredictionEntry | null {
    try {
      return build();
    } catch (e) {
      this.metrics?.logWriteFailures.inc();
      this.log.error({ err: e instanceof Error ? e.message : String(e) }, 'prediction log record could not be built: dropped');
      return null;
    }
  }

  /**
   * Writes everything buffered now (one statement per batch); resolves when written or failed.
   * After a failure, does nothing until the retry pause is over, unless `force`.
   */
  flush(force = false): Promise<void> {
    // Records still to be built are built in this turn's check phase: written with the rest.
    if (this.building > 0) return new Promise<void>((resolve) => setImmediate(resolve)).then(() => this.flush(force));
    if (this.writing) return this.writing;
    if (this.buffer.length === 0) return Promise.resolve();
    if (!force && Date.now() < this.retryAt) return Promise.resolve();
    this.writing = (async () => {
      try {
        while (this.buffer.length) await this.writeBatch(this.buffer.slice(0, this.opts.batchSize));
      } catch (e) {
        this.failed(e);
      } finally {
        this.writing = null;
        this.release();
      }
    })();
    return this.writing;
  }

  /** Whether the log can write now, and why not. */
  state(): PredictionLogState {
    const now = Date.now();
    const limit = this.opts.unhealthyAfterMs ?? 5000;
    const full = this.held >= this.opts.maxBuffered;
    const failingFor = this.failingSince === null ? 0 : now - this.failingSince;
    const hungFor = this.statementSince === null ? 0 : now - this.statementSince;
    let reason: string | null = null;
    if (full) reason = `the buffer is full (${this.buffer.length} records): predictions wait for the log`;
    else if (failingFor > limit) reason = `writes have failed for ${Math.round(failingFor / 1000)} s: ${this.lastError}`;
    else if (hungFor > limit) reason = `a write has not answered for ${Math.round(hungFor / 1000)} s`;
    return {
      writable: reason === null,
      reason,
      buffered: this.buffer.length,
      maxBuffered: this.opts.maxBuffered,
      failingSince: this.failingSince === null ? null : new Date(this.failingSince).toISOString(),
      lastError: this.lastError,
      quarantined: this.quarantined,
    };
  }

  // Writes `batch` (the oldest buffered records, in order) and takes it off the buffer. A data
  // error splits it; each half is written or split in turn, left before right, so what is taken
  // off is always the front of the buffer. Any other error is thrown with the rest kept.
  private async writeBatch(batch: PredictionEntry[]): Promise<void> {
    try {
      await this.insert(batch);
    } catch (e) {
      if (!isDataError(e)) throw e;
      if (batch.length === 1) return this.quarantine(batch[0], e);
      const half = Math.ceil(batch.length / 2);
      await this.writeBatch(batch.slice(0, half));
      await this.writeBatch(batch.slice(half));
      return;
    }
    this.takeOff(batch.length);
    this.metrics?.logWritten.inc(batch.length);
    this.recovered();
  }

  private async insert(batch: PredictionEntry[]): Promise<void> {
    // Bins learnt since the next batch was prepared make it stale.
    const stale = await this.knowBins(batch);
    const next = this.prepared;
    this.prepared = null;
    const early = !stale && next ? await next : null;
    const ready = early && early.first === batch[0] && early.length === batch.length ? early : await this.prepare(batch);
    this.statementSince = Date.now();
    try {
      const written = this.db.query(ready.statement, ready.params);
      // While the database writes this batch, the next one is encoded: the encoding costs no
      // wall time when batches follow each other (under load), and nothing when they do not.
      const following = this.buffer.slice(batch.length, batch.length + this.opts.batchSize);
      if (following.length === this.opts.batchSize && this.binsKnown(following)) {
        // A record that cannot be encoded is found again (and split out) when its batch is written.
        this.prepared = this.prepare(following).catch(() => null);
      }
      await written;
    } finally {
      this.statementSince = null;
    }
  }

  // The statement and parameters of a batch: its records and, with rollups, its deltas. Rejects with
  // a RecordEncodingError (a data error: the batch is split) when a record cannot be encoded. The
  // encoding yields to the event loop every ENCODE_SLICE_MS, so that a large batch (1,000 records
  // with their inputs and outputs as JSON take several ms) never holds up the requests being served.
  private async prepare(batch: PredictionEntry[]): Promise<Prepared> {
    const rollups = this.opts.rollups;
    const acc = rollups ? new RollupAccumulator(rollups.windowSeconds, (id) => this.bins.get(id)?.bins ?? null) : null;
    const columns = new ColumnEncoder();
    let sliceStart = performance.now();
    for (let i = 0; i < batch.length; i++) {
      try {
        columns.add(batch[i]);
        acc?.addPrediction(batch[i]);
      } catch (e) {
        throw new RecordEncodingError((e as Error).message);
      }
      if (performance.now() - sliceStart > ENCODE_SLICE_MS) {
        await new Promise<void>((resolve) => setImmediate(resolve));
        sliceStart = performance.now();
      }
    }
    const params: unknown[] = columns.params();
    if (!acc) return { first: batch[0], length: batch.length, statement: INSERT, params };
    try {
      return { first: batch[0], length: batch.length, statement: INSERT_WITH_ROLLUPS, params: [...params, ...rollupParams(acc.deltas())] };
    } catch (e) {
      throw new RecordEncodingError((e as Error).message);
    }
  }

  // Bins are asked for once per version (a version without any is asked again after a minute).
  // Whether anything was learnt.
  private async knowBins(batch: PredictionEntry[]): Promise<boolean> {
    const rollups = this.opts.rollups;
    if (!rollups) return false;
    const now = Date.now();
    let learnt = false;
    for (const id of new Set(batch.map((e) => e.modelVersionId))) {
      const known = this.bins.get(id);
      if (known && (known.bins || now - known.at < 60_000)) continue;
      this.bins.set(id, { bins: await rollups.binsFor(id), at: now });
      learnt = true;
    }
    return learnt;
  }

  private binsKnown(batch: PredictionEntry[]): boolean {
    return !this.opts.rollups || batch.every((e) => this.bins.has(e.modelVersionId));
  }

  private async quarantine(entry: PredictionEntry, cause: unknown): Promise<void> {
    const error = storableText((cause as Error).message);
    try {
      await this.db.query(QUARANTINE, [storableText(entry.deploymentId), storableText(entry.teamId), storableText(entry.requestId), error, encodeRecord(entry)]);
    } catch (e) {
      // The database is away: keep the record (it is split out again on the next attempt).
      if (!isDataError(e)) throw e;
      this.log.error({ err: (e as Error).message, requestId: storableText(entry.requestId) }, 'prediction log record dropped: it could not be quarantined either');
    }
    this.takeOff(1);
    this.quarantined += 1;
    this.metrics?.logQuarantined.inc();
    this.log.error(
      { err: error, requestId: storableText(entry.requestId), deploymentId: storableText(entry.deploymentId) },
      'prediction log record refused by the database: quarantined in prediction_log_quarantine, the rest of its batch written',
    );
  }

  private takeOff(n: number): void {
    this.buffer.splice(0, n);
    this.release();
  }

  private failed(e: unknown): void {
    this.failures += 1;
    this.failingSince ??= Date.now();
    this.lastError = storableText((e as Error).message);
    const delay = Math.min(this.opts.maxRetryDelayMs ?? 5000, this.opts.flushIntervalMs * 2 ** Math.min(this.failures - 1, 16));
    this.retryAt = Date.now() + delay;
    this.metrics?.logWriteFailures.inc();
    this.log.error({ err: this.lastError, buffered: this.buffer.length, retryInMs: delay }, 'prediction log write failed; records kept for the next attempt');
  }

  private recovered(): void {
    if (this.failingSince !== null) this.log.warn({ failingSince: new Date(this.failingSince).toISOString() }, 'prediction log writes again');
    this.failures = 0;
    this.failingSince = null;
    this.lastError = null;
    this.retryAt = 0;
  }

  private release(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w();
  }

  /** Writes what is buffered (at once, whatever the retry pause) and stops the timer. */
  async close(): Promise<void> {
    clearInterval(this.timer);
    await this.flush(true);
    if (this.buffer.length) await this.flush(true);
    this.closed = true;
    this.release();
    if (this.held) this.log.error({ lost: this.held }, 'prediction log records could not be written before shutdown');
  }
}

/** A batch's statement and parameters, and which records it holds (the buffer's front when prepared). */
interface Prepared {
  first: PredictionEntry;
  length: number;
  statement: string;
  params: unknown[];
}

/** How long (ms) a batch's encoding runs before it lets the event loop serve what waits. */
const ENCODE_SLICE_MS = 1;

/** Text as an element of a PostgreSQL array literal, quoted and escaped as node-postgres writes it (null: NULL). */
function text(v: unknown): string {
  if (v === null || v === undefined) return 'NULL';
  const t = String(v);
  return NEEDS_ESCAPE.test(t) ? `"${t.replace(ESCAPED, '\\$&')}"` : `"${t}"`;
}
const NEEDS_ESCAPE = /[\\"]/;
const ESCAPED = /[\\"]/g;

const bool = (v: boolean | null | undefined) => (v === null || v === undefined ? 'NULL' : v ? '"true"' : '"false"');

const json = (v: unknown) => (v === null || v === undefined ? null : JSON.stringify(v));

/**
 * The batch's columns as PostgreSQL array literals, one parameter per column (`unnest` reads them
 * as the statement's typed arrays), built record by record so that the work can be spread over
 * several turns of the event loop; node-postgres would otherwise turn every array into its literal
 * at once, when the statement is sent.
 */
export class ColumnEncoder {
  private readonly columns: string[][] = COLUMNS.map(() => []);
  /** The elements of values that repeat from record to record in a batch (deployment, team, version, principal), made once. */
  private readonly repeated = new Map<unknown, string>();

  private once(v: unknown): string {
    let out = this.repeated.get(v);
    if (out === undefined) this.repeated.set(v, (out = text(v)));
    return out;
  }

  /** Throws when the record cannot be encoded (an invalid date, a value JSON cannot hold); nothing of it is kept then. */
  add(e: PredictionEntry): void {
    // What can throw comes first, before any column takes a value.
    const occurredAt = e.occurredAt.toISOString();
    const inputs = text(json(e.inputs));
    const outputs = text(json(e.outputs));
    const c = this.columns;
    c[0].push(text(e.id));
    c[1].push(`"${occurredAt}"`);
    c[2].push(this.once(e.deploymentId));
    c[3].push(this.once(e.teamId));
    c[4].push(this.once(e.modelVersionId));
    c[5].push(text(e.requestId));
    c[6].push(text(e.requestKey));
    c[7].push(this.once(e.principalId));
    c[8].push(this.once(e.principalKind));
    c[9].push(this.once(e.source));
    c[10].push(text(e.rows));
    c[11].push(inputs);
    c[12].push(text(e.inputsSha256));
    c[13].push(outputs);
    c[14].push(text(e.latencyMs));
    c[15].push(bool(e.fallback));
    c[16].push(bool(e.shadow));
    c[17].push(text(e.failedVersionId));
    c[18].push(text(e.error));
  }

  params(): string[] {
    return this.columns.map((c) => `{${c.join(',')}}`);
  }
}
