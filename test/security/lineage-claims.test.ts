import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { buildLogisticRegressionOnnx } from '../../src/registry/onnx-builders';
import { uploadArtifact } from '../support/audit';
import { startTestServer, type GqlResult, type TestServer } from '../support/harness';
import { waitForRun } from '../support/training';

const START = `mutation($i: StartTrainingRunInput!) { startTrainingRun(input: $i) { id status } }`;
const REGISTER = `mutation($i: RegisterModelVersionInput!) { registerModelVersion(input: $i) { id version trainingRun { id } } }`;
const RECORD = `mutation($i: RecordTrainingRunInput!) { recordTrainingRun(input: $i) { id } }`;
const uuidOf = (id: string) => Buffer.from(id, 'base64url').toString().split(':')[1];

interface TeamDemo {
  model: string;
  run1: string;
  codeVersion: string;
  environment: string;
  config: string;
  seedSet: string;
  datasets: Array<{ role: string; datasetVersion: string }>;
}

/** What the demo gives a team: its model, its first trained run and that run's inputs. */
async function teamDemo(t: TestServer, token: string, team: string): Promise<TeamDemo> {
  const r = await t.gql(
    token,
    `query($team: String!) {
      models(filter: { team: $team }) { nodes { id } }
      trainingRuns(filter: { team: $team }) { nodes { id name codeVersion { id } environment { id } config { id } seedSet { id } datasets { role datasetVersion { id } } } }
    }`,
    { team },
  );
  assert.equal(r.errors, undefined, JSON.stringify(r.errors));
  const run = r.data.trainingRuns.nodes.find((n: { name: string }) => n.name.endsWith('-train-1'));
  return {
    model: r.data.models.nodes[0].id,
    run1: run.id,
    codeVersion: run.codeVersion.id,
    environment: run.environment.id,
    config: run.config.id,
    seedSet: run.seedSet.id,
    datasets: run.datasets.map((d: { role: string; datasetVersion: { id: string } }) => ({ role: d.role, datasetVersion: d.datasetVersion.id })),
  };
}

/** The refusal a registration must meet: its code and reason, and nothing written. */
function assertRefused(r: GqlResult, code: string, reason: string): void {
  assert.equal(r.data?.registerModelVersion ?? null, null, `refused, not registered: ${JSON.stringify(r.data)}`);
  assert.equal(r.errors?.[0]?.extensions.code, code, JSON.stringify(r.errors));
  assert.equal(r.errors?.[0]?.extensions.reason, reason, JSON.stringify(r.errors));
}

