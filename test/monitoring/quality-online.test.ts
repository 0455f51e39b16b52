import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { expectId, toGlobalId } from '../../src/core/global-id';
import { qualityMetrics } from '../../src/monitoring/quality-metrics';
import { readRollups } from '../../src/monitoring/rollup-read';
import { startTestServer, type TestServer } from '../support/harness';
import { repoRoot } from '../support/repo';

interface Fixture {
  threshold: number;
  expected: Record<'accuracy' | 'precision' | 'recall' | 'f1' | 'rocAuc' | 'logLoss' | 'brier' | 'expectedCalibrationError' | 'mae' | 'rmse' | 'r2' | 'bias', number>;
  classification: Array<[number, number]>;
  regression: Array<[number, number]>;
}

// Computed once by test/monitoring/fixtures/quality/make-quality-fixture.py with scikit-learn; never recomputed here.
const fixture = JSON.parse(readFileSync(path.join(repoRoot(), 'test/monitoring/fixtures/quality/quality-fixture.json'), 'utf8')) as Fixture;
const EVER = { from: new Date('2000-01-01T00:00:00Z'), to: new Date('2100-01-01T00:00:00Z') };
const RECORD = `mutation($i: RecordOutcomesInput!) { recordOutcomes(input: $i) { recorded rejected } }`;

describe('online quality from outcomes equals scikit-learn on the same rows', () => {
  let t: TestServer;
  let service: string;
  let deployment: string;
  let outputName: string;
  const ids = { classification: [] as string[], regression: [] as string[] };

  before(async () => {
    t = await startTestServer({ demo: true, env: { INFERENCE_THREADS: '1' } });
    const engineer = t.token(['ml-engineer'], ['fraud'], 'mona');
    service = t.token(['service'], ['fraud'], 'svc');
    const r = await t.gql(engineer, '{ models(filter: { name: "fraud-detector" }) { nodes { versions { id version } } } }');
    const v1 = r.data.models.nodes[0].versions.find((v: { version: number }) => v.version === 1).id;
    const d = await t.gql(
      engineer,
      `mutation($v: ID!) { createDeployment(input: { team: "fraud", name: "quality-check", environment: DEVELOPMENT, trafficSplit: [{ modelVersion: $v, weight: 100 }] }) { id } }`,
      { v: v1 },
    );
    assert.equal(d.errors, undefined, JSON.stringify(d.errors));
    deployment = d.data.createDeployment.id;
    const deploymentId = expectId(deployment, 'Deployment');
    const versionId = expectId(v1, 'ModelVersion');
    const [version] = await t.sql(`SELECT team_id, reference_profile FROM model_version WHERE id = $1`, [versionId]);
    outputName = version.reference_profile?.outputName ?? 'probability';
    // The fixture's predictions, logged by the prediction log's writer as answered requests.
    const log = t.server.app.inference!.log;
    for (const kind of ['classification', 'regression'] as const) {
      for (const [score] of fixture[kind]) {
        const id = randomUUID();
        ids[kind].push(id);
        await log.append({
          id, occurredAt: new Date(), deploymentId, teamId: version.team_id, modelVersionId: versionId, requestId: `fixture-${id}`, requestKey: null,
          principalId: 'svc', principalKind: 'user', source: 'graphql', rows: 1, inputs: null, inputsSha256: 'not kept',
          outputs: { [outputName]: [[score]] }, latencyMs: 1, fallback: false, shadow: false, failedVersionId: null, error: null,
        });
      }
    }
    await log.flush(true);
  });
  after(async () => {
    await t?.stop();
  });

  it('matches scikit-learn on 10,000 labelled classification rows (GraphQL) and 10,000 regression rows (bulk NDJSON): 1e-9 on exact metrics, the binned AUC within its bound', async () => {
    const labels = fixture.classification.map(([, label], i) => ({ prediction: toGlobalId('Prediction', ids.classification[i]), label }));
    for (let i = 0; i < labels.length; i += 1000) {
      const r = await t.gql(service, RECORD, { i: { deployment, outcomes: labels.slice(i, i + 1000) } });
      assert.deepEqual(r.data?.recordOutcomes, { recorded: 1000, rejected: 0 }, JSON.stringify(r.errors));
    }
    const body = fixture.regression.map(([, label], i) => JSON.stringify({ prediction: toGlobalId('Prediction', ids.regression[i]), label })).join('\n');
    const bulk = await fetch(`${t.url}/outcomes?deployment=${encodeURIComponent(deployment)}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${service}`, 'content-type': 'application/x-ndjson' },
      body,
    });
    const lines = (await bulk.text()).trim().split('\n').map((l) => JSON.parse(l));
    assert.deepEqual([lines.at(-1).done, lines.at(-1).recorded, lines.at(-1).rejected], [true, 10_000, 0], JSON.stringify(lines.at(-1)));

    const [rollup] = await readRollups(t.server.app.db, expectId(deployment, 'Deployment'), EVER);
    assert.equal(rollup.labelled, 20_000);
    const m = qualityMetrics(rollup.quality, fixture.threshold);
    const c = m.classification!;
    const r = m.regression!;
    const exact: Array<[string, number, number]> = [
      ['accuracy', c.accuracy, fixture.expected.accuracy],
      ['precision', c.precision, fixture.expected.precision],
      ['recall', c.recall, fixture.expected.recall],
      ['f1', c.f1, fixture.expected.f1],
      ['logLoss', c.logLoss, fixture.expected.logLoss],
      ['brier', c.brier, fixture.expected.brier],
      ['expectedCalibrationError', c.expectedCalibrationError, fixture.expected.expectedCalibrationError],
      ['mae', r.mae, fixture.expected.mae],
      ['rmse', r.rmse, fixture.expected.rmse],
      ['r2', r.r2!, fixture.expected.r2],
      ['bias', r.bias, fixture.expected.bias],
    ];
    for (const [name, online, sklearn] of exact) assert.ok(Math.abs(online - sklearn) <= 1e-9, `${name}: ${online} against scikit-learn's ${sklearn}`);
    assert.equal(c.rows, 10_000);
    assert.equal(r.rows, 10_000);
    assert.ok(Math.abs(c.rocAuc! - fixture.expected.rocAuc) <= c.rocAucBound, `AUC ${c.rocAuc} ± ${c.rocAucBound} against ${fixture.expected.rocAuc}`);
    assert.ok(c.rocAucBound < 0.01, `the bound is tight: ${c.rocAucBound}`);
  });
});
