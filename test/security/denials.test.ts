import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { createClient } from 'graphql-ws';
import { Client } from 'pg';
import WebSocket from 'ws';
import { toGlobalId } from '../../src/core/global-id';
import { chainProblems, runAuditVerify } from '../support/audit';
import { startTestServer, type GqlResult, type TestServer } from '../support/harness';
import { request, type RawResponse } from '../support/http';
import { fraudRow, inParallel, PREDICT } from '../support/inference';

const APPROVE = 'mutation ($input: ReviewInput!) { approveModelVersion(input: $input) { id status } }';
const NODE = 'query ($id: ID!) { node(id: $id) { id } }';
const REGISTER_CONFIG = 'mutation ($input: RegisterConfigInput!) { registerConfig(input: $input) { id } }';
const OIP_BODY = JSON.stringify({ inputs: [{ name: 'features', shape: [1, 4], datatype: 'FP32', data: fraudRow(1) }] });

/** What a client sees of a GraphQL answer, with the request id dropped and the id it sent replaced by a placeholder. */
function seen(r: GqlResult, sent: string): unknown {
  const body = { data: r.data, errors: r.errors?.map((e) => ({ ...e, extensions: { ...e.extensions, requestId: undefined } })), status: r.status };
  return JSON.parse(JSON.stringify(body).split(sent).join('<id>'));
}

/** What a client sees of a REST answer, the same way (the body's request id, and the x-request-id header, aside). */
function seenRest(r: RawResponse, sent: string): unknown {
  const { requestId: _requestId, ...body } = r.json ?? {};
  return { status: r.status, contentType: r.headers.get('content-type'), body: JSON.parse(JSON.stringify(body).split(sent).join('<name>')) };
}

const infer = (t: TestServer, token: string, name: string) =>
  request(`${t.url}/v2/models/${encodeURIComponent(name)}/infer`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
    body: OIP_BODY,
  });

