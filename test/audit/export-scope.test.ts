import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { verifyExport } from '../../src/audit/audit-export.verify';
import { startTestServer, type TestServer } from '../support/harness';

describe('exports scoped by lineage', () => {
  let t: TestServer;
  let auditor: string;
  let fraud: { model: string; v1: string; v2: string; staging: string; rollout: string };
  let visionIds: string[];

  before(async () => {
    t = await startTestServer({ demo: true });
    auditor = t.token(['auditor'], ['fraud', 'vision'], 'audrey-auditor');
    const engineer = t.token(['ml-engineer'], ['fraud'], 'erin-engineer');
    const r = await t.gql(engineer, `{
      models(filter: { name: "fraud-detector" }) { nodes { id versions { id version } } }
      deployments(filter: { team: "fraud" }) { nodes { id environment } }
    }`);
    const model = r.data.models.nodes[0];
    const v = (n: number) => model.versions.find((x: { version: number }) => x.version === n).id;
    const staging = r.data.deployments.nodes.find((d: { environment: string }) => d.environment === 'STAGING').id;
    const started = await t.gql(engineer, `mutation($i: StartRolloutInput!) { startRollout(input: $i) { id } }`, {
      i: { deployment: staging, modelVersion: v(2), strategy: 'CANARY', steps: [20, 100], bakeSeconds: 3600 },
    });
    assert.equal(started.errors, undefined, JSON.stringify(started.errors));
    fraud = { model: model.id, v1: v(1), v2: v(2), staging, rollout: started.data.startRollout.id };
    // Everything of the other team that the trail names.
    const rows = await t.sql<{ id: string }>(
      `SELECT DISTINCT subject_id AS id FROM audit_event WHERE subject_id IS NOT NULL AND (after::text LIKE '%vision%' OR after->>'teamId' = (SELECT id::text FROM team WHERE name = 'vision'))`,
    );
    visionIds = rows.map((x) => x.id);
    assert.ok(visionIds.length > 5);
  });
  after(async () => t?.stop());

  async function scoped(scope: string) {
    const res = await fetch(`${t.url}/audit/export?format=ndjson&scope=${scope}`, { headers: { authorization: `Bearer ${auditor}` } });
    assert.equal(res.status, 200);
    const text = await res.text();
    const r = verifyExport(text);
    assert.equal(r.ok, true, r.problem ?? '');
    const lines = text.trimEnd().split('\n').map((l) => JSON.parse(l));
    return { text, events: lines.filter((l) => l.type === 'event'), omitted: lines.filter((l) => l.type === 'omitted') };
  }

  it("a model's export holds its approvals, runs, dataset versions, deployments and rollouts, and nothing of the other team", async () => {
    const { text, events, omitted } = await scoped(fraud.model);
    const actions = new Set(events.map((e) => e.action));
    for (const a of ['createModel', 'createDataset', 'registerDatasetVersion', 'uploadDatasetContent', 'registerCodeVersion', 'registerEnvironment', 'startTrainingRun', 'registerModelVersion', 'approveModelVersion', 'setModelVersionAlias', 'createDeployment', 'startRollout']) {
      assert.ok(actions.has(a), `the export holds ${a} (it has ${[...actions].join(', ')})`);
    }
    const approval = events.find((e) => e.action === 'approveModelVersion');
    assert.equal(approval.subjectId, fraud.v1);
    assert.equal(approval.actorId, 'demo:fraud-reviewer');
    assert.ok(events.some((e) => e.action === 'startRollout' && e.subjectId === fraud.rollout));
    assert.ok(events.some((e) => e.subjectType === 'TrainingRun'));
    // Nothing of the vision team shows; its events are hash-only lines.
    for (const e of events) assert.ok(!visionIds.includes(e.subjectId), `${e.action} ${e.subjectId} belongs to the other team`);
    const shown = events.map((e) => JSON.stringify(e)).join('\n');
    assert.doesNotMatch(shown, /vision|defect-classifier|product-images/);
    assert.ok(omitted.length > 0);
    assert.ok(omitted.every((o) => Object.keys(o).sort().join(',') === 'hash,prevHash,seq,seqTo,type,withheld'));
    assert.doesNotMatch(text.split('\n').filter((l) => l.includes('"omitted"')).join('\n'), /vision/);
  });

  it('a deployment scope holds the deployment, its rollouts and the versions it serves, not the other deployment', async () => {
    const { events } = await scoped(fraud.staging);
    const actions = new Set(events.map((e) => e.action));
    for (const a of ['createDeployment', 'startRollout', 'registerModelVersion', 'approveModelVersion', 'registerDatasetVersion']) assert.ok(actions.has(a), a);
    const deployments = new Set(events.filter((e) => e.subjectType === 'Deployment').map((e) => e.subjectId));
    assert.deepEqual([...deployments], [fraud.staging]);
  });

  it('a model version scope holds its own lineage: its run and approval, not the sibling version', async () => {
    const { events } = await scoped(fraud.v1);
    const versions = new Set(events.filter((e) => e.subjectType === 'ModelVersion').map((e) => e.subjectId));
    assert.deepEqual([...versions], [fraud.v1]);
    assert.ok(events.some((e) => e.action === 'approveModelVersion'));
    assert.ok(events.some((e) => e.subjectType === 'TrainingRun'));
  });
});
