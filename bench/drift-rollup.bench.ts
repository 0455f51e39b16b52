import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { Pool } from 'pg';
import pino from 'pino';
import { mulberry32 } from '../src/core/prng';
import { inPoolTransaction, withDefaultUser } from '../src/core/database';
import { PredictionLog, type PredictionEntry } from '../src/inference/prediction-log';
import { newPredictionId } from '../src/inference/prediction-id';
import type { RollupBins } from '../src/inference/rollup-bins';
import { RollupAccumulator, rollupDeltaInsert, rollupParams, rollupUpsert, scoreValue, outputRowOf, type RolledPrediction } from '../src/inference/window-rollup';
import { RollupCompactor, type InTransaction } from '../src/inference/rollup-compactor';

const poolTransaction = (pool: Pool): InTransaction => (work) => inPoolTransaction(pool, work);
import type { DriftReport, FeatureDrift, Queryable } from '../src/monitoring/drift.service';
import { qualityMetrics, type QualityMetrics } from '../src/monitoring/quality-metrics';
import { driftReportFromRollup } from '../src/monitoring/rollup-drift';
import { readRollups } from '../src/monitoring/rollup-read';
import { percentile, printTable } from './stats';

/** The decision threshold of the bench's labelled rows. */
const THRESHOLD = 0.5;
/** One logged prediction in this many receives a label. */
const LABELLED_EVERY = 5;
/** Raw log records read per statement while building the rollups. */
const PAGE = 50_000;
/** The serving window (`SERVING_WINDOW_SECONDS`' default) of the many-window cases and of the write path. */
const WINDOW_SECONDS = 10;
/** The window of the one-window cases: the longest serving window, which holds every logged bench row (one per ms). */
const ONE_WINDOW_SECONDS = 3600;

/** One timed rollup report case: a deployment whose rollups hold `rows` predictions in `windows` windows. */
interface RollupCase {
  label: string;
  deploymentId: string;
  rows: number;
  windows: number;
  windowSeconds: number;
  acc: RollupAccumulator;
  /** Where a logged row (its index in the log) falls in this case, or null when the case leaves it out. */
  at(i: number): Date | null;
  /** The raw report's p50 over the same rows, ms. */
  rawMs: number;
  raw: DriftReport | null;
}

/** What the rollup report bench reads: the drift bench's logged rows, its bins and its raw reports. */
export interface RollupReportArgs {
  db: Queryable;
  versionId: string;
  logDeploymentId: string;
  start: Date;
  rows: number;
  runs: number;
  bins: RollupBins;
  /** The raw report over the first `rows` rows; times it when asked for `timeRuns` runs. */
  rawReport(rows: number, timeRuns: number): Promise<{ p50: number; report: DriftReport }>;
  /** The raw report over every row, and its p50 already measured. */
  rawAll: { p50: number; report: DriftReport };
}

const sorted = (xs: number[]) => [...xs].sort((a, b) => a - b);

async function timedRuns<T>(fn: () => Promise<T>, runs: number, warmup = 2): Promise<{ times: number[]; last: T }> {
  let last!: T;
  for (let i = 0; i < warmup; i++) last = await fn();
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    last = await fn();
    times.push(performance.now() - t0);
  }
  return { times: sorted(times), last };
}

/**
 * The rollup-based drift and quality report (`readRollups` + `driftReportFromRollup` +
 * `qualityMetrics`, from the database as a monitor pass does it) beside the raw report, over the
 * rows the drift bench logged: rollups are built by reading that log back in pages through the
 * write path's `RollupAccumulator`, with outcomes for one row in {@link LABELLED_EVERY}, and stored
 * with one `rollupUpsert` per case.
 */
