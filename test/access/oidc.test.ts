import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import os from 'node:os';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import WebSocket from 'ws';
import { ConfigError, loadConfig } from '../../src/config';
import type { CryptoKey, JWK, JWTPayload } from 'jose' with { 'resolution-mode': 'import' };
import { dataOf, gqlWithAuthorization } from '../support/access';
import { JWT_SECRET, startTestServer, type GqlResult, type TestServer } from '../support/harness';
import { freePort } from '../support/http';

type Jose = typeof import('jose', { with: { 'resolution-mode': 'import' } });

const CREATE_TEAM = 'mutation ($name: String!) { createTeam(input: { name: $name }) { id name } }';
const VIEWER = '{ viewer { id kind roles teams rules } }';
const TEAMS = '{ teams(first: 50) { nodes { name } } }';
const SKEW_SECONDS = 30;
const ROLE = 'modelgov:role:';
const TEAM = 'modelgov:team:';

interface SigningKey {
  kid: string;
  alg: 'RS256' | 'ES256';
  privateKey: CryptoKey;
  jwk: JWK;
}

/**
 * A local identity provider: issuers under /a and /b of one HTTP server, each with its discovery
 * document and its JWKS, whose keys a test may change; it counts the JWKS fetches.
 */
class IdentityProvider {
  readonly keys = new Map<string, SigningKey[]>();
  readonly jwksFetches = new Map<string, number>();
  private server!: Server;
  base = '';

  async start(): Promise<void> {
    this.server = createServer((req, res) => {
      const m = /^\/(\w+)\/(\.well-known\/openid-configuration|jwks)$/.exec(req.url ?? '');
      if (!m || !this.keys.has(m[1])) {
        res.writeHead(404).end();
        return;
      }
      const [, name, what] = m;
      const body =
        what === 'jwks'
          ? { keys: this.keys.get(name)!.map((k) => k.jwk) }
          : { issuer: this.issuer(name), jwks_uri: `${this.issuer(name)}/jwks`, id_token_signing_alg_values_supported: ['RS256', 'ES256'] };
      if (what === 'jwks') this.jwksFetches.set(name, (this.jwksFetches.get(name) ?? 0) + 1);
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(body));
    });
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.base = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  issuer(name: string): string {
    return `${this.base}/${name}`;
  }

  fetches(name: string): number {
    return this.jwksFetches.get(name) ?? 0;
  }

