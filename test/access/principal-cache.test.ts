import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startServer, type RunningServer } from '../../src/app/server';
import { createLogger } from '../../src/core/logger';
import { dataOf, gqlWithAuthorization } from '../support/access';
import { codeOf, startTestServer, type GqlResult, type TestServer } from '../support/harness';
import { eventually } from '../support/processes';

const CREATE_TEAM = 'mutation ($name: String!) { createTeam(input: { name: $name }) { id name } }';
const UPSERT = 'mutation ($input: UpsertRoleInput!) { upsertRole(input: $input) { name } }';
const CREATE_KEY = 'mutation ($input: CreateApiKeyInput!) { createApiKey(input: $input) { key apiKey { id } } }';
const REVOKE_KEY = 'mutation ($id: ID!) { revokeApiKey(input: { apiKey: $id }) { id revokedAt } }';
const VIEWER = '{ viewer { id teams } }';
const TEAMS = '{ teams(first: 50) { nodes { id name } } }';
const NODE = 'query ($id: ID!) { node(id: $id) { id } }';
const READ_TEAMS = [{ action: 'read', subject: 'Team', conditions: { id: { $in: '${user.teamIds}' } } }];

/** How long a change made on one instance may take to reach what the other answers. */
const PROPAGATION_MS = 1000;

