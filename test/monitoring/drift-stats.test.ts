import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { computeDriftReport, type FeatureDrift } from '../../src/monitoring/drift.service';
import { categoricalReference, numericReference, referenceSample, type ReferenceProfile, type ReferenceSamples } from '../../src/registry/reference-profile';
import { startTestServer, type TestServer } from '../support/harness';
import { repoRoot } from '../support/repo';

interface Case {
  name: string;
  kind: 'numeric' | 'categorical';
  reference: Array<number | string>;
  current: Array<number | string>;
  expected: Record<string, number> & { ksMethod?: 'exact' | 'asymp' };
}

// Computed once by test/monitoring/fixtures/make-drift-fixtures.py with scipy; never recomputed here.
const fixtures = JSON.parse(readFileSync(path.join(repoRoot(), 'test/monitoring/fixtures/drift-fixtures.json'), 'utf8')) as { cases: Case[] };
const WINDOW_START = new Date('2030-01-01T00:00:00Z');
const WINDOW_END = new Date('2030-01-02T00:00:00Z');
const TOLERANCE = 1e-6;
// p-values run from 1 down to 1e-37: next to an absolute tolerance any tiny number would pass for a
// small one, so they are held to scipy's value relative to its size.
const P_VALUE_RELATIVE_TOLERANCE = 1e-9;

function close(actual: number | null | undefined, expected: number, what: string): void {
  assert.ok(typeof actual === 'number' && Math.abs(actual - expected) <= TOLERANCE, `${what}: got ${actual}, scipy ${expected}`);
}

function closePValue(actual: number | null | undefined, expected: number, what: string): void {
  assert.ok(
    typeof actual === 'number' && Number.isFinite(actual) && Math.abs(actual - expected) <= P_VALUE_RELATIVE_TOLERANCE * expected,
    `${what}: got ${actual}, scipy ${expected} (relative error ${typeof actual === 'number' ? Math.abs(actual - expected) / expected : 'n/a'})`,
  );
}

/** Logs each current value as one answered request of its own deployment (one column `x`, output `p`). */
async function logValues(t: TestServer, deploymentId: string, versionId: string, values: Array<number | string>, extra: { shadow?: boolean; hashOnly?: boolean; noOutputs?: boolean } = {}): Promise<void> {
  await t.sql(
    `INSERT INTO prediction_log (occurred_at, deployment_id, team_id, model_version_id, request_id, principal_id, principal_kind, source, rows, inputs, inputs_sha256, outputs, latency_ms, shadow, error)
     SELECT $3::timestamptz + (g.i || ' ms')::interval, $1, $1, $2, 'r' || g.i, 'test', 'user', 'graphql', 1,
            CASE WHEN $5 THEN NULL ELSE jsonb_build_object('features', jsonb_build_array(jsonb_build_array(g.v))) END, 'sha',
            CASE WHEN $6 THEN NULL ELSE jsonb_build_object('probability', jsonb_build_array(jsonb_build_array(0.5))) END, 1, $4,
            CASE WHEN $6 THEN 'failed' END
     FROM jsonb_array_elements($7::jsonb) WITH ORDINALITY AS g(v, i)`,
    [deploymentId, versionId, WINDOW_START, extra.shadow ?? false, extra.hashOnly ?? false, extra.noOutputs ?? false, JSON.stringify(values)],
  );
}

// The profile holds aggregates only; the sample the exact statistics need is handed in beside it,
// as the monitor does from the stored training data.
function referenceFor(c: Case): { profile: ReferenceProfile; samples: ReferenceSamples } {
  const numeric = c.kind === 'numeric';
  const ref = numeric ? numericReference(c.reference as number[]) : categoricalReference(c.reference as string[]);
  return {
    profile: { profileVersion: 3, inputName: 'features', outputName: 'probability', inputColumns: ['x'], features: { x: ref }, prediction: null },
    samples: { features: numeric ? { x: referenceSample(c.reference as number[]) } : {}, prediction: null },
  };
}

describe('drift statistics computed in PostgreSQL match scipy', () => {
  let t: TestServer;
  const reports = new Map<string, FeatureDrift>();
  before(async () => {
    t = await startTestServer();
    for (const c of fixtures.cases) {
      const deploymentId = randomUUID();
      const versionId = randomUUID();
      await logValues(t, deploymentId, versionId, c.current);
      // Rows that must not count: a shadow run, a request logged by hash only, a failure without outputs.
      await logValues(t, deploymentId, versionId, c.current.slice(0, 50), { shadow: true });
      await logValues(t, deploymentId, versionId, c.current.slice(0, 50), { hashOnly: true });
      await logValues(t, deploymentId, versionId, c.current.slice(0, 50), { noOutputs: true });
      const report = await computeDriftReport(t.server.app.db, { deploymentId, modelVersionId: versionId, windowStart: WINDOW_START, windowEnd: WINDOW_END, ...referenceFor(c) });
      assert.equal(report.rows, c.current.length, `${c.name}: rows`);
      assert.equal(report.features.length, 1);
      reports.set(c.name, report.features[0]);
    }
  });
  after(() => t?.stop());

  it('has fixtures with p-values between 1e-5 and 1e-3 for exact KS, asymptotic KS and chi-squared', () => {
    const moderate = (p: number | undefined) => typeof p === 'number' && p >= 1e-5 && p <= 1e-3;
    const regimes = fixtures.cases
      .filter((c) => moderate(c.kind === 'numeric' ? c.expected.ksPValue : c.expected.chi2PValue))
      .map((c) => (c.kind === 'numeric' ? `ks-${c.expected.ksMethod}` : 'chi2'));
    for (const regime of ['ks-exact', 'ks-asymp', 'chi2']) assert.ok(regimes.includes(regime), `a ${regime} fixture with 1e-5 <= p <= 1e-3: ${regimes.join(', ')}`);
  });

  for (const c of fixtures.cases) {
    it(c.name, () => {
      const f = reports.get(c.name)!;
      const e = c.expected;
      assert.equal(f.currentCount, e.currentCount);
      assert.equal(f.referenceCount, e.referenceCount);
      close(f.statistics.psi, e.psi, 'PSI');
      close(f.statistics.jensenShannon, e.jensenShannon, 'Jensen-Shannon');
      if (c.kind === 'numeric') {
        close(f.statistics.ks, e.ks, 'KS statistic');
        // ks_2samp's own p-value: exact distribution or asymptotic kstwo, as scipy picks (e.ksMethod).
        closePValue(f.statistics.ksPValue, e.ksPValue, `KS p-value (${e.ksMethod})`);
        close(f.statistics.wassersteinNormed, e.wassersteinNormed, 'normed Wasserstein');
        assert.equal(f.method, e.referenceCount <= 1000 ? 'ks' : 'wasserstein');
      } else {
        close(f.statistics.chi2, e.chi2, 'chi-squared');
        closePValue(f.statistics.chi2PValue, e.chi2PValue, 'chi-squared p-value');
        assert.equal(f.method, e.referenceCount <= 1000 ? 'chi2' : 'jensen_shannon');
      }
    });
  }
});