export async function rollupReportBench(a: RollupReportArgs): Promise<void> {
  const { db, rows, versionId, start } = a;
  const teamId = randomUUID();
  const random = mulberry32(77, 3);
  const small = Math.min(100_000, rows);
  const caseOf = (label: string, caseRows: number, windows: number, windowSeconds: number): RollupCase => {
    const span = windowSeconds * 1000;
    return {
      label,
      deploymentId: randomUUID(),
      rows: caseRows,
      windows,
      windowSeconds,
      acc: new RollupAccumulator(windowSeconds, () => a.bins),
      // Rows keep their order and spread evenly over the windows.
      at: (i) => (i >= caseRows ? null : new Date(start.getTime() + Math.floor((i * windows) / caseRows) * span + (i % 1000))),
      rawMs: NaN,
      raw: null,
    };
  };
  const cases: RollupCase[] = [
    ...(small < rows ? [caseOf(`${small} predictions, 1 window`, small, 1, ONE_WINDOW_SECONDS)] : []),
    caseOf(`${rows} predictions, 1 window`, rows, 1, ONE_WINDOW_SECONDS),
    caseOf(`${rows} predictions, 60 windows of ${WINDOW_SECONDS} s`, rows, 60, WINDOW_SECONDS),
    caseOf(`${rows} predictions, 360 windows of ${WINDOW_SECONDS} s`, rows, 360, WINDOW_SECONDS),
  ];

  const t0 = performance.now();
  let read = 0;
  let labelled = 0;
  let after = new Date(0);
  for (;;) {
    const page: Array<{ occurred_at: Date; inputs: Record<string, unknown>; outputs: Record<string, unknown>; latency_ms: number }> = await db.query(
      `SELECT occurred_at, inputs, outputs, latency_ms FROM prediction_log WHERE deployment_id = $1 AND occurred_at > $2 ORDER BY occurred_at LIMIT ${PAGE}`,
      [a.logDeploymentId, after],
    );
    if (!page.length) break;
    for (const r of page) {
      const i = read++;
      const score = scoreValue(outputRowOf(r.outputs, a.bins.outputName, 0));
      const label = i % LABELLED_EVERY === 0 && score !== null ? (random() < score ? 1 : 0) : null;
      if (label !== null) labelled++;
      for (const c of cases) {
        const occurredAt = c.at(i);
        if (!occurredAt) continue;
        const e: RolledPrediction = { deploymentId: c.deploymentId, teamId, modelVersionId: versionId, failedVersionId: null, shadow: false, occurredAt, latencyMs: r.latency_ms, fallback: false, rows: 1, inputs: r.inputs, outputs: r.outputs };
        c.acc.addPrediction(e);
        if (label !== null) c.acc.addOutcome({ deploymentId: c.deploymentId, teamId, modelVersionId: versionId, occurredAt, score, threshold: THRESHOLD, label, recordedAt: new Date(occurredAt.getTime() + 3_600_000) });
      }
    }
    after = page[page.length - 1].occurred_at;
  }
  for (const c of cases) await db.query(rollupUpsert(1), rollupParams(c.acc.deltas()));
  const buildMs = performance.now() - t0;

  for (const c of cases) {
    if (c.rows === rows) {
      c.rawMs = a.rawAll.p50;
      c.raw = a.rawAll.report;
    } else {
      const raw = await a.rawReport(c.rows, a.runs);
      c.rawMs = raw.p50;
      c.raw = raw.report;
    }
  }

  const reportRuns = Math.max(10, a.runs);
  const results: Array<{ c: RollupCase; times: number[]; report: DriftReport; quality: QualityMetrics }> = [];
  for (const c of cases) {
    const from = start;
    const to = new Date(start.getTime() + c.windows * c.windowSeconds * 1000);
    const run = await timedRuns(async () => {
      const [rollup] = (await readRollups(db, c.deploymentId, { from, to, versions: [versionId] })).filter((r) => !r.shadow);
      const report = driftReportFromRollup({ deploymentId: c.deploymentId, modelVersionId: versionId, windowStart: from, windowEnd: to, bins: a.bins, rollup: { ...rollup, rows: rollup.rows - rollup.unbinned } });
      return { report, quality: qualityMetrics(rollup.quality, THRESHOLD) };
    }, reportRuns);
    results.push({ c, times: run.times, report: run.last.report, quality: run.last.quality });
  }

  const target = 100;
  printTable(
    `Rollup drift + quality report (readRollups + driftReportFromRollup + qualityMetrics, from the database), ${reportRuns} runs after 2 warm-up, p50; rollups built by reading the log back in pages of ${PAGE} through RollupAccumulator (with outcomes for 1 row in ${LABELLED_EVERY}: ${labelled} labels) and one rollupUpsert per case, ${(buildMs / 1000).toFixed(1)} s; raw = computeDriftReport over the same rows, ${a.runs} runs, p50. Target: rollup report <= ${target} ms for a 1M-prediction window`,
    results.map(({ c, times }) => {
      // The target is for one window; the many-window rows show the cost growing with windows × bins.
      const targeted = c.windows === 1 && c.rows === rows;
      return {
        case: c.label,
        'rollup rows': c.windows,
        'rollup p50 ms': percentile(times, 50),
        'rollup max ms': times[times.length - 1],
        'raw report p50 ms': c.rawMs,
        'raw / rollup': `${(c.rawMs / percentile(times, 50)).toFixed(0)}x`,
        target: targeted ? `<= ${target} ms` : '-',
        met: targeted ? (percentile(times, 50) <= target ? 'yes' : 'no') : '-',
      };
    }),
  );

  printTable(
    'Rollup report vs raw report, same rows (sanity, not an assertion): PSI equal, raw KS D within [rollup KS, ksUpper]',
    results.map(({ c, report, quality }) => {
      const pairs = pairsOf(c.raw!, report);
      const ksOut = pairs.filter(([r, u]) => !(r.statistics.ks! >= u.statistics.ks! - 1e-12 && r.statistics.ks! <= (u.statistics.ksUpper ?? Infinity) + 1e-12)).length;
      const cls = quality.classification;
      return {
        case: c.label,
        columns: pairs.length,
        'max |PSI diff|': Math.max(...pairs.map(([r, u]) => Math.abs(r.psi - u.psi))).toExponential(2),
        'KS out of bound': ksOut,
        'max KS bound width': Math.max(...pairs.map(([, u]) => (u.statistics.ksUpper ?? NaN) - u.statistics.ks!)).toFixed(4),
        'max |KS raw - lower|': Math.max(...pairs.map(([r, u]) => Math.abs(r.statistics.ks! - u.statistics.ks!))).toFixed(4),
        labelled: quality.labelled,
        accuracy: cls ? cls.accuracy.toFixed(4) : '-',
        'roc auc': cls && cls.rocAuc !== null ? `${cls.rocAuc.toFixed(4)} ±${cls.rocAucBound.toExponential(1)}` : '-',
      };
    }),
  );
}

