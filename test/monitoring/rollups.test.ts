import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startServer, type RunningServer } from '../../src/app/server';
import { expectId } from '../../src/core/global-id';
import { createLogger } from '../../src/core/logger';
import { mulberry32 } from '../../src/core/prng';
import { SKETCH_RELATIVE_ACCURACY, sketchQuantile } from '../../src/inference/latency-sketch';
import type { NumericBins, NumericHistogram } from '../../src/inference/rollup-bins';
import { referenceOf } from '../../src/monitoring/drift-monitor';
import { computeDriftReport } from '../../src/monitoring/drift.service';
import { driftReportFromRollup } from '../../src/monitoring/rollup-drift';
import { readRollups } from '../../src/monitoring/rollup-read';
import { binOf } from '../../src/registry/reference-profile';
import { startTestServer, type TestServer } from '../support/harness';
import { inParallel } from '../support/inference';
import { foldRollups, plantRollup } from '../support/rollups';

const PREDICT = `mutation($d: ID!, $inputs: JSONObject!, $key: String) { predict(deployment: $d, inputs: $inputs, requestKey: $key) { id rows modelVersionId } }`;
const REBUILD = `mutation($i: RebuildRollupsInput!) { rebuildRollups(input: $i) { rows records outcomes written windowSeconds differing { modelVersion shadow windowStart stored recomputed } } }`;
const EVER = { from: new Date('2000-01-01T00:00:00Z'), to: new Date('2100-01-01T00:00:00Z') };