describe('refused attempts', () => {
  let t: TestServer;
  let admin: string;
  let fraudProduction: string;
  let fraudVersion: string;
  const missingDeployment = toGlobalId('Deployment', randomUUID());
  const missingVersion = toGlobalId('ModelVersion', randomUUID());

  before(async () => {
    // A small budget of refusals so that a loop meets it however fast this machine runs, and a fold
    // window no run of this file outlasts, so that what is written does not depend on its speed.
    t = await startTestServer({ demo: true, env: { AUDIT_DENIAL_BURST: '20', AUDIT_DENIAL_RATE_PER_SECOND: '1', AUDIT_DENIAL_FOLD_SECONDS: '3600' } });
    admin = t.token(['admin'], []);
    const r = await t.gql(admin, '{ deployments(filter: { team: "fraud", environment: PRODUCTION }) { nodes { id trafficSplit { modelVersion { id } } } } }');
    assert.equal(r.errors, undefined, JSON.stringify(r.errors));
    fraudProduction = r.data.deployments.nodes[0].id;
    fraudVersion = r.data.deployments.nodes[0].trafficSplit[0].modelVersion.id;
  });
  after(async () => {
    await t?.stop();
  });

  describe('an object the caller may not read is answered exactly like a missing one', () => {
    it('over GraphQL: predict and approveModelVersion answer NOT_FOUND alike, node(id:) null alike', async () => {
      const visionService = t.token(['service'], ['vision'], 'svc-vision-probe');
      const inputs = { features: [fraudRow(1)] };
      const hidden = await t.gql(visionService, PREDICT, { d: fraudProduction, inputs });
      const missing = await t.gql(visionService, PREDICT, { d: missingDeployment, inputs });
      assert.equal(hidden.errors?.[0].extensions.code, 'NOT_FOUND', JSON.stringify(hidden.errors));
      assert.deepEqual(seen(hidden, fraudProduction), seen(missing, missingDeployment));

      const visionReviewer = t.token(['reviewer'], ['vision'], 'rev-vision-probe');
      const hiddenApproval = await t.gql(visionReviewer, APPROVE, { input: { modelVersion: fraudVersion, reason: 'probing' } });
      const missingApproval = await t.gql(visionReviewer, APPROVE, { input: { modelVersion: missingVersion, reason: 'probing' } });
      assert.equal(hiddenApproval.errors?.[0].extensions.code, 'NOT_FOUND', JSON.stringify(hiddenApproval.errors));
      assert.deepEqual(seen(hiddenApproval, fraudVersion), seen(missingApproval, missingVersion));

      for (const [id, gone] of [[fraudProduction, missingDeployment], [fraudVersion, missingVersion]]) {
        const a = await t.gql(visionReviewer, NODE, { id });
        const b = await t.gql(visionReviewer, NODE, { id: gone });
        assert.deepEqual(a.data, { node: null });
        assert.deepEqual(seen(a, id), seen(b, gone));
      }
    });

    it('over GraphQL: revoking another principal\'s API key answers like revoking one that does not exist', async () => {
      const role = await t.gql(admin, 'mutation ($input: UpsertRoleInput!) { upsertRole(input: $input) { name } }', {
        input: { name: 'own-key-keeper', rules: [{ action: ['read', 'update'], subject: 'ApiKey', conditions: { createdBy: '${user.id}' } }] },
      });
      assert.equal(role.errors, undefined, JSON.stringify(role.errors));
      const created = await t.gql(admin, 'mutation ($input: CreateApiKeyInput!) { createApiKey(input: $input) { apiKey { id } } }', { input: { name: 'admins-key', roles: ['viewer'], teams: ['fraud'] } });
      assert.equal(created.errors, undefined, JSON.stringify(created.errors));
      const adminsKey = created.data.createApiKey.apiKey.id;
      const keeper = t.token(['own-key-keeper'], [], 'key-keeper');
      const revoke = 'mutation ($id: ID!) { revokeApiKey(input: { apiKey: $id }) { id revokedAt } }';
      const missingKey = toGlobalId('ApiKey', randomUUID());
      const hidden = await t.gql(keeper, revoke, { id: adminsKey });
      const missing = await t.gql(keeper, revoke, { id: missingKey });
      assert.equal(hidden.errors?.[0].extensions.code, 'NOT_FOUND', JSON.stringify(hidden.errors));
      assert.deepEqual(seen(hidden, adminsKey), seen(missing, missingKey));
      const [{ revoked }] = await t.sql(`SELECT revoked_at IS NOT NULL AS revoked FROM api_key WHERE name = 'admins-key'`);
      assert.equal(revoked, false);
    });

    it('over the Open Inference Protocol: another team\'s model is a 404 exactly like a missing one', async () => {
      const visionService = t.token(['service'], ['vision'], 'svc-vision-oip');
      const pairs: Array<[string, string]> = [
        ['fraud:fraud-detector-production', 'fraud:no-such-deployment'],
        [fraudProduction, missingDeployment],
      ];
      for (const [hiddenName, missingName] of pairs) {
        const hidden = await infer(t, visionService, hiddenName);
        const missing = await infer(t, visionService, missingName);
        assert.equal(hidden.status, 404, hidden.text);
        assert.equal(hidden.json.code, 'NOT_FOUND');
        assert.deepEqual(seenRest(hidden, hiddenName), seenRest(missing, missingName));
        for (const suffix of ['', '/ready']) {
          const auth = { headers: { authorization: `Bearer ${visionService}` } };
          const a = await request(`${t.url}/v2/models/${encodeURIComponent(hiddenName)}${suffix}`, auth);
          const b = await request(`${t.url}/v2/models/${encodeURIComponent(missingName)}${suffix}`, auth);
          assert.equal(a.status, 404, a.text);
          assert.deepEqual(seenRest(a, hiddenName), seenRest(b, missingName));
        }
      }
    });

    it('keeps FORBIDDEN for an object the caller may read but not act on (a viewer predicting on its own team)', async () => {
      const viewer = t.token(['viewer'], ['fraud'], 'viewer-fraud-probe');
      const r = await t.gql(viewer, PREDICT, { d: fraudProduction, inputs: { features: [fraudRow(1)] } });
      assert.equal(r.errors?.[0].extensions.code, 'FORBIDDEN', JSON.stringify(r.errors));
      const oip = await infer(t, viewer, 'fraud:fraud-detector-production');
      assert.equal(oip.status, 403, oip.text);
      assert.equal(oip.json.code, 'FORBIDDEN');
    });
  });

  it('records repeated refused exports once, then answers RATE_LIMITED with Retry-After past the principal\'s rate', async () => {
    const viewer = t.token(['viewer'], ['fraud'], 'viewer-exporting');
    const answers = [];
    for (let i = 0; i < 30; i++) answers.push(await request(`${t.url}/audit/export?format=ndjson`, { headers: { authorization: `Bearer ${viewer}` } }));
    assert.deepEqual([...new Set(answers.slice(0, 20).map((a) => a.status))], [403]);
    const limited = answers.filter((a) => a.status === 429);
    assert.ok(limited.length >= 1, `statuses: ${answers.map((a) => a.status).join(',')}`);
    for (const a of limited) {
      assert.equal(a.json.errors[0].extensions.code, 'RATE_LIMITED');
      assert.equal(a.json.errors[0].extensions.reason, 'DENIALS_RATE_LIMITED');
      assert.match(a.headers.get('retry-after') ?? '', /^[1-9]\d*$/);
    }
    const events = await t.sql(`SELECT action, decision::text AS decision FROM audit_event WHERE actor_id = 'viewer-exporting'`);
    assert.deepEqual(events, [{ action: 'exportAuditEvents', decision: 'DENIED' }]);
  });

  it('holds mutations over WebSocket to the same rate and folding', async () => {
    const client = createClient({
      url: t.url.replace(/^http/, 'ws') + '/graphql',
      webSocketImpl: WebSocket,
      connectionParams: { authorization: `Bearer ${t.token([], ['fraud'], 'ws-refused')}` },
      retryAttempts: 0,
    });
    const once = (query: string) =>
      new Promise<{ errors?: Array<{ extensions: Record<string, unknown> }> }>((resolve, reject) => {
        let result = {};
        client.subscribe({ query }, { next: (r) => (result = r), error: reject, complete: () => resolve(result) });
      });
    try {
      const answers = [];
      for (let i = 0; i < 25; i++) answers.push(await once('mutation { createModel(input: { name: "over-ws" }) { id } }'));
      const codes = answers.map((a) => a.errors?.[0].extensions.code);
      assert.deepEqual([...new Set(codes.slice(0, 20))], ['FORBIDDEN'], codes.join(','));
      assert.ok(codes.slice(20).includes('RATE_LIMITED'), codes.join(','));
      for (const a of answers.filter((x) => x.errors?.[0].extensions.code === 'RATE_LIMITED')) {
        assert.equal(a.errors?.[0].extensions.reason, 'DENIALS_RATE_LIMITED');
        assert.ok(Number(a.errors?.[0].extensions.retryAfterSeconds) >= 1);
      }
    } finally {
      await client.dispose();
    }
    const events = await t.sql(`SELECT action, decision::text AS decision FROM audit_event WHERE actor_id = 'ws-refused'`);
    assert.deepEqual(events, [{ action: 'createModel', decision: 'DENIED' }]);
  });

  // Stops the server (the folded counts are written at shutdown): runs last.
  it('turns 1,000 refused calls by one principal into a handful of counted events, while others keep working', async () => {
    const attacker = t.token(['service'], ['vision'], 'svc-flood');
    const engineer = t.token(['ml-engineer'], ['fraud'], 'eng-working');
    const inputs = { features: [fraudRow(2)] };
    let flooding = true;
    const statuses = new Map<string, number>();
    const tally = (k: string) => statuses.set(k, (statuses.get(k) ?? 0) + 1);

    const flood = inParallel(1000, 8, async (i) => {
      if (i % 5 === 0) {
        const r = await t.gql(attacker, PREDICT, { d: fraudProduction, inputs });
        tally(`graphql ${r.errors?.[0].extensions.code}`);
        return;
      }
      const r = await infer(t, attacker, 'fraud:fraud-detector-production');
      tally(`oip ${r.status} ${r.json?.code}`);
      if (r.status === 429) assert.match(r.headers.get('retry-after') ?? '', /^[1-9]\d*$/);
    }).finally(() => (flooding = false));

    const work = (async () => {
      const results: GqlResult[] = [];
      for (let i = 0; flooding || i < 5; i++) results.push(await t.gql(engineer, REGISTER_CONFIG, { input: { content: { during: 'flood', i } } }));
      return results;
    })();
    const [, done] = await Promise.all([flood, work]);

    for (const r of done) assert.equal(r.errors, undefined, JSON.stringify(r.errors));
    assert.deepEqual(
      [...statuses.keys()].sort(),
      ['graphql NOT_FOUND', 'graphql RATE_LIMITED', 'oip 404 NOT_FOUND', 'oip 429 RATE_LIMITED'],
      JSON.stringify([...statuses]),
    );
    assert.equal([...statuses.values()].reduce((a, b) => a + b, 0), 1000);
    // The first refusal by each transport is written; the rest are being counted.
    const written = await t.sql(`SELECT action, subject_id, after FROM audit_event WHERE actor_id = 'svc-flood' ORDER BY seq`);
    assert.equal(written.length, 2, JSON.stringify(written));
    const [{ n: configs }] = await t.sql(`SELECT count(*)::int AS n FROM audit_event WHERE actor_id = 'eng-working' AND action = 'registerConfig' AND decision = 'ALLOWED'`);
    assert.equal(configs, done.length);

    // Shutdown writes the counts still folded; the database stays until t.stop().
    await t.server.stop();
    const db = new Client({ connectionString: t.databaseUrl });
    await db.connect();
    try {
      const sql = async (text: string, params?: unknown[]) => (await db.query(text, params)).rows;
      const events = await sql(`SELECT action, decision::text AS decision, after FROM audit_event WHERE actor_id = 'svc-flood' ORDER BY seq`);
      assert.equal(events.length, 4, JSON.stringify(events));
      assert.ok(events.every((e) => e.action === 'predict' && e.decision === 'DENIED'), JSON.stringify(events));
      const recorded = events.reduce((sum, e) => sum + (e.after === null ? 1 : e.after.count), 0);
      assert.equal(recorded, 1000, 'every refused call is counted in the trail');
      const limited = events.reduce((sum, e) => sum + (e.after?.rateLimited ?? 0), 0);
      assert.equal(limited, (statuses.get('graphql RATE_LIMITED') ?? 0) + (statuses.get('oip 429 RATE_LIMITED') ?? 0));
      assert.deepEqual(await chainProblems({ sql }), []);
      const verify = await runAuditVerify(t);
      assert.equal(verify.code, 0, verify.stdout + verify.stderr);
    } finally {
      await db.end();
    }
  });
});

