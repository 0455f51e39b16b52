import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startTestServer, type TestServer } from '../support/harness';
import { assertNoStackTrace, postGraphql, request, snapshotDatabase, type RawResponse } from '../support/http';

const toId = (type: string, key: string) => Buffer.from(`${type}:${key}`, 'utf8').toString('base64url');
const propertiesOf = (r: RawResponse) => (r.json.errors[0].extensions.validationErrors as Array<{ property: string }>).map((e) => e.property);

interface Demo {
  teamId: string;
  modelId: string;
  datasetId: string;
  v1: string;
  v2: string;
  staging: string;
  production: string;
}

describe('Bad inputs get the right code and change nothing', () => {
  let t: TestServer;
  let small: TestServer;
  let engineer: string;
  let admin: string;
  let demo: Demo;
  const answers: RawResponse[] = [];

  before(async () => {
    t = await startTestServer({ demo: true });
    small = await startTestServer({ env: { BODY_LIMIT_BYTES: '20000' } });
    engineer = t.token(['ml-engineer'], ['fraud'], 'eve-engineer');
    admin = t.token(['admin'], ['fraud'], 'ada-admin');
    const r = await t.gql(admin, `{
      teams(filter: { name: "fraud" }) { nodes { id } }
      models(filter: { name: "fraud-detector" }) { nodes { id versions { id version status } } }
      datasets(filter: { team: "fraud" }) { nodes { id name } }
      deployments(filter: { team: "fraud" }) { nodes { id environment } }
    }`);
    assert.equal(r.errors, undefined, JSON.stringify(r.errors));
    const versions = r.data.models.nodes[0].versions as Array<{ id: string; version: number; status: string }>;
    const deployments = r.data.deployments.nodes as Array<{ id: string; environment: string }>;
    demo = {
      teamId: r.data.teams.nodes[0].id,
      modelId: r.data.models.nodes[0].id,
      datasetId: r.data.datasets.nodes[0].id,
      v1: versions.find((v) => v.version === 1)!.id,
      v2: versions.find((v) => v.version === 2)!.id,
      staging: deployments.find((d) => d.environment === 'STAGING')!.id,
      production: deployments.find((d) => d.environment === 'PRODUCTION')!.id,
    };
    assert.equal(versions.find((v) => v.version === 1)!.status, 'APPROVED');
    assert.equal(versions.find((v) => v.version === 2)!.status, 'CANDIDATE');
  });
  after(async () => {
    await t?.stop();
    await small?.stop();
  });

  async function refused(token: string, query: string, variables: Record<string, unknown>, code: string, reason?: string): Promise<RawResponse> {
    const before = await snapshotDatabase(t);
    const r = await postGraphql(t.url, token, query, variables);
    answers.push(r);
    const error = r.json?.errors?.[0];
    assert.ok(error, `expected an error, got ${r.text}`);
    assert.equal(error.extensions.code, code, r.text);
    if (reason) assert.equal(error.extensions.reason, reason, r.text);
    assert.ok(error.extensions.requestId, 'the error carries a request id');
    assert.equal(r.json.data?.[Object.keys(r.json.data ?? {})[0]] ?? null, null, 'no data for a refused operation');
    assertNoStackTrace(r.text);
    assert.deepEqual(await snapshotDatabase(t), before, 'nothing changed in the database');
    return r;
  }

  describe('malformed and mistyped IDs → BAD_USER_INPUT', () => {
    it('refuses garbage that is not base64 at all', async () => {
      await refused(engineer, 'mutation ($id: ID!) { submitModelVersion(modelVersion: $id) { id } }', { id: '!!not an id!!' }, 'BAD_USER_INPUT', 'MALFORMED_ID');
    });

    it('refuses base64 that does not decode to Type:key', async () => {
      await refused(engineer, 'mutation ($id: ID!) { submitModelVersion(modelVersion: $id) { id } }', { id: Buffer.from('not-an-id').toString('base64url') }, 'BAD_USER_INPUT', 'MALFORMED_ID');
    });

    it('refuses a valid Team ID where a ModelVersion ID is expected', async () => {
      const r = await refused(engineer, 'mutation ($id: ID!) { submitModelVersion(modelVersion: $id) { id } }', { id: demo.teamId }, 'BAD_USER_INPUT', 'WRONG_ID_TYPE');
      assert.equal(r.json.errors[0].extensions.field, 'modelVersion');
    });

    it('refuses a ModelVersion ID whose key is not a uuid', async () => {
      await refused(engineer, 'mutation ($id: ID!) { submitModelVersion(modelVersion: $id) { id } }', { id: toId('ModelVersion', '42') }, 'BAD_USER_INPUT', 'WRONG_ID_TYPE');
    });

    it('refuses a Team ID as the deployment of a traffic split', async () => {
      await refused(
        engineer,
        'mutation ($d: ID!, $v: ID!) { setTrafficSplit(input: { deployment: $d, trafficSplit: [{ modelVersion: $v, weight: 100 }] }) { id } }',
        { d: demo.teamId, v: demo.v1 },
        'BAD_USER_INPUT',
        'WRONG_ID_TYPE',
      );
    });

    it('refuses a Dataset ID as a model version inside a traffic split', async () => {
      const r = await refused(
        engineer,
        'mutation ($d: ID!, $v: ID!) { setTrafficSplit(input: { deployment: $d, trafficSplit: [{ modelVersion: $v, weight: 100 }] }) { id } }',
        { d: demo.staging, v: demo.datasetId },
        'BAD_USER_INPUT',
        'WRONG_ID_TYPE',
      );
      assert.equal(r.json.errors[0].extensions.field, 'trafficSplit.modelVersion');
    });

    it('refuses a malformed ID in node()', async () => {
      await refused(admin, '{ node(id: "%%%") { id } }', {}, 'BAD_USER_INPUT', 'MALFORMED_ID');
    });
  });

  describe('wrong hashes → BAD_USER_INPUT', () => {
    const registerVersion = 'mutation ($m: ID!, $sha: String!) { registerModelVersion(input: { model: $m, artifactSha256: $sha }) { id } }';

    it('refuses an artifact sha256 that is not 64 hex characters', async () => {
      const r = await refused(engineer, registerVersion, { m: demo.modelId, sha: 'abc123' }, 'BAD_USER_INPUT');
      assert.deepEqual(propertiesOf(r), ['artifactSha256']);
    });

    it('refuses an uppercase artifact sha256', async () => {
      const r = await refused(engineer, registerVersion, { m: demo.modelId, sha: 'AB'.repeat(32) }, 'BAD_USER_INPUT');
      assert.deepEqual(propertiesOf(r), ['artifactSha256']);
    });

    it('refuses an uppercase dataset version sha256', async () => {
      const r = await refused(
        engineer,
        `mutation ($d: ID!, $sha: String!) { registerDatasetVersion(input: {
          dataset: $d, uri: "s3://b/k.parquet", sha256: $sha, rowCount: 10, columns: [{ name: "a", type: "float64" }] }) { id } }`,
        { d: demo.datasetId, sha: 'E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855' },
        'BAD_USER_INPUT',
      );
      assert.deepEqual(propertiesOf(r), ['sha256']);
    });

    it('refuses a short commit sha', async () => {
      const r = await refused(
        engineer,
        'mutation { registerCodeVersion(input: { repositoryUrl: "https://git.example.com/fraud/detector", commitSha: "abc1234", entrypoint: "train.py" }) { id } }',
        {},
        'BAD_USER_INPUT',
      );
      assert.deepEqual(propertiesOf(r), ['commitSha']);
    });

    it('refuses a lockfile sha256 one character short', async () => {
      const r = await refused(
        engineer,
        'mutation ($sha: String!) { registerEnvironment(input: { runtime: "python 3.11", lockfileSha256: $sha, hardware: "cpu" }) { id } }',
        { sha: 'a'.repeat(63) },
        'BAD_USER_INPUT',
      );
      assert.deepEqual(propertiesOf(r), ['lockfileSha256']);
    });

    it('refuses a well-formed sha256 of an artifact that was never uploaded', async () => {
      const r = await refused(engineer, registerVersion, { m: demo.modelId, sha: '0'.repeat(64) }, 'BAD_USER_INPUT', 'REGISTRY_UNKNOWN_ARTIFACT');
      assert.equal(r.json.errors[0].extensions.field, 'artifactSha256');
    });
  });

  describe('traffic splits', () => {
    const setSplit = 'mutation ($d: ID!, $split: [TrafficShareInput!]!) { setTrafficSplit(input: { deployment: $d, trafficSplit: $split }) { id } }';

    it('refuses weights that do not sum to 100', async () => {
      await refused(engineer, setSplit, { d: demo.staging, split: [{ modelVersion: demo.v1, weight: 60 }, { modelVersion: demo.v2, weight: 30 }] }, 'BAD_USER_INPUT', 'WEIGHTS_NOT_100');
      await refused(engineer, setSplit, { d: demo.staging, split: [{ modelVersion: demo.v1, weight: 60 }, { modelVersion: demo.v2, weight: 50 }] }, 'BAD_USER_INPUT', 'WEIGHTS_NOT_100');
    });

    it('refuses an empty split (it sums to 0)', async () => {
      await refused(engineer, setSplit, { d: demo.staging, split: [] }, 'BAD_USER_INPUT', 'WEIGHTS_NOT_100');
    });

    it('refuses the same version twice', async () => {
      const r = await refused(engineer, setSplit, { d: demo.staging, split: [{ modelVersion: demo.v1, weight: 50 }, { modelVersion: demo.v1, weight: 50 }] }, 'BAD_USER_INPUT');
      assert.equal(r.json.errors[0].extensions.field, 'trafficSplit');
    });

    it('refuses a weight of 0', async () => {
      const r = await refused(engineer, setSplit, { d: demo.staging, split: [{ modelVersion: demo.v1, weight: 0 }, { modelVersion: demo.v2, weight: 100 }] }, 'BAD_USER_INPUT');
      assert.deepEqual(propertiesOf(r), ['trafficSplit.0.weight']);
    });

    it('refuses a weight of 101', async () => {
      const r = await refused(engineer, setSplit, { d: demo.staging, split: [{ modelVersion: demo.v1, weight: 101 }] }, 'BAD_USER_INPUT');
      assert.deepEqual(propertiesOf(r), ['trafficSplit.0.weight']);
    });

    it('refuses a non-APPROVED version in a PRODUCTION split with CONFLICT', async () => {
      await refused(engineer, setSplit, { d: demo.production, split: [{ modelVersion: demo.v1, weight: 50 }, { modelVersion: demo.v2, weight: 50 }] }, 'CONFLICT', 'ROLLOUT_VERSION_NOT_APPROVED');
    });

    it('refuses a new PRODUCTION deployment whose initial split holds a non-APPROVED version, and keeps no deployment', async () => {
      await refused(
        engineer,
        'mutation ($v: ID!) { createDeployment(input: { name: "fraud-shadow", environment: PRODUCTION, trafficSplit: [{ modelVersion: $v, weight: 100 }] }) { id } }',
        { v: demo.v2 },
        'CONFLICT',
        'ROLLOUT_VERSION_NOT_APPROVED',
      );
      const [{ n }] = await t.sql(`SELECT count(*)::int AS n FROM deployment WHERE name = 'fraud-shadow'`);
      assert.equal(n, 0);
    });
  });

  describe('duplicates and invalid transitions → CONFLICT', () => {
    it('refuses a dataset name the team already has', async () => {
      await refused(engineer, 'mutation { createDataset(input: { name: "card-transactions", classification: INTERNAL }) { id } }', {}, 'CONFLICT', 'DUPLICATE');
    });

    it('refuses a model name the team already has', async () => {
      await refused(engineer, 'mutation { createModel(input: { name: "fraud-detector" }) { id } }', {}, 'CONFLICT', 'DUPLICATE');
    });

    it('refuses a deployment name the team already has', async () => {
      await refused(engineer, 'mutation { createDeployment(input: { name: "fraud-detector-staging", environment: STAGING }) { id } }', {}, 'CONFLICT', 'DUPLICATE');
    });

    it('refuses to approve a version that is already APPROVED', async () => {
      const r = await refused(
        admin,
        'mutation ($v: ID!) { approveModelVersion(input: { modelVersion: $v, reason: "again, to be sure" }) { id status } }',
        { v: demo.v1 },
        'CONFLICT',
        'REGISTRY_INVALID_TRANSITION',
      );
      assert.equal(r.json.errors[0].extensions.from, 'APPROVED');
    });

    it('refuses to submit a CANDIDATE version again', async () => {
      await refused(engineer, 'mutation ($v: ID!) { submitModelVersion(modelVersion: $v) { id } }', { v: demo.v2 }, 'CONFLICT', 'REGISTRY_INVALID_TRANSITION');
    });
  });

  describe('requests the server refuses before running them', () => {
    it('answers 413 BAD_USER_INPUT with a request id for a body over BODY_LIMIT_BYTES', async () => {
      const before = await snapshotDatabase(small);
      const token = small.token(['admin'], [], 'ada-admin');
      const r = await postGraphql(small.url, token, 'mutation ($d: String) { createTeam(input: { name: "too-big", description: $d }) { id } }', { d: 'x'.repeat(25_000) });
      answers.push(r);
      assert.equal(r.status, 413, r.text);
      assert.equal(r.json.errors[0].extensions.code, 'BAD_USER_INPUT');
      assert.equal(r.json.errors[0].extensions.reason, 'BODY_TOO_LARGE');
      assert.ok(r.json.errors[0].extensions.requestId);
      assert.equal(r.headers.get('x-request-id'), r.json.errors[0].extensions.requestId);
      assertNoStackTrace(r.text);
      assert.deepEqual(await snapshotDatabase(small), before);
      // Just under the limit is served, so the limit is the configured one and not something smaller.
      const ok = await postGraphql(small.url, token, 'query ($d: String) { teams(filter: { name: $d }) { totalCount } }', { d: 'x'.repeat(15_000) });
      assert.equal(ok.status, 200, ok.text);
      assert.equal(ok.json.data.teams.totalCount, 0);
    });

    it('answers 400 BAD_USER_INPUT for a body that is not JSON', async () => {
      const before = await snapshotDatabase(t);
      const r = await request(`${t.url}/graphql`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${admin}` },
        body: '{"query": "mutation { createModel(input: { name: \\"x\\" }) { id } }"',
      });
      answers.push(r);
      assert.equal(r.status, 400, r.text);
      assert.equal(r.json.errors[0].extensions.code, 'BAD_USER_INPUT');
      assert.equal(r.json.errors[0].extensions.reason, 'MALFORMED_JSON');
      assert.ok(r.json.errors[0].extensions.requestId);
      assertNoStackTrace(r.text);
      assert.deepEqual(await snapshotDatabase(t), before);
    });

    it('refuses a query deeper than MAX_QUERY_DEPTH (QUERY_TOO_DEEP)', async () => {
      const deep = `{ deployments(filter: { environment: PRODUCTION }) { nodes { trafficSplit { modelVersion { model { versions {
        trainingRun { datasets { datasetVersion { dataset { versions { usedBy { outputs { model { name } } } } } } } } } } } } } } }`;
      const r = await refused(admin, deep, {}, 'BAD_USER_INPUT', 'QUERY_TOO_DEEP');
      assert.equal(r.status, 400, 'a refused query is the client\'s fault, not a server error');
      assert.equal(r.json.errors[0].extensions.limit, t.config.maxQueryDepth);
      assert.ok((r.json.errors[0].extensions.depth as number) > t.config.maxQueryDepth);
      // The same shape cut to the limit is answered.
      const shallow = await postGraphql(t.url, admin, '{ deployments(filter: { environment: PRODUCTION }) { nodes { trafficSplit { modelVersion { model { versions { trainingRun { name } } } } } } } }');
      assert.equal(shallow.json.errors, undefined, shallow.text);
    });

    it('refuses a mutation nested past the depth limit before running it', async () => {
      const r = await refused(
        engineer,
        `mutation { createModel(input: { name: "deep-model" }) { versions { trainingRun { datasets { datasetVersion { dataset { versions {
          usedBy { outputs { model { versions { model { name } } } } } } } } } } } } }`,
        {},
        'BAD_USER_INPUT',
        'QUERY_TOO_DEEP',
      );
      assert.equal(r.status, 400);
    });

    it('refuses a cursor that does not fit the list it continues (MALFORMED_CURSOR)', async () => {
      const cursor = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');
      const auditor = t.token(['auditor'], []);
      for (const [token, query, after] of [
        [admin, 'query($a: String) { teams(after: $a) { totalCount } }', cursor(['99999', 'x'])],
        [admin, 'query($a: String) { teams(after: $a) { totalCount } }', 'not-a-cursor'],
        [auditor, 'query($a: String) { auditEvents(after: $a) { totalCount } }', cursor(['2026-01-01T00:00:00.000Z', '1'])],
      ] as const) {
        await refused(token, query, { a: after }, 'BAD_USER_INPUT', 'MALFORMED_CURSOR');
      }
    });

    it('refuses more aliases than MAX_QUERY_ALIASES (TOO_MANY_ALIASES)', async () => {
      const n = t.config.maxQueryAliases + 1;
      const query = `{ ${Array.from({ length: n }, (_, i) => `a${i}: viewer { id }`).join(' ')} }`;
      const r = await refused(admin, query, {}, 'BAD_USER_INPUT', 'TOO_MANY_ALIASES');
      assert.equal(r.status, 400);
      assert.equal(r.json.errors[0].extensions.aliases, n);
    });

    it('refuses a query whose lists would cost more than MAX_QUERY_COST (QUERY_TOO_COSTLY)', async () => {
      // 20 pages of 200 versions, each with its approvals and deployments' splits: far past the default limit.
      const page = 'modelVersions(first: 200) { nodes { id version status createdAt metrics model { name } approvals { actor reason } deployments { name trafficSplit { weight } } } }';
      const query = `{ ${Array.from({ length: 20 }, (_, i) => `p${i}: ${page}`).join(' ')} }`;
      const r = await refused(admin, query, {}, 'BAD_USER_INPUT', 'QUERY_TOO_COSTLY');
      assert.equal(r.status, 400);
      assert.ok((r.json.errors[0].extensions.cost as number) > t.config.maxQueryCost, r.text);
      const one = await postGraphql(t.url, admin, `{ ${page} }`);
      assert.equal(one.json.errors, undefined, one.text);
    });

    it('answers a GraphQL syntax error with BAD_USER_INPUT (GRAPHQL_PARSE_FAILED)', async () => {
      const r = await refused(admin, 'mutation { createModel(input: { name: "half" }) { id ', {}, 'BAD_USER_INPUT', 'GRAPHQL_PARSE_FAILED');
      assert.equal(r.status, 400);
    });

    it('answers an unknown field with BAD_USER_INPUT (GRAPHQL_VALIDATION_FAILED)', async () => {
      const r = await refused(admin, 'mutation { createModel(input: { name: "unknown-field" }) { id secretColumn } }', {}, 'BAD_USER_INPUT', 'GRAPHQL_VALIDATION_FAILED');
      assert.equal(r.status, 400);
    });

    it('answers a variable of the wrong type with BAD_USER_INPUT', async () => {
      await refused(admin, 'mutation ($w: Int!) { createModel(input: { name: "typed" }) { id } }', { w: 'heavy' }, 'BAD_USER_INPUT');
    });
  });

  it('never answered with a stack trace, and is still alive', async () => {
    assert.ok(answers.length > 30, `checked ${answers.length} answers`);
    for (const a of answers) assertNoStackTrace(a.text);
    for (const s of [t, small]) {
      const health = await request(`${s.url}/healthz`);
      assert.equal(health.status, 200);
      assert.deepEqual(health.json, { status: 'ok' });
    }
    const r = await t.gql(admin, '{ viewer { id } }');
    assert.equal(r.data.viewer.id, 'ada-admin');
  });
});
