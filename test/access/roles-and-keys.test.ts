import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { DEFAULT_ROLES } from '../../src/access/policy-rules';
import { toGlobalId } from '../../src/core/global-id';
import { dataOf, gqlWithAuthorization, owningTeams } from '../support/access';
import { codeOf, startTestServer, type TestServer } from '../support/harness';

const UPSERT = 'mutation ($input: UpsertRoleInput!) { upsertRole(input: $input) { name builtIn rules } }';
const DELETE = 'mutation ($name: String!) { deleteRole(name: $name) }';
const CREATE_KEY = 'mutation ($input: CreateApiKeyInput!) { createApiKey(input: $input) { key apiKey { id name prefix roles teams revokedAt } } }';
const REVOKE_KEY = 'mutation ($id: ID!) { revokeApiKey(input: { apiKey: $id }) { id revokedAt } }';
const MODELS = '{ models(first: 200) { totalCount nodes { id team { name } } } }';

describe('policies are data: roles and API keys', () => {
  let t: TestServer;
  let admin: string;

  const storedRole = async (name: string) => {
    const rows: Array<{ rules: unknown }> = await t.sql('SELECT rules FROM role WHERE name = $1', [name]);
    return rows[0]?.rules ?? null;
  };
  const teamModelCount = async (team: string): Promise<number> => {
    const [{ n }] = await t.sql('SELECT count(*)::int AS n FROM model m JOIN team tm ON tm.id = m.team_id WHERE tm.name = $1', [team]);
    return n;
  };

  before(async () => {
    t = await startTestServer({ demo: true });
    admin = t.token(['admin'], ['fraud', 'vision'], 'roles-admin');
  });
  after(async () => t?.stop());

  it('refuses invalid rules with BAD_USER_INPUT and stores nothing', async () => {
    const invalid: Array<[string, unknown]> = [
      ['unknown subject', [{ action: 'read', subject: 'Spaceship' }]],
      ['unknown action', [{ action: 'fly', subject: 'Model' }]],
      ['condition on an attribute that is not a policy attribute', [{ action: 'read', subject: 'Model', conditions: { name: 'fraud-detector' } }]],
      ['unsupported operator $regex', [{ action: 'read', subject: 'Model', conditions: { createdBy: { $regex: '^demo' } } }]],
      ['$or, which CASL does not evaluate', [{ action: 'read', subject: 'Model', inverted: true, conditions: { $or: [{ createdBy: 'x' }] } }]],
      ['field that is not protected', [{ action: 'read', subject: 'Model', fields: ['name'] }]],
      ['a team name where a team id belongs', [{ action: 'read', subject: 'Model', conditions: { teamId: 'fraud' } }]],
      ['a list with a non-uuid where team ids belong', [{ action: 'read', subject: 'Model', conditions: { teamId: { $in: ['fraud'] } } }]],
      ['unknown rule property', [{ action: 'read', subject: 'Model', because: 'why not' }]],
      ['not a list', { action: 'read', subject: 'Model' }],
      ['a list of strings', ['read Model']],
    ];
    for (const [what, rules] of invalid) {
      const r = await t.gql(admin, UPSERT, { input: { name: 'broken', rules } });
      assert.equal(codeOf(r), 'BAD_USER_INPUT', `${what}: ${JSON.stringify(r.errors ?? r.data)}`);
      assert.equal(await storedRole('broken'), null, `${what}: nothing stored`);
    }
    // Nor is an existing role changed by an invalid edit.
    const before = await storedRole('viewer');
    assert.equal(codeOf(await t.gql(admin, UPSERT, { input: { name: 'viewer', rules: [{ action: 'read', subject: 'Spaceship' }] } })), 'BAD_USER_INPUT');
    assert.deepEqual(await storedRole('viewer'), before);
  });

  it('refuses role and key administration to anyone but an admin', async () => {
    const engineer = t.token(['ml-engineer'], ['fraud'], 'ambitious-engineer');
    const rules = [{ action: 'manage', subject: 'all' }];
    assert.equal(codeOf(await t.gql(engineer, UPSERT, { input: { name: 'root', rules } })), 'FORBIDDEN');
    assert.equal(codeOf(await t.gql(engineer, UPSERT, { input: { name: 'ml-engineer', rules } })), 'FORBIDDEN');
    assert.equal(codeOf(await t.gql(engineer, DELETE, { name: 'viewer' })), 'FORBIDDEN');
    assert.equal(codeOf(await t.gql(engineer, CREATE_KEY, { input: { name: 'k', roles: ['admin'], teams: [] } })), 'FORBIDDEN');
    assert.equal(await storedRole('root'), null);
    assert.deepEqual(await storedRole('ml-engineer'), DEFAULT_ROLES.find((r) => r.name === 'ml-engineer')!.rules);
    const [{ n }] = await t.sql('SELECT count(*)::int AS n FROM api_key');
    assert.equal(n, 0);
  });

  it('applies a new role to a token holding it from its next request, and withdraws it on delete', async () => {
    const reader = t.token(['model-reader'], ['fraud'], 'model-reader');
    assert.equal(codeOf(await t.gql(reader, MODELS)), 'FORBIDDEN', 'an unknown role grants nothing');

    const created = dataOf(
      await t.gql(admin, UPSERT, {
        input: {
          name: 'model-reader',
          description: 'Read models of own teams',
          rules: [{ action: 'read', subject: 'Model', conditions: { teamId: { $in: '${user.teamIds}' } } }],
        },
      }),
    );
    assert.equal(created.upsertRole.builtIn, false);

    const models = dataOf(await t.gql(reader, MODELS)).models;
    assert.equal(models.totalCount, await teamModelCount('fraud'));
    assert.ok(models.nodes.length > 0);
    // The role grants no Team, so team resolves to null: ownership is read from the database.
    const owners = await owningTeams(
      t,
      models.nodes.map((m: { id: string }) => m.id),
    );
    assert.deepEqual(new Set(owners.values()), new Set(['fraud']));
    for (const m of models.nodes) assert.equal(m.team, null);
    assert.equal(codeOf(await t.gql(reader, '{ modelVersions { totalCount } }')), 'FORBIDDEN', 'only what the role names');

    assert.equal(dataOf(await t.gql(admin, DELETE, { name: 'model-reader' })).deleteRole, true);
    assert.equal(codeOf(await t.gql(reader, MODELS)), 'FORBIDDEN');
  });

  it('changes access when a built-in role is edited, and refuses to delete one', async () => {
    const viewer = t.token(['viewer'], ['fraud'], 'edited-viewer');
    const original = DEFAULT_ROLES.find((r) => r.name === 'viewer')!;
    assert.equal(dataOf(await t.gql(viewer, '{ deployments { totalCount } }')).deployments.totalCount, 2);

    // The viewer's rules without Deployment.
    const withoutDeployments = original.rules.map((r) =>
      Array.isArray(r.subject) ? { ...r, subject: r.subject.filter((s) => s !== 'Deployment') } : r,
    );
    const edited = dataOf(await t.gql(admin, UPSERT, { input: { name: 'viewer', rules: withoutDeployments } })).upsertRole;
    assert.equal(edited.builtIn, true, 'still built in');
    assert.equal(codeOf(await t.gql(viewer, '{ deployments { totalCount } }')), 'FORBIDDEN');
    assert.ok(dataOf(await t.gql(viewer, MODELS)).models.totalCount > 0, 'the rest of the role still applies');

    const del = await t.gql(admin, DELETE, { name: 'viewer' });
    assert.equal(codeOf(del), 'CONFLICT');
    assert.deepEqual(await storedRole('viewer'), withoutDeployments);

    dataOf(await t.gql(admin, UPSERT, { input: { name: 'viewer', rules: original.rules } }));
    assert.equal(dataOf(await t.gql(viewer, '{ deployments { totalCount } }')).deployments.totalCount, 2);
  });

  it('issues API keys shown once, stored hashed, usable until revoked', async () => {
    const created = dataOf(await t.gql(admin, CREATE_KEY, { input: { name: 'fraud-scorer', roles: ['viewer'], teams: ['fraud'] } })).createApiKey;
    const key: string = created.key;
    const m = /^mgk_([0-9a-f]{32})_([A-Za-z0-9_-]{43})$/.exec(key);
    assert.ok(m, `key format: ${key}`);
    const secret = m[2];
    assert.ok(key.startsWith(created.apiKey.prefix));
    assert.deepEqual([created.apiKey.name, created.apiKey.roles, created.apiKey.teams, created.apiKey.revokedAt], ['fraud-scorer', ['viewer'], ['fraud'], null]);

    // Never again through the API, nor in the database or the audit trail.
    const list = await t.gql(admin, '{ apiKeys { totalCount nodes { id name prefix roles teams createdBy revokedAt } } }');
    assert.equal(dataOf(list).apiKeys.totalCount, 1);
    assert.ok(!JSON.stringify(list).includes(secret), 'apiKeys shows no secret');
    assert.equal(codeOf(await t.gql(admin, '{ apiKeys { nodes { secretHash } } }')), 'BAD_USER_INPUT', 'the hash is no field');
    const [row] = await t.sql('SELECT row_to_json(k)::text AS json, secret_hash FROM api_key k');
    assert.ok(!row.json.includes(secret), 'the api_key row holds no secret');
    assert.match(row.secret_hash, /^[0-9a-f]{64}$/);
    const [{ n: inAudit }] = await t.sql(`SELECT count(*)::int AS n FROM audit_event WHERE coalesce("after"::text, '') LIKE '%' || $1 || '%'`, [secret]);
    assert.equal(inAudit, 0, 'the audit trail holds no secret');

    // The key acts with its roles and teams.
    const asKey = (query: string) => gqlWithAuthorization(t.url, `ApiKey ${key}`, query);
    const who = dataOf(await asKey('{ viewer { id kind roles teams } }')).viewer;
    assert.deepEqual(who, { id: `apikey:${Buffer.from(created.apiKey.id, 'base64url').toString().split(':')[1]}`, kind: 'service', roles: ['viewer'], teams: ['fraud'] });
    const models = dataOf(await asKey(MODELS)).models;
    assert.equal(models.totalCount, await teamModelCount('fraud'));
    assert.ok(models.nodes.length > 0, 'the key sees fraud models');
    assert.equal(models.nodes.length, models.totalCount, 'every model it counts is listed');
    for (const mdl of models.nodes) assert.equal(mdl.team?.name, 'fraud');
    const dv = dataOf(await asKey('{ datasetVersions(first: 1) { nodes { uri withheldFields } } }')).datasetVersions.nodes[0];
    assert.deepEqual(dv, { uri: null, withheldFields: ['uri', 'sourceQuery'] }, 'the viewer role withholds confidential fields from the key too');
    assert.equal(codeOf(await asKey('mutation { createModel(input: { name: "by-key" }) { id } }')), 'FORBIDDEN');

    // A wrong secret for the same key id, a malformed key, an unknown id.
    const wrongSecret = `mgk_${m[1]}_${'A'.repeat(43)}`;
    const unknownId = `mgk_${'0'.repeat(32)}_${secret}`;
    for (const bad of [wrongSecret, unknownId, 'mgk_not-a-key', key.slice(0, -1), `${key}x`, '']) {
      const r = await gqlWithAuthorization(t.url, `ApiKey ${bad}`, MODELS);
      assert.equal(codeOf(r), 'UNAUTHENTICATED', `ApiKey ${JSON.stringify(bad)}: ${JSON.stringify(r.errors ?? r.data)}`);
    }
    assert.equal(codeOf(await gqlWithAuthorization(t.url, `Bearer ${key}`, MODELS)), 'UNAUTHENTICATED', 'a key is no bearer token');

    const revoked = dataOf(await t.gql(admin, REVOKE_KEY, { id: created.apiKey.id })).revokeApiKey;
    assert.ok(revoked.revokedAt);
    assert.equal(codeOf(await asKey(MODELS)), 'UNAUTHENTICATED');
    assert.equal(codeOf(await asKey('{ viewer { id } }')), 'UNAUTHENTICATED');
    assert.equal(codeOf(await t.gql(admin, REVOKE_KEY, { id: created.apiKey.id })), 'CONFLICT', 'revoked once');
  });

  it('refuses keys with unknown roles or teams, or already expired', async () => {
    const cases: Array<[string, Record<string, unknown>]> = [
      ['unknown role', { name: 'k1', roles: ['superuser'], teams: ['fraud'] }],
      ['unknown team', { name: 'k2', roles: ['viewer'], teams: ['marketing'] }],
      ['expired', { name: 'k3', roles: ['viewer'], teams: ['fraud'], expiresAt: '2020-01-01T00:00:00Z' }],
    ];
    for (const [what, input] of cases) {
      assert.equal(codeOf(await t.gql(admin, CREATE_KEY, { input })), 'BAD_USER_INPUT', what);
    }
    const [{ n }] = await t.sql(`SELECT count(*)::int AS n FROM api_key WHERE name IN ('k1', 'k2', 'k3')`);
    assert.equal(n, 0);
  });

  it('never lets a key carry more than its creator', async () => {
    dataOf(await t.gql(admin, UPSERT, { input: { name: 'key-manager', rules: [{ action: 'create', subject: 'ApiKey' }] } }));
    const manager = t.token(['key-manager'], ['fraud'], 'kim-keys');
    const before = await t.sql(`SELECT count(*)::int AS n FROM api_key`);
    const escalate = await t.gql(manager, CREATE_KEY, { input: { name: 'root', roles: ['admin'], teams: ['fraud'] } });
    assert.equal(codeOf(escalate), 'FORBIDDEN');
    const otherTeam = await t.gql(manager, CREATE_KEY, { input: { name: 'vision', roles: ['key-manager'], teams: ['vision'] } });
    assert.equal(codeOf(otherTeam), 'FORBIDDEN');
    const denied = await t.sql(`SELECT count(*)::int AS n FROM audit_event WHERE actor_id = 'kim-keys' AND decision = 'DENIED' AND action = 'createApiKey'`);
    assert.equal(denied[0].n, 2);
    const own = await t.gql(manager, CREATE_KEY, { input: { name: 'own', roles: ['key-manager'], teams: ['fraud'] } });
    assert.equal(own.errors, undefined, JSON.stringify(own.errors));
    const after = await t.sql(`SELECT count(*)::int AS n FROM api_key`);
    assert.equal(after[0].n, before[0].n + 1);
  });

  it('shows aliases and traffic shares only of versions the caller may read', async () => {
    // An alias on the fraud candidate (v2) beside the demo's champion (v1): one to show, one to hide.
    const [candidate] = await t.sql(
      `SELECT mv.id::text AS id FROM model_version mv JOIN model m ON m.id = mv.model_id JOIN team tm ON tm.id = m.team_id
        WHERE tm.name = 'fraud' AND mv.status = 'CANDIDATE' ORDER BY mv.version LIMIT 1`,
    );
    assert.ok(candidate, 'the demo has a fraud candidate version');
    dataOf(
      await t.gql(admin, 'mutation ($input: SetAliasInput!) { setModelVersionAlias(input: $input) { id } }', {
        input: { modelVersion: toGlobalId('ModelVersion', candidate.id), alias: 'challenger' },
      }),
      'alias on the candidate',
    );
    dataOf(
      await t.gql(admin, UPSERT, {
        input: {
          name: 'approved-reader',
          rules: [
            { action: 'read', subject: ['Model', 'Deployment'], conditions: { teamId: { $in: '${user.teamIds}' } } },
            { action: 'read', subject: 'ModelVersion', conditions: { teamId: { $in: '${user.teamIds}' }, status: 'APPROVED' } },
          ],
        },
      }),
    );
    const reader = t.token(['approved-reader'], ['fraud'], 'amy-approved');
    const r = dataOf(
      await t.gql(reader, `{
        deployments(filter: { environment: STAGING }) { nodes { trafficSplit { weight modelVersion { version status } } } }
        models { nodes { aliases { alias modelVersion { status } } } }
      }`),
    );
    // The demo's staging split is 90 % v1 (APPROVED) and 10 % v2 (CANDIDATE): only the first is shown.
    assert.deepEqual(r.deployments.nodes[0].trafficSplit, [{ weight: 90, modelVersion: { version: 1, status: 'APPROVED' } }]);
    const aliases = r.models.nodes.flatMap((m: { aliases: Array<{ alias: string; modelVersion: { status: string } }> }) => m.aliases);
    assert.ok(aliases.some((a: { alias: string }) => a.alias === 'champion'), `the approved champion is shown: ${JSON.stringify(aliases)}`);
    for (const a of aliases) assert.equal(a.modelVersion.status, 'APPROVED', `alias ${a.alias}`);
    // The hidden alias exists: the admin sees it on the candidate.
    const all = dataOf(await t.gql(admin, '{ models(filter: { team: "fraud" }) { nodes { aliases { alias modelVersion { status } } } } }'));
    const allAliases = all.models.nodes.flatMap((m: { aliases: unknown[] }) => m.aliases);
    assert.ok(allAliases.some((a: any) => a.alias === 'challenger' && a.modelVersion.status === 'CANDIDATE'), JSON.stringify(allAliases));
  });

  it('lists roles as a connection, filtered, to those who may read them', async () => {
    const builtIn = dataOf(await t.gql(admin, '{ roles(filter: { builtIn: true }, first: 3) { totalCount nodes { name builtIn } pageInfo { hasNextPage endCursor } } }'));
    assert.equal(builtIn.roles.totalCount, DEFAULT_ROLES.length);
    assert.equal(builtIn.roles.nodes.length, 3);
    const rest = dataOf(await t.gql(admin, 'query($a: String) { roles(filter: { builtIn: true }, after: $a) { nodes { name } } }', { a: builtIn.roles.pageInfo.endCursor }));
    const names = [...builtIn.roles.nodes.map((r: { name: string }) => r.name), ...rest.roles.nodes.map((r: { name: string }) => r.name)].sort();
    assert.deepEqual(names, DEFAULT_ROLES.map((r) => r.name).sort());
    assert.equal(codeOf(await t.gql(t.token(['viewer'], ['fraud']), '{ roles { totalCount } }')), 'FORBIDDEN');
  });
});
