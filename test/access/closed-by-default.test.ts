import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { getNamedType, type GraphQLField } from 'graphql';
import { createClient, type Client } from 'graphql-ws';
import WebSocket from 'ws';
import { fromGlobalId } from '../../src/core/global-id';
import { TOPICS } from '../../src/core/events';
import { rootFieldPolicies, subscriptionPolicy } from '../../src/core/policy';
import { publishAlert } from '../../src/monitoring/alerts';
import { dataOf } from '../support/access';
import { plantIteration } from '../support/iterations';
import { plantLatencyAlert } from '../support/alerts';
import { operationsFor, type RootOperation } from '../support/operations';
import { codeOf, startTestServer, type TestServer } from '../support/harness';
import { eventually } from '../support/processes';

/** What one subscription got: data, results with errors, and how it ended (an `error` sink value: a close event or GraphQL errors). */
interface Watch {
  data: unknown[];
  errored: Array<Array<{ message: string; extensions?: { code?: string } }>>;
  failure: unknown;
  completed: boolean;
}

function watch(client: Client, op: RootOperation): Watch {
  const w: Watch = { data: [], errored: [], failure: undefined, completed: false };
  client.subscribe(
    { query: op.query, variables: op.variables },
    {
      next: (r) => (r.errors?.length ? w.errored.push(r.errors as Watch['errored'][number]) : w.data.push(r.data)),
      error: (e) => (w.failure = e ?? 'error'),
      complete: () => (w.completed = true),
    },
  );
  return w;
}

/** The code a refused subscription ended with: a GraphQL error code, or the WebSocket close code. */
function refusal(w: Watch): string | number {
  const errors = w.errored[0] ?? (Array.isArray(w.failure) ? w.failure : undefined);
  if (errors) return errors[0]?.extensions?.code ?? 'no code';
  const closed = w.failure as { code?: number } | undefined;
  return closed?.code ?? 'none';
}

/** Whether the field is declared public (the error catalogue): it answers anyone, and the snapshot test keeps that list short. */
function declaredPublic(t: TestServer, field: string): boolean {
  return rootFieldPolicies(t.server.schema).some((p) => p.policy.startsWith('public') && (p.field === `Query.${field}` || p.field === `Mutation.${field}`));
}

// Whom each policy action is granted to, within their own teams only (never the ml-engineer, who
// reads other teams' non-confidential objects).
const ROLE_FOR: Record<string, string> = { read: 'viewer', export: 'auditor' };

