import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { fromGlobalId } from '../../src/core/global-id';
import { computeReferenceProfile } from '../../src/monitoring/reference-profile.service';
import { startTestServer, type TestServer } from '../support/harness';
import { storedDatasetVersion, trainerInputs, waitForRun } from '../support/training';

const START = `mutation($i: StartTrainingRunInput!) { startTrainingRun(input: $i) { id status } }`;

describe('training through the queue', () => {
  let t: TestServer;
  let engineer: string;
  let model: string;
  let dataset: string;
  let inputs: { codeVersion: string; environment: string };

  before(async () => {
    t = await startTestServer({ demo: true });
    engineer = t.token(['ml-engineer'], ['fraud'], 'tina-trainer');
    const m = await t.gql(engineer, '{ models(filter: { name: "fraud-detector" }) { nodes { id } } }');
    model = m.data.models.nodes[0].id;
    dataset = await storedDatasetVersion(t, engineer, { team: 'fraud', name: 'synthetic-fraud' });
    inputs = await trainerInputs(t, engineer, 'fraud');
  });
  after(async () => t?.stop());

  const input = (overrides: Record<string, unknown> = {}) => ({
    model,
    name: 'nightly',
    datasets: [{ datasetVersion: dataset, role: 'TRAIN' }],
    codeVersion: inputs.codeVersion,
    environment: inputs.environment,
    configContent: { model: 'logistic_regression', epochs: 15, lr: 0.2, gate: { accuracy: { min: 0.6 }, auc: { minDeltaVsChampion: -0.5 } } },
    seeds: { split: 7, init: 42, shuffle: 3 },
    ...overrides,
  });

  it('trains, registers and gates a model version with its full lineage; the same inputs give the same artifact', async () => {
    const first = await t.gql(engineer, START, { i: input() });
    assert.equal(first.errors, undefined, JSON.stringify(first.errors));
    assert.equal(first.data.startTrainingRun.status, 'QUEUED');
    const run = await waitForRun(t, engineer, first.data.startTrainingRun.id);
    assert.equal(run.status, 'SUCCEEDED', JSON.stringify(run));
    assert.equal(run.progress, 1);
    assert.equal(run.outputs.length, 1);
    // The job acts as the engineer who started the run, and says so.
    const trail = await t.sql(`SELECT action, actor_id, via FROM audit_event WHERE subject_id = $1 ORDER BY seq`, [run.id]);
    const job = { jobs: [`training/${fromGlobalId(run.id).key}`], onBehalfOf: [] };
    assert.deepEqual(trail, [
      { action: 'startTrainingRun', actor_id: 'tina-trainer', via: null },
      { action: 'beginTrainingRun', actor_id: 'tina-trainer', via: job },
      { action: 'completeTrainingRun', actor_id: 'tina-trainer', via: job },
    ]);
    const v = run.outputs[0];
    assert.equal(v.status, 'CANDIDATE', JSON.stringify(v.evaluation));
    assert.equal(v.model.name, 'fraud-detector');
    assert.equal(v.trainingRun.id, run.id);
    assert.ok(v.metrics.accuracy > 0.6 && v.metrics.auc > 0.6, JSON.stringify(v.metrics));
    assert.equal(v.evaluation.passed, true);
    // The stored profile is the drift reference: input column order, tensor names, counts, moments and quantile bins; no raw values.
    const profile = v.referenceProfile;
    assert.equal(profile.profileVersion, 3);
    assert.deepEqual([profile.inputName, profile.outputName], ['features', 'probability']);
    // jsonb keeps object keys in its own order: the column order lives in inputColumns.
    assert.deepEqual([...profile.inputColumns].sort(), Object.keys(profile.features).sort());
    const amount = profile.features.amount;
    assert.equal(amount.quantileBins.counts.reduce((s: number, n: number) => s + n, 0), amount.count);
    assert.deepEqual(Object.keys(amount).sort(), ['count', 'mean', 'quantileBins', 'std', 'type']);
    // The model outputs' sample is kept apart, for the exact statistics of prediction drift.
    const [{ sample }] = await t.sql(`SELECT prediction_reference_sample AS sample FROM model_version WHERE id = $1`, [fromGlobalId(v.id).key]);
    assert.equal(sample.length, profile.prediction.count);
    assert.deepEqual(sample, [...sample].sort((a: number, b: number) => a - b));
    // Computed on demand from the stored TRAIN content: every row, where the trainer held some out.
    const versionKey = fromGlobalId(v.id).key;
    const computed = await computeReferenceProfile(t.server.app.db, t.server.app.artifacts, versionKey);
    assert.deepEqual(computed.inputColumns, profile.inputColumns);
    assert.deepEqual([computed.inputName, computed.outputName], ['features', 'probability']);
    assert.equal(computed.features.amount.count, 600);

    const lineage = await t.gql(engineer, 'query($id: ID!) { lineage(id: $id, direction: UPSTREAM, depth: 2) { nodes { __typename id } } }', { id: v.id });
    const types = new Set(lineage.data.lineage.nodes.map((n: { __typename: string }) => n.__typename));
    for (const type of ['ModelVersion', 'TrainingRun', 'DatasetVersion', 'CodeVersion', 'Config', 'SeedSet', 'Environment']) assert.ok(types.has(type), type);

    const second = await t.gql(engineer, START, { i: input() });
    const again = await waitForRun(t, engineer, second.data.startTrainingRun.id);
    assert.equal(again.status, 'SUCCEEDED', JSON.stringify(again));
    assert.equal(again.outputs[0].artifactSha256, v.artifactSha256, 'same data, code, config and seeds: byte-identical model');
    assert.notEqual(again.outputs[0].id, v.id);
  });

  it('trained the demo through the queue: its versions come from real runs on the demo data', async () => {
    const r = await t.gql(engineer, `{ models(filter: { name: "fraud-detector" }) { nodes { versions {
      version status evaluation artifactSizeBytes
      trainingRun { status attempts codeVersion { repositoryUrl entrypoint } datasets { role datasetVersion { dataset { name } } } }
    } } } }`);
    const versions = r.data.models.nodes[0].versions.filter((v: { version: number }) => v.version <= 2);
    assert.equal(versions.length, 2);
    for (const v of versions) {
      assert.equal(v.trainingRun.status, 'SUCCEEDED');
      assert.equal(v.trainingRun.attempts, 1);
      assert.deepEqual(v.trainingRun.codeVersion, { repositoryUrl: 'builtin://modelgov/trainers', entrypoint: 'tabular-trainer.js' });
      assert.deepEqual(v.trainingRun.datasets.map((d: { role: string }) => d.role).sort(), ['TEST', 'TRAIN']);
      assert.equal(v.evaluation.passed, true);
      assert.ok(v.artifactSizeBytes > 0);
    }
  });

  it('rejects at the gate a version that misses its thresholds, with the reasons recorded', async () => {
    const r = await t.gql(engineer, START, { i: input({ configContent: { model: 'logistic_regression', epochs: 5, gate: { accuracy: { min: 0.999 } } } }) });
    const run = await waitForRun(t, engineer, r.data.startTrainingRun.id);
    assert.equal(run.status, 'SUCCEEDED');
    const v = run.outputs[0];
    assert.equal(v.status, 'REJECTED');
    assert.equal(v.evaluation.passed, false);
    assert.match(v.evaluation.reasons[0], /accuracy .* fails min 0.999/);
    const events = await t.sql(`SELECT reason FROM audit_event WHERE action = 'registerModelVersion' AND subject_id = $1`, [v.id]);
    assert.match(events[0].reason, /rejected by its gate/);
  });

  it('registers config, seeds, code version and environment inline, within the one audit event of the run', async () => {
    const [{ n: before }] = await t.sql(`SELECT count(*)::int AS n FROM audit_event`);
    const r = await t.gql(engineer, START, {
      i: input({
        codeVersion: null,
        environment: null,
        newCodeVersion: { repositoryUrl: 'builtin://modelgov/trainers', commitSha: 'f'.repeat(40), dirty: false, entrypoint: 'tabular-trainer.js' },
        newEnvironment: { runtime: 'node 20', lockfileSha256: 'c'.repeat(64), hardware: 'cpu x2' },
        configContent: { model: 'logistic_regression', epochs: 7 },
        seeds: { split: 99 },
      }),
    });
    assert.equal(r.errors, undefined, JSON.stringify(r.errors));
    const [{ n: after }] = await t.sql(`SELECT count(*)::int AS n FROM audit_event`);
    assert.equal(after, before + 1, 'one event for the mutation, naming what it registered');
    const [event] = await t.sql(`SELECT after FROM audit_event WHERE action = 'startTrainingRun' ORDER BY seq DESC LIMIT 1`);
    for (const k of ['codeVersion', 'config', 'seedSet', 'environment']) assert.ok(event.after[k], k);
    const run = await waitForRun(t, engineer, r.data.startTrainingRun.id);
    assert.equal(run.status, 'SUCCEEDED', JSON.stringify(run));
    const both = await t.gql(engineer, START, { i: input({ newEnvironment: { runtime: 'x', lockfileSha256: 'c'.repeat(64), hardware: 'cpu' } }) });
    assert.equal(both.errors?.[0].extensions.code, 'BAD_USER_INPUT', 'an environment by ID and inline at once is refused');
  });

  it('fails permanently, without retries, when the trainer refuses its config', async () => {
    const r = await t.gql(engineer, START, { i: input({ configContent: { model: 'forest' } }) });
    const run = await waitForRun(t, engineer, r.data.startTrainingRun.id);
    assert.equal(run.status, 'FAILED');
    assert.equal(run.attempts, 1);
    assert.match(run.failureReason, /refused its input/);
    assert.equal(run.outputs.length, 0);
  });

  it('refuses what it cannot train before queueing anything', async () => {
    const before = await t.sql(`SELECT count(*)::int AS n FROM outbox_entry`);
    const unknownRepo = await t.gql(
      engineer,
      'mutation($c: RegisterCodeVersionInput!) { registerCodeVersion(input: $c) { id } }',
      { c: { team: 'fraud', repositoryUrl: 'https://git.example.com/elsewhere', commitSha: 'c'.repeat(40), dirty: false, entrypoint: 'train.py' } },
    );
    const r1 = await t.gql(engineer, START, { i: input({ codeVersion: unknownRepo.data.registerCodeVersion.id }) });
    assert.equal(r1.errors?.[0].extensions.reason, 'TRAINING_CODE_NOT_RUNNABLE');
    const escape = await t.gql(
      engineer,
      'mutation($c: RegisterCodeVersionInput!) { registerCodeVersion(input: $c) { id } }',
      { c: { team: 'fraud', repositoryUrl: 'builtin://modelgov/trainers', commitSha: 'd'.repeat(40), dirty: false, entrypoint: 'synthetic-data.js/../../../src/cli.js' } },
    );
    assert.equal(escape.errors?.[0].extensions.code, 'BAD_USER_INPUT', 'an entrypoint cannot climb out of its repository');
    // A version registered by its hash only: the server holds no content for it.
    const ds = await t.gql(engineer, '{ datasets(filter: { name: "synthetic-fraud" }) { nodes { id } } }');
    const registered = await t.gql(engineer, 'mutation($i: RegisterDatasetVersionInput!) { registerDatasetVersion(input: $i) { id } }', {
      i: { dataset: ds.data.datasets.nodes[0].id, uri: 's3://elsewhere/data.parquet', sha256: 'e'.repeat(64), rowCount: 10, columns: [{ name: 'x', type: 'float64', nullable: false }] },
    });
    const notStored = registered.data.registerDatasetVersion.id;
    const r2 = await t.gql(engineer, START, { i: input({ datasets: [{ datasetVersion: notStored, role: 'TRAIN' }] }) });
    assert.equal(r2.errors?.[0].extensions.reason, 'TRAINING_DATA_NOT_STORED');
    const viewer = await t.gql(t.token(['viewer'], ['fraud'], 'vera'), START, { i: input() });
    assert.equal(viewer.errors?.[0].extensions.code, 'FORBIDDEN');
    const denied = await t.sql(`SELECT count(*)::int AS n FROM audit_event WHERE actor_id = 'vera' AND decision = 'DENIED' AND action = 'startTrainingRun'`);
    assert.equal(denied[0].n, 1);
    const after = await t.sql(`SELECT count(*)::int AS n FROM outbox_entry`);
    assert.equal(after[0].n, before[0].n);
  });
});
