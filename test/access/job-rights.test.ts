import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { DEFAULT_ROLES } from '../../src/access/policy-rules';
import { fromGlobalId } from '../../src/core/global-id';
import { QUEUES } from '../../src/core/queue/queues';
import { buildLogisticRegressionOnnx } from '../../src/registry/onnx-builders';
import { dataOf, gqlWithAuthorization } from '../support/access';
import { startTestServer, type TestServer } from '../support/harness';
import { uploadArtifact } from '../support/http';
import { eventually } from '../support/processes';
import { plantRollup } from '../support/rollups';
import { storedDatasetVersion, trainerInputs, waitForRun } from '../support/training';

const keyOf = (id: string) => fromGlobalId(id).key;
const rulesOf = (role: string) => DEFAULT_ROLES.find((r) => r.name === role)!.rules;

const UPSERT_ROLE = 'mutation($i: UpsertRoleInput!) { upsertRole(input: $i) { name } }';
const START_RUN = 'mutation($i: StartTrainingRunInput!) { startTrainingRun(input: $i) { id status } }';
const START_ROLLOUT = 'mutation($i: StartRolloutInput!) { startRollout(input: $i) { id status } }';
const ROLLOUT = 'query($id: ID!) { node(id: $id) { ... on Rollout { status currentStep percent reason } } }';
const SPLIT = 'query($id: ID!) { node(id: $id) { ... on Deployment { trafficSplit { weight modelVersion { id } } } } }';
const REQUEST_EXPORT = 'mutation { requestAuditExport(format: NDJSON) { id status } }';
const EXPORT = 'query($id: ID!) { auditExport(id: $id) { status error } }';

interface Via {
  jobs: string[];
  onBehalfOf: string[];
}