describe('closed by default', () => {
  let t: TestServer;
  before(async () => {
    t = await startTestServer({ demo: true });
  });
  after(async () => t?.stop());

  it('answers UNAUTHENTICATED on every Query and Mutation field without a token', async () => {
    const ops = [...operationsFor(t.server.schema, 'Query'), ...operationsFor(t.server.schema, 'Mutation')];
    assert.ok(ops.length > 30, `expected the whole API, found ${ops.length} root fields`);
    for (const op of ops) {
      const r = await t.gql(null, op.query, op.variables);
      if (declaredPublic(t, op.field)) {
        assert.equal(r.errors, undefined, `${op.field} is public: ${JSON.stringify(r.errors)}`);
        continue;
      }
      assert.equal(codeOf(r), 'UNAUTHENTICATED', `${op.field}: ${JSON.stringify(r.errors ?? r.data)}`);
      assert.ok(r.errors![0].extensions.requestId, `${op.field}: error carries a request id`);
    }
  });

  it('answers UNAUTHENTICATED for a forged or expired token', async () => {
    const forged = t.token(['admin'], ['fraud']).slice(0, -2) + 'xx';
    assert.equal(codeOf(await t.gql(forged, '{ teams { totalCount } }')), 'UNAUTHENTICATED');
    const jwt = await import('jsonwebtoken');
    const expired = jwt.default.sign({ roles: ['admin'], teams: [], exp: Math.floor(Date.now() / 1000) - 60 }, 'test-secret-that-is-long-enough-for-hs256-0123456789', { subject: 'x' });
    assert.equal(codeOf(await t.gql(expired, '{ teams { totalCount } }')), 'UNAUTHENTICATED');
    const none = jwt.default.sign({ roles: ['admin'], teams: [], sub: 'x', exp: Math.floor(Date.now() / 1000) + 60 }, '', { algorithm: 'none' as never });
    assert.equal(codeOf(await t.gql(none, '{ teams { totalCount } }')), 'UNAUTHENTICATED');
  });

  it('answers FORBIDDEN on every field but viewer for a principal without roles, whatever the arguments', async () => {
    const token = t.token([], ['fraud']);
    const ops = [...operationsFor(t.server.schema, 'Query'), ...operationsFor(t.server.schema, 'Mutation')];
    for (const op of ops) {
      const r = await t.gql(token, op.query, op.variables);
      if (op.field === 'viewer' || declaredPublic(t, op.field)) {
        assert.equal(r.errors, undefined, JSON.stringify(r.errors));
        continue;
      }
      assert.equal(codeOf(r), 'FORBIDDEN', `${op.field}: ${JSON.stringify(r.errors ?? r.data)}`);
    }
    // Malformed IDs and invalid inputs change nothing in the answer: authorization comes first.
    const bad = await t.gql(token, 'mutation { setTrafficSplit(input: { deployment: "!!", trafficSplit: [{ modelVersion: "??", weight: 7 }] }) { id } }');
    assert.equal(codeOf(bad), 'FORBIDDEN');
    const badNode = await t.gql(token, '{ node(id: "not-an-id") { id } }');
    assert.equal(codeOf(badNode), 'FORBIDDEN');
  });

  describe('every Subscription field, on a real graphql-ws connection', () => {
    const clients: Client[] = [];
    const byToken = new Map<string, Client>();
    // A fraud object of each type a subscription argument names, by type.
    const fraud: Record<string, string> = {};
    const fire: Record<string, () => Promise<void>> = {};

    const connect = (token: string | null): Client => {
      const client = createClient({
        url: t.url.replace(/^http/, 'ws') + '/graphql',
        webSocketImpl: WebSocket,
        connectionParams: token ? { authorization: `Bearer ${token}` } : {},
        retryAttempts: 0,
      });
      clients.push(client);
      return client;
    };
    const clientOf = (token: string): Client => {
      if (!byToken.has(token)) byToken.set(token, connect(token));
      return byToken.get(token)!;
    };
    // The type an ID argument names: `deployment` a Deployment, a bare `id` the field's own type.
    const namedType = (field: GraphQLField<unknown, unknown>, path: string[]): string => {
      const name = path[path.length - 1];
      return name === 'id' && path.length === 1 ? getNamedType(field.type).name : name[0].toUpperCase() + name.slice(1);
    };
    const subscriptions = () =>
      operationsFor(t.server.schema, 'Subscription', (field, path, type) => (getNamedType(type).name === 'ID' ? fraud[namedType(field, path)] ?? null : undefined));
    const refused = async (w: Watch, what: string): Promise<string | number> => {
      await eventually(`${what} to be refused`, async () => (w.completed || w.failure !== undefined ? true : undefined), 30_000, 20);
      assert.deepEqual(w.data, [], `${what}: no data`);
      return refusal(w);
    };

    before(async () => {
      const admin = t.token(['admin'], ['fraud'], 'sweep-admin');
      const d = dataOf(
        await t.gql(
          admin,
          `{
            deployments(filter: { team: "fraud", environment: STAGING }) { nodes { id trafficSplit { modelVersion { id version } } } }
            trainingRuns(filter: { team: "fraud" }, first: 1) { nodes { id } }
          }`,
        ),
        'fraud objects',
      );
      const staging = d.deployments.nodes[0];
      fraud.Deployment = staging.id;
      fraud.TrainingRun = d.trainingRuns.nodes[0].id;
      const versions = staging.trafficSplit.map((s: { modelVersion: { id: string; version: number } }) => s.modelVersion);
      const candidate = versions.find((v: { version: number }) => v.version === 2);
      // A rollout that bakes for an hour: rolloutUpdated has one to answer with meanwhile.
      dataOf(
        await t.gql(admin, 'mutation ($input: StartRolloutInput!) { startRollout(input: $input) { id } }', {
          input: { deployment: staging.id, modelVersion: candidate.id, strategy: 'CANARY', steps: [50, 100], bakeSeconds: 3600 },
        }),
        'rollout',
      );
      fraud.AuditExport = dataOf(await t.gql(t.token(['auditor'], ['fraud'], 'sweep-auditor'), 'mutation { requestAuditExport { id } }'), 'export').requestAuditExport.id;
      const alert = await plantLatencyAlert(t, 'fraud', staging.id, versions[0].id);

      // How to make each subscription's event happen (as the product publishes it): a positive
      // control delivers it to an allowed caller, so an accepted subscription is told apart from a
      // silent one.
      const events = t.server.app.events!;
      const monitorPass = async () => {
        dataOf(await t.gql(admin, 'mutation ($d: ID!) { runMonitor(deployment: $d) { windowSeconds } }', { d: staging.id }), 'monitor pass');
      };
      fire.alerts = async () => publishAlert(t.server.app, alert);
      fire.driftReport = monitorPass;
      fire.latencyReport = monitorPass;
      fire.qualityReport = monitorPass;
      fire.rolloutUpdated = async () => events.publish(TOPICS.rolloutUpdated, { id: fromGlobalId(staging.id).key });
      fire.trainingRunUpdated = async () => events.publish(TOPICS.trainingRunUpdated, { id: fromGlobalId(fraud.TrainingRun).key });
      fire.auditExportUpdated = async () => events.publish(TOPICS.auditExportUpdated, { id: fromGlobalId(fraud.AuditExport).key });
      const iterationId = await plantIteration(t, staging.id);
      fire.iterationUpdated = async () => events.publish(TOPICS.iterationUpdated, { id: fromGlobalId(staging.id).key, iterationId });
    });
    after(async () => {
      for (const c of clients) await c.dispose();
    });

    it('covers every field, each with its event and the objects its arguments name', () => {
      const ops = subscriptions();
      assert.ok(ops.length >= 6, `expected every subscription, found ${ops.length}`);
      for (const op of ops) {
        assert.ok(fire[op.field], `${op.field}: no way to make its event happen here; add one`);
        assert.ok(!JSON.stringify(op.variables).includes('null'), `${op.field}: an argument names a type without a fraud object here: ${op.query}`);
      }
    });

    it('closes the connection (4403) for an anonymous or forged caller, whatever the field', async () => {
      const forged = t.token(['admin'], ['fraud']).slice(0, -2) + 'xx';
      for (const op of subscriptions()) {
        for (const [who, token] of [
          ['anonymous', null],
          ['forged', forged],
        ] as const) {
          assert.equal(await refused(watch(connect(token), op), `${op.field} (${who})`), 4403, `${op.field} (${who})`);
        }
      }
    });

    it('refuses every field with FORBIDDEN to a principal without roles, and accepts it for one with the right role', async () => {
      const noRoles = clientOf(t.token([], ['fraud'], 'sweep-nobody'));
      for (const op of subscriptions()) {
        assert.equal(await refused(watch(noRoles, op), `${op.field} (no roles)`), 'FORBIDDEN', op.field);

        // Positive control: the same operation, by the role the field's policy calls for, is live.
        const spec = subscriptionPolicy(op.field);
        const role = spec && 'action' in spec ? ROLE_FOR[spec.action] : undefined;
        assert.ok(role, `${op.field}: no role known for its policy ${JSON.stringify(spec)}`);
        const allowed = watch(clientOf(t.token([role], ['fraud'], `sweep-${role}`)), op);
        await eventually(
          `${op.field}: an event reaches the ${role} of fraud`,
          async () => {
            if (allowed.data.length) return true;
            if (allowed.errored.length || allowed.completed || allowed.failure !== undefined) {
              assert.fail(`${op.field}: the ${role} of fraud was refused: ${JSON.stringify({ errored: allowed.errored, failure: String(allowed.failure) })}`);
            }
            await fire[op.field]();
            return undefined;
          },
          60_000,
          100,
        );
        assert.deepEqual(allowed.errored, [], op.field);
      }
    });

    it("refuses a caller of another team every team-owned object with NOT_FOUND, as if it did not exist", async () => {
      const teamOwned = new Set(
        (await t.sql<{ table_name: string }>(`SELECT table_name FROM information_schema.columns WHERE table_schema = 'public' AND column_name = 'team_id'`)).map((r) => r.table_name),
      );
      const tableOf = (type: string) => type.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toLowerCase();
      let covered = 0;
      for (const op of subscriptions()) {
        const named = Object.entries(fraud).filter(([, id]) => JSON.stringify(op.variables).includes(id));
        if (!named.some(([type]) => teamOwned.has(tableOf(type)))) {
          // Objects without a team (audit exports) are guarded by the field's policy alone.
          assert.ok(named.length > 0, `${op.field}: names no object`);
          continue;
        }
        const spec = subscriptionPolicy(op.field);
        const role = ROLE_FOR[(spec as { action: string }).action];
        const outsider = clientOf(t.token([role], ['vision'], `sweep-vision-${role}`));
        assert.equal(await refused(watch(outsider, op), `${op.field} (${role} of vision)`), 'NOT_FOUND', op.field);
        covered++;
      }
      assert.ok(covered >= 5, `team-owned subscriptions checked: ${covered}`);
    });
  });

  it('records denied mutation attempts in the audit trail', async () => {
    const token = t.token([], ['fraud'], 'nobody');
    await t.gql(token, 'mutation { createModel(input: { name: "x" }) { id } }');
    const rows = await t.sql(`SELECT decision, action, actor_id FROM audit_event WHERE actor_id = 'nobody'`);
    assert.deepEqual(rows, [{ decision: 'DENIED', action: 'createModel', actor_id: 'nobody' }]);
  });
});
