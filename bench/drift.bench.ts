import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { mulberry32 } from '../src/core/prng';
import { computeDriftReport, DRIFT_SCAN_SETTINGS, type DriftReport, type Queryable } from '../src/monitoring/drift.service';
import { numericReference, referenceSample, type ReferenceProfile, type ReferenceSamples } from '../src/registry/reference-profile';
import { rollupBinsOf } from '../src/inference/rollup-bins';
import { startTestServer } from '../test/support/harness';
import { rollupReportBench, writePathBench } from './drift-rollup.bench';
import { percentile, printTable } from './stats';

const FEATURES = 10;
// Features 0..2 drift (mean +0.3 sd) in the logged stream; the others follow the reference.
const SHIFTED = 3;

function normals(n: number, mean: number, random: () => number): Float64Array {
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) out[i] = mean + Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random());
  return out;
}

async function timed<T>(fn: () => Promise<T>, runs: number): Promise<{ times: number[]; last: T }> {
  let last!: T;
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    last = await fn();
    times.push(performance.now() - t0);
  }
  return { times: times.sort((a, b) => a - b), last };
}

export async function driftBench(): Promise<void> {
  const rows = Number(process.env.BENCH_DRIFT_ROWS ?? 1_000_000);
  const runs = Number(process.env.BENCH_RUNS ?? 3);
  const t = await startTestServer();
  try {
    const db = t.server.app.db;
    const deploymentId = randomUUID();
    const versionId = randomUUID();
    const random = mulberry32(2024, 7);
    const columns = Array.from({ length: FEATURES }, (_, j) => `f${j}`);
    const reference = Object.fromEntries(columns.map((c, j) => [c, normals(50_000, j * 0.1, random)]));
    const outputs = Float64Array.from({ length: 50_000 }, () => random());
    const profile: ReferenceProfile = {
      profileVersion: 3,
      inputName: 'features',
      outputName: 'probability',
      inputColumns: columns,
      features: Object.fromEntries(columns.map((c) => [c, numericReference(reference[c])])),
      prediction: numericReference(outputs),
    };
    const samples: ReferenceSamples = { features: Object.fromEntries(columns.map((c) => [c, referenceSample(reference[c])])), prediction: referenceSample(outputs) };

    const start = new Date('2030-01-01T00:00:00Z');
    const t0 = performance.now();
    await db.query(`SELECT setseed(0.42)`);
    const value = (j: number) => `round((${j * 0.1 + (j < SHIFTED ? 0.3 : 0)} + sqrt(-2 * ln(1 - random())) * cos(2 * pi() * random()))::numeric, 5)::float8`;
    await db.query(
      `INSERT INTO prediction_log (occurred_at, deployment_id, team_id, model_version_id, request_id, principal_id, principal_kind, source, rows, inputs, inputs_sha256, outputs, latency_ms)
       SELECT $3::timestamptz + g * interval '1 ms', $1, $1, $2, 'r' || g, 'bench', 'user', 'graphql', 1,
              jsonb_build_object('features', jsonb_build_array(jsonb_build_array(${columns.map((_, j) => value(j) + ' + g * 0').join(', ')}))), 'sha',
              jsonb_build_object('probability', jsonb_build_array(jsonb_build_array(round(random()::numeric, 6)::float8))), 1
       FROM generate_series(1, $4::int) g`,
      [deploymentId, versionId, start, rows],
    );
    await db.query(`VACUUM ANALYZE prediction_log`);
    const loadMs = performance.now() - t0;
    const end = new Date(start.getTime() + rows + 1000);

    const where = `p.deployment_id = $1 AND p.model_version_id = $2 AND p.occurred_at >= $3 AND p.occurred_at < $4 AND NOT p.shadow AND p.inputs IS NOT NULL AND p.outputs IS NOT NULL`;
    const params = [deploymentId, versionId, start, end];
    const floorElements = `SELECT sum(e::float8) FROM prediction_log p, jsonb_array_elements(p.inputs -> 'features') r, jsonb_array_elements(r) e WHERE ${where}`;
    const floorIndexed = `SELECT ${columns.map((_, j) => `sum((r ->> ${j})::float8)`).join(' + ')} FROM prediction_log p, jsonb_array_elements(p.inputs -> 'features') r WHERE ${where}`;

    // The floors run as the scan does: in a transaction of their own, under the scan's settings.
    const asTheScan = (sql: string) => db.transaction(async (tx) => {
      for (const setting of DRIFT_SCAN_SETTINGS) await tx.query(setting);
      return tx.query(sql, params);
    });
    await asTheScan(floorIndexed);
    const elements = await timed(() => asTheScan(floorElements), runs);
    const indexed = await timed(() => asTheScan(floorIndexed), runs);
    // Times each statement of the last scan, to show where the time goes.
    let statements: Array<{ sql: string; ms: number }> = [];
    const tracedOf = (target: Queryable): Queryable => ({
      query: async (sql: string, p?: unknown[]) => {
        const t1 = performance.now();
        const out = await target.query(sql, p);
        statements.push({ sql, ms: performance.now() - t1 });
        return out;
      },
    });
    const traced: Queryable = { ...tracedOf(db), transaction: (run) => db.transaction((em) => run(tracedOf(em))) };
    const scan = await timed(() => {
      statements = [];
      return computeDriftReport(traced, { deploymentId, modelVersionId: versionId, windowStart: start, windowEnd: end, profile, samples });
    }, runs);
    const floor = Math.min(percentile(elements.times, 50), percentile(indexed.times, 50));
    const report: DriftReport = scan.last;

    printTable(`Drift scan: ${rows} logged predictions x ${FEATURES} features (+ prediction), one window over all rows, ${runs} runs, p50 (load ${(loadMs / 1000).toFixed(1)} s); every row in a transaction with ${DRIFT_SCAN_SETTINGS.join(', ')}`, [
      { query: 'floor: jsonb_array_elements twice, sum(value)', 'p50 ms': percentile(elements.times, 50), 'max ms': elements.times[elements.times.length - 1], 'vs floor': `${(percentile(elements.times, 50) / floor).toFixed(2)}x` },
      { query: 'floor: one jsonb_array_elements, r->>i per column', 'p50 ms': percentile(indexed.times, 50), 'max ms': indexed.times[indexed.times.length - 1], 'vs floor': `${(percentile(indexed.times, 50) / floor).toFixed(2)}x` },
      { query: 'computeDriftReport (all statistics)', 'p50 ms': percentile(scan.times, 50), 'max ms': scan.times[scan.times.length - 1], 'vs floor': `${(percentile(scan.times, 50) / floor).toFixed(2)}x` },
    ]);
    printTable('Statements of the last scan', statements.map((st) => ({ statement: /^WITH v/.test(st.sql) ? 'one scan: buckets, crossing order statistics, categories, rows' : st.sql, ms: st.ms })));
    printTable('Drift report of the scan (features 0..2 shifted by +0.3 sd)', [
      ...report.features,
      ...(report.prediction ? [report.prediction] : []),
    ].map((f) => ({
      feature: f.feature,
      method: f.method,
      value: f.value.toFixed(4),
      psi: f.psi.toFixed(4),
      'ks D': f.statistics.ks!.toFixed(4),
      drifted: f.drifted ? 'yes' : 'no',
      severity: f.severity,
      n: f.currentCount,
    })));

    const bins = rollupBinsOf(profile, samples);
    await rollupReportBench({
      db,
      versionId,
      logDeploymentId: deploymentId,
      start,
      rows,
      runs,
      bins,
      rawAll: { p50: percentile(scan.times, 50), report },
      rawReport: async (n, timeRuns) => {
        // The first n logged rows: row g is logged at start + g ms.
        const windowEnd = new Date(start.getTime() + n + 1);
        const raw = await timed(() => computeDriftReport(db, { deploymentId, modelVersionId: versionId, windowStart: start, windowEnd, profile, samples }), timeRuns);
        return { p50: percentile(raw.times, 50), report: raw.last };
      },
    });
    await writePathBench({ databaseUrl: t.databaseUrl, versionId, bins, features: FEATURES, batchSize: t.config.inference.logBatch });
  } finally {
    await t.stop();
  }
}