function pairsOf(raw: DriftReport, rollup: DriftReport): Array<[FeatureDrift, FeatureDrift]> {
  const all = (r: DriftReport) => [...r.features, ...(r.prediction ? [r.prediction] : [])];
  const byName = new Map(all(rollup).map((f) => [f.feature, f]));
  return all(raw).flatMap((f) => (byName.has(f.feature) ? [[f, byName.get(f.feature)!] as [FeatureDrift, FeatureDrift]] : []));
}

/** The bench database, and the version (with its bins) the written records belong to. */
export interface WritePathArgs {
  databaseUrl: string;
  versionId: string;
  bins: RollupBins;
  features: number;
  /** Records per batch: the server's (PREDICTION_LOG_BATCH) unless BENCH_WRITE_BATCH says otherwise. */
  batchSize: number;
}

/**
 * The prediction log's write throughput with window rollups and without: the same records (one
 * row each: `features` numeric inputs kept, one output), batches of 500, appended as fast as the
 * log takes them and flushed; each run logs to a deployment of its own, modes alternate.
 */
export async function writePathBench(a: WritePathArgs): Promise<void> {
  const records = Number(process.env.BENCH_WRITE_RECORDS ?? 50_000);
  const runs = Number(process.env.BENCH_WRITE_RUNS ?? 5);
  const batchSize = Number(process.env.BENCH_WRITE_BATCH ?? a.batchSize);
  const pool = new Pool({ connectionString: withDefaultUser(a.databaseUrl), max: 3, application_name: 'modelgov-bench-write' });
  const log = pino({ level: 'silent' });
  const random = mulberry32(99, 1);
  const teamId = randomUUID();
  const base = Date.UTC(2031, 0, 1);
  const entriesFor = (deploymentId: string, run: number): PredictionEntry[] =>
    Array.from({ length: records }, (_, i) => {
      const occurredAt = new Date(base + run * 3_600_000 + i);
      return {
        id: newPredictionId(occurredAt.getTime()),
        occurredAt,
        deploymentId,
        teamId,
        modelVersionId: a.versionId,
        requestId: `w${run}-${i}`,
        requestKey: null,
        principalId: 'bench',
        principalKind: 'user',
        source: 'graphql',
        rows: 1,
        inputs: { features: [Array.from({ length: a.features }, (_, j) => Math.round((j * 0.1 + (random() - 0.5) * 3) * 1e5) / 1e5)] },
        inputsSha256: 'sha',
        outputs: { probability: [[Math.round(random() * 1e6) / 1e6]] },
        latencyMs: 1 + random() * 20,
        fallback: false,
        shadow: false,
        failedVersionId: null,
        error: null,
      };
    });
  const rollups = { windowSeconds: WINDOW_SECONDS, binsFor: async () => a.bins };
  const once = async (withRollups: boolean, run: number) => {
    const entries = entriesFor(randomUUID(), run);
    const writer = new PredictionLog(pool, { batchSize, flushIntervalMs: 60_000, maxBuffered: 20_000, ...(withRollups ? { rollups } : {}) }, log);
    // As in a server: the deltas are folded every second meanwhile, on the same database.
    const compactor = new RollupCompactor(poolTransaction(pool), log);
    if (withRollups) compactor.start();
    const t0 = performance.now();
    for (const e of entries) await writer.append(e);
    await writer.close();
    const ms = performance.now() - t0;
    await compactor.close();
    if (withRollups) await compactor.compact();
    if (writer.state().quarantined) throw new Error('the bench records were quarantined');
    return ms;
  };
  try {
    await once(true, 0);
    await once(false, 1);
    const without: number[] = [];
    const withR: number[] = [];
    for (let r = 0; r < runs; r++) {
      // Alternating (and swapping which goes first) spreads the machine's other load over both modes.
      const first = r % 2 === 0;
      if (first) withR.push(await once(true, 2 + 2 * r));
      without.push(await once(false, 3 + 2 * r));
      if (!first) withR.push(await once(true, 2 + 2 * r));
    }
    const rate = (ms: number) => Math.round((records / ms) * 1000);
    const medWith = percentile(sorted(withR), 50);
    const medWithout = percentile(sorted(without), 50);
    printTable(
      `Prediction log write path: ${records} records (${a.features} numeric features kept, one output), batches of ${batchSize}, ${WINDOW_SECONDS} s windows at 1000 records/s, appended then flushed; ${runs} runs per mode, alternating, median. Target: write path with rollups >= 0.9x without`,
      [
        { mode: 'without rollups (raw log only: the floor)', 'median ms': medWithout, 'records/s': rate(medWithout), 'runs ms': sorted(without).map((t) => t.toFixed(0)).join(' '), 'vs without': '1.00x', target: '', met: '' },
        { mode: 'with rollups (log + delta append, one statement; folded every 1 s)', 'median ms': medWith, 'records/s': rate(medWith), 'runs ms': sorted(withR).map((t) => t.toFixed(0)).join(' '), 'vs without': `${(medWithout / medWith).toFixed(2)}x`, target: '>= 0.90x', met: medWithout / medWith >= 0.9 ? 'yes' : 'no' },
      ],
    );
    await whereTheTimeGoes(pool, entriesFor(randomUUID(), 2 * runs + 2), batchSize, rollups);
  } finally {
    await pool.end();
  }
}

