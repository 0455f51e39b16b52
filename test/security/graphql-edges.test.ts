import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import jwt from 'jsonwebtoken';
import WebSocket from 'ws';
import { JWT_SECRET, startTestServer, type TestServer } from '../support/harness';
import { assertNoStackTrace, postGraphql, request, type RawResponse } from '../support/http';
import { eventually } from '../support/processes';
import { answered, openSocket, type RawSocket } from '../support/raw-socket';

const toId = (type: string, key: string) => Buffer.from(`${type}:${key}`, 'utf8').toString('base64url');
const AUDIT_SIGNING_KEY = generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();

/** `{"a":{"a":…1}}` nested `depth` levels, as JSON text (JSON.stringify itself overflows the stack on such values). */
const nestedObject = (depth: number) => '{"a":'.repeat(depth) + '1' + '}'.repeat(depth);
const nestedArray = (depth: number) => '['.repeat(depth) + '1' + ']'.repeat(depth);

/** POSTs an operation whose variables are given as JSON text. */
function postRaw(url: string, token: string | null, query: string, variablesJson: string): Promise<RawResponse> {
  return request(`${url}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: `{"query":${JSON.stringify(query)},"variables":${variablesJson}}`,
  });
}

/** The one error of a refused request, after checking what every refusal must look like. */
function refusal(r: RawResponse, status: number, code: string, reason?: string) {
  assertNoStackTrace(r.text);
  assert.equal(r.status, status, r.text.slice(0, 500));
  const error = r.json?.errors?.[0];
  assert.ok(error, `expected an error, got ${r.text.slice(0, 500)}`);
  assert.equal(error.extensions.code, code, r.text.slice(0, 500));
  if (reason) assert.equal(error.extensions.reason, reason, r.text.slice(0, 500));
  assert.ok(error.extensions.requestId, 'the error carries a request id');
  assert.equal(r.json.data?.[Object.keys(r.json.data ?? {})[0]] ?? null, null, 'no data for a refused operation');
  return error as { message: string; extensions: Record<string, unknown> };
}

/** A graphql-transport-ws connection that records every message and how it closed. */
const ALERTS = 'subscription { alerts { id kind } }';

describe('GraphQL edges: every odd request gets a clear answer, and live subscriptions die with their credential', () => {
  let prod: TestServer;
  let dev: TestServer;
  let admin: string;
  const sockets: RawSocket[] = [];

  before(async () => {
    prod = await startTestServer({ env: { NODE_ENV: 'production', AUTH_JWT_SECRET: JWT_SECRET, AUDIT_SIGNING_KEY, NOTIFY_SECRET_KEY: 'ab'.repeat(32) } });
    dev = await startTestServer();
    admin = prod.token(['admin'], [], 'ada-admin');
  });
  after(async () => {
    await Promise.all(sockets.map((s) => s.close()));
    await prod?.stop();
    await dev?.stop();
  });

  const socket = async (url: string, authorization: string) => {
    const s = await openSocket(url, authorization);
    sockets.push(s);
    return s;
  };

  describe('schema details stay private in production', () => {
    const typo = '{ models { nodes { nmae } } }';

    for (const who of ['an anonymous caller', 'an authenticated caller']) {
      it(`answers ${who}'s misspelt field without "Did you mean"`, async () => {
        const r = await postGraphql(prod.url, who.startsWith('an anonymous') ? null : admin, typo);
        const error = refusal(r, 400, 'BAD_USER_INPUT', 'GRAPHQL_VALIDATION_FAILED');
        assert.doesNotMatch(r.text, /Did you mean/);
        assert.match(error.message, /nmae/, 'the message still names what was wrong');
      });
    }

    it('answers a misspelt enum value in a variable without "Did you mean"', async () => {
      const r = await postGraphql(prod.url, admin, 'query($s: AlertSeverity) { alerts(filter: { minSeverity: $s }) { totalCount } }', { s: 'CRITICL' });
      refusal(r, 400, 'BAD_USER_INPUT');
      assert.doesNotMatch(r.text, /Did you mean|CRITICAL/);
    });

    it('answers a misspelt field over WebSocket without "Did you mean"', async () => {
      const s = await socket(prod.url, `Bearer ${admin}`);
      s.subscribe('typo', typo);
      await answered(s, 'typo');
      const error = s.messages.find((m) => m.id === 'typo' && m.type === 'error');
      assert.ok(error, JSON.stringify(s.messages));
      assert.equal(error.payload[0].extensions.code, 'BAD_USER_INPUT');
      assert.doesNotMatch(JSON.stringify(error), /Did you mean/);
    });

    it('keeps the suggestions in development', async () => {
      const r = await postGraphql(dev.url, null, typo);
      refusal(r, 400, 'BAD_USER_INPUT', 'GRAPHQL_VALIDATION_FAILED');
      assert.match(r.text, /Did you mean/);
    });
  });

  describe('JSON values are bounded before anything walks them', () => {
    const REGISTER = 'mutation($c: JSON!) { registerConfig(input: { content: $c }) { id } }';

    it('refuses a JSON variable nested 10,000 deep with BAD_USER_INPUT (JSON_TOO_DEEP), HTTP 400', async () => {
      for (const token of [null, admin]) {
        const r = await postRaw(prod.url, token, REGISTER, `{"c":${nestedObject(10_000)}}`);
        refusal(r, 400, 'BAD_USER_INPUT', 'JSON_TOO_DEEP');
      }
      const [{ n }] = await prod.sql(`SELECT count(*)::int AS n FROM config`);
      assert.equal(n, 0, 'nothing was written');
    });

    it('refuses a JSON object variable nested 10,000 deep (JSONObject)', async () => {
      const r = await postRaw(prod.url, admin, 'mutation($s: JSONObject!) { registerSeedSet(input: { seeds: $s }) { id } }', `{"s":${nestedObject(10_000)}}`);
      refusal(r, 400, 'BAD_USER_INPUT', 'JSON_TOO_DEEP');
    });

    it('refuses a JSON literal nested past the limit inside the query', async () => {
      const literal = '{a:'.repeat(100) + '1' + '}'.repeat(100);
      const r = await postGraphql(prod.url, admin, `mutation { registerConfig(input: { content: ${literal} }) { id } }`);
      refusal(r, 400, 'BAD_USER_INPUT', 'JSON_TOO_DEEP');
    });

    it('refuses a JSON array variable nested 10,000 deep sent over WebSocket', async () => {
      const s = await socket(prod.url, `Bearer ${admin}`);
      s.send(`{"id":"deep","type":"subscribe","payload":{"query":${JSON.stringify(REGISTER)},"variables":{"c":${nestedArray(10_000)}}}}`);
      await answered(s, 'deep');
      const error = s.messages.find((m) => m.id === 'deep' && m.type === 'error');
      assert.ok(error, JSON.stringify(s.messages).slice(0, 500));
      assert.equal(error.payload[0].extensions.code, 'BAD_USER_INPUT');
      assert.equal(error.payload[0].extensions.reason, 'JSON_TOO_DEEP');
      assert.equal(s.closed, null, 'the socket stays usable');
    });

    it('still accepts JSON within the limits', async () => {
      const r = await postGraphql(prod.url, admin, 'mutation($c: JSON!) { registerConfig(input: { content: $c, team: null }) { id } }', { c: JSON.parse(nestedObject(20)) });
      // The caller has no team: the config is refused for that, not for its shape.
      assert.notEqual(r.json?.errors?.[0]?.extensions?.reason, 'JSON_TOO_DEEP', r.text);
      assertNoStackTrace(r.text);
    });
  });

  describe('node(id:) with a type part that is an Object.prototype property', () => {
    it('answers like any unknown type', async () => {
      const unknown = refusal(await postGraphql(prod.url, admin, 'query($id: ID!) { node(id: $id) { id } }', { id: toId('Nope', '00000000-0000-0000-0000-000000000000') }), 200, 'BAD_USER_INPUT', 'WRONG_ID_TYPE');
      for (const type of ['constructor', '__proto__', 'toString', 'hasOwnProperty', 'valueOf', 'isPrototypeOf']) {
        const r = await postGraphql(prod.url, admin, 'query($id: ID!) { node(id: $id) { id } }', { id: toId(type, '00000000-0000-0000-0000-000000000000') });
        const error = refusal(r, 200, 'BAD_USER_INPUT', 'WRONG_ID_TYPE');
        assert.equal(error.message, unknown.message, type);
      }
    });
  });

  describe('JWT claims are bounded', () => {
    const signed = (claims: Record<string, unknown>, sub: string) => jwt.sign(claims, JWT_SECRET, { algorithm: 'HS256', subject: sub, expiresIn: 600 });
    const cases: Array<[string, string]> = [
      ['an over-long sub', signed({ roles: ['admin'], teams: [] }, 'x'.repeat(10_000))],
      ['too many roles', signed({ roles: Array.from({ length: 1000 }, (_, i) => `role-${i}`), teams: [] }, 'many-roles')],
      ['an over-long role', signed({ roles: ['r'.repeat(5000)], teams: [] }, 'long-role')],
      ['too many teams', signed({ roles: ['admin'], teams: Array.from({ length: 1000 }, (_, i) => `team-${i}`) }, 'many-teams')],
      ['an over-long team', signed({ roles: ['admin'], teams: ['t'.repeat(5000)] }, 'long-team')],
    ];
    for (const [what, token] of cases) {
      it(`answers a token with ${what} with UNAUTHENTICATED (TOKEN_CLAIMS_INVALID)`, async () => {
        for (const query of ['{ viewer { id } }', 'mutation { createTeam(input: { name: "claims-team" }) { id } }']) {
          const r = await postGraphql(prod.url, token, query);
          refusal(r, 200, 'UNAUTHENTICATED', 'TOKEN_CLAIMS_INVALID');
        }
        const rest = await fetch(`${prod.url}/artifacts`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/octet-stream' }, body: new Uint8Array([1, 2, 3]) });
        const text = await rest.text();
        assertNoStackTrace(text);
        assert.equal(rest.status, 401, text);
        assert.equal(JSON.parse(text).errors[0].extensions.reason, 'TOKEN_CLAIMS_INVALID');
        const [{ n }] = await prod.sql(`SELECT count(*)::int AS n FROM team WHERE name = 'claims-team'`);
        assert.equal(n, 0);
      });
    }
  });

  it('refuses a WebSocket whose token has an over-long sub at connection_init (4403)', async () => {
    const token = jwt.sign({ roles: ['admin'], teams: [] }, JWT_SECRET, { algorithm: 'HS256', subject: 'x'.repeat(10_000), expiresIn: 600 });
    const ws = new WebSocket(prod.url.replace(/^http/, 'ws') + '/graphql', 'graphql-transport-ws');
    const messages: string[] = [];
    ws.on('message', (m) => messages.push(String(m)));
    const closed = new Promise<number>((resolve) => ws.on('close', (code) => resolve(code)));
    await new Promise((resolve) => ws.once('open', resolve));
    ws.send(JSON.stringify({ type: 'connection_init', payload: { authorization: `Bearer ${token}` } }));
    const refusedWith = await Promise.race([closed, new Promise<string>((resolve) => setTimeout(() => resolve('still open after 30 s'), 30_000).unref())]);
    assert.equal(refusedWith, 4403, messages.join('\n'));
    ws.close();
    assert.deepEqual(messages, [], 'no connection_ack');
  });

  describe('HTTP answers the client’s mistakes with 400', () => {
    it('refuses a subscription sent over HTTP POST (SUBSCRIPTION_OVER_HTTP)', async () => {
      for (const token of [null, admin]) {
        const r = await postGraphql(prod.url, token, ALERTS);
        const error = refusal(r, 400, 'BAD_USER_INPUT', 'SUBSCRIPTION_OVER_HTTP');
        assert.match(error.message, /WebSocket/);
      }
    });

    it('refuses a variable of the wrong type with HTTP 400 BAD_USER_INPUT', async () => {
      const r = await postGraphql(prod.url, admin, 'query($f: Int) { models(first: $f) { totalCount } }', { f: 'many' });
      refusal(r, 400, 'BAD_USER_INPUT', 'BAD_VARIABLE');
    });
  });

  describe('a live subscription ends when its credential does', () => {
    async function apiKey(roles: string[]): Promise<{ key: string; id: string }> {
      const r = await prod.gql(admin, 'mutation($r: [String!]!) { createApiKey(input: { name: "live", roles: $r, teams: [] }) { key apiKey { id } } }', { r: roles });
      assert.equal(r.errors, undefined, JSON.stringify(r.errors));
      return { key: r.data.createApiKey.key, id: r.data.createApiKey.apiKey.id };
    }

    /** Opens a socket, starts the alerts subscription on it and waits until the server holds it. */
    async function subscribed(authorization: string): Promise<RawSocket> {
      const s = await socket(prod.url, authorization);
      s.subscribe('alerts', ALERTS);
      s.subscribe('probe', '{ viewer { id } }');
      await answered(s, 'probe');
      assert.equal(s.messages.filter((m) => m.id === 'alerts').length, 0, `the subscription is open: ${JSON.stringify(s.messages)}`);
      return s;
    }

    it('closes the socket (4401) of a subscriber whose API key is revoked, within seconds, and sends nothing more', async () => {
      const { key, id } = await apiKey(['admin']);
      const s = await subscribed(`ApiKey ${key}`);
      const bystander = await subscribed(`Bearer ${admin}`);
      const revoked = await prod.gql(admin, 'mutation($id: ID!) { revokeApiKey(input: { apiKey: $id }) { revokedAt } }', { id });
      assert.equal(revoked.errors, undefined, JSON.stringify(revoked.errors));
      await eventually('the server to close the socket', async () => s.closed ?? undefined, 15_000, 50);
      assert.equal(s.closed!.code, 4401);
      assert.match(s.closed!.reason, /revoked/i);
      assert.deepEqual(s.next('alerts'), [], 'no event, and no UNAUTHENTICATED event, was delivered');
      assert.equal(s.messages.filter((m) => m.id === 'alerts').length, 0);
      // Access changes end only the subscriptions whose credential died.
      assert.equal(bystander.closed, null);
      bystander.subscribe('still', '{ viewer { id } }');
      await answered(bystander, 'still');
      assert.equal(bystander.next('still')[0].data.viewer.id, 'ada-admin');
    });

    it('closes the socket (4401) when the JWT that opened it expires', async () => {
      const shortLived = jwt.sign({ roles: ['admin'], teams: [] }, JWT_SECRET, { algorithm: 'HS256', subject: 'brief-admin', expiresIn: 3 });
      const s = await subscribed(`Bearer ${shortLived}`);
      await eventually('the server to close the socket', async () => s.closed ?? undefined, 20_000, 50);
      assert.equal(s.closed!.code, 4401);
      assert.match(s.closed!.reason, /expired/i);
      assert.deepEqual(s.next('alerts'), []);
    });

    it('ends a subscription (error FORBIDDEN) when its role is edited to lose the right, and keeps the socket', async () => {
      const role = await prod.gql(admin, 'mutation { upsertRole(input: { name: "alert-watcher", rules: [{ action: "read", subject: "Alert" }] }) { name } }');
      assert.equal(role.errors, undefined, JSON.stringify(role.errors));
      const watcher = prod.token(['alert-watcher'], [], 'wendy-watcher');
      const s = await subscribed(`Bearer ${watcher}`);
      const edited = await prod.gql(admin, 'mutation { upsertRole(input: { name: "alert-watcher", rules: [{ action: "read", subject: "Team" }] }) { name } }');
      assert.equal(edited.errors, undefined, JSON.stringify(edited.errors));
      await eventually('the subscription to end', async () => (s.messages.some((m) => m.id === 'alerts') ? true : undefined), 15_000, 50);
      const ended = s.messages.filter((m) => m.id === 'alerts');
      assert.equal(ended.length, 1, JSON.stringify(ended));
      assert.equal(ended[0].type, 'error', JSON.stringify(ended));
      assert.equal(ended[0].payload[0].extensions.code, 'FORBIDDEN');
      assert.equal(ended[0].payload[0].extensions.reason, 'SUBSCRIPTION_RIGHT_LOST');
      assertNoStackTrace(JSON.stringify(ended));
      assert.equal(s.closed, null, 'the credential still holds: the socket stays open');
      s.subscribe('after', '{ viewer { id } }');
      await answered(s, 'after');
      assert.equal(s.next('after')[0].data.viewer.id, 'wendy-watcher');
      const [{ n }] = await prod.sql(`SELECT count(*)::int AS n FROM audit_event WHERE action = 'subscriptionEnded' AND actor_id = 'wendy-watcher' AND decision = 'DENIED'`);
      assert.equal(n, 1, 'the ended subscription is audited as a denial');
    });
  });
});
