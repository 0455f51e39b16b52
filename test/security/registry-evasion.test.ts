import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { buildLogisticRegressionOnnx } from '../../src/registry/onnx-builders';
import { startTestServer, type TestServer } from '../support/harness';
import { assertNoStackTrace, postGraphql, request, uploadArtifact, type RawResponse } from '../support/http';

const sha256 = (bytes: Uint8Array | string) => createHash('sha256').update(bytes).digest('hex');

/** A model of its own bytes: random weights, so that no other upload of any run matches it. */
const freshModel = () => buildLogisticRegressionOnnx({ weights: [...randomBytes(4)].map((b) => b / 255 - 0.5), bias: randomBytes(1)[0] / 255 });

/** A small CSV no one has uploaded before. */
function freshCsv(): string {
  const rows = Array.from({ length: 20 }, () => `${randomBytes(2).readUInt16BE()},${randomBytes(1)[0] % 24},${randomBytes(1)[0] % 2}`);
  return ['amount,hour,label', ...rows].join('\n') + '\n';
}

function uploadCsv(url: string, token: string, csv: string): Promise<RawResponse> {
  return request(`${url}/datasets/content`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'text/csv' }, body: csv });
}

/** What a client can tell apart in an upload's answer: the status, the body's fields, and `created`. */
const shapeOf = (r: RawResponse) => ({ status: r.status, fields: Object.keys(r.json).sort(), created: r.json.created });

