import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startServer, type RunningServer } from '../../src/app/server';
import { createLogger } from '../../src/core/logger';
import { startTestServer, type TestServer } from '../support/harness';
import { dataOf, gqlWithAuthorization } from '../support/access';
import { request } from '../support/http';
import { eventually } from '../support/processes';
import { fraudRow, loggedPredictions, PREDICT } from '../support/inference';

const MODEL = 'fraud:fraud-detector-production';
const CREATE_KEY = 'mutation ($input: CreateApiKeyInput!) { createApiKey(input: $input) { key apiKey { id } } }';
const REVOKE_KEY = 'mutation ($id: ID!) { revokeApiKey(input: { apiKey: $id }) { id revokedAt } }';
const UPSERT_ROLE = 'mutation ($input: UpsertRoleInput!) { upsertRole(input: $input) { name } }';
/** How long a change made on one instance may take to reach what the other answers. */
const PROPAGATION_MS = 1000;

describe('a prediction from a known caller reads nothing from the database, is still logged, and follows access changes made elsewhere', () => {
  let t: TestServer;
  /** A second API instance on the same database, with no workers: nothing else issues statements there. */
  let api: RunningServer;
  let service: string;
  let production: string;
  let versionId: string;

  before(async () => {
    // The log is written when asked, not while the predictions are counted.
    t = await startTestServer({ demo: true, env: { PREDICTION_LOG_FLUSH_MS: '60000' } });
    api = await startServer({ ...t.config, workersInProcess: false }, createLogger(t.config.logLevel));
    service = t.token(['service'], ['fraud'], 'svc-hot-path');
    const r = await t.gql(service, `{ deployments(filter: { team: "fraud", environment: PRODUCTION }) { nodes { id trafficSplit { modelVersion { id } } } } }`);
    production = r.data.deployments.nodes[0].id;
    versionId = r.data.deployments.nodes[0].trafficSplit[0].modelVersion.id;
  });
  after(async () => {
    await api?.stop();
    await t?.stop();
  });

  const headers = () => ({ 'content-type': 'application/json', authorization: `Bearer ${service}` });
  const oipJson = async (path: string, i: number) => {
    const r = await request(`${api.url}${path}`, { method: 'POST', headers: headers(), body: JSON.stringify({ inputs: [{ name: 'features', shape: [1, 4], datatype: 'FP32', data: fraudRow(i) }] }) });
    assert.equal(r.status, 200, r.text);
    return r.json.parameters.prediction_id as string;
  };
  const oipBinary = async (i: number) => {
    const tensor = Buffer.from(Float32Array.from(fraudRow(i)).buffer);
    const header = Buffer.from(JSON.stringify({ inputs: [{ name: 'features', shape: [1, 4], datatype: 'FP32', parameters: { binary_data_size: tensor.length } }] }));
    const res = await fetch(`${api.url}/v2/models/${MODEL}/infer`, {
      method: 'POST',
      headers: { authorization: `Bearer ${service}`, 'content-type': 'application/octet-stream', 'inference-header-content-length': String(header.length) },
      body: Buffer.concat([header, tensor]),
    });
    const json: any = await res.json();
    assert.equal(res.status, 200, JSON.stringify(json));
    return json.parameters.prediction_id as string;
  };
  const graphql = async (i: number) => {
    const r = await gqlWithAuthorization(api.url, `Bearer ${service}`, PREDICT, { d: production, inputs: { features: [fraudRow(i)] } });
    assert.equal(dataOf(r).predict.fallback, false);
  };
  const uuidOf = (id: string) => Buffer.from(id, 'base64url').toString().split(':')[1];

  it('answers OIP JSON, OIP binary, a versioned OIP path and GraphQL predict without one SQL statement', async () => {
    const unversioned = `/v2/models/${MODEL}/infer`;
    const versioned = `/v2/models/${MODEL}/versions/${versionId}/infer`;
    // The first request of the credential reads its principal; the log is written now, not while counting.
    await oipJson(unversioned, 0);
    await graphql(0);
    await api.app.inference!.log.flush(true);

    const before = api.statements.count;
    const ids: string[] = [];
    for (let i = 1; i <= 5; i++) {
      ids.push(await oipJson(unversioned, i));
      ids.push(await oipJson(versioned, i));
      ids.push(await oipBinary(i));
      await graphql(i);
    }
    assert.equal(api.statements.count - before, 0, 'no statement on the request path');

    await api.app.inference!.log.flush(true);
    const logged = await loggedPredictions(t, 'id = ANY($1)', [ids.map(uuidOf)]);
    assert.equal(logged.length, ids.length, 'every OIP prediction is in the log once it is written');
    assert.ok(logged.every((r) => r.source === 'open-inference' && r.principal_id === 'svc-hot-path'));
  });

  it('stops predicting for a credential whose access changed on the other instance: revoked key, edited role, team left in a re-issued token', async () => {
    const path = `/v2/models/${MODEL}/infer`;
    const body = JSON.stringify({ inputs: [{ name: 'features', shape: [1, 4], datatype: 'FP32', data: fraudRow(3) }] });
    const inferAs = async (authorization: string) => {
      const r = await request(`${api.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', authorization }, body });
      return { status: r.status, code: r.json?.code as string | undefined, outputs: r.json?.outputs };
    };
    const warm = async (authorization: string, what: string) => {
      const first = await inferAs(authorization);
      assert.equal(first.status, 200, `${what}: predicts`);
      const before = api.statements.count;
      assert.equal((await inferAs(authorization)).status, 200);
      assert.equal(api.statements.count - before, 0, `${what}: the caller is cached on the serving instance`);
    };
    const admin = t.token(['admin'], [], 'hot-path-admin');

    // A key revoked on the first instance.
    const created = (await t.gql(admin, CREATE_KEY, { input: { name: 'scorer', roles: ['service'], teams: ['fraud'] } })).data.createApiKey;
    const key = `ApiKey ${created.key}`;
    await warm(key, 'the API key');
    assert.equal((await t.gql(admin, REVOKE_KEY, { id: created.apiKey.id })).errors, undefined);
    await eventually('the revoked key refused on the serving instance', async () => ((await inferAs(key)).status === 401 ? true : undefined), PROPAGATION_MS, 20);
    const refused = await inferAs(key);
    assert.deepEqual([refused.code, refused.outputs], ['UNAUTHENTICATED', undefined], 'and nothing is predicted');

    // A role that loses `predict`, edited on the first instance.
    const predictRule = { action: 'predict', subject: 'Deployment', conditions: { teamId: { $in: '${user.teamIds}' } } };
    const readRule = { action: 'read', subject: 'Deployment', conditions: { teamId: { $in: '${user.teamIds}' } } };
    assert.equal((await t.gql(admin, UPSERT_ROLE, { input: { name: 'scorer', rules: [readRule, predictRule] } })).errors, undefined);
    const scorer = `Bearer ${t.token(['scorer'], ['fraud'], 'hot-path-scorer')}`;
    await warm(scorer, 'the role');
    assert.equal((await t.gql(admin, UPSERT_ROLE, { input: { name: 'scorer', rules: [readRule] } })).errors, undefined);
    await eventually('the edited role refused on the serving instance', async () => ((await inferAs(scorer)).status === 403 ? true : undefined), PROPAGATION_MS, 20);
    assert.equal((await inferAs(scorer)).code, 'FORBIDDEN');

    // The same subject, re-issued a token without the team: the deployment is not even visible.
    const both = `Bearer ${t.token(['service'], ['fraud', 'vision'], 'hot-path-carol')}`;
    await warm(both, 'the token with the team');
    const withoutFraud = `Bearer ${t.token(['service'], ['vision'], 'hot-path-carol')}`;
    const after = await inferAs(withoutFraud);
    assert.deepEqual([after.status, after.code, after.outputs], [404, 'NOT_FOUND', undefined], 'the re-issued token no longer reaches the team');
    assert.equal((await inferAs(both)).status, 200, 'the earlier token still carries its own claims until it expires');
  });

  it('refuses malformed and ill-shaped inputs from a known caller without a statement, in the error shape of the protocol', async () => {
    await oipJson(`/v2/models/${MODEL}/infer`, 9);
    const before = api.statements.count;
    const bad = await request(`${api.url}/v2/models/${MODEL}/infer`, { method: 'POST', headers: headers(), body: JSON.stringify({ inputs: [{ name: 'features', shape: [1, 3], datatype: 'FP32', data: [1, 2, 3] }] }) });
    assert.equal(bad.status, 400);
    assert.deepEqual([bad.json.code, bad.json.reason], ['BAD_USER_INPUT', 'INFERENCE_INPUT_SHAPE']);
    const malformed = await request(`${api.url}/v2/models/${MODEL}/infer`, { method: 'POST', headers: headers(), body: '{"inputs": [' });
    assert.equal(malformed.status, 400);
    assert.deepEqual([malformed.json.code, malformed.json.reason], ['BAD_USER_INPUT', 'MALFORMED_JSON']);
    assert.equal(api.statements.count - before, 0);
    const anonymous = await request(`${api.url}/v2/models/${MODEL}/infer`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"inputs": []}' });
    assert.equal(anonymous.status, 401);
    assert.equal(anonymous.json.code, 'UNAUTHENTICATED');
  });

  it('a deployment created a moment ago on one instance answers at once on the other, over GraphQL and the Open Inference Protocol', async () => {
    const admin = t.token(['admin'], [], 'admin-hot-path');
    for (let i = 0; i < 5; i++) {
      const created = await t.gql(admin, 'mutation($v: ID!, $n: String!) { createDeployment(input: { team: "fraud", name: $n, environment: STAGING, trafficSplit: [{ modelVersion: $v, weight: 100 }] }) { id } }', { v: versionId, n: `just-made-${i}` });
      assert.equal(created.errors, undefined, JSON.stringify(created.errors));
      // Straight away, on the instance that did not make it (its routing table learns of it by notification).
      const viaGraphql = await gqlWithAuthorization(api.url, `Bearer ${service}`, PREDICT, { d: created.data.createDeployment.id, inputs: { features: [fraudRow(i)] } });
      assert.equal(dataOf(viaGraphql).predict.fallback, false);
      const made = await t.gql(admin, 'mutation($v: ID!, $n: String!) { createDeployment(input: { team: "fraud", name: $n, environment: STAGING, trafficSplit: [{ modelVersion: $v, weight: 100 }] }) { id } }', { v: versionId, n: `just-made-oip-${i}` });
      assert.equal(made.errors, undefined, JSON.stringify(made.errors));
      const r = await request(`${api.url}/v2/models/fraud:just-made-oip-${i}/infer`, { method: 'POST', headers: headers(), body: JSON.stringify({ inputs: [{ name: 'features', shape: [1, 4], datatype: 'FP32', data: fraudRow(i) }] }) });
      assert.equal(r.status, 200, r.text);
    }
    // One without a split is not serving, and says so.
    const bare = await t.gql(admin, 'mutation { createDeployment(input: { team: "fraud", name: "no-split-yet", environment: STAGING }) { id } }');
    assert.equal(bare.errors, undefined, JSON.stringify(bare.errors));
    const refused = await gqlWithAuthorization(api.url, `Bearer ${service}`, PREDICT, { d: bare.data.createDeployment.id, inputs: { features: [fraudRow(1)] } });
    assert.equal(refused.errors?.[0]?.extensions?.code, 'CONFLICT', JSON.stringify(refused));
    assert.equal(refused.errors?.[0]?.extensions?.reason, 'INFERENCE_NOT_SERVING');
  });
});