/**
 * Splits a batch's rollup cost: the JS side (accumulating the batch and encoding its deltas) and
 * the SQL side (appending the deltas alone, on the write path; folding them into the windows'
 * rows, off it), per batch.
 */
async function whereTheTimeGoes(pool: Pool, entries: PredictionEntry[], batchSize: number, rollups: { windowSeconds: number; binsFor(id: string): Promise<RollupBins | null> }): Promise<void> {
  const batches: PredictionEntry[][] = [];
  for (let i = 0; i < entries.length; i += batchSize) batches.push(entries.slice(i, i + batchSize));
  const bins = await rollups.binsFor(entries[0].modelVersionId);
  let jsMs = 0;
  const params: unknown[][][] = [];
  for (let pass = 0; pass < 2; pass++) {
    // The first pass warms the JIT; the second is timed.
    jsMs = 0;
    params.length = 0;
    for (const batch of batches) {
      const t0 = performance.now();
      const acc = new RollupAccumulator(rollups.windowSeconds, () => bins);
      for (const e of batch) acc.addPrediction(e);
      const p = rollupParams(acc.deltas());
      jsMs += performance.now() - t0;
      params.push(p);
    }
  }
  let appendMs = 0;
  for (const p of params) {
    const t0 = performance.now();
    await pool.query(rollupDeltaInsert(1), p);
    appendMs += performance.now() - t0;
  }
  const t0 = performance.now();
  await new RollupCompactor(poolTransaction(pool), pino({ level: 'silent' })).compact();
  const foldMs = performance.now() - t0;
  const n = batches.length;
  printTable(`Where a batch's rollup time goes: ${n} batches of ${batchSize}, ms per batch (mean)`, [
    { part: 'JS: RollupAccumulator.addPrediction x batch + rollupParams (encode)', 'ms / batch': jsMs / n },
    { part: 'SQL: appending the deltas alone (on the write path)', 'ms / batch': appendMs / n },
    { part: 'SQL: folding them into the windows\' rows (off the write path, every 1 s)', 'ms / batch': foldMs / n },
  ]);
}