  stop(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

describe('OIDC bearer tokens, verified through their issuers’ JWKS', () => {
  let jose: Jose;
  let idp: IdentityProvider;
  let t: TestServer;
  let downIssuer: string;
  const keyA: SigningKey[] = [];
  const keyB: SigningKey[] = [];

  const newKey = async (kid: string, alg: SigningKey['alg']): Promise<SigningKey> => {
    const { privateKey, publicKey } = await jose.generateKeyPair(alg, { extractable: true });
    return { kid, alg, privateKey, jwk: { ...(await jose.exportJWK(publicKey)), kid, alg, use: 'sig' } };
  };

  /** A token signed with `key`: by default of issuer a, for modelgov-api, valid for ten minutes. */
  const sign = async (
    key: SigningKey,
    claims: JWTPayload,
    opts: { iss?: string | null; aud?: string | null; exp?: number | null; alg?: string; kid?: string | null } = {},
  ): Promise<string> => {
    const now = Math.floor(Date.now() / 1000);
    const payload: JWTPayload = { sub: 'alice', ...claims, iat: now };
    const iss = opts.iss === undefined ? idp.issuer('a') : opts.iss;
    const aud = opts.aud === undefined ? 'modelgov-api' : opts.aud;
    const exp = opts.exp === undefined ? now + 600 : opts.exp;
    if (iss !== null) payload.iss = iss;
    if (aud !== null) payload.aud = aud;
    if (exp !== null) payload.exp = exp;
    const kid = opts.kid === undefined ? key.kid : opts.kid;
    return new jose.SignJWT(payload).setProtectedHeader({ alg: opts.alg ?? key.alg, ...(kid === null ? {} : { kid }) }).sign(key.privateKey);
  };

  const ask = (token: string, query: string) => gqlWithAuthorization(t.url, `Bearer ${token}`, query);
  const teamNames = (r: GqlResult) => (dataOf(r).teams.nodes as Array<{ name: string }>).map((n) => n.name).sort();

  /** The WebSocket's answer to `connection_init` with the token: acknowledged, or closed with a code and a reason. */
  const overWebSocket = (token: string) =>
    new Promise<{ ack: boolean; code?: number; reason?: string }>((resolve, reject) => {
      const ws = new WebSocket(t.url.replace(/^http/, 'ws') + '/graphql', 'graphql-transport-ws');
      ws.on('open', () => ws.send(JSON.stringify({ type: 'connection_init', payload: { authorization: `Bearer ${token}` } })));
      ws.on('message', (data) => {
        if (JSON.parse(String(data)).type === 'connection_ack') {
          resolve({ ack: true });
          ws.close(1000);
        }
      });
      ws.on('close', (code, reason) => resolve({ ack: false, code, reason: String(reason) }));
      ws.on('error', reject);
    });

  /** The same token over GraphQL HTTP, a REST route (/v2) and a WebSocket: refused everywhere with `reason`. */
  const assertRefused = async (token: string, reason: string, what: string) => {
    const r = await ask(token, VIEWER);
    assert.equal(r.errors?.[0]?.extensions.code, 'UNAUTHENTICATED', `${what} (GraphQL): ${JSON.stringify(r.errors ?? r.data)}`);
    assert.equal(r.errors?.[0]?.extensions.reason, reason, `${what} (GraphQL): ${r.errors?.[0]?.message}`);
    assert.equal(r.data?.viewer ?? null, null, `${what}: no data`);
    const rest = await fetch(`${t.url}/v2/models/anything`, { headers: { authorization: `Bearer ${token}` } });
    const body = (await rest.json()) as { code?: string; reason?: string };
    assert.equal(rest.status, 401, `${what} (REST): ${JSON.stringify(body)}`);
    assert.deepEqual([body.code, body.reason], ['UNAUTHENTICATED', reason], `${what} (REST)`);
    const ws = await overWebSocket(token);
    assert.equal(ws.ack, false, `${what} (WebSocket): acknowledged`);
    assert.equal(ws.code, 4403, `${what} (WebSocket)`);
    assert.ok(ws.reason?.startsWith(`Forbidden: ${reason}: `), `${what} (WebSocket): ${ws.reason}`);
  };

  before(async () => {
    jose = await import('jose');
    idp = new IdentityProvider();
    await idp.start();
    keyA.push(await newKey('a-1', 'RS256'));
    keyB.push(await newKey('b-1', 'ES256'));
    idp.keys.set('a', keyA);
    idp.keys.set('b', keyB);
    // An issuer whose JWKS does not answer: nothing listens on its port.
    downIssuer = `http://127.0.0.1:${await freePort()}/c`;
    const issuers = [
      // Discovered through /.well-known/openid-configuration; roles and teams from one groups claim.
      { issuer: idp.issuer('a'), audience: 'modelgov-api', algorithms: ['RS256'], rolesClaim: 'groups', rolePrefix: ROLE, teamsClaim: 'groups', teamPrefix: TEAM },
      // A JWKS named outright; roles from a nested claim, the principal id from email.
      {
        issuer: idp.issuer('b'),
        jwksUri: `${idp.issuer('b')}/jwks`,
        audience: ['modelgov', 'other-api'],
        algorithms: ['ES256'],
        subjectClaim: 'email',
        subjectPrefix: 'b:',
        rolesClaim: 'realm_access.roles',
      },
      { issuer: downIssuer, jwksUri: `${downIssuer}/jwks`, audience: 'modelgov-api' },
    ];
    t = await startTestServer({
      env: {
        WORKERS_IN_PROCESS: 'false',
        INFERENCE_ENABLED: 'false',
        OIDC_ISSUERS: JSON.stringify(issuers),
        OIDC_CLOCK_SKEW_SECONDS: String(SKEW_SECONDS),
        // A token with a kid the cached set lacks fetches the set again at once (30 s by default).
        OIDC_JWKS_COOLDOWN_SECONDS: '0',
        OIDC_JWKS_TIMEOUT_MS: '2000',
      },
    });
    const admin = t.token(['admin'], [], 'oidc-admin');
    for (const name of ['alpha', 'beta']) dataOf(await t.gql(admin, CREATE_TEAM, { name }));
  });
  after(async () => {
    await t?.stop();
    await idp?.stop();
  });

  it('accepts a token of a discovered issuer, its roles and teams mapped from groups by prefix, as an HS256 token of the same claims', async () => {
    const token = await sign(keyA[0], { groups: [`${ROLE}viewer`, `${TEAM}alpha`, 'everyone', `${TEAM}`] });
    const viewer = dataOf(await ask(token, VIEWER)).viewer;
    assert.deepEqual([viewer.id, viewer.kind, viewer.roles, viewer.teams], ['alice', 'user', ['viewer'], ['alpha']]);
    assert.deepEqual(teamNames(await ask(token, TEAMS)), ['alpha'], 'a viewer of alpha sees alpha only');
    // Rights resolved exactly as for the shared-secret token with these claims.
    const hs256 = t.token(['viewer'], ['alpha'], 'alice');
    assert.deepEqual(viewer, dataOf(await ask(hs256, VIEWER)).viewer);
    assert.deepEqual((await overWebSocket(token)).ack, true, 'a WebSocket opens with it');
    assert.equal(idp.fetches('a'), 1, 'the key set was fetched once');
  });

  it('accepts an ES256 token of an issuer with a named JWKS, its id and roles from configured claims', async () => {
    const token = await sign(keyB[0], { email: 'bob@example.com', realm_access: { roles: ['viewer'] }, teams: ['beta'] }, { iss: idp.issuer('b'), aud: 'other-api' });
    const viewer = dataOf(await ask(token, VIEWER)).viewer;
    assert.deepEqual([viewer.id, viewer.roles, viewer.teams], ['b:bob@example.com', ['viewer'], ['beta']]);
    assert.deepEqual(teamNames(await ask(token, TEAMS)), ['beta']);
  });

  it('accepts a token signed with a rotated-in key: a kid missing from the cached set fetches the set again', async () => {
    const fetched = idp.fetches('a');
    keyA.push(await newKey('a-2', 'RS256'));
    const token = await sign(keyA[1], { sub: 'carol', groups: [`${ROLE}viewer`, `${TEAM}beta`] });
    assert.deepEqual(teamNames(await ask(token, TEAMS)), ['beta']);
    assert.equal(idp.fetches('a'), fetched + 1, 'fetched once more for the new key');
    // The old key, still published, verifies from the cached set.
    dataOf(await ask(await sign(keyA[0], { sub: 'dave', groups: [] }), VIEWER));
    assert.equal(idp.fetches('a'), fetched + 1, 'no fetch for a known key');
  });

  it('refuses every forged, misdirected or stale token with UNAUTHENTICATED and its reason, over GraphQL, REST and WebSocket', async () => {
    const now = Math.floor(Date.now() / 1000);
    const claims = { groups: [`${ROLE}admin`] };
    const stranger = await newKey('a-1', 'RS256');
    const valid = await sign(keyA[0], claims);
    const [h, p, s] = valid.split('.');
    const asAdmin = Buffer.from(JSON.stringify({ ...jose.decodeJwt(valid), groups: [`${ROLE}admin`, `${TEAM}alpha`] })).toString('base64url');
    const hs256 = await new jose.SignJWT({ sub: 'mallory', roles: ['admin'], teams: [], iss: idp.issuer('a'), aud: 'modelgov-api' })
      .setProtectedHeader({ alg: 'HS256' })
      .setExpirationTime('10m')
      .sign(new TextEncoder().encode(JWT_SECRET));
    const none = `${Buffer.from('{"alg":"none"}').toString('base64url')}.${p}.`;
    const flipped = s.slice(0, 10) + (s[10] === 'A' ? 'B' : 'A') + s.slice(11);
    const cases: Array<[string, string, string]> = [
      ['wrong audience', await sign(keyA[0], claims, { aud: 'another-service' }), 'TOKEN_AUDIENCE_MISMATCH'],
      ['a wrong (untrusted) issuer, signed with a trusted key', await sign(keyA[0], claims, { iss: 'https://login.evil.example/' }), 'TOKEN_ISSUER_UNKNOWN'],
      ['no issuer at all, RS256', await sign(keyA[0], claims, { iss: null }), 'TOKEN_ISSUER_UNKNOWN'],
      ['expired beyond the clock skew', await sign(keyA[0], claims, { exp: now - SKEW_SECONDS - 60 }), 'TOKEN_EXPIRED'],
      ['not yet valid beyond the clock skew', await sign(keyA[0], { ...claims, nbf: now + SKEW_SECONDS + 60 }), 'TOKEN_NOT_YET_VALID'],
      ['an unknown kid', await sign(await newKey('nobody', 'RS256'), claims), 'TOKEN_KEY_UNKNOWN'],
      ["another key under the issuer's kid", await sign(stranger, claims), 'TOKEN_SIGNATURE_INVALID'],
      ['a tampered signature', `${h}.${p}.${flipped}`, 'TOKEN_SIGNATURE_INVALID'],
      ['tampered claims (admin of alpha)', `${h}.${asAdmin}.${s}`, 'TOKEN_SIGNATURE_INVALID'],
      ["a trusted issuer's token signed as another's (b's kid, a's algorithm)", await sign(keyA[0], claims, { iss: idp.issuer('b'), aud: 'modelgov' }), 'TOKEN_ALGORITHM_NOT_ALLOWED'],
      ['HS256 with the shared secret, claiming the OIDC issuer', hs256, 'TOKEN_ALGORITHM_NOT_ALLOWED'],
      ['alg none, claiming the OIDC issuer', none, 'TOKEN_ALGORITHM_NOT_ALLOWED'],
      ['no exp', await sign(keyA[0], claims, { exp: null }), 'TOKEN_CLAIMS_INVALID'],
      ['groups that are not names', await sign(keyA[0], { groups: [1, 2] }), 'TOKEN_CLAIMS_INVALID'],
      ['not a JWT', 'not-a-token', 'TOKEN_MALFORMED'],
    ];
    for (const [what, token, reason] of cases) await assertRefused(token, reason, what);
    // The unknown kid fetched the set again (cool-down 0 here), and still found no such key.
    assert.ok(idp.fetches('a') >= 3, `fetches of a's key set: ${idp.fetches('a')}`);
  });

  it('refuses clearly, and keeps serving, when an issuer’s JWKS does not answer', async () => {
    const started = Date.now();
    const token = await sign(await newKey('c-1', 'RS256'), { groups: [] }, { iss: downIssuer });
    await assertRefused(token, 'TOKEN_ISSUER_UNREACHABLE', 'JWKS down');
    const r = await ask(token, VIEWER);
    assert.match(r.errors?.[0]?.message ?? '', /could not be fetched/);
    assert.ok(Date.now() - started < 10_000, 'refused without waiting long');
    // The server is unharmed: other issuers and HS256 tokens still work.
    dataOf(await ask(await sign(keyA[0], { groups: [] }), VIEWER));
    dataOf(await ask(t.token(['viewer'], ['alpha']), VIEWER));
  });

  it('accepts a token expired within the clock skew, from the principal cache too, and refuses it once the skew is past', async () => {
    const now = Math.floor(Date.now() / 1000);
    // Expired already, but within the skew for about two more seconds.
    const exp = now - SKEW_SECONDS + 2;
    const token = await sign(keyA[0], { sub: 'erin', groups: [`${ROLE}viewer`, `${TEAM}alpha`] }, { exp });
    assert.deepEqual(teamNames(await ask(token, TEAMS)), ['alpha']);
    const before = t.server.statements.count;
    dataOf(await ask(token, VIEWER));
    assert.equal(t.server.statements.count - before, 0, 'the second request is answered from the principal cache');
    const until = (exp + SKEW_SECONDS) * 1000 + 100 - Date.now();
    await new Promise((r) => setTimeout(r, Math.max(0, until)));
    const r = await ask(token, VIEWER);
    assert.deepEqual([r.errors?.[0]?.extensions.code, r.errors?.[0]?.extensions.reason], ['UNAUTHENTICATED', 'TOKEN_EXPIRED'], 'the cached principal is not served past its expiry');
  });
});

describe('OIDC_ISSUERS', () => {
  let secretsDir: string;
  before(async () => {
    secretsDir = await mkdtemp(path.join(os.tmpdir(), 'modelgov-oidc-config-'));
  });
  after(() => rm(secretsDir, { recursive: true, force: true }));

  const load = (issuers: unknown, env: Record<string, string> = {}) =>
    loadConfig({ NODE_ENV: 'test', SECRETS_DIR: secretsDir, DATA_DIR: secretsDir, OIDC_ISSUERS: typeof issuers === 'string' ? issuers : JSON.stringify(issuers), ...env });
  const refused = (issuers: unknown, message: RegExp, env?: Record<string, string>) =>
    assert.throws(() => load(issuers, env), (e: Error) => e instanceof ConfigError && message.test(e.message), String(message));

  it('reads each issuer with its defaults', () => {
    const { oidc } = load([{ issuer: 'https://login.example.com/', audience: 'modelgov' }]);
    assert.deepEqual(oidc.issuers, [
      {
        issuer: 'https://login.example.com/',
        jwksUri: null,
        audience: ['modelgov'],
        algorithms: ['RS256', 'ES256'],
        subjectClaim: 'sub',
        subjectPrefix: '',
        rolesClaim: 'roles',
        rolePrefix: '',
        teamsClaim: 'teams',
        teamPrefix: '',
      },
    ]);
    assert.deepEqual([oidc.clockSkewSeconds, oidc.jwksCacheSeconds, oidc.jwksCooldownSeconds, oidc.jwksTimeoutMs, oidc.httpsOnly], [60, 600, 30, 5000, false]);
    assert.deepEqual(loadConfig({ NODE_ENV: 'test', SECRETS_DIR: secretsDir, DATA_DIR: secretsDir }).oidc.issuers, [], 'none by default');
  });

  it('refuses what it cannot trust, naming the variable and the entry', () => {
    refused('[{', /^invalid OIDC_ISSUERS: must be a JSON array/);
    refused([{ issuer: 'https://a.example' }], /^invalid OIDC_ISSUERS: \[0\]\.audience: /);
    refused([{ issuer: 'a.example', audience: 'x' }], /^invalid OIDC_ISSUERS: \[0\]\.issuer: must be an http\(s\) URL/);
    refused([{ issuer: 'https://a.example', audience: 'x', algorithms: ['HS256'] }], /\[0\]\.algorithms\[0\]: /);
    refused([{ issuer: 'https://a.example', audience: 'x', groupPrefix: 'mg:' }], /^invalid OIDC_ISSUERS: \[0\]: .*groupPrefix/);
    refused([{ issuer: 'https://a.example', audience: 'x' }, { issuer: 'https://a.example', audience: 'y' }], /\[1\]\.issuer: https:\/\/a\.example is listed twice/);
    const production = {
      NODE_ENV: 'production',
      AUTH_JWT_SECRET: JWT_SECRET,
      AUDIT_SIGNING_KEY: generateKeyPairSync('ed25519').privateKey.export({ format: 'pem', type: 'pkcs8' }).toString(),
      NOTIFY_SECRET_KEY: '0'.repeat(64),
    };
    refused([{ issuer: 'http://a.example', audience: 'x' }], /\[0\]\.issuer: must be https when NODE_ENV=production/, production);
    refused([{ issuer: 'https://a.example', jwksUri: 'http://a.example/jwks', audience: 'x' }], /\[0\]\.jwksUri: must be https/, production);
  });
});
