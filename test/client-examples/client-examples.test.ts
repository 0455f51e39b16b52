import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import { startTestServer, type TestServer } from '../support/harness';
import { repoRoot } from '../support/repo';
import { syntheticCsv } from '../../jobs/trainers/synthetic-data';

const run = promisify(execFile);

describe('client examples run against a real server', () => {
  let t: TestServer;
  let dir: string;
  const examples = path.join(repoRoot(), 'client-examples');
  const example = (name: string, token: string, args: string[] = []) =>
    run(process.execPath, [path.join(examples, name), ...args], { env: { ...process.env, MODELGOV_URL: t.url, MODELGOV_TOKEN: token }, timeout: 90_000 });

  before(async () => {
    // The examples are checked for what they do, not for how fast: a prediction that waits past the
    // default 1 s on a machine busy with other tests would fail the canary's traffic (and count
    // against its version), so the server here gives runs more time.
    t = await startTestServer({ demo: true, env: { INFERENCE_TIMEOUT_MS: '15000' } });
    dir = await mkdtemp(path.join(os.tmpdir(), 'modelgov-examples-'));
  });
  after(async () => {
    await t?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it("whats-serving-production answers the governance question for the caller's team", async () => {
    const { stdout } = await example('whats-serving-production.mjs', t.token(['viewer'], ['fraud']));
    assert.match(stdout, /fraud\/fraud-detector-production/);
    assert.match(stdout, /100% → fraud-detector v1 \[APPROVED, champion\]/);
    assert.match(stdout, /approved by demo:fraud-reviewer/);
    assert.match(stdout, /train: card-transactions v2 \(CONFIDENTIAL, 1200 rows, sha256 [0-9a-f]{12}, uri withheld\)/);
    assert.doesNotMatch(stdout, /vision/);
  });

  it('register-model-version uploads, registers and submits a generated ONNX model', async () => {
    const file = path.join(dir, 'model.onnx');
    await example('make-demo-onnx.mjs', 'unused', [file]);
    const { stdout } = await example('register-model-version.mjs', t.token(['ml-engineer'], ['fraud']), [file, 'fraud-detector']);
    assert.match(stdout, /uploaded [0-9a-f]{64}/);
    assert.match(stdout, /fraud\/fraud-detector v3 registered .* now CANDIDATE/);
  });

  it('predict asks a deployment through the Open Inference Protocol and GraphQL, with the same answer', async () => {
    const file = path.join(dir, 'rows.json');
    await writeFile(file, JSON.stringify([[120.5, 3, 0.2, 14], [9.99, 22, 0.9, 310]]));
    const service = t.token(['service'], ['fraud']);
    const { stdout } = await example('predict.mjs', service, ['fraud:fraud-detector-production', file, 'customer-1']);
    const v2 = stdout.match(/^v2 probability \[2,1\]: (\[.*\])$/m);
    const graphql = stdout.match(/^graphql probability: (\[.*\])$/m);
    assert.ok(v2 && graphql, stdout);
    assert.deepEqual(JSON.parse(v2[1]), (JSON.parse(graphql[1]) as number[][]).flat());
    assert.match(stdout, /graphql answered 2 rows by fraud-detector v1 in [\d.]+ ms/);
    await assert.rejects(example('predict.mjs', t.token(['service'], ['vision']), ['fraud:fraud-detector-production', file]), /HTTP 404/, 'another team\'s model is answered like a missing one');
  });

  it('outcomes-and-quality labels the rows it predicted (idempotently) and reads the online quality beside the offline baseline', async () => {
    const rows = path.join(dir, 'quality-rows.json');
    const labels = path.join(dir, 'quality-labels.json');
    await writeFile(rows, JSON.stringify([[120.5, 3, 0.2, 14], [9.99, 22, 0.9, 310], [4000, 2, 0.95, 800]]));
    await writeFile(labels, JSON.stringify([0, 1, 1]));
    const { stdout } = await example('outcomes-and-quality.mjs', t.token(['service'], ['fraud']), ['fraud:fraud-detector-production', rows, labels]);
    assert.match(stdout, /^prediction \S+: 3 rows$/m);
    assert.match(stdout, /^outcomes sent \(first time\): 3 recorded, 0 duplicate, 0 rejected$/m);
    assert.match(stdout, /^outcomes sent \(again\): 0 recorded, 3 duplicate, 0 rejected$/m);
    assert.match(stdout, /^version 1: 3 of \d+ rows labelled \([\d.]+ %\), accuracy [\d.]+ % at threshold 0\.5$/m);
    assert.match(stdout, /^  accuracy: online [\d.]+ against offline [\d.]+ \(-?[\d.]+ %\)$/m);
  });

  it('lineage prints the edges around a model version', async () => {
    const r = await t.gql(t.token(['viewer'], ['fraud']), '{ modelVersions(filter: { alias: "champion" }) { nodes { id } } }');
    const { stdout } = await example('lineage.mjs', t.token(['viewer'], ['fraud']), [r.data.modelVersions.nodes[0].id, 'UPSTREAM', '3']);
    assert.match(stdout, /TrainingRun:fraud-detector-train-1 -PRODUCED-> ModelVersion:fraud-detector v1/);
    assert.match(stdout, /DatasetVersion:card-transactions v1 -DERIVED-> DatasetVersion:card-transactions v2/);
  });

  it('audit-trail lists what happened to an object, and refuses a viewer', async () => {
    const r = await t.gql(t.token(['viewer'], ['fraud']), '{ modelVersions(filter: { alias: "champion" }) { nodes { id } } }');
    const id = r.data.modelVersions.nodes[0].id;
    const { stdout } = await example('audit-trail.mjs', t.token(['auditor'], []), [id]);
    assert.match(stdout, /registerModelVersion ModelVersion ALLOWED/);
    assert.match(stdout, /approveModelVersion ModelVersion ALLOWED/);
    await assert.rejects(example('audit-trail.mjs', t.token(['viewer'], ['fraud']), [id]), /FORBIDDEN/);
  });

  it('audit-export downloads a lineage-scoped export and verifies it offline; a viewer is refused', async () => {
    const r = await t.gql(t.token(['viewer'], ['fraud']), '{ models(filter: { name: "fraud-detector" }) { nodes { id } } }');
    const model = r.data.models.nodes[0].id;
    for (const format of ['ndjson', 'csv']) {
      const file = path.join(dir, `fraud-detector.${format}`);
      const { stdout } = await example('audit-export.mjs', t.token(['auditor'], []), [file, model, format]);
      assert.match(stdout, /wrote .*: \d+ events shown, \d+ by hash only/);
      assert.match(stdout, /verified: chain intact, counts and digest match, signed by key [0-9a-f]{16}/);
    }
    await assert.rejects(example('audit-export.mjs', t.token(['viewer'], ['fraud']), [path.join(dir, 'no.ndjson'), model]), /FORBIDDEN/);
  });

  it('train-and-roll-out trains a version from a CSV, follows it live and rolls it out step by step', async () => {
    const file = path.join(dir, 'train.csv');
    await writeFile(file, syntheticCsv({ rows: 800, seed: 5, features: ['amount', 'hour', 'merchant_risk', 'distance_km'] }));
    const { stdout } = await example('train-and-roll-out.mjs', t.token(['ml-engineer'], ['fraud']), [file, 'fraud-detector', 'fraud-detector-staging', '1']).catch((e) => {
      throw new Error(`${e.message}\n${e.stdout ?? ''}${e.stderr ?? ''}`);
    });
    assert.match(stdout, /data: 800 rows, columns amount, hour, merchant_risk, distance_km, label/);
    assert.match(stdout, /SUCCEEDED 100 %/);
    const trained = Number(/fraud-detector v(\d+) CANDIDATE/.exec(stdout)?.[1]);
    assert.ok(trained >= 3, stdout);
    assert.match(stdout, /IN_PROGRESS 50 %/);
    assert.match(stdout, /rollout SUCCEEDED/);
    const r = await t.gql(t.token(['viewer'], ['fraud']), '{ deployments(filter: { environment: STAGING }) { nodes { trafficSplit { weight modelVersion { version } } } } }');
    assert.deepEqual(r.data.deployments.nodes[0].trafficSplit, [{ weight: 100, modelVersion: { version: trained } }]);
  });
});
