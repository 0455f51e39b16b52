import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { buildLogisticRegressionOnnx } from '../../src/registry/onnx';
import { startTestServer, type TestServer } from '../support/harness';
import { uploadArtifact } from '../support/http';

describe('registry integrity under concurrency', () => {
  let t: TestServer;
  let engineer: string;
  let modelId: string;
  let v1: string;
  let v2: string;
  let staging: string;

  before(async () => {
    t = await startTestServer({ demo: true });
    engineer = t.token(['ml-engineer'], ['fraud'], 'erin');
    const r = await t.gql(engineer, `{
      models(filter: { name: "fraud-detector" }) { nodes { id versions { id version } } }
      deployments(filter: { team: "fraud", environment: STAGING }) { nodes { id } }
    }`);
    assert.equal(r.errors, undefined, JSON.stringify(r.errors));
    modelId = r.data.models.nodes[0].id;
    v1 = r.data.models.nodes[0].versions.find((v: { version: number }) => v.version === 1).id;
    v2 = r.data.models.nodes[0].versions.find((v: { version: number }) => v.version === 2).id;
    staging = r.data.deployments.nodes[0].id;
  });
  after(async () => t?.stop());

  async function newVersion(seed: number): Promise<string> {
    const up = await uploadArtifact(t.url, engineer, buildLogisticRegressionOnnx({ weights: [seed, seed / 2, 1, 2], bias: seed / 10 }));
    assert.ok(up.status === 201 || up.status === 200, up.text);
    const r = await t.gql(engineer, 'mutation($m: ID!, $a: String!) { registerModelVersion(input: { model: $m, artifactSha256: $a }) { id } }', { m: modelId, a: up.json.sha256 });
    assert.equal(r.errors, undefined, JSON.stringify(r.errors));
    return r.data.registerModelVersion.id;
  }

  it('never leaves an archived version serving, however a split and an archive interleave', async () => {
    const outcomes = new Set<string>();
    for (let i = 0; i < 10; i++) {
      const v = await newVersion(100 + i);
      const [split, archive] = await Promise.all([
        t.gql(engineer, 'mutation($d: ID!, $v: ID!) { setTrafficSplit(input: { deployment: $d, trafficSplit: [{ modelVersion: $v, weight: 100 }] }) { id } }', { d: staging, v }),
        t.gql(engineer, 'mutation($v: ID!) { archiveModelVersion(input: { modelVersion: $v, reason: "race" }) { status } }', { v }),
      ]);
      const splitWon = !split.errors;
      const archiveWon = !archive.errors;
      assert.ok(splitWon !== archiveWon, `exactly one wins: split ${JSON.stringify(split.errors)} archive ${JSON.stringify(archive.errors)}`);
      const loser = splitWon ? archive : split;
      assert.equal(loser.errors![0].extensions.code, 'CONFLICT');
      assert.match(String(loser.errors![0].extensions.reason), splitWon ? /REGISTRY_VERSION_SERVING/ : /ROLLOUT_VERSION_NOT_SERVABLE/);
      outcomes.add(splitWon ? 'split' : 'archive');
      const [{ n }] = await t.sql(
        `SELECT count(*)::int AS n FROM traffic_share s JOIN model_version v ON v.id = s.model_version_id WHERE v.status = 'ARCHIVED'`,
      );
      assert.equal(n, 0, 'an ARCHIVED version receives traffic');
    }
    assert.ok(outcomes.size >= 1);
  });

  it('records alias moves truthfully when two clients assign a new alias at once', async () => {
    for (let i = 0; i < 5; i++) {
      const alias = `challenger-${i}`;
      const results = await Promise.all(
        [v1, v2].map((v) => t.gql(engineer, 'mutation($v: ID!, $a: String!) { setModelVersionAlias(input: { modelVersion: $v, alias: $a }) { id } }', { v, a: alias })),
      );
      for (const r of results) assert.equal(r.errors, undefined, JSON.stringify(r.errors));
      const events: Array<{ before: { modelVersion: string | null }; after: { modelVersion: string } }> = await t.sql(
        `SELECT before, after FROM audit_event WHERE action = 'setModelVersionAlias' AND after->>'alias' = $1 ORDER BY seq`,
        [alias],
      );
      assert.equal(events.length, 2);
      assert.equal(events[0].before.modelVersion, null, 'the first assignment found no alias');
      assert.equal(events[1].before.modelVersion, events[0].after.modelVersion, 'the second saw the first one');
      const r = await t.gql(engineer, 'query($m: ID!, $a: String!) { node(id: $m) { ... on Model { version(alias: $a) { id } } } }', { m: modelId, a: alias });
      assert.equal(r.data.node.version.id, events[1].after.modelVersion, 'the alias points where the last event says');
    }
  });

  it('records as DENIED a run that names a dataset version the caller may not read, answering NOT_FOUND', async () => {
    const admin = t.token(['admin'], ['fraud', 'vision']);
    const fraud = await t.gql(admin, `{
      datasetVersions(filter: { team: "fraud" }) { nodes { id } }
      codeVersions(filter: { team: "vision" }) { nodes { id } }
      configs(filter: { team: "vision" }) { nodes { id } }
      seedSets(filter: { team: "vision" }) { nodes { id } }
      environments(filter: { team: "vision" }) { nodes { id } }
    }`);
    const d = fraud.data;
    const vision = t.token(['ml-engineer'], ['vision'], 'val-vision');
    const before = await t.sql(`SELECT count(*)::int AS n FROM audit_event`);
    const r = await t.gql(
      vision,
      `mutation($input: RecordTrainingRunInput!) { recordTrainingRun(input: $input) { id } }`,
      {
        input: {
          team: 'vision',
          datasets: [{ datasetVersion: d.datasetVersions.nodes[0].id }],
          codeVersion: d.codeVersions.nodes[0].id,
          config: d.configs.nodes[0].id,
          seedSet: d.seedSets.nodes[0].id,
          environment: d.environments.nodes[0].id,
          status: 'SUCCEEDED',
        },
      },
    );
    assert.equal(r.errors?.[0].extensions.code, 'NOT_FOUND');
    const events = await t.sql(`SELECT decision, action, actor_id, subject_id FROM audit_event ORDER BY seq DESC LIMIT 1`);
    const after = await t.sql(`SELECT count(*)::int AS n FROM audit_event`);
    assert.equal(after[0].n, before[0].n + 1);
    assert.deepEqual(events[0], { decision: 'DENIED', action: 'recordTrainingRun', actor_id: 'val-vision', subject_id: d.datasetVersions.nodes[0].id });
  });
});
