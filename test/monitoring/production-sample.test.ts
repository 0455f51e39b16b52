import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { buildLogisticRegressionOnnx } from '../../src/registry/onnx-builders';
import { trainingDataClassification } from '../../src/lineage/production-sample.service';
import { withOneNewEvent } from '../support/audit';
import { codeOf, startTestServer, type TestServer } from '../support/harness';
import { uploadArtifact } from '../support/http';
import { fraudRow } from '../support/inference';

const PREDICT = `mutation($d: ID!, $inputs: JSONObject!) { predict(deployment: $d, inputs: $inputs) { id rows modelVersionId } }`;
const RECORD = `mutation($input: RecordOutcomesInput!) { recordOutcomes(input: $input) { recorded corrected rejected } }`;
const PART = `part rows sampledFrom sampledTo reused datasetVersion { id version sha256 rowCount classification columnSchema }`;
const SAMPLE = `mutation($input: SampleProductionDataInput!) {
  sampleProductionData(input: $input) {
    deploymentId datasetId from to
    train { ${PART} }
    holdout { ${PART} }
    unusable { unlabelled inputsHashOnly otherColumns unstorableValue }
  }
}`;
const LINEAGE = `query($id: ID!, $depth: Int!) { lineage(id: $id, direction: DOWNSTREAM, depth: $depth) { nodes { id } edges { from to relation } } }`;

const uuidOf = (id: string) => Buffer.from(id, 'base64url').toString().split(':')[1];
const globalId = (type: string, key: string) => Buffer.from(`${type}:${key}`).toString('base64url');
const HOUR = 3_600_000;