describe('a training run’s output cannot be claimed', () => {
  let t: TestServer;
  let fraudEngineer: string;
  let visionEngineer: string;
  let fraud: TeamDemo;
  let vision: TeamDemo;
  let fraudArtifact: string;
  let visionArtifact: string;

  before(async () => {
    t = await startTestServer({ demo: true });
    fraudEngineer = t.token(['ml-engineer'], ['fraud'], 'fay-fraud');
    visionEngineer = t.token(['ml-engineer'], ['vision'], 'vic-vision');
    fraud = await teamDemo(t, fraudEngineer, 'fraud');
    vision = await teamDemo(t, visionEngineer, 'vision');
    const up = await uploadArtifact(t, fraudEngineer, buildLogisticRegressionOnnx({ weights: [0.3, -0.2, 0.1, 0.05], bias: 0.1, docString: 'fraud look-alike' }));
    assert.ok(up.status === 201 || up.status === 200, JSON.stringify(up.body));
    fraudArtifact = up.body.sha256;
    const upv = await uploadArtifact(t, visionEngineer, buildLogisticRegressionOnnx({ weights: [0.2, 0.4, -0.3], bias: 0, docString: 'vision by hand' }));
    assert.ok(upv.status === 201 || upv.status === 200, JSON.stringify(upv.body));
    visionArtifact = upv.body.sha256;
  });
  after(async () => t?.stop());

  const deniedEvents = (actor: string) =>
    t.sql(`SELECT action, subject_type, subject_id, reason FROM audit_event WHERE actor_id = $1 AND decision = 'DENIED' ORDER BY seq`, [actor]);

  it('refuses another team’s queued run to a read-only engineer, audits the denial, and the run still yields its own version', async () => {
    const startVision = (name: string, config: Record<string, unknown>) =>
      t.gql(visionEngineer, START, {
        i: { model: vision.model, name, datasets: vision.datasets, codeVersion: vision.codeVersion, environment: vision.environment, seedSet: vision.seedSet, ...config },
      }).then((r) => {
        assert.equal(r.errors, undefined, JSON.stringify(r.errors));
        return r.data.startTrainingRun.id as string;
      });
    // The server trains one run at a time: the second waits in the queue behind the first.
    const busy = await startVision('vision-busy', { configContent: { model: 'mlp', hidden: [32, 32], epochs: 150 } });
    const queued = await startVision('vision-queued', { config: vision.config });
    const [{ status }] = await t.sql(`SELECT status FROM training_run WHERE id = $1`, [uuidOf(queued)]);
    assert.ok(['QUEUED', 'RUNNING'].includes(status), status);

    const hijack = await t.gql(fraudEngineer, REGISTER, { i: { model: fraud.model, artifactSha256: fraudArtifact, trainingRun: queued } });
    assertRefused(hijack, 'FORBIDDEN', 'REGISTRY_RUN_FOREIGN_TEAM');
    const denied = await deniedEvents('fay-fraud');
    assert.deepEqual(
      denied.map((e: { action: string; subject_type: string; subject_id: string }) => [e.action, e.subject_type, e.subject_id]),
      [['registerModelVersion', 'TrainingRun', queued]],
    );
    const [{ n: fraudClaims }] = await t.sql(`SELECT count(*)::int AS n FROM model_version WHERE training_run_id = $1`, [uuidOf(queued)]);
    assert.equal(fraudClaims, 0, 'nothing half written');

    for (const id of [busy, queued]) {
      const run = await waitForRun(t, visionEngineer, id, 180_000);
      assert.equal(run.status, 'SUCCEEDED', JSON.stringify(run));
      assert.equal(run.outputs.length, 1);
      assert.equal(run.outputs[0].model.name, 'defect-classifier');
      assert.equal(run.outputs[0].trainingRun.id, id);
    }
  });

  it('fails, with the reason, a run whose output slot was filled before claims were checked: it never stays RUNNING', async () => {
    const start = (name: string, config: Record<string, unknown>) =>
      t.gql(visionEngineer, START, {
        i: { model: vision.model, name, datasets: vision.datasets, codeVersion: vision.codeVersion, environment: vision.environment, seedSet: vision.seedSet, ...config },
      });
    const busy = await start('vision-busy-again', { configContent: { model: 'mlp', hidden: [32, 32], epochs: 150 } });
    const queued = await start('vision-claimed-earlier', { config: vision.config });
    assert.equal(queued.errors, undefined, JSON.stringify(queued.errors));
    const runId = uuidOf(queued.data.startTrainingRun.id);
    // A claim as a server without the checks wrote it: a fraud version naming the vision run.
    const [claim] = await t.sql(
      `INSERT INTO model_version (model_id, team_id, version, training_run_id, artifact_sha256, artifact_size_bytes, format, signature_json, metrics, status, created_by)
       SELECT model_id, team_id, (SELECT max(version) + 1 FROM model_version WHERE model_id = v.model_id), $1, artifact_sha256, artifact_size_bytes, format, signature_json, metrics, 'REGISTERED', 'fay-fraud'
         FROM model_version v WHERE training_run_id = $2 RETURNING id`,
      [runId, uuidOf(fraud.run1)],
    );
    assert.ok(claim.id);
    const run = await waitForRun(t, visionEngineer, queued.data.startTrainingRun.id, 180_000);
    assert.equal(run.status, 'FAILED', JSON.stringify(run));
    assert.match(run.failureReason, /output slot is taken by model version .* registered by fay-fraud/);
    const trail = await t.sql(`SELECT action, decision::text AS decision FROM audit_event WHERE subject_id = $1 ORDER BY seq`, [queued.data.startTrainingRun.id]);
    const actions = trail.map((e: { action: string }) => e.action);
    assert.equal(actions.at(-1), 'failTrainingRun', actions.join(', '));
    assert.ok(!actions.includes('completeTrainingRun'), actions.join(', '));
    assert.equal((await waitForRun(t, visionEngineer, busy.data.startTrainingRun.id, 180_000)).status, 'SUCCEEDED');
  });

  it('refuses a run that is still queued or running to its own team: its output is the server’s to register', async () => {
    const run = await t.gql(visionEngineer, START, {
      i: { model: vision.model, name: 'vision-own-claim', datasets: vision.datasets, codeVersion: vision.codeVersion, environment: vision.environment, config: vision.config, seedSet: vision.seedSet },
    });
    assert.equal(run.errors, undefined, JSON.stringify(run.errors));
    const id = run.data.startTrainingRun.id;
    const claim = await t.gql(visionEngineer, REGISTER, { i: { model: vision.model, artifactSha256: visionArtifact, trainingRun: id } });
    // It may have finished meanwhile on a fast machine: then its slot is filled, refused all the same.
    const [{ status }] = await t.sql(`SELECT status FROM training_run WHERE id = $1`, [uuidOf(id)]);
    if (status === 'SUCCEEDED') assertRefused(claim, 'CONFLICT', 'REGISTRY_RUN_OUTPUT_TAKEN');
    else assertRefused(claim, 'CONFLICT', 'REGISTRY_RUN_IN_PROGRESS');
    const done = await waitForRun(t, visionEngineer, id, 180_000);
    assert.equal(done.status, 'SUCCEEDED', JSON.stringify(done));
    assert.equal(done.outputs.length, 1);
    assert.notEqual(done.outputs[0].artifactSha256, visionArtifact, 'the trained model, not the claimed one');
  });

  it('refuses an output slot that is already filled, as CONFLICT, audited as denied', async () => {
    const r = await t.gql(visionEngineer, REGISTER, { i: { model: vision.model, artifactSha256: visionArtifact, trainingRun: vision.run1 } });
    assertRefused(r, 'CONFLICT', 'REGISTRY_RUN_OUTPUT_TAKEN');
    const denied = (await deniedEvents('vic-vision')).filter((e: { subject_id: string }) => e.subject_id === vision.run1);
    assert.deepEqual(
      denied.map((e: { action: string; subject_type: string; reason: string }) => [e.action, e.subject_type]),
      [['registerModelVersion', 'TrainingRun']],
    );
    assert.match(denied[0].reason, /already/);
    const [{ n }] = await t.sql(`SELECT count(*)::int AS n FROM model_version WHERE training_run_id = $1`, [uuidOf(vision.run1)]);
    assert.equal(n, 1);
  });

  it('refuses, even to an admin, a run of another team or one bound to another model', async () => {
    const admin = t.token(['admin'], ['fraud', 'vision'], 'ada-admin');
    const crossTeam = await t.gql(admin, REGISTER, { i: { model: fraud.model, artifactSha256: fraudArtifact, trainingRun: vision.run1 } });
    assertRefused(crossTeam, 'FORBIDDEN', 'REGISTRY_RUN_FOREIGN_TEAM');
    const other = await t.gql(visionEngineer, 'mutation { createModel(input: { team: "vision", name: "other-classifier" }) { id } }');
    assert.equal(other.errors, undefined, JSON.stringify(other.errors));
    const crossModel = await t.gql(visionEngineer, REGISTER, { i: { model: other.data.createModel.id, artifactSha256: visionArtifact, trainingRun: vision.run1 } });
    assertRefused(crossModel, 'FORBIDDEN', 'REGISTRY_RUN_FOREIGN_MODEL');
  });

  it('refuses a run the caller may read but not update', async () => {
    const admin = t.token(['admin'], ['fraud', 'vision'], 'ada-admin');
    // May register versions of the team's models and read its runs, but not change a run.
    const role = await t.gql(admin, 'mutation ($input: UpsertRoleInput!) { upsertRole(input: $input) { name } }', {
      input: {
        name: 'registrar',
        rules: [
          { action: 'read', subject: ['Team', 'TrainingRun', 'Model', 'ModelVersion', 'Artifact'] },
          { action: ['create', 'update'], subject: ['Model', 'ModelVersion'], conditions: { teamId: { $in: '${user.teamIds}' } } },
        ],
      },
    });
    assert.equal(role.errors, undefined, JSON.stringify(role.errors));
    const registrar = t.token(['registrar'], ['vision'], 'reg-registrar');
    const recorded = await t.gql(visionEngineer, RECORD, {
      i: { team: 'vision', name: 'vision-external', datasets: vision.datasets, codeVersion: vision.codeVersion, config: vision.config, seedSet: vision.seedSet, environment: vision.environment, status: 'SUCCEEDED' },
    });
    assert.equal(recorded.errors, undefined, JSON.stringify(recorded.errors));
    const runId = recorded.data.recordTrainingRun.id;
    const r = await t.gql(registrar, REGISTER, { i: { model: vision.model, artifactSha256: visionArtifact, trainingRun: runId } });
    assertRefused(r, 'FORBIDDEN', 'REGISTRY_RUN_NOT_UPDATABLE');
    const denied = await deniedEvents('reg-registrar');
    assert.deepEqual(denied.map((e: { subject_id: string }) => e.subject_id), [runId]);
    // The team's engineer, who may update the run, fills its slot.
    const own = await t.gql(visionEngineer, REGISTER, { i: { model: vision.model, artifactSha256: visionArtifact, trainingRun: runId } });
    assert.equal(own.errors, undefined, JSON.stringify(own.errors));
    assert.equal(own.data.registerModelVersion.trainingRun.id, runId);
  });

  it('lets two concurrent registrations against one recorded run race: exactly one wins, the other is a CONFLICT', async () => {
    const recorded = await t.gql(fraudEngineer, RECORD, {
      i: { team: 'fraud', name: 'fraud-external', datasets: fraud.datasets, codeVersion: fraud.codeVersion, config: fraud.config, seedSet: fraud.seedSet, environment: fraud.environment, status: 'SUCCEEDED', metrics: { auc: 0.9 } },
    });
    assert.equal(recorded.errors, undefined, JSON.stringify(recorded.errors));
    const runId = recorded.data.recordTrainingRun.id;
    const results = await Promise.all(
      [0, 1, 2, 3].map(() => t.gql(fraudEngineer, REGISTER, { i: { model: fraud.model, artifactSha256: fraudArtifact, trainingRun: runId } })),
    );
    const won = results.filter((r) => r.data?.registerModelVersion);
    const lost = results.filter((r) => r.errors);
    assert.equal(won.length, 1, JSON.stringify(results));
    assert.equal(won[0].data.registerModelVersion.trainingRun.id, runId);
    assert.equal(lost.length, 3);
    for (const r of lost) assertRefused(r, 'CONFLICT', 'REGISTRY_RUN_OUTPUT_TAKEN');
    const [{ n }] = await t.sql(`SELECT count(*)::int AS n FROM model_version WHERE training_run_id = $1`, [uuidOf(runId)]);
    assert.equal(n, 1);
    // Identical refusals are folded: the first is an event, the others are counted on a summary
    // event written when the window closes (here: at once).
    await t.server.app.denials!.flush(true);
    const [{ d }] = await t.sql(
      `SELECT coalesce(sum(CASE WHEN after ? 'count' THEN (after->>'count')::int ELSE 1 END), 0)::int AS d
         FROM audit_event WHERE actor_id = 'fay-fraud' AND decision = 'DENIED' AND subject_id = $1`,
      [runId],
    );
    assert.equal(d, 3, 'three denied attempts on record');
  });
});
