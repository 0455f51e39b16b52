import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Client } from 'pg';
import { buildLogisticRegressionOnnx } from '../../src/registry/onnx-builders';
import { startTestServer, type TestServer } from '../support/harness';
import { uploadArtifact } from '../support/http';
import { eventually } from '../support/processes';

const uuidOf = (id: string) => Buffer.from(id, 'base64url').toString().split(':')[1];

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

  const SPLIT = 'mutation($d: ID!, $v: ID!) { setTrafficSplit(input: { deployment: $d, trafficSplit: [{ modelVersion: $v, weight: 100 }] }) { id } }';
  const ARCHIVE = 'mutation($v: ID!) { archiveModelVersion(input: { modelVersion: $v, reason: "race" }) { status } }';

  /**
   * Runs a split to `v` and an archive of `v` with the version's row locked by the test's own
   * transaction: `first` is sent, and seen waiting for the lock, before the other is; then the lock
   * is released and the two meet in that order.
   */
  async function interleaved(v: string, first: 'split' | 'archive') {
    const holder = new Client({ connectionString: t.databaseUrl });
    await holder.connect();
    try {
      await holder.query('BEGIN');
      await holder.query('SELECT id FROM model_version WHERE id = $1 FOR UPDATE', [uuidOf(v)]);
      const waiting = (n: number) =>
        eventually(`${n} request(s) waiting for the held version row`, async () => {
          const [{ count }] = (await holder.query(`SELECT count(*)::int AS count FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()`)).rows;
          return count >= n ? true : undefined;
        }, 30_000, 50);
      const send = (which: 'split' | 'archive') => (which === 'split' ? t.gql(engineer, SPLIT, { d: staging, v }) : t.gql(engineer, ARCHIVE, { v }));
      const a = send(first);
      await waiting(1);
      const b = send(first === 'split' ? 'archive' : 'split');
      await waiting(2);
      await holder.query('ROLLBACK');
      const [x, y] = await Promise.all([a, b]);
      return first === 'split' ? { split: x, archive: y } : { split: y, archive: x };
    } finally {
      await holder.end();
    }
  }

  it('never leaves an archived version serving, however a split and an archive interleave', async () => {
    for (const first of ['split', 'archive', 'split', 'archive'] as const) {
      const v = await newVersion(first === 'split' ? 100 : 200);
      const { split, archive } = await interleaved(v, first);
      if (first === 'split') {
        assert.equal(split.errors, undefined, `the split that took the lock first wins: ${JSON.stringify(split.errors)}`);
        assert.equal(archive.errors?.[0].extensions.code, 'CONFLICT', JSON.stringify(archive));
        assert.equal(archive.errors![0].extensions.reason, 'REGISTRY_VERSION_SERVING', 'the archive sees the split that committed before it');
      } else {
        assert.equal(archive.errors, undefined, `the archive that took the lock first wins: ${JSON.stringify(archive.errors)}`);
        assert.deepEqual(archive.data.archiveModelVersion, { status: 'ARCHIVED' });
        assert.equal(split.errors?.[0].extensions.code, 'CONFLICT', JSON.stringify(split));
        assert.equal(split.errors![0].extensions.reason, 'ROLLOUT_VERSION_NOT_SERVABLE', 'the split sees the archive that committed before it');
      }
      const [{ status }] = await t.sql(`SELECT status FROM model_version WHERE id = $1`, [uuidOf(v)]);
      const shares = await t.sql(`SELECT model_version_id FROM traffic_share WHERE deployment_id = $1`, [uuidOf(staging)]);
      if (first === 'split') {
        assert.notEqual(status, 'ARCHIVED');
        assert.deepEqual(shares, [{ model_version_id: uuidOf(v) }], 'the split took effect');
      } else {
        assert.equal(status, 'ARCHIVED');
        assert.ok(!shares.some((s) => s.model_version_id === uuidOf(v)), 'the archived version got no share');
      }
      const [{ n }] = await t.sql(
        `SELECT count(*)::int AS n FROM traffic_share s JOIN model_version v ON v.id = s.model_version_id WHERE v.status = 'ARCHIVED'`,
      );
      assert.equal(n, 0, 'an ARCHIVED version receives traffic');
    }
  });

  it('settles a split and an archive sent at once with exactly one of them', async () => {
    for (let i = 0; i < 5; i++) {
      const v = await newVersion(300 + i);
      const [split, archive] = await Promise.all([t.gql(engineer, SPLIT, { d: staging, v }), t.gql(engineer, ARCHIVE, { v })]);
      assert.ok(!split.errors !== !archive.errors, `exactly one wins: split ${JSON.stringify(split.errors)} archive ${JSON.stringify(archive.errors)}`);
      const loser = split.errors ? split : archive;
      assert.equal(loser.errors![0].extensions.code, 'CONFLICT');
      assert.match(String(loser.errors![0].extensions.reason), split.errors ? /ROLLOUT_VERSION_NOT_SERVABLE/ : /REGISTRY_VERSION_SERVING/);
      const [{ n }] = await t.sql(
        `SELECT count(*)::int AS n FROM traffic_share s JOIN model_version v ON v.id = s.model_version_id WHERE v.status = 'ARCHIVED'`,
      );
      assert.equal(n, 0, 'an ARCHIVED version receives traffic');
    }
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