describe('principal cache: warm requests read no principal, and access changes reach every instance within a second', () => {
  let t: TestServer;
  let second: RunningServer;
  let admin: string;
  const teamIds = new Map<string, string>();

  type Instance = { url: string; statements: { count: number } };
  const instances = (): Array<[string, Instance]> => [
    ['first', t.server],
    ['second', second],
  ];
  const bearer = (token: string) => `Bearer ${token}`;
  const ask = (on: Instance, authorization: string, query: string, variables?: Record<string, unknown>) =>
    gqlWithAuthorization(on.url, authorization, query, variables);
  const teamNames = (r: GqlResult) => (dataOf(r).teams.nodes as Array<{ name: string }>).map((n) => n.name).sort();
  /** The statements `query` issues on `on` (nothing else runs there: no workers, no inference). */
  const statementsOf = async (on: Instance, authorization: string, query: string) => {
    const before = on.statements.count;
    const r = await ask(on, authorization, query);
    return { r, statements: on.statements.count - before };
  };

  before(async () => {
    const env = { WORKERS_IN_PROCESS: 'false', INFERENCE_ENABLED: 'false' };
    t = await startTestServer({ env });
    // A second API instance on the same database and Redis.
    second = await startServer(t.config, createLogger(t.config.logLevel));
    admin = bearer(t.token(['admin'], [], 'cache-admin'));
    for (const name of ['alpha', 'beta']) teamIds.set(name, dataOf(await ask(t.server, admin, CREATE_TEAM, { name })).createTeam.id);
    dataOf(await ask(t.server, admin, UPSERT, { input: { name: 'team-reader', rules: READ_TEAMS } }));
  });
  after(async () => {
    await second?.stop();
    await t?.stop();
  });

  it('answers a warm request without reading the principal: no SQL at all for viewer, by token or API key', async () => {
    const key = dataOf(await ask(t.server, admin, CREATE_KEY, { input: { name: 'warm', roles: ['viewer'], teams: ['alpha'] } })).createApiKey.key;
    const credentials = [bearer(t.token(['viewer'], ['alpha'], 'warm-user')), `ApiKey ${key}`];
    for (const [name, on] of instances()) {
      for (const authorization of credentials) {
        const cold = await statementsOf(on, authorization, VIEWER);
        dataOf(cold.r, `${name}: first request`);
        assert.ok(cold.statements >= 1, `${name}: the first request reads the principal (${cold.statements} statements)`);
        for (let i = 0; i < 3; i++) {
          const warm = await statementsOf(on, authorization, VIEWER);
          assert.deepEqual(dataOf(warm.r, `${name}: warm request`), dataOf(cold.r), `${name}: the same caller`);
          assert.equal(warm.statements, 0, `${name}: a warm request issues no SQL`);
        }
      }
    }
  });

  it('refuses an API key revoked on one instance on the other within a second', async () => {
    const created = dataOf(await ask(t.server, admin, CREATE_KEY, { input: { name: 'to-revoke', roles: ['team-reader'], teams: ['alpha'] } })).createApiKey;
    const key = `ApiKey ${created.key}`;
    for (const [name, on] of instances()) {
      assert.deepEqual(teamNames(await ask(on, key, TEAMS)), ['alpha'], `${name}: the key works`);
      assert.equal((await statementsOf(on, key, VIEWER)).statements, 0, `${name}: the key's principal is cached`);
    }
    dataOf(await ask(t.server, admin, REVOKE_KEY, { id: created.apiKey.id }));
    assert.equal(codeOf(await ask(t.server, key, TEAMS)), 'UNAUTHENTICATED', 'refused at once where it was revoked');
    await eventually('the revoked key refused on the second instance', async () => (codeOf(await ask(second, key, TEAMS)) === 'UNAUTHENTICATED' ? true : undefined), PROPAGATION_MS, 20);
    const r = await ask(second, key, TEAMS);
    assert.equal(r.data?.teams ?? null, null, 'and nothing is answered');
  });

  it('refuses an action whose permission a role lost on the other instance within a second', async () => {
    dataOf(await ask(t.server, admin, UPSERT, { input: { name: 'shrinking', rules: READ_TEAMS } }));
    const token = bearer(t.token(['shrinking'], ['alpha'], 'shrinking-user'));
    for (const [name, on] of instances()) {
      assert.deepEqual(teamNames(await ask(on, token, TEAMS)), ['alpha'], `${name}: the role allows reading teams`);
      assert.equal((await statementsOf(on, token, VIEWER)).statements, 0, `${name}: the principal is cached`);
    }
    dataOf(await ask(t.server, admin, UPSERT, { input: { name: 'shrinking', rules: [{ action: 'read', subject: 'Role' }] } }));
    assert.equal(codeOf(await ask(t.server, token, TEAMS)), 'FORBIDDEN', 'refused at once where the role was edited');
    await eventually('the edited role refused on the second instance', async () => (codeOf(await ask(second, token, TEAMS)) === 'FORBIDDEN' ? true : undefined), PROPAGATION_MS, 20);
    assert.equal(codeOf(await ask(second, token, '{ roles(first: 1) { totalCount } }')), 'none', 'what the role now grants is granted');
  });

  it('does not serve a re-issued token the principal of the token before it', async () => {
    const both = bearer(t.token(['team-reader'], ['alpha', 'beta'], 'carol'));
    const beta = teamIds.get('beta')!;
    for (const [name, on] of instances()) {
      assert.deepEqual(teamNames(await ask(on, both, TEAMS)), ['alpha', 'beta'], `${name}: both teams`);
      assert.equal(dataOf(await ask(on, both, NODE, { id: beta })).node?.id, beta, `${name}: beta is reached`);
    }
    const alphaOnly = bearer(t.token(['team-reader'], ['alpha'], 'carol'));
    assert.notEqual(alphaOnly, both);
    for (const [name, on] of instances()) {
      assert.deepEqual(dataOf(await ask(on, alphaOnly, VIEWER)).viewer, { id: 'carol', teams: ['alpha'] }, `${name}: the re-issued token's claims`);
      assert.deepEqual(teamNames(await ask(on, alphaOnly, TEAMS)), ['alpha'], `${name}: beta is no longer listed`);
      assert.equal(dataOf(await ask(on, alphaOnly, NODE, { id: beta })).node, null, `${name}: beta is no longer reached`);
    }
  });

  it('lets a principal already claiming a team reach it on the other instance within a second of the team being created', async () => {
    const token = bearer(t.token(['team-reader'], ['alpha', 'gamma'], 'early-claimant'));
    for (const [name, on] of instances()) {
      assert.deepEqual(teamNames(await ask(on, token, TEAMS)), ['alpha'], `${name}: gamma does not exist yet`);
      assert.equal((await statementsOf(on, token, VIEWER)).statements, 0, `${name}: the principal is cached`);
    }
    dataOf(await ask(t.server, admin, CREATE_TEAM, { name: 'gamma' }));
    assert.deepEqual(teamNames(await ask(t.server, token, TEAMS)), ['alpha', 'gamma'], 'at once where the team was created');
    await eventually(
      'the new team reached on the second instance',
      async () => (teamNames(await ask(second, token, TEAMS)).includes('gamma') ? true : undefined),
      PROPAGATION_MS,
      20,
    );
  });
});