describe('jobs act as the principal that caused them, with the rights it has when they run', () => {
  let t: TestServer;
  let admin: string;
  let engineer: string;
  let exporter: string;
  let model: string;
  let runInput: Record<string, unknown>;
  let deployment: string;
  let v1: string;
  let v2: string;

  // A role each principal holds, edited with upsertRole while their work waits in the queue.
  const setRole = async (name: string, rules: unknown[]) => dataOf(await t.gql(admin, UPSERT_ROLE, { i: { name, rules } }), `upsertRole ${name}`);
  const engineerRules = rulesOf('ml-engineer');
  const queues = () => [QUEUES.training, QUEUES.rollouts, QUEUES.auditExports].map((q) => t.server.app.queues!.get(q));
  const eventsOf = (subject: string) =>
    t.sql<{ action: string; actor_id: string; reason: string | null; via: Via | null }>(`SELECT action, actor_id, reason, via FROM audit_event WHERE subject_id = $1 ORDER BY seq`, [subject]);
  const rolloutOf = async (id: string) => dataOf(await t.gql(engineer, ROLLOUT, { id })).node;
  const finished = (id: string) =>
    eventually(`rollout ${id} to finish`, async () => {
      const r = await rolloutOf(id);
      return ['SUCCEEDED', 'ROLLED_BACK', 'ABORTED'].includes(r.status) ? r : undefined;
    });
  const exportOf = async (id: string) => dataOf(await t.gql(admin, EXPORT, { id })).auditExport;
  const exportFinished = (id: string) =>
    eventually(`export ${id} to finish`, async () => {
      const e = await exportOf(id);
      return ['SUCCEEDED', 'FAILED'].includes(e.status) ? e : undefined;
    });

  before(async () => {
    t = await startTestServer();
    admin = t.token(['admin'], [], 'ada-admin');
    dataOf(await t.gql(admin, 'mutation { createTeam(input: { name: "fraud" }) { id } }'), 'createTeam');
    await setRole('engineer-custom', engineerRules);
    await setRole('exporter-custom', rulesOf('auditor'));
    engineer = t.token(['engineer-custom'], ['fraud'], 'eve-engineer');
    exporter = t.token(['exporter-custom'], [], 'xavier-exporter');

    model = dataOf(await t.gql(engineer, 'mutation { createModel(input: { team: "fraud", name: "jobs-model" }) { id } }'), 'createModel').createModel.id;
    const dataset = await storedDatasetVersion(t, engineer, { team: 'fraud', name: 'jobs-data' });
    const inputs = await trainerInputs(t, engineer, 'fraud');
    runInput = {
      model,
      datasets: [{ datasetVersion: dataset, role: 'TRAIN' }],
      ...inputs,
      configContent: { model: 'logistic_regression', epochs: 5, lr: 0.2 },
      seeds: { split: 1, init: 2, shuffle: 3 },
    };
    // Two uploaded versions and a development deployment serving the first.
    const versions: string[] = [];
    for (const bias of [0.1, 0.2]) {
      const up = await uploadArtifact(t.url, engineer, buildLogisticRegressionOnnx({ weights: [0.3, 0.2, 0.1, 0.4], bias }));
      const reg = await t.gql(engineer, 'mutation($m: ID!, $a: String!) { registerModelVersion(input: { model: $m, artifactSha256: $a }) { id } }', { m: model, a: up.json.sha256 });
      versions.push(dataOf(reg, 'registerModelVersion').registerModelVersion.id);
    }
    [v1, v2] = versions;
    const dev = await t.gql(engineer, 'mutation($v: ID!) { createDeployment(input: { team: "fraud", name: "jobs-dev", environment: DEVELOPMENT, trafficSplit: [{ modelVersion: $v, weight: 100 }] }) { id } }', { v: v1 });
    deployment = dataOf(dev, 'createDeployment').createDeployment.id;
  });
  after(async () => {
    for (const q of t ? queues() : []) await q.resume().catch(() => undefined);
    await t?.stop();
  });

  it('work queued by principals who lose the right before it runs fails FORBIDDEN (or UNAUTHENTICATED for a revoked key) and changes nothing it was refused', async () => {
    // The queues hold every job until the rights have changed.
    for (const q of queues()) await q.pause();
    const run = dataOf(await t.gql(engineer, START_RUN, { i: { ...runInput, name: 'refused' } }), 'startTrainingRun').startTrainingRun;
    assert.equal(run.status, 'QUEUED');
    const rollout = dataOf(await t.gql(engineer, START_ROLLOUT, { i: { deployment, modelVersion: v2, strategy: 'CANARY', steps: [50, 100], bakeSeconds: 1 } }), 'startRollout').startRollout;
    const byRole = dataOf(await t.gql(exporter, REQUEST_EXPORT), 'requestAuditExport').requestAuditExport;
    const created = dataOf(await t.gql(admin, 'mutation { createApiKey(input: { name: "exports", roles: ["auditor"], teams: [] }) { key apiKey { id } } }'), 'createApiKey').createApiKey;
    const byKey = dataOf(await gqlWithAuthorization(t.url, `ApiKey ${created.key}`, REQUEST_EXPORT), 'requestAuditExport by key').requestAuditExport;

    // While they wait: the engineer's role may no longer register model versions nor move traffic,
    // the exporter's no longer export, and the key is revoked.
    await setRole('engineer-custom', [
      ...engineerRules,
      { action: 'create', subject: 'ModelVersion', inverted: true, reason: 'registration moved to the release team' },
      { action: 'update', subject: 'Deployment', inverted: true, reason: 'deployments moved to the release team' },
    ]);
    await setRole('exporter-custom', [{ action: 'read', subject: 'all' }]);
    dataOf(await t.gql(admin, 'mutation($k: ID!) { revokeApiKey(input: { apiKey: $k }) { revokedAt } }', { k: created.apiKey.id }), 'revokeApiKey');
    for (const q of queues()) await q.resume();

    // The training run: FAILED, FORBIDDEN on the run, no model version; its end recorded as the engineer's, through the job.
    const failed = await waitForRun(t, admin, run.id);
    assert.equal(failed.status, 'FAILED', JSON.stringify(failed));
    assert.match(failed.failureReason, /^FORBIDDEN: Not allowed to create this ModelVersion/);
    assert.deepEqual(failed.outputs, []);
    const [{ n }] = await t.sql<{ n: number }>('SELECT count(*)::int AS n FROM model_version WHERE training_run_id = $1', [keyOf(run.id)]);
    assert.equal(n, 0, 'nothing registered');
    const runTrail = await eventsOf(run.id);
    assert.deepEqual(runTrail.map((e) => [e.action, e.actor_id]), [['startTrainingRun', 'eve-engineer'], ['failTrainingRun', 'eve-engineer']]);
    assert.deepEqual(runTrail[1].via, { jobs: [`training/${keyOf(run.id)}`], onBehalfOf: [] });

    // The rollout step: refused, so the rollout never advanced; it was rolled back to what it started from.
    const ended = await finished(rollout.id);
    assert.equal(ended.status, 'ROLLED_BACK', JSON.stringify(ended));
    assert.equal(ended.currentStep, 0);
    assert.match(ended.reason, /FORBIDDEN: Not allowed to update this Deployment/);
    assert.deepEqual(dataOf(await t.gql(admin, SPLIT, { id: deployment })).node.trafficSplit, [{ weight: 100, modelVersion: { id: v1 } }]);
    const rolloutTrail = await eventsOf(rollout.id);
    assert.deepEqual(rolloutTrail.map((e) => [e.action, e.actor_id]), [['startRollout', 'eve-engineer'], ['rollbackRollout', 'eve-engineer']]);
    assert.deepEqual(rolloutTrail[1].via, { jobs: [`rollouts/${keyOf(rollout.id)}-g1`], onBehalfOf: [] });

    // The exports: FAILED, FORBIDDEN for the exporter whose role lost `export`, UNAUTHENTICATED for the revoked key.
    const refusedExport = await exportFinished(byRole.id);
    assert.equal(refusedExport.status, 'FAILED');
    assert.match(refusedExport.error, /^FORBIDDEN: Not allowed to export AuditEvent/);
    const keyExport = await exportFinished(byKey.id);
    assert.equal(keyExport.status, 'FAILED');
    assert.match(keyExport.error, /^UNAUTHENTICATED: The API key that queued this work has been revoked/);
    const exportTrail = await eventsOf(byKey.id);
    const keyPrincipal = `apikey:${keyOf(created.apiKey.id)}`;
    assert.deepEqual(exportTrail.map((e) => [e.action, e.actor_id]), [['requestAuditExport', keyPrincipal], ['finishAuditExport', keyPrincipal]]);
    assert.deepEqual(exportTrail[1].via, { jobs: [`audit-exports/audit-export-${keyOf(byKey.id)}`], onBehalfOf: [] });
    const [{ files }] = await t.sql<{ files: number }>('SELECT count(*)::int AS files FROM audit_export WHERE file_sha256 IS NOT NULL');
    assert.equal(files, 0, 'no file written for either');
  });

  it("work that proceeds is audited as the principal's, through its job (and the jobs before it)", async () => {
    await setRole('engineer-custom', engineerRules);
    const run = dataOf(await t.gql(engineer, START_RUN, { i: { ...runInput, name: 'allowed' } }), 'startTrainingRun').startTrainingRun;
    const done = await waitForRun(t, engineer, run.id);
    assert.equal(done.status, 'SUCCEEDED', JSON.stringify(done));
    const viaRun = { jobs: [`training/${keyOf(run.id)}`], onBehalfOf: [] };
    const runTrail = await eventsOf(run.id);
    assert.deepEqual(
      runTrail.map((e) => [e.action, e.actor_id, e.via]),
      [
        ['startTrainingRun', 'eve-engineer', null],
        ['beginTrainingRun', 'eve-engineer', viaRun],
        ['completeTrainingRun', 'eve-engineer', viaRun],
      ],
    );
    assert.deepEqual((await eventsOf(done.outputs[0].id)).map((e) => [e.action, e.actor_id, e.via]), [['registerModelVersion', 'eve-engineer', viaRun]]);
    // The same, as a client reads it.
    const read = dataOf(
      await t.gql(admin, 'query($s: ID) { auditEvents(filter: { subject: $s }) { nodes { action actorId via { jobs onBehalfOf } } } }', { s: run.id }),
      'auditEvents',
    );
    assert.deepEqual(read.auditEvents.nodes.find((e: { action: string }) => e.action === 'completeTrainingRun').via, viaRun);

    // Each step of a rollout is checked by the step scheduled before it: the jobs add up. The steps
    // advance on the evidence the inference path records (a window of 50 clean requests for v2).
    const rollout = dataOf(await t.gql(engineer, START_ROLLOUT, { i: { deployment, modelVersion: v2, strategy: 'CANARY', steps: [50, 100], bakeSeconds: 1, minRequests: 50 } }), 'startRollout').startRollout;
    await plantRollup(t, keyOf(deployment), keyOf(v2), { requests: 50, errors: 0, latencyMs: 3, windowSeconds: 600 });
    assert.equal((await finished(rollout.id)).status, 'SUCCEEDED');
    const key = keyOf(rollout.id);
    assert.deepEqual(
      (await eventsOf(rollout.id)).map((e) => [e.action, e.actor_id, e.via]),
      [
        ['startRollout', 'eve-engineer', null],
        ['advanceRollout', 'eve-engineer', { jobs: [`rollouts/${key}-g1`], onBehalfOf: [] }],
        ['advanceRollout', 'eve-engineer', { jobs: [`rollouts/${key}-g1`, `rollouts/${key}-g2`], onBehalfOf: [] }],
      ],
    );
  });
});
