import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { isObjectType, type GraphQLInterfaceType } from 'graphql';
import { toGlobalId } from '../../src/core/global-id';
import { KINDS, NODE_KINDS, type KindName } from '../../src/core/subjects';
import { dataOf } from '../support/access';
import { plantIteration } from '../support/iterations';
import { eventually } from '../support/processes';
import { plantLatencyAlert } from '../support/alerts';
import { codeOf, startTestServer, type TestServer } from '../support/harness';

const NODE = 'query ($id: ID!) { node(id: $id) { __typename id } }';

describe('node(id:) answers for every type that implements Node', () => {
  let t: TestServer;
  let admin: string;
  let implementors: string[];

  before(async () => {
    t = await startTestServer({ demo: true });
    admin = t.token(['admin'], [], 'node-admin');
    implementors = t.server.schema
      .getImplementations(t.server.schema.getType('Node') as GraphQLInterfaceType)
      .objects.map((o) => o.name)
      .sort();

    // The demo holds most kinds; these are made here so that every implementor has one object.
    const d = dataOf(
      await t.gql(admin, '{ deployments(filter: { team: "fraud", environment: STAGING }) { nodes { id trafficSplit { modelVersion { id version } } } } }'),
      'deployments',
    );
    const staging = d.deployments.nodes[0];
    const candidate = staging.trafficSplit.map((s: { modelVersion: { id: string; version: number } }) => s.modelVersion).find((v: { version: number }) => v.version === 2);
    // An address literal: creating a channel resolves its host. A rule sends the team's notifications
    // to it and a silence holds them back, so a delivery is recorded and nothing is sent.
    const engineer = t.token(['ml-engineer'], ['fraud'], 'node-engineer');
    const channel = dataOf(
      await t.gql(engineer, 'mutation { createNotificationChannel(input: { team: "fraud", name: "node-hook", kind: WEBHOOK, url: "https://203.0.113.10/hook" }) { channel { id } } }'),
      'channel',
    ).createNotificationChannel.channel.id;
    dataOf(await t.gql(engineer, 'mutation ($c: ID!) { createNotificationRule(input: { team: "fraud", name: "node-rule", channel: $c, action: IMMEDIATE }) { id } }', { c: channel }), 'rule');
    dataOf(await t.gql(engineer, 'mutation { silenceAlerts(input: { team: "fraud", durationSeconds: 600, comment: "node lookups" }) { id } }'), 'silence');
    const rollout = dataOf(
      await t.gql(admin, 'mutation ($input: StartRolloutInput!) { startRollout(input: $input) { id } }', {
        input: { deployment: staging.id, modelVersion: candidate.id, strategy: 'CANARY', steps: [50, 100], bakeSeconds: 3600 },
      }),
      'rollout',
    ).startRollout.id;
    dataOf(await t.gql(admin, 'mutation ($r: ID!) { pauseRollout(input: { rollout: $r }) { status } }', { r: rollout }), 'pause');
    await eventually('the pause notification is routed to the channel', async () => ((await t.sql(`SELECT 1 FROM notification_delivery`)).length ? true : undefined), 30_000, 100);
    dataOf(await t.gql(t.token(['auditor'], ['fraud'], 'node-auditor'), 'mutation { requestAuditExport { id } }'), 'export');
    dataOf(await t.gql(admin, 'mutation { upsertRole(input: { name: "node-reader", rules: [{ action: "read", subject: "Model" }] }) { name } }'), 'role');
    dataOf(await t.gql(admin, 'mutation { createApiKey(input: { name: "node-key", roles: ["viewer"], teams: ["fraud"] }) { key } }'), 'key');
    await plantLatencyAlert(t, 'fraud', staging.id, candidate.id);
    await plantIteration(t, staging.id);
  });

  after(() => t?.stop());

  it('the subject table marks as nodes exactly the types the schema says implement Node', () => {
    assert.deepEqual([...NODE_KINDS].sort(), implementors);
    // Approval, Alert and AuditExport were once refused as WRONG_ID_TYPE although the schema listed them.
    for (const kind of ['Approval', 'Alert', 'AuditExport']) assert.ok(implementors.includes(kind), kind);
  });

  it('an admin reads one object of each implementor by its global ID', async () => {
    assert.ok(implementors.length >= 18, `${implementors.length} implementors`);
    for (const type of implementors) {
      const kind = type as KindName;
      const spec = KINDS[kind] as { node?: 'id' | 'name' | 'seq' };
      const meta = t.server.app.db.getMetadata(type);
      const column = meta.findColumnWithPropertyName(spec.node!)!.databaseName;
      const [row] = await t.sql<{ key: string }>(`SELECT ${column}::text AS key FROM ${meta.tableName} ORDER BY ${column} LIMIT 1`);
      assert.ok(row, `no ${type} to look up: the test must make one`);
      const id = toGlobalId(kind, row.key);
      const r = await t.gql(admin, NODE, { id });
      assert.equal(r.errors, undefined, `${type}: ${JSON.stringify(r.errors)}`);
      assert.deepEqual(r.data.node, { __typename: type, id }, type);
    }
  });

  it('kinds read through what they belong to stay hidden from callers who may not read that', async () => {
    const [approval] = await t.sql<{ id: string }>(`SELECT a.id::text AS id FROM approval a JOIN team tm ON tm.id = a.team_id WHERE tm.name = 'fraud' LIMIT 1`);
    const approvalId = toGlobalId('Approval', approval.id);
    const fraudViewer = t.token(['viewer'], ['fraud'], 'node-fraud-viewer');
    const visionViewer = t.token(['viewer'], ['vision'], 'node-vision-viewer');
    assert.equal(dataOf(await t.gql(fraudViewer, NODE, { id: approvalId }), 'fraud approval').node?.__typename, 'Approval');
    assert.equal(dataOf(await t.gql(visionViewer, NODE, { id: approvalId }), 'vision approval').node, null);

    const [exp] = await t.sql<{ id: string }>(`SELECT id::text AS id FROM audit_export WHERE requested_by = 'node-auditor' LIMIT 1`);
    const exportId = toGlobalId('AuditExport', exp.id);
    assert.equal(dataOf(await t.gql(t.token(['auditor'], ['fraud'], 'node-auditor'), NODE, { id: exportId }), 'own export').node?.__typename, 'AuditExport');
    assert.equal(dataOf(await t.gql(fraudViewer, NODE, { id: exportId }), 'foreign export').node, null);
    // Its requester, once they may no longer export, is not handed its download links this way either.
    assert.equal(dataOf(await t.gql(t.token(['viewer'], ['fraud'], 'node-auditor'), NODE, { id: exportId }), 'own export, right lost').node, null);
  });

  it('a global ID of a kind that is not a node, or of no kind, is refused as WRONG_ID_TYPE', async () => {
    for (const id of [toGlobalId('Artifact', 'a'.repeat(64)), toGlobalId('Metrics', 'x'), Buffer.from('constructor:1').toString('base64url'), Buffer.from('Query:1').toString('base64url')]) {
      const r = await t.gql(admin, NODE, { id });
      assert.equal(codeOf(r), 'BAD_USER_INPUT', id);
      assert.equal(r.errors?.[0].extensions.reason, 'WRONG_ID_TYPE', id);
    }
    // Every object type is either a node or not, never half: the schema and the table agree.
    for (const type of Object.values(t.server.schema.getTypeMap())) {
      if (!isObjectType(type) || !(type.name in KINDS)) continue;
      assert.equal(type.getInterfaces().some((i) => i.name === 'Node'), NODE_KINDS.includes(type.name as never), type.name);
    }
  });
});