/** The principal id an API key acts as, from the key itself (`mgk_<32 hex>_<secret>`). */
function keyPrincipal(key: string): string {
  const hex = key.split('_')[1];
  return `apikey:${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

describe('the registry cannot be used against its own rules', () => {
  let t: TestServer;
  let admin: string;

  before(async () => {
    t = await startTestServer();
    admin = t.token(['admin'], [], 'ada-admin');
    for (const team of ['fraud', 'vision']) {
      const r = await t.gql(admin, 'mutation($i: CreateTeamInput!) { createTeam(input: $i) { id } }', { i: { name: team } });
      assert.equal(r.errors, undefined, JSON.stringify(r.errors));
    }
  });
  after(async () => {
    await t?.stop();
  });

  async function gqlOk(token: string, query: string, variables?: Record<string, unknown>) {
    const r = await t.gql(token, query, variables);
    assert.equal(r.errors, undefined, JSON.stringify(r.errors));
    return r.data;
  }

  async function createModel(token: string, name: string): Promise<string> {
    return (await gqlOk(token, 'mutation($i: CreateModelInput!) { createModel(input: $i) { id } }', { i: { team: 'fraud', name } })).createModel.id;
  }

  const REGISTER = 'mutation($m: ID!, $a: String!) { registerModelVersion(input: { model: $m, artifactSha256: $a }) { id } }';
  const SUBMIT = 'mutation($v: ID!) { submitModelVersion(modelVersion: $v) { status } }';
  const APPROVE = 'mutation($v: ID!, $r: String!) { approveModelVersion(input: { modelVersion: $v, reason: $r }) { status } }';
  const ARCHIVE = 'mutation($v: ID!) { archiveModelVersion(input: { modelVersion: $v, reason: "retired" }) { status } }';
  const STATUS = 'query($v: ID!) { node(id: $v) { ... on ModelVersion { status approvals { decision } } } }';

  describe('uploads do not tell whether another team holds the same bytes', () => {
    let fraud: string;
    let vision: string;
    before(() => {
      fraud = t.token(['ml-engineer'], ['fraud'], 'fiona');
      vision = t.token(['ml-engineer'], ['vision'], 'victor');
    });

    it("answers a vision engineer sending a fraud CONFIDENTIAL dataset's exact bytes like content never seen; the fraud engineer re-uploading sees created:false", async () => {
      const secret = freshCsv();
      const first = await uploadCsv(t.url, fraud, secret);
      assert.equal(first.status, 201, first.text);
      assert.equal(first.json.created, true);
      const dataset = (await gqlOk(fraud, 'mutation($i: CreateDatasetInput!) { createDataset(input: $i) { id } }', { i: { team: 'fraud', name: 'chargebacks', classification: 'CONFIDENTIAL' } })).createDataset.id;
      await gqlOk(fraud, 'mutation($i: RegisterDatasetVersionInput!) { registerDatasetVersion(input: $i) { id } }', {
        i: {
          dataset,
          uri: 's3://fraud/chargebacks.csv',
          sha256: first.json.sha256,
          rowCount: first.json.rowCount,
          columns: ['amount', 'hour', 'label'].map((name) => ({ name, type: 'int64', nullable: false })),
        },
      });
      // The vision engineer may not read the dataset version.
      const hidden = await t.gql(vision, '{ datasets(filter: { team: "fraud" }) { nodes { id } } }');
      assert.deepEqual(hidden.data?.datasets.nodes ?? [], [], JSON.stringify(hidden));

      const neverSeen = await uploadCsv(t.url, vision, freshCsv());
      const guess = await uploadCsv(t.url, vision, secret);
      assert.deepEqual(shapeOf(guess), shapeOf(neverSeen), `a confirmed guess: ${guess.text}`);
      assert.deepEqual(shapeOf(guess), { status: 201, fields: ['columns', 'created', 'rowCount', 'sha256', 'sizeBytes'], created: true });
      assert.deepEqual(guess.json, { ...first.json, created: true }, 'everything else in the answer comes from the bytes sent');

      const again = await uploadCsv(t.url, fraud, secret);
      assert.equal(again.status, 200, again.text);
      assert.deepEqual(again.json, { ...first.json, created: false });
      // Storage stays deduplicated underneath.
      const blobs = await t.sql('SELECT created_by FROM dataset_blob WHERE sha256 = $1', [sha256(secret)]);
      assert.deepEqual(blobs, [{ created_by: 'fiona' }]);
    });

    it("answers a vision engineer sending another team's unregistered model bytes like a model never seen; the uploader re-uploading sees created:false", async () => {
      const secret = freshModel();
      const first = await uploadArtifact(t.url, fraud, secret);
      assert.equal(first.status, 201, first.text);
      assert.equal(first.json.created, true);

      const neverSeen = await uploadArtifact(t.url, vision, freshModel());
      const guess = await uploadArtifact(t.url, vision, secret);
      assert.deepEqual(shapeOf(guess), shapeOf(neverSeen), `a confirmed guess: ${guess.text}`);
      assert.deepEqual(shapeOf(guess), { status: 201, fields: ['created', 'format', 'sha256', 'signature', 'sizeBytes'], created: true });
      assert.deepEqual(guess.json, { ...first.json, created: true });

      const again = await uploadArtifact(t.url, fraud, secret);
      assert.equal(again.status, 200, again.text);
      assert.deepEqual(again.json, { ...first.json, created: false });
      const rows = await t.sql('SELECT created_by FROM artifact WHERE sha256 = $1', [sha256(secret)]);
      assert.deepEqual(rows, [{ created_by: 'fiona' }]);
    });
  });

  describe('four eyes are two people, whatever credential each uses', () => {
    let rita: string;
    let rob: string;
    let model: string;
    let key: string;
    let keyOfKey: string;

    /** A GraphQL operation sent with an API key. */
    async function withKey(apiKey: string, query: string, variables: Record<string, unknown>) {
      const r = await postGraphql(t.url, null, query, variables, { authorization: `ApiKey ${apiKey}` });
      assertNoStackTrace(r.text);
      return r.json as { data?: any; errors?: any[] };
    }

    /** Uploads a fresh model and registers and submits it as `as`; returns the version's id. */
    async function candidate(as: { token?: string; key?: string }): Promise<string> {
      const bytes = freshModel();
      const auth = as.token ? `Bearer ${as.token}` : `ApiKey ${as.key}`;
      const up = await request(`${t.url}/artifacts`, { method: 'POST', headers: { 'content-type': 'application/octet-stream', authorization: auth }, body: bytes });
      assert.equal(up.status, 201, up.text);
      const send = (q: string, v: Record<string, unknown>) => (as.token ? t.gql(as.token, q, v) : withKey(as.key!, q, v));
      const reg = await send(REGISTER, { m: model, a: up.json.sha256 });
      assert.equal(reg.errors, undefined, JSON.stringify(reg.errors));
      const v = reg.data.registerModelVersion.id;
      const sub = await send(SUBMIT, { v });
      assert.equal(sub.errors, undefined, JSON.stringify(sub.errors));
      return v;
    }

    function assertSelfApproval(r: { data?: any; errors?: any[] }) {
      assert.equal(r.errors?.[0].extensions.code, 'FORBIDDEN', JSON.stringify(r));
      assert.equal(r.errors?.[0].extensions.reason, 'REGISTRY_SELF_APPROVAL');
    }

    before(async () => {
      await gqlOk(admin, 'mutation($i: UpsertRoleInput!) { upsertRole(input: $i) { name } }', {
        i: { name: 'key-maker', description: 'Creates API keys', rules: [{ action: 'create', subject: 'ApiKey' }] },
      });
      rita = t.token(['ml-engineer', 'reviewer', 'key-maker'], ['fraud'], 'rita');
      rob = t.token(['reviewer'], ['fraud'], 'rob');
      model = await createModel(rita, 'four-eyes');
      const CREATE_KEY = 'mutation($i: CreateApiKeyInput!) { createApiKey(input: $i) { key } }';
      key = (await gqlOk(rita, CREATE_KEY, { i: { name: 'rita-ci', roles: ['ml-engineer', 'reviewer', 'key-maker'], teams: ['fraud'] } })).createApiKey.key;
      const made = await withKey(key, CREATE_KEY, { i: { name: 'rita-ci-child', roles: ['reviewer'], teams: ['fraud'] } });
      assert.equal(made.errors, undefined, JSON.stringify(made.errors));
      keyOfKey = made.data.createApiKey.key;
    });

    it('refuses approval with a key she created of a version she registered as herself (FORBIDDEN REGISTRY_SELF_APPROVAL, audited as denied)', async () => {
      const v = await candidate({ token: rita });
      for (const reviewerKey of [key, keyOfKey]) {
        assertSelfApproval(await withKey(reviewerKey, APPROVE, { v, r: 'approved by my service account' }));
        const denied = await t.sql(`SELECT decision::text AS decision FROM audit_event WHERE action = 'approveModelVersion' AND actor_id = $1`, [keyPrincipal(reviewerKey)]);
        assert.deepEqual(denied, [{ decision: 'DENIED' }]);
      }
      assert.deepEqual((await gqlOk(rob, STATUS, { v })).node, { status: 'CANDIDATE', approvals: [] });
    });

    it('refuses approval as herself (any case) of a version she registered with her key', async () => {
      const v = await candidate({ key });
      assertSelfApproval(await t.gql(rita, APPROVE, { v, r: 'the key did the work' }));
      assertSelfApproval(await t.gql(t.token(['reviewer'], ['fraud'], 'RITA'), APPROVE, { v, r: 'the key did the work' }));
      assertSelfApproval(await withKey(keyOfKey, APPROVE, { v, r: 'one key approves the other' }));
      assert.deepEqual((await gqlOk(rob, STATUS, { v })).node, { status: 'CANDIDATE', approvals: [] });
    });

    it('is approved by another person; the audit trail names the key and the person it acted for', async () => {
      const v = await candidate({ key });
      const approved = await gqlOk(rob, APPROVE, { v, r: 'reviewed the holdout metrics' });
      assert.equal(approved.approveModelVersion.status, 'APPROVED');
      const [registered] = await t.sql(
        `SELECT actor_id, after->>'onBehalfOf' AS on_behalf_of FROM audit_event WHERE action = 'registerModelVersion' AND subject_id = $1`,
        [v],
      );
      assert.deepEqual(registered, { actor_id: keyPrincipal(key), on_behalf_of: 'rita' });
    });
  });

  describe('an archived version does not stay on the serving path', () => {
    it("refuses to archive a PRODUCTION deployment's last stable version (its fallback) with CONFLICT REGISTRY_VERSION_SERVING, and archives it once another version took its place", async () => {
      const erin = t.token(['ml-engineer'], ['fraud'], 'erin');
      const rob = t.token(['reviewer'], ['fraud'], 'rob');
      const model = await createModel(erin, 'fallback');
      const versions: string[] = [];
      for (let i = 0; i < 3; i++) {
        const up = await uploadArtifact(t.url, erin, freshModel());
        assert.equal(up.status, 201, up.text);
        const v = (await gqlOk(erin, REGISTER, { m: model, a: up.json.sha256 })).registerModelVersion.id;
        await gqlOk(erin, SUBMIT, { v });
        await gqlOk(rob, APPROVE, { v, r: 'metrics checked' });
        versions.push(v);
      }
      const [va, vb, vc] = versions;
      const d = (
        await gqlOk(erin, 'mutation($v: ID!) { createDeployment(input: { team: "fraud", name: "fallback-prod", environment: PRODUCTION, trafficSplit: [{ modelVersion: $v, weight: 100 }] }) { id } }', { v: va })
      ).createDeployment.id;
      const SPLIT = 'mutation($i: SetTrafficSplitInput!) { setTrafficSplit(input: $i) { lastStableVersion { id } trafficSplit { modelVersion { id } weight } } }';
      const split = await gqlOk(erin, SPLIT, { i: { deployment: d, trafficSplit: [{ modelVersion: vb, weight: 50 }, { modelVersion: vc, weight: 50 }] } });
      assert.equal(split.setTrafficSplit.lastStableVersion.id, va, 'no version holds all the traffic: the first one stays the fallback');

      const refused = await t.gql(erin, ARCHIVE, { v: va });
      assert.equal(refused.errors?.[0].extensions.code, 'CONFLICT', JSON.stringify(refused));
      assert.equal(refused.errors?.[0].extensions.reason, 'REGISTRY_VERSION_SERVING');
      assert.match(refused.errors![0].message, /last stable version/);
      assert.equal((await gqlOk(erin, STATUS, { v: va })).node.status, 'APPROVED');

      const moved = await gqlOk(erin, SPLIT, { i: { deployment: d, trafficSplit: [{ modelVersion: vb, weight: 100 }] } });
      assert.equal(moved.setTrafficSplit.lastStableVersion.id, vb);
      assert.equal((await gqlOk(erin, ARCHIVE, { v: va })).archiveModelVersion.status, 'ARCHIVED');
    });
  });
});