describe('window rollups hold exactly what the raw log holds', () => {
  let t: TestServer;
  let second: RunningServer;
  let engineer: string;
  let service: string;
  let v1: string;
  let deployment: string;
  const predictions: Array<{ id: string; rows: number }> = [];

  before(async () => {
    // Short windows, so that the traffic below spans several of them.
    t = await startTestServer({ demo: true, env: { INFERENCE_THREADS: '1', SERVING_WINDOW_SECONDS: '2' } });
    second = await startServer(t.config, createLogger(t.config.logLevel));
    engineer = t.token(['ml-engineer'], ['fraud'], 'mona');
    service = t.token(['service'], ['fraud'], 'svc');
    const r = await t.gql(engineer, '{ models(filter: { name: "fraud-detector" }) { nodes { versions { id version } } } }');
    v1 = r.data.models.nodes[0].versions.find((v: { version: number }) => v.version === 1).id;
    const d = await t.gql(
      engineer,
      `mutation($v: ID!) { createDeployment(input: { team: "fraud", name: "rollup-check", environment: DEVELOPMENT, trafficSplit: [{ modelVersion: $v, weight: 100 }] }) { id } }`,
      { v: v1 },
    );
    assert.equal(d.errors, undefined, JSON.stringify(d.errors));
    deployment = d.data.createDeployment.id;
    await t.server.app.inference!.reconcile();
    await second.app.inference!.reconcile();
  });
  after(async () => {
    await second?.stop();
    await t?.stop();
  });

  it('counts, latency percentiles, histograms and drift of two instances writing the same windows at once equal the raw log', async () => {
    const random = mulberry32(7, 11);
    // Feature values spread over and beyond the training data's range, ties included.
    const value = (j: number) => (random() < 0.1 ? [0, 1, 12, 250][j] : [random() * 700 - 50, Math.floor(random() * 30), random() * 1.4 - 0.2, random() * 400][j]);
    const request = (i: number) => Array.from({ length: 1 + (i % 4) }, () => [0, 1, 2, 3].map(value));
    const bodies = Array.from({ length: 400 }, (_, i) => request(i));
    await inParallel(bodies.length, 8, async (i) => {
      // Alternate instances: both write the same windows at the same time.
      const url = i % 2 ? second.url : t.url;
      const res = await fetch(`${url}/graphql`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${service}` },
        body: JSON.stringify({ query: PREDICT, variables: { d: deployment, inputs: { features: bodies[i] }, key: `${i % 2 ? 'b' : 'a'}-${i}` } }),
      });
      const body = (await res.json()) as { data?: { predict: { id: string; rows: number } }; errors?: unknown };
      assert.equal(body.errors, undefined, JSON.stringify(body.errors));
      predictions.push(body.data!.predict);
    });
    await Promise.all([t.server.app.inference!.log.flush(true), second.app.inference!.log.flush(true)]);
    const deploymentId = expectId(deployment, 'Deployment');
    // Readers add the deltas not folded yet; the windows' own rows are compared below once folded.
    const early = await readRollups(t.server.app.db, deploymentId, EVER);
    await foldRollups(t);
    await foldRollups(second);
    const [{ left }] = await t.sql(`SELECT count(*)::int AS left FROM prediction_rollup_delta WHERE deployment_id = $1`, [deploymentId]);
    assert.equal(left, 0, 'every delta folded');
    const versionId = expectId(v1, 'ModelVersion');

    // Per window: the rollup's counts equal the raw log's, and both instances wrote into the busiest window.
    const perWindow: Array<{ w: Date; n: number; rows: number; a: number; b: number }> = await t.sql(
      `SELECT to_timestamp(floor(extract(epoch FROM occurred_at) / 2) * 2) AS w, count(*)::int AS n, sum(rows)::int AS rows,
              count(*) FILTER (WHERE request_key LIKE 'a-%')::int AS a, count(*) FILTER (WHERE request_key LIKE 'b-%')::int AS b
         FROM prediction_log WHERE deployment_id = $1 GROUP BY 1 ORDER BY 1`,
      [deploymentId],
    );
    const stored: Array<{ w: Date; requests: string; rows: string; errors: string }> = await t.sql(
      `SELECT window_start AS w, requests, rows, errors FROM prediction_rollup WHERE deployment_id = $1 AND NOT shadow ORDER BY window_start`,
      [deploymentId],
    );
    assert.deepEqual(
      stored.map((s) => [new Date(s.w).toISOString(), Number(s.requests), Number(s.rows), Number(s.errors)]),
      perWindow.map((p) => [new Date(p.w).toISOString(), p.n, p.rows, 0]),
    );
    assert.ok(perWindow.some((p) => p.a > 0 && p.b > 0), 'both instances wrote into one window');

    const [rollup] = await readRollups(t.server.app.db, deploymentId, EVER);
    // The same figures before and after the fold: counts exactly, sums to rounding (PostgreSQL adds them as decimals).
    const rounded = (v: unknown): unknown =>
      typeof v === 'number' ? Number(v.toPrecision(12)) : Array.isArray(v) ? v.map(rounded) : v && typeof v === 'object' && !(v instanceof Date) ? Object.fromEntries(Object.entries(v).map(([k, x]) => [k, rounded(x)])) : v;
    assert.deepEqual(rounded(early.map(({ windows, ...r }) => r)), rounded([rollup].map(({ windows, ...r }) => r)), 'the same figures before and after the fold');
    assert.equal(rollup.requests, 400);
    assert.equal(rollup.rows, bodies.reduce((s, b) => s + b.length, 0));

    // Percentiles from the merged sketches: within the stated accuracy of the exact order statistics.
    const latencies: number[] = (await t.sql(`SELECT latency_ms FROM prediction_log WHERE deployment_id = $1 ORDER BY latency_ms`, [deploymentId])).map((r) => Number(r.latency_ms));
    for (const q of [0.5, 0.95, 0.99]) {
      const exact = latencies[Math.floor(q * (latencies.length - 1))];
      const estimate = sketchQuantile(rollup.latency, q)!;
      assert.ok(Math.abs(estimate - exact) <= SKETCH_RELATIVE_ACCURACY * exact + 1e-12, `p${q * 100}: sketch ${estimate} against ${exact}`);
    }

    // Histograms: every logged value counted in its bin, exactly.
    const bins = (await t.server.app.rollupBins(versionId))!;
    assert.ok(bins && bins.columns.length === 4, 'the version has bins for its four inputs');
    const logged: Array<{ inputs: { features: number[][] }; outputs: Record<string, number[][]> }> = await t.sql(`SELECT inputs, outputs FROM prediction_log WHERE deployment_id = $1`, [deploymentId]);
    for (const c of bins.columns) {
      const b = c.bins as NumericBins;
      const counts = new Array<number>(b.edges.length + 1).fill(0);
      let sum = 0;
      for (const p of logged) for (const row of p.inputs.features) {
        counts[binOf(b.edges, row[c.index])] += 1;
        sum += row[c.index];
      }
      const h = rollup.features[c.name] as NumericHistogram;
      assert.deepEqual(h.c, counts, `bin counts of ${c.name}`);
      assert.equal(h.n, rollup.rows);
      const stored = h.s.reduce((a, x) => a + x, 0);
      assert.ok(Math.abs(stored - sum) <= 1e-9 * Math.max(1, Math.abs(sum)), `sum of ${c.name}: ${stored} against ${sum}`);
    }
    if (bins.prediction) {
      const counts = new Array<number>(bins.prediction.edges.length + 1).fill(0);
      for (const p of logged) for (const row of p.outputs[bins.outputName]) counts[binOf(bins.prediction.edges, row[0])] += 1;
      assert.deepEqual(rollup.prediction!.c, counts, 'prediction bin counts');
    }

    // Drift: the rollup report's PSI equals the raw scan's, its KS bounds hold the exact KS.
    const reference = (await referenceOf(t.server.app, versionId))!;
    const args = { deploymentId, modelVersionId: versionId, windowStart: EVER.from, windowEnd: EVER.to };
    const raw = await computeDriftReport(t.server.app.db, { ...args, ...reference });
    const binned = driftReportFromRollup({ ...args, bins, rollup });
    assert.equal(raw.source, 'raw');
    assert.equal(binned.source, 'rollup');
    assert.equal(binned.rows, raw.rows);
    assert.equal(binned.features.length, raw.features.length);
    for (const f of raw.features) {
      const g = binned.features.find((x) => x.feature === f.feature)!;
      assert.ok(Math.abs(g.psi - f.psi) <= 1e-9, `${f.feature}: PSI ${g.psi} against ${f.psi}`);
      assert.ok(Math.abs(g.statistics.jensenShannon - f.statistics.jensenShannon) <= 1e-9, `${f.feature}: Jensen–Shannon`);
      const ks = f.statistics.ks!;
      assert.ok(g.statistics.ks! <= ks + 1e-12 && ks <= g.statistics.ksUpper! + 1e-12, `${f.feature}: exact KS ${ks} within [${g.statistics.ks}, ${g.statistics.ksUpper}]`);
      assert.equal(g.currentCount, f.currentCount);
    }
  });

  it('rebuilds from the raw log: a verification finds nothing, a damaged window is found and repaired, late labels are counted alike (audited)', async () => {
    assert.ok(predictions.length > 0, 'the traffic above was logged');
    // Labels for some rows, sent later: quality statistics live and rebuilt must agree.
    const outcomes = predictions.slice(0, 60).map((p, i) => ({ prediction: p.id, row: p.rows - 1, label: i % 3 === 0 ? 1 : 0 }));
    const rec = await t.gql(service, `mutation($i: RecordOutcomesInput!) { recordOutcomes(input: $i) { recorded rejected } }`, { i: { deployment, outcomes } });
    assert.deepEqual(rec.data?.recordOutcomes, { recorded: 60, rejected: 0 }, JSON.stringify(rec.errors));
    const corrected = await t.gql(service, `mutation($i: RecordOutcomesInput!) { recordOutcomes(input: $i) { corrected } }`, { i: { deployment, outcomes: [{ ...outcomes[1], label: 1, correct: true }] } });
    assert.equal(corrected.data?.recordOutcomes.corrected, 1, JSON.stringify(corrected.errors));

    const since = new Date(Date.now() - 3600_000);
    const verify = async () => {
      const r = await t.gql(engineer, REBUILD, { i: { deployment, from: since, verifyOnly: true } });
      assert.equal(r.errors, undefined, JSON.stringify(r.errors));
      return r.data.rebuildRollups;
    };
    const first = await verify();
    assert.deepEqual(first.differing, [], 'the rollups written on the way equal the raw log');
    assert.equal(first.records, 400);
    assert.equal(first.outcomes, 60);
    assert.equal(first.written, false);

    const deploymentId = expectId(deployment, 'Deployment');
    const [damaged] = await t.sql(`SELECT min(window_start) AS window_start FROM prediction_rollup WHERE deployment_id = $1`, [deploymentId]);
    await t.sql(`UPDATE prediction_rollup SET requests = requests + 5 WHERE deployment_id = $1 AND window_start = $2`, [deploymentId, damaged.window_start]);
    const found = await verify();
    assert.equal(found.differing.length, 1);
    assert.equal(new Date(found.differing[0].windowStart).getTime(), new Date(damaged.window_start).getTime());
    assert.equal(found.differing[0].stored.requests, found.differing[0].recomputed.requests + 5);

    const rebuilt = await t.gql(engineer, REBUILD, { i: { deployment, from: since } });
    assert.equal(rebuilt.errors, undefined, JSON.stringify(rebuilt.errors));
    assert.equal(rebuilt.data.rebuildRollups.written, true);
    assert.deepEqual((await verify()).differing, []);
    const [{ labelled }] = await t.sql(`SELECT sum(labelled)::int AS labelled FROM prediction_rollup WHERE deployment_id = $1`, [deploymentId]);
    assert.equal(labelled, 60);

    const events = await t.sql(`SELECT action, after FROM audit_event WHERE action IN ('verifyRollups', 'rebuildRollups') ORDER BY seq`);
    assert.deepEqual(events.map((e) => [e.action, e.after.differing]), [['verifyRollups', 0], ['verifyRollups', 1], ['rebuildRollups', 1], ['verifyRollups', 0]]);
  });

  it('refuses a rebuild to those who may not change the deployment, and a reversed range', async () => {
    const since = new Date(Date.now() - 3600_000);
    const viewer = await t.gql(t.token(['viewer'], ['fraud'], 'vic'), REBUILD, { i: { deployment, from: since } });
    assert.equal(viewer.errors?.[0].extensions?.code, 'FORBIDDEN');
    const other = await t.gql(t.token(['ml-engineer'], ['vision'], 'val'), REBUILD, { i: { deployment, from: since } });
    assert.ok(['FORBIDDEN', 'NOT_FOUND'].includes(other.errors?.[0].extensions?.code as string), JSON.stringify(other.errors));
    const reversed = await t.gql(engineer, REBUILD, { i: { deployment, from: '2030-01-02T00:00:00Z', to: '2030-01-01T00:00:00Z' } });
    assert.deepEqual([reversed.errors?.[0].extensions?.code, reversed.errors?.[0].extensions?.reason], ['BAD_USER_INPUT', 'INVALID_RANGE']);
    const tooLong = await t.gql(engineer, REBUILD, { i: { deployment, from: EVER.from } });
    assert.deepEqual([tooLong.errors?.[0].extensions?.code, tooLong.errors?.[0].extensions?.reason], ['BAD_USER_INPUT', 'INVALID_RANGE']);
    // Windows written under another window length: rebuilding over them would count their records twice.
    const deploymentId = expectId(deployment, 'Deployment');
    await plantRollup(t, deploymentId, expectId(v1, 'ModelVersion'), { requests: 3, errors: 0, latencyMs: 2, windowSeconds: 600 });
    const mixed = await t.gql(engineer, REBUILD, { i: { deployment, from: since } });
    assert.deepEqual([mixed.errors?.[0].extensions?.code, mixed.errors?.[0].extensions?.reason], ['CONFLICT', 'ROLLUP_WINDOW_LENGTH']);
    assert.match(mixed.errors![0].message, /Windows of 600 s overlap this range/);
  });
});