describe('folded refusals on a live server', () => {
  let t: TestServer;
  before(async () => {
    t = await startTestServer({ env: { AUDIT_DENIAL_FOLD_SECONDS: '1' } });
  });
  after(async () => {
    await t?.stop();
  });

  it('writes the count of a closed window as one more chained event, without waiting for shutdown', async () => {
    const nobody = t.token([], ['fraud'], 'no-roles-repeating');
    for (let i = 0; i < 5; i++) {
      const r = await t.gql(nobody, 'mutation { createModel(input: { name: "x" }) { id } }');
      assert.equal(r.errors?.[0].extensions.code, 'FORBIDDEN');
    }
    const events = () => t.sql(`SELECT action, decision::text AS decision, after FROM audit_event WHERE actor_id = 'no-roles-repeating' ORDER BY seq`);
    // The window closes a second after its first refusal; its count follows at the next flush.
    const total = (rows: any[]) => rows.reduce((sum, e) => sum + (e.after === null ? 1 : e.after.count), 0);
    let seen = await events();
    for (let i = 0; i < 300 && total(seen) < 5; i++) {
      await new Promise((r) => setTimeout(r, 100));
      seen = await events();
    }
    assert.equal(total(seen), 5, JSON.stringify(seen));
    assert.deepEqual(seen[0], { action: 'createModel', decision: 'DENIED', after: null });
    assert.ok(seen.length < 5 && seen.every((e) => e.action === 'createModel' && e.decision === 'DENIED'), JSON.stringify(seen));
    assert.ok(seen.some((e) => e.after?.count > 0 && e.after.rateLimited === 0 && e.after.firstAt <= e.after.lastAt), JSON.stringify(seen));
    assert.deepEqual(await chainProblems(t), []);
  });
});