describe('production samples', () => {
  let t: TestServer;
  let engineer: string;
  let service: string;
  let otherTeam: string;
  let production: string;
  let servingVersion: string;
  /** Every labelled row the test expects in a sample, with the label it expects. */
  const expectedLabels = new Map<string, unknown>();

  before(async () => {
    t = await startTestServer({ demo: true, env: { INFERENCE_THREADS: '1' } });
    engineer = t.token(['ml-engineer'], ['fraud'], 'fran-engineer');
    service = t.token(['service'], ['fraud'], 'svc-fraud');
    otherTeam = t.token(['ml-engineer'], ['vision'], 'vic-engineer');
    const r = await t.gql(service, `{ deployments(filter: { team: "fraud", environment: PRODUCTION }) { nodes { id } } }`);
    production = r.data.deployments.nodes[0].id;

    // Six served predictions of five rows each, answered one after the other.
    const predictions: Array<{ id: string; modelVersionId: string }> = [];
    for (let p = 0; p < 6; p++) {
      const out = await t.gql(service, PREDICT, { d: production, inputs: { features: Array.from({ length: 5 }, (_, i) => fraudRow(p * 10 + i)) } });
      assert.equal(out.errors, undefined, JSON.stringify(out.errors));
      predictions.push(out.data.predict);
    }
    servingVersion = predictions[0].modelVersionId;
    const versionKey = uuidOf(servingVersion);
    const [version] = await t.sql(`SELECT team_id, reference_profile FROM model_version WHERE id = $1`, [versionKey]);
    const outputName = version.reference_profile.outputName as string;

    // Records the server could not have answered from here: inputs kept only as a hash, a shadow run, one older than the default range.
    const log = t.server.app.inference!.log;
    const appended = async (rows: number, extra: { inputs?: Record<string, unknown> | null; shadow?: boolean; occurredAt?: Date }) => {
      const id = randomUUID();
      await log.append({
        id, occurredAt: extra.occurredAt ?? new Date(), deploymentId: uuidOf(production), teamId: version.team_id, modelVersionId: versionKey, requestId: `sample-${id}`,
        requestKey: null, principalId: 'svc-fraud', principalKind: 'user', source: 'graphql', rows, inputs: extra.inputs ?? null, inputsSha256: 'not kept',
        outputs: { [outputName]: Array.from({ length: rows }, () => [0.5]) }, latencyMs: 1, fallback: false, shadow: extra.shadow ?? false, failedVersionId: null, error: null,
      });
      return globalId('Prediction', id);
    };
    const hashOnly = await appended(3, { inputs: null });
    await appended(2, { inputs: { features: [fraudRow(900), fraudRow(901)] }, shadow: true });
    const old = await appended(1, { inputs: { features: [fraudRow(902)] }, occurredAt: new Date(Date.now() - 10 * 24 * HOUR) });
    await log.flush(true);

    const outcomes: Array<{ prediction: string; row: number; label: unknown }> = [];
    predictions.forEach((p, i) => {
      for (let row = 0; row < 5; row++) {
        // Two rows never get a label.
        if ((i === 1 && row === 3) || (i === 3 && row === 0)) continue;
        // Two labels a CSV cannot hold: a structure, and a string with a comma.
        const label = i === 4 && row === 1 ? { class: 'fraud' } : i === 2 && row === 4 ? 'fraud,chargeback' : (i + row) % 2;
        outcomes.push({ prediction: p.id, row, label });
        if (typeof label === 'number') expectedLabels.set(`${uuidOf(p.id)}:${row}`, label);
      }
    });
    outcomes.push({ prediction: hashOnly, row: 0, label: 1 }, { prediction: hashOnly, row: 2, label: 0 }, { prediction: old, row: 0, label: 1 });
    const rec = await t.gql(service, RECORD, { input: { deployment: production, outcomes } });
    assert.equal(rec.errors, undefined, JSON.stringify(rec.errors));
    assert.equal(rec.data.recordOutcomes.rejected, 0);
    // A corrected label: the sample takes the latest one.
    const corrected = await t.gql(service, RECORD, { input: { deployment: production, outcomes: [{ prediction: predictions[5].id, row: 2, label: 0, correct: true }] } });
    assert.equal(corrected.data.recordOutcomes.corrected, 1);
    expectedLabels.set(`${uuidOf(predictions[5].id)}:2`, 0);
  });
  after(async () => {
    await t?.stop();
  });

  const sample = (token: string, input: Record<string, unknown>) => t.gql(token, SAMPLE, { input: { deployment: production, ...input } });
  const csvOf = async (sha256: string) => (await t.server.app.artifacts.read(sha256)).toString('utf8');

  let taken: any;

  it('stores the labelled rows as CSV, the latest 20 % held out, counts what it could not use by cause, and writes one audit event', async () => {
    const { value: r, event } = await withOneNewEvent(t, () => sample(engineer, {}));
    assert.equal(r.errors, undefined, JSON.stringify(r.errors));
    taken = r.data.sampleProductionData;
    assert.deepEqual(taken.unusable, { unlabelled: 3, inputsHashOnly: 2, otherColumns: 0, unstorableValue: 2 });

    // The rows expected, in time order (occurred_at, then prediction id, then row), with the values the log kept.
    const logged = await t.sql<{ id: string; occurred_at: Date; inputs: { features: number[][] } }>(
      `SELECT id, occurred_at, inputs FROM prediction_log WHERE id = ANY($1::uuid[])`,
      [[...new Set([...expectedLabels.keys()].map((k) => k.split(':')[0]))]],
    );
    const expected = [...expectedLabels.entries()]
      .map(([key, label]) => {
        const [id, row] = key.split(':');
        const l = logged.find((x) => x.id === id)!;
        return { at: new Date(l.occurred_at).getTime(), id, row: Number(row), line: [...l.inputs.features[Number(row)], label].join(',') };
      })
      .sort((a, b) => a.at - b.at || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0) || a.row - b.row);
    assert.equal(expected.length, 26);
    const header = 'amount,hour,merchant_risk,distance_km,label';
    const train = await csvOf(taken.train.datasetVersion.sha256);
    const holdout = await csvOf(taken.holdout.datasetVersion.sha256);
    assert.equal(train, [header, ...expected.slice(0, 21).map((e) => e.line)].join('\n') + '\n');
    assert.equal(holdout, [header, ...expected.slice(21).map((e) => e.line)].join('\n') + '\n');
    assert.deepEqual([taken.train.rows, taken.holdout.rows, taken.train.datasetVersion.rowCount, taken.holdout.datasetVersion.rowCount], [21, 5, 21, 5]);
    assert.deepEqual([taken.train.part, taken.holdout.part], ['TRAIN', 'HOLDOUT']);
    assert.ok(new Date(taken.train.sampledTo) <= new Date(taken.holdout.sampledFrom), 'every held-out row occurred no earlier than every training row');
    assert.equal(new Date(taken.holdout.sampledTo).getTime(), expected[25].at);
    assert.equal(new Date(taken.train.sampledFrom).getTime(), expected[0].at);
    assert.deepEqual(
      taken.train.datasetVersion.columnSchema.map((c: any) => [c.name, c.type]),
      [['amount', 'int64'], ['hour', 'int64'], ['merchant_risk', 'float64'], ['distance_km', 'int64'], ['label', 'int64']],
    );

    // At least as strict as the data the serving version was trained on.
    const [source] = await t.sql(
      `SELECT max(v.classification) AS classification FROM model_version mv JOIN training_run_dataset l ON l.training_run_id = mv.training_run_id JOIN dataset_version v ON v.id = l.dataset_version_id WHERE mv.id = $1`,
      [uuidOf(servingVersion)],
    );
    assert.equal(source.classification, 'CONFIDENTIAL');
    assert.deepEqual([taken.train.datasetVersion.classification, taken.holdout.datasetVersion.classification], ['CONFIDENTIAL', 'CONFIDENTIAL']);
    const ds = await t.gql(engineer, `query($id: ID!) { node(id: $id) { ... on Dataset { name classification } } }`, { id: taken.datasetId });
    assert.equal(ds.data.node.name, `${(await t.sql(`SELECT name FROM deployment WHERE id = $1`, [uuidOf(production)]))[0].name}-production`);

    assert.deepEqual([event.action, event.subject_type, event.subject_id, event.decision, event.actor_id], ['sampleProductionData', 'Deployment', production, 'ALLOWED', 'fran-engineer']);
    const [{ after: detail }] = await t.sql(`SELECT after FROM audit_event WHERE seq = $1`, [event.seq]);
    assert.deepEqual(detail.parts.map((p: any) => [p.part, p.datasetVersion, p.rows]), [
      ['TRAIN', taken.train.datasetVersion.id, 21],
      ['HOLDOUT', taken.holdout.datasetVersion.id, 5],
    ]);
    assert.deepEqual(detail.unusable, taken.unusable);
  });

  it('the same rows again return the same dataset versions instead of new ones', async () => {
    const again = await sample(engineer, { from: taken.from, to: taken.to });
    assert.equal(again.errors, undefined, JSON.stringify(again.errors));
    const s = again.data.sampleProductionData;
    assert.deepEqual([s.train.datasetVersion.id, s.holdout.datasetVersion.id, s.train.reused, s.holdout.reused], [taken.train.datasetVersion.id, taken.holdout.datasetVersion.id, true, true]);
  });

  it('lineage answers "this model learned from production traffic of the deployment": Deployment –SAMPLED→ DatasetVersion –USED→ TrainingRun –PRODUCED→ ModelVersion', async () => {
    const sampled = await t.gql(engineer, LINEAGE, { id: production, depth: 1 });
    assert.equal(sampled.errors, undefined, JSON.stringify(sampled.errors));
    const edges = sampled.data.lineage.edges.filter((e: any) => e.relation === 'SAMPLED');
    assert.deepEqual(edges.map((e: any) => e.to).sort(), [taken.train.datasetVersion.id, taken.holdout.datasetVersion.id].sort());
    assert.ok(edges.every((e: any) => e.from === production));

    const gql = async (query: string, input: Record<string, unknown>, field: string) => {
      const r = await t.gql(engineer, `mutation($input: ${query}) { ${field}(input: $input) { id } }`, { input });
      assert.equal(r.errors, undefined, JSON.stringify(r.errors));
      return r.data[field].id as string;
    };
    const hex = (s: string) => Buffer.from(s).toString('hex').padEnd(64, '0').slice(0, 64);
    const code = await gql('RegisterCodeVersionInput!', { repositoryUrl: 'https://git.example.com/fraud/retrain', commitSha: hex('retrain').slice(0, 40), entrypoint: 'train.py' }, 'registerCodeVersion');
    const config = await gql('RegisterConfigInput!', { content: { lr: 0.1 } }, 'registerConfig');
    const seeds = await gql('RegisterSeedSetInput!', { seeds: { split: 7 } }, 'registerSeedSet');
    const env = await gql('RegisterEnvironmentInput!', { runtime: 'python 3.12', lockfileSha256: hex('lock'), hardware: 'cpu' }, 'registerEnvironment');
    const run = await gql(
      'RecordTrainingRunInput!',
      {
        datasets: [
          { datasetVersion: taken.train.datasetVersion.id, role: 'TRAIN' },
          { datasetVersion: taken.holdout.datasetVersion.id, role: 'TEST' },
        ],
        codeVersion: code, config, seedSet: seeds, environment: env, status: 'SUCCEEDED',
      },
      'recordTrainingRun',
    );
    const models = await t.gql(engineer, `{ models(filter: { team: "fraud" }) { nodes { id name } } }`);
    const model = models.data.models.nodes[0].id;
    const up = await uploadArtifact(t.url, engineer, buildLogisticRegressionOnnx({ weights: [0.01, 0.02, 0.3, 0.004], bias: -1 }));
    assert.equal(up.status, 201, up.text);
    const retrained = await t.gql(engineer, `mutation($m: ID!, $a: String!, $r: ID) { registerModelVersion(input: { model: $m, artifactSha256: $a, trainingRun: $r }) { id } }`, { m: model, a: up.json.sha256, r: run });
    assert.equal(retrained.errors, undefined, JSON.stringify(retrained.errors));
    const retrainedId = retrained.data.registerModelVersion.id;

    const chain = await t.gql(engineer, LINEAGE, { id: production, depth: 3 });
    const has = (from: string, to: string, relation: string) => chain.data.lineage.edges.some((e: any) => e.from === from && e.to === to && e.relation === relation);
    assert.ok(has(production, taken.train.datasetVersion.id, 'SAMPLED'));
    assert.ok(has(taken.train.datasetVersion.id, run, 'USED'));
    assert.ok(has(run, retrainedId, 'PRODUCED'));
    assert.ok(chain.data.lineage.nodes.some((n: any) => n.id === retrainedId));

    // Upstream from the new version, the deployment is where its data came from.
    const upstream = await t.gql(engineer, `query($id: ID!) { lineage(id: $id, direction: UPSTREAM, depth: 3) { nodes { id } } }`, { id: retrainedId });
    assert.ok(upstream.data.lineage.nodes.some((n: any) => n.id === production));

    // A version registered without a run has no recorded training data: what it answered counts as RESTRICTED.
    const bare = await t.gql(engineer, `mutation($m: ID!, $a: String!) { registerModelVersion(input: { model: $m, artifactSha256: $a }) { id } }`, { m: model, a: up.json.sha256 });
    assert.equal(bare.errors, undefined, JSON.stringify(bare.errors));
    const em = t.server.app.db.manager;
    assert.equal(await trainingDataClassification(em, [uuidOf(servingVersion)]), 'CONFIDENTIAL');
    assert.equal(await trainingDataClassification(em, [uuidOf(servingVersion), uuidOf(bare.data.registerModelVersion.id)]), 'RESTRICTED');
  });

  it("refuses another team's engineer (audited as DENIED) and hides the confidential sample from its lineage", async () => {
    const { value: r, event } = await withOneNewEvent(t, () => sample(otherTeam, {}));
    assert.equal(codeOf(r), 'FORBIDDEN');
    assert.deepEqual(r.data, { sampleProductionData: null });
    assert.deepEqual([event.action, event.decision, event.actor_id, event.subject_id], ['sampleProductionData', 'DENIED', 'vic-engineer', production]);
    const seen = await t.gql(otherTeam, LINEAGE, { id: production, depth: 1 });
    assert.equal(seen.errors, undefined, JSON.stringify(seen.errors));
    assert.ok(!seen.data.lineage.nodes.some((n: any) => n.id === taken.train.datasetVersion.id || n.id === taken.holdout.datasetVersion.id));

    const byService = await sample(service, {});
    assert.equal(codeOf(byService), 'FORBIDDEN', 'predicting and recording outcomes is not enough to sample');
  });

  it('refuses empty and over-long ranges, a holdout share outside (0, 0.5], and too few usable rows, with reasons', async () => {
    const now = Date.now();
    const iso = (ms: number) => new Date(ms).toISOString();
    const cases: Array<[Record<string, unknown>, string, string]> = [
      [{ from: iso(now), to: iso(now) }, 'INVALID_RANGE', 'to'],
      [{ from: iso(now), to: iso(now - HOUR) }, 'INVALID_RANGE', 'to'],
      [{ from: iso(now - 91 * 24 * HOUR), to: iso(now) }, 'INVALID_RANGE', 'from'],
      [{ holdoutShare: 0 }, 'HOLDOUT_SHARE', 'holdoutShare'],
      [{ holdoutShare: 0.51 }, 'HOLDOUT_SHARE', 'holdoutShare'],
      [{ holdoutShare: -0.2 }, 'HOLDOUT_SHARE', 'holdoutShare'],
      [{ from: iso(now - 30 * 24 * HOUR), to: iso(now - 20 * 24 * HOUR) }, 'SAMPLE_TOO_SMALL', 'from'],
    ];
    const before = await t.sql(`SELECT count(*)::int AS n FROM dataset_version_sample`);
    for (const [input, reason, field] of cases) {
      const r = await sample(engineer, input);
      assert.deepEqual([codeOf(r), r.errors?.[0].extensions.reason, r.errors?.[0].extensions.field], ['BAD_USER_INPUT', reason, field], JSON.stringify([input, r.errors]));
    }
    const small = await sample(engineer, { from: iso(now - 30 * 24 * HOUR), to: iso(now - 20 * 24 * HOUR) });
    assert.match(small.errors![0].message, /0 usable labelled rows; a production sample needs at least 20/);
    assert.deepEqual(await t.sql(`SELECT count(*)::int AS n FROM dataset_version_sample`), before, 'nothing was written');
  });
});
