import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, afterEach, before, describe, it } from 'node:test';
import { buildLogisticRegressionOnnx } from '../../src/registry/onnx-builders';
import { auditCount, chainProblems, rowCounts, runAuditVerify, uploadArtifact, withOneNewEvent, type AuditRow } from '../support/audit';
import { codeOf, startTestServer, type GqlResult, type TestServer } from '../support/harness';

const hex = (s: string) => createHash('sha256').update(s).digest('hex');
const pickEvent = (e: AuditRow) => ({ action: e.action, actor_id: e.actor_id, subject_id: e.subject_id, decision: e.decision });

const Q = {
  registerConfig: 'mutation ($input: RegisterConfigInput!) { registerConfig(input: $input) { id sha256 } }',
  registerSeedSet: 'mutation ($input: RegisterSeedSetInput!) { registerSeedSet(input: $input) { id } }',
  registerEnvironment: 'mutation ($input: RegisterEnvironmentInput!) { registerEnvironment(input: $input) { id } }',
  registerCodeVersion: 'mutation ($input: RegisterCodeVersionInput!) { registerCodeVersion(input: $input) { id } }',
  createTeam: 'mutation ($input: CreateTeamInput!) { createTeam(input: $input) { id } }',
  createDataset: 'mutation ($input: CreateDatasetInput!) { createDataset(input: $input) { id } }',
  registerDatasetVersion: 'mutation ($input: RegisterDatasetVersionInput!) { registerDatasetVersion(input: $input) { id } }',
  recordTrainingRun: 'mutation ($input: RecordTrainingRunInput!) { recordTrainingRun(input: $input) { id } }',
  createModel: 'mutation ($input: CreateModelInput!) { createModel(input: $input) { id } }',
  registerModelVersion: 'mutation ($input: RegisterModelVersionInput!) { registerModelVersion(input: $input) { id status } }',
  submitModelVersion: 'mutation ($id: ID!) { submitModelVersion(modelVersion: $id) { id status } }',
  approveModelVersion: 'mutation ($input: ReviewInput!) { approveModelVersion(input: $input) { id status } }',
  setModelVersionAlias: 'mutation ($input: SetAliasInput!) { setModelVersionAlias(input: $input) { id aliases } }',
  createDeployment: 'mutation ($input: CreateDeploymentInput!) { createDeployment(input: $input) { id } }',
  setTrafficSplit: 'mutation ($input: SetTrafficSplitInput!) { setTrafficSplit(input: $input) { id trafficSplit { weight modelVersion { id } } } }',
  upsertRole: 'mutation ($input: UpsertRoleInput!) { upsertRole(input: $input) { id } }',
  createApiKey: 'mutation ($input: CreateApiKeyInput!) { createApiKey(input: $input) { key apiKey { id } } }',
  revokeApiKey: 'mutation ($input: RevokeApiKeyInput!) { revokeApiKey(input: $input) { id revokedAt } }',
  auditEvents:
    'query ($filter: AuditEventFilter, $first: Int, $after: String) { auditEvents(filter: $filter, first: $first, after: $after) { totalCount pageInfo { hasNextPage endCursor } nodes { seq actorId action subjectId decision occurredAt } } }',
};

async function demoFraudModel(t: TestServer, token: string) {
  const r = await t.gql(token, '{ models(filter: { name: "fraud-detector" }) { nodes { id versions { id version status artifactSha256 } } } }');
  assert.equal(r.errors, undefined, JSON.stringify(r.errors));
  const model = r.data.models.nodes[0];
  const byNumber = (n: number) => model.versions.find((v: { version: number }) => v.version === n);
  return { id: model.id as string, v1: byNumber(1), v2: byNumber(2), artifactSha256: byNumber(1).artifactSha256 as string };
}

describe('audit trail', () => {
  let t: TestServer;
  let admin: string;
  let engineer: string;
  let reviewer: string;
  let viewer: string;
  let auditor: string;

  before(async () => {
    t = await startTestServer({ demo: true });
    admin = t.token(['admin'], ['fraud', 'vision'], 'ada-admin');
    engineer = t.token(['ml-engineer'], ['fraud'], 'erin-engineer');
    reviewer = t.token(['reviewer'], ['fraud'], 'rita-reviewer');
    viewer = t.token(['viewer'], ['fraud'], 'vera-viewer');
    auditor = t.token(['auditor'], ['fraud', 'vision'], 'audrey-auditor');
  });
  after(async () => t?.stop());

  async function mutate(token: string, query: string, variables: Record<string, unknown>) {
    const r = await t.gql(token, query, variables);
    assert.equal(r.errors, undefined, JSON.stringify(r.errors));
    return r.data;
  }

  async function refused(token: string, query: string, variables: Record<string, unknown>, code: string): Promise<GqlResult> {
    const r = await t.gql(token, query, variables);
    assert.equal(codeOf(r), code, JSON.stringify(r.errors ?? r.data));
    return r;
  }

  async function audited(token: string, actor: string, action: keyof typeof Q, input: Record<string, unknown>, subjectOf: (data: any) => string) {
    const variables = action === 'submitModelVersion' ? input : { input };
    const { value: data, event } = await withOneNewEvent(t, () => mutate(token, Q[action], variables));
    assert.deepEqual(pickEvent(event), { action, actor_id: actor, subject_id: subjectOf(data), decision: 'ALLOWED' });
    return { data, event };
  }

  it('writes exactly one ALLOWED event per successful mutation, naming the caller and the subject', async () => {
    const E = 'erin-engineer';
    const content = { model: 'gbm', learningRate: 0.1, depth: 6 };
    const config = (await audited(engineer, E, 'registerConfig', { content }, (d) => d.registerConfig.id)).data.registerConfig;
    // The same content again returns the same record and is still one event, saying so.
    const again = await audited(engineer, E, 'registerConfig', { content: { depth: 6, learningRate: 0.1, model: 'gbm' } }, (d) => d.registerConfig.id);
    assert.equal(again.data.registerConfig.id, config.id);
    assert.match(again.event.reason ?? '', /already registered/);

    const seeds = (await audited(engineer, E, 'registerSeedSet', { seeds: { split: 3, init: 99 } }, (d) => d.registerSeedSet.id)).data.registerSeedSet;
    const env = (
      await audited(admin, 'ada-admin', 'registerEnvironment', { team: 'fraud', runtime: 'python 3.12.1', lockfileSha256: hex('lock'), hardware: 'cpu x4' }, (d) => d.registerEnvironment.id)
    ).data.registerEnvironment;
    const code = (
      await audited(engineer, E, 'registerCodeVersion', { repositoryUrl: 'https://git.example.com/fraud/chargebacks', commitSha: hex('c1').slice(0, 40), entrypoint: 'train.py' }, (d) => d.registerCodeVersion.id)
    ).data.registerCodeVersion;
    await audited(admin, 'ada-admin', 'createTeam', { name: 'risk', description: 'Credit risk' }, (d) => d.createTeam.id);
    const dataset = (await audited(engineer, E, 'createDataset', { name: 'chargebacks', classification: 'CONFIDENTIAL' }, (d) => d.createDataset.id)).data.createDataset;
    const columns = [
      { name: 'amount', type: 'float64', nullable: false },
      { name: 'label', type: 'int64', nullable: false },
    ];
    const dv = (
      await audited(engineer, E, 'registerDatasetVersion', { dataset: dataset.id, uri: 's3://b/chargebacks/2026-11.parquet', sha256: hex('cb-2026-11'), rowCount: 5000, columns }, (d) => d.registerDatasetVersion.id)
    ).data.registerDatasetVersion;
    const run = (
      await audited(
        engineer,
        E,
        'recordTrainingRun',
        { datasets: [{ datasetVersion: dv.id, role: 'TRAIN' }], codeVersion: code.id, config: config.id, seedSet: seeds.id, environment: env.id, status: 'SUCCEEDED', metrics: { auc: 0.93 } },
        (d) => d.recordTrainingRun.id,
      )
    ).data.recordTrainingRun;
    const model = (await audited(engineer, E, 'createModel', { name: 'chargeback-scorer' }, (d) => d.createModel.id)).data.createModel;

    // The upload is plain HTTP, not GraphQL, and is audited all the same.
    const upload = await withOneNewEvent(t, () => uploadArtifact(t, engineer, buildLogisticRegressionOnnx({ weights: [0.4, -1.1], bias: 0.2, docString: 'chargebacks v1' })));
    assert.equal(upload.value.status, 201);
    assert.deepEqual(pickEvent(upload.event), { action: 'uploadArtifact', actor_id: E, subject_id: upload.value.body.sha256, decision: 'ALLOWED' });

    // A run produces one version: the first names the run, a later one is registered on its own.
    const registerVersion = (trainingRun?: string) =>
      audited(engineer, E, 'registerModelVersion', { model: model.id, artifactSha256: upload.value.body.sha256, trainingRun }, (d) => d.registerModelVersion.id);
    const v1 = (await registerVersion(run.id)).data.registerModelVersion;
    await audited(engineer, E, 'submitModelVersion', { id: v1.id }, (d) => d.submitModelVersion.id);
    const approval = await audited(reviewer, 'rita-reviewer', 'approveModelVersion', { modelVersion: v1.id, reason: 'Holdout AUC above the gate' }, (d) => d.approveModelVersion.id);
    assert.equal(approval.data.approveModelVersion.status, 'APPROVED');
    assert.equal(approval.event.reason, 'Holdout AUC above the gate');
    await audited(engineer, E, 'setModelVersionAlias', { modelVersion: v1.id, alias: 'champion' }, (d) => d.setModelVersionAlias.id);
    const deployment = (
      await audited(engineer, E, 'createDeployment', { name: 'chargebacks-staging', environment: 'STAGING', trafficSplit: [{ modelVersion: v1.id, weight: 100 }] }, (d) => d.createDeployment.id)
    ).data.createDeployment;
    const v2 = (await registerVersion()).data.registerModelVersion;
    await audited(
      engineer,
      E,
      'setTrafficSplit',
      { deployment: deployment.id, reason: 'canary', trafficSplit: [{ modelVersion: v1.id, weight: 80 }, { modelVersion: v2.id, weight: 20 }] },
      (d) => d.setTrafficSplit.id,
    );

    await audited(admin, 'ada-admin', 'upsertRole', { name: 'release-manager', rules: [{ action: 'read', subject: 'Deployment' }] }, (d) => d.upsertRole.id);
    const key = (await audited(admin, 'ada-admin', 'createApiKey', { name: 'scoring-service', roles: ['service'], teams: ['fraud'] }, (d) => d.createApiKey.apiKey.id)).data.createApiKey;
    await audited(admin, 'ada-admin', 'revokeApiKey', { apiKey: key.apiKey.id }, (d) => d.revokeApiKey.id);

    const history = await t.gql(auditor, Q.auditEvents, { filter: { subject: deployment.id } });
    assert.deepEqual(
      history.data.auditEvents.nodes.map((n: { action: string; actorId: string }) => [n.action, n.actorId]),
      [
        ['setTrafficSplit', E],
        ['createDeployment', E],
      ],
    );
  });

  it('writes nothing and changes nothing when a mutation fails on its input or a conflict', async () => {
    const fraud = await demoFraudModel(t, admin);
    const staging = (await mutate(admin, '{ deployments(filter: { team: "fraud", environment: STAGING }) { nodes { id trafficSplit { weight modelVersion { id } } } } }', {})).deployments.nodes[0];
    const before = await rowCounts(t);

    await refused(engineer, Q.createModel, { input: { name: 'fraud-detector' } }, 'CONFLICT');
    await refused(engineer, Q.registerSeedSet, { input: { seeds: { 'Not A Name': 1 } } }, 'BAD_USER_INPUT');
    await refused(engineer, Q.registerModelVersion, { input: { model: fraud.id, artifactSha256: hex('never uploaded') } }, 'BAD_USER_INPUT');
    await refused(engineer, Q.submitModelVersion, { id: fraud.v1.id }, 'CONFLICT');
    await refused(
      engineer,
      Q.setTrafficSplit,
      { input: { deployment: staging.id, trafficSplit: [{ modelVersion: fraud.v1.id, weight: 50 }, { modelVersion: fraud.v2.id, weight: 40 }] } },
      'BAD_USER_INPUT',
    );
    const key = (await mutate(admin, Q.createApiKey, { input: { name: 'short-lived', roles: ['service'], teams: ['fraud'] } })).createApiKey;
    await mutate(admin, Q.revokeApiKey, { input: { apiKey: key.apiKey.id } });
    const afterKey = await rowCounts(t);
    await refused(admin, Q.revokeApiKey, { input: { apiKey: key.apiKey.id } }, 'CONFLICT');

    assert.deepEqual(await rowCounts(t), { ...before, api_key: before.api_key + 1, audit_event: before.audit_event + 2 });
    assert.deepEqual(await rowCounts(t), afterKey);
    const now = await demoFraudModel(t, admin);
    assert.deepEqual([now.v1.status, now.v2.status], ['APPROVED', 'CANDIDATE']);
    const split = (await mutate(admin, 'query ($id: ID!) { node(id: $id) { ... on Deployment { trafficSplit { weight modelVersion { id } } } } }', { id: staging.id })).node.trafficSplit;
    assert.deepEqual(split, staging.trafficSplit);
  });

  it('writes exactly one DENIED event naming the caller when a mutation is forbidden, and changes nothing else', async () => {
    const fraud = await demoFraudModel(t, admin);
    const counts = await rowCounts(t);
    const denied = async (token: string, query: string, variables: Record<string, unknown>) => {
      const { value, event } = await withOneNewEvent(t, () => refused(token, query, variables, 'FORBIDDEN'));
      return { errors: value.errors!, event };
    };

    const byViewer = await denied(viewer, Q.createModel, { input: { name: 'viewer-model' } });
    assert.deepEqual(pickEvent(byViewer.event), { action: 'createModel', actor_id: 'vera-viewer', subject_id: null, decision: 'DENIED' });

    // Can read the fraud version (as an engineer) but review only for vision.
    const visionReviewer = t.token(['reviewer', 'ml-engineer'], ['vision'], 'victor-vision');
    const crossTeam = await denied(visionReviewer, Q.approveModelVersion, { input: { modelVersion: fraud.v2.id, reason: 'looks fine' } });
    assert.deepEqual(pickEvent(crossTeam.event), { action: 'approveModelVersion', actor_id: 'victor-vision', subject_id: fraud.v2.id, decision: 'DENIED' });

    const byAuditor = await denied(auditor, Q.approveModelVersion, { input: { modelVersion: fraud.v2.id, reason: 'read-only role' } });
    assert.deepEqual(pickEvent(byAuditor.event), { action: 'approveModelVersion', actor_id: 'audrey-auditor', subject_id: null, decision: 'DENIED' });

    assert.deepEqual(await rowCounts(t), { ...counts, audit_event: counts.audit_event + 3 });
    assert.equal((await demoFraudModel(t, admin)).v2.status, 'CANDIDATE');
  });

  it('enforces four eyes: the registrant cannot approve its own version, and that attempt is on record', async () => {
    const fraud = await demoFraudModel(t, admin);
    const sam = t.token(['ml-engineer', 'reviewer'], ['fraud'], 'sam-both');
    const version = (await mutate(sam, Q.registerModelVersion, { input: { model: fraud.id, artifactSha256: fraud.artifactSha256 } })).registerModelVersion;
    await mutate(sam, Q.submitModelVersion, { id: version.id });

    const { value, event } = await withOneNewEvent(t, () => refused(sam, Q.approveModelVersion, { input: { modelVersion: version.id, reason: 'mine' } }, 'FORBIDDEN'));
    assert.equal(value.errors![0].extensions.reason, 'REGISTRY_SELF_APPROVAL');
    assert.deepEqual(pickEvent(event), { action: 'approveModelVersion', actor_id: 'sam-both', subject_id: version.id, decision: 'DENIED' });
    const status = (await mutate(sam, 'query ($id: ID!) { node(id: $id) { ... on ModelVersion { status approvals { actor } } } }', { id: version.id })).node;
    assert.deepEqual(status, { status: 'CANDIDATE', approvals: [] });

    const approved = await withOneNewEvent(t, () => mutate(reviewer, Q.approveModelVersion, { input: { modelVersion: version.id, reason: 'second pair of eyes' } }));
    assert.equal(approved.value.approveModelVersion.status, 'APPROVED');
    assert.deepEqual(pickEvent(approved.event), { action: 'approveModelVersion', actor_id: 'rita-reviewer', subject_id: version.id, decision: 'ALLOWED' });
  });

  it('keeps one unforked chain under concurrent writers, and audit verify says it is intact', async () => {
    const fraudEngineer = t.token(['ml-engineer'], ['fraud'], 'pat-fraud');
    const visionEngineer = t.token(['ml-engineer'], ['vision'], 'vic-vision');
    const before = await auditCount(t);
    const allowed: Array<Promise<GqlResult>> = [
      ...Array.from({ length: 10 }, (_, i) => t.gql(fraudEngineer, Q.registerConfig, { input: { content: { parallel: i, lr: 0.01 } } })),
      // The same content twice at once: one record, two events.
      ...Array.from({ length: 2 }, () => t.gql(fraudEngineer, Q.registerConfig, { input: { content: { parallel: 'same' } } })),
      ...Array.from({ length: 8 }, (_, i) => t.gql(visionEngineer, Q.createDataset, { input: { name: `parallel-${i}`, classification: 'INTERNAL' } })),
      ...Array.from({ length: 5 }, (_, i) => t.gql(admin, Q.registerSeedSet, { input: { team: 'vision', seeds: { split: i, init: 1000 + i } } })),
      ...Array.from({ length: 2 }, (_, i) => t.gql(admin, Q.upsertRole, { input: { name: `parallel-role-${i}`, rules: [{ action: 'read', subject: 'Team' }] } })),
    ];
    // Three viewers: identical refusals by one principal are folded into one event.
    const forbidden = Array.from({ length: 3 }, (_, i) => t.gql(t.token(['viewer'], ['fraud'], `vera-viewer-${i}`), Q.createModel, { input: { name: `nope-${i}` } }));
    const [ok, no] = await Promise.all([Promise.all(allowed), Promise.all(forbidden)]);

    for (const r of ok) assert.equal(r.errors, undefined, JSON.stringify(r.errors));
    for (const r of no) assert.equal(codeOf(r), 'FORBIDDEN');
    const [same1, same2] = ok.slice(10, 12).map((r) => r.data.registerConfig.id);
    assert.equal(same1, same2);

    assert.equal(await auditCount(t), before + 30);
    const decisions = await t.sql(`SELECT decision::text AS decision, count(*)::int AS n FROM audit_event WHERE seq > $1 GROUP BY 1 ORDER BY 1`, [before]);
    assert.deepEqual(decisions, [
      { decision: 'ALLOWED', n: 27 },
      { decision: 'DENIED', n: 3 },
    ]);
    assert.deepEqual(await chainProblems(t), []);

    const verify = await runAuditVerify(t);
    assert.equal(verify.code, 0, verify.stdout + verify.stderr);
    assert.match(verify.stdout, new RegExp(`intact: ${before + 30} events`));
  });

  it('refuses UPDATE, DELETE and TRUNCATE of audit events in the database itself', async () => {
    const [first] = await t.sql('SELECT seq::int AS seq, reason, hash FROM audit_event WHERE seq = 1');
    const count = await auditCount(t);
    await assert.rejects(t.sql(`UPDATE audit_event SET reason = 'rewritten' WHERE seq = 1`), /append-only \(UPDATE refused\)/);
    await assert.rejects(t.sql('DELETE FROM audit_event WHERE seq = 1'), /append-only \(DELETE refused\)/);
    await assert.rejects(t.sql('TRUNCATE audit_event'), /append-only \(TRUNCATE refused\)/);
    assert.deepEqual(await t.sql('SELECT seq::int AS seq, reason, hash FROM audit_event WHERE seq = 1'), [first]);
    assert.equal(await auditCount(t), count);
  });

  describe('auditEvents query', () => {
    const Q_ACTOR = 'quinn-queried';
    let quinn: string;
    let datasetId: string;

    before(async () => {
      quinn = t.token(['ml-engineer'], ['vision'], Q_ACTOR);
      for (let i = 0; i < 5; i++) await mutate(quinn, Q.registerConfig, { input: { content: { query: i } } });
      datasetId = (await mutate(quinn, Q.createDataset, { input: { name: 'queried', classification: 'PUBLIC' } })).createDataset.id;
      await t.gql(quinn, Q.upsertRole, { input: { name: 'quinn-role', rules: [] } });
    });

    const events = async (filter: Record<string, unknown>, first?: number, after?: string) => {
      const r = await t.gql(auditor, Q.auditEvents, { filter, first, after });
      assert.equal(r.errors, undefined, JSON.stringify(r.errors));
      return r.data.auditEvents as { totalCount: number; pageInfo: { hasNextPage: boolean; endCursor: string }; nodes: Array<{ seq: number; actorId: string; action: string; subjectId: string; decision: string; occurredAt: string }> };
    };

    it('filters by actor, action, subject and decision, newest first, with the right totalCount', async () => {
      const mine = await events({ actor: Q_ACTOR });
      assert.equal(mine.totalCount, 7);
      assert.deepEqual(
        mine.nodes.map((n) => [n.action, n.decision]),
        [['upsertRole', 'DENIED'], ['createDataset', 'ALLOWED'], ...Array(5).fill(['registerConfig', 'ALLOWED'])],
      );
      const seqs = mine.nodes.map((n) => n.seq);
      assert.deepEqual(seqs, [...seqs].sort((a, b) => b - a));

      const configs = await events({ actor: Q_ACTOR, action: 'registerConfig' });
      assert.equal(configs.totalCount, 5);
      // The page itself, not only the count: `every` holds for an empty page.
      assert.equal(configs.nodes.length, 5);
      assert.ok(configs.nodes.every((n) => n.actorId === Q_ACTOR && n.action === 'registerConfig'));

      const subject = await events({ subject: datasetId });
      assert.deepEqual(subject.nodes.map((n) => [n.action, n.actorId, n.subjectId]), [['createDataset', Q_ACTOR, datasetId]]);

      const deniedQuinn = await events({ actor: Q_ACTOR, decision: 'DENIED' });
      assert.deepEqual([deniedQuinn.totalCount, deniedQuinn.nodes[0].action], [1, 'upsertRole']);

      const [{ n: allDenied }] = await t.sql(`SELECT count(*)::int AS n FROM audit_event WHERE decision = 'DENIED'`);
      assert.equal((await events({ decision: 'DENIED' })).totalCount, allDenied);
    });

    it('filters by time range: from inclusive, to exclusive', async () => {
      const mine = (await events({ actor: Q_ACTOR })).nodes;
      const oldestFirst = [...mine].reverse();
      const from = oldestFirst[1].occurredAt;
      const to = oldestFirst[4].occurredAt;
      const inRange = await events({ actor: Q_ACTOR, from, to });
      const expected = mine.filter((n) => n.occurredAt >= from && n.occurredAt < to).map((n) => n.seq);
      assert.ok(expected.includes(oldestFirst[1].seq) && !expected.includes(oldestFirst[4].seq));
      assert.deepEqual(inRange.nodes.map((n) => n.seq), expected);
      assert.equal(inRange.totalCount, expected.length);
      assert.equal(codeOf(await t.gql(auditor, Q.auditEvents, { filter: { from: to, to: from } })), 'BAD_USER_INPUT');
    });

    it('pages with first/after through the whole trail in order, without overlaps or gaps', async () => {
      const all = await t.sql<{ seq: number }>('SELECT seq::int AS seq FROM audit_event ORDER BY seq DESC');
      const seen: number[] = [];
      let after: string | undefined;
      for (;;) {
        const page = await events({}, 7, after);
        assert.equal(page.totalCount, all.length);
        assert.ok(page.nodes.length <= 7);
        seen.push(...page.nodes.map((n) => n.seq));
        if (!page.pageInfo.hasNextPage) break;
        after = page.pageInfo.endCursor;
      }
      assert.deepEqual(seen, all.map((r) => r.seq));

      const firstPage = await events({ actor: Q_ACTOR }, 3);
      const secondPage = await events({ actor: Q_ACTOR }, 3, firstPage.pageInfo.endCursor);
      assert.deepEqual([firstPage.nodes.length, secondPage.nodes.length], [3, 3]);
      assert.ok(secondPage.nodes[0].seq < firstPage.nodes[2].seq, 'the second page continues after the first');
    });

    it('is FORBIDDEN to a viewer and to an engineer', async () => {
      assert.equal(codeOf(await t.gql(viewer, Q.auditEvents, {})), 'FORBIDDEN');
      assert.equal(codeOf(await t.gql(engineer, Q.auditEvents, {})), 'FORBIDDEN');
    });
  });
});

describe('audit verify detects tampering by a database superuser', () => {
  let t: TestServer;
  let last: number;
  let middle: number;

  const asSuperuser = async (...statements: string[]) => {
    await t.sql('ALTER TABLE audit_event DISABLE TRIGGER USER');
    try {
      for (const s of statements) await t.sql(s);
    } finally {
      await t.sql('ALTER TABLE audit_event ENABLE TRIGGER USER');
    }
  };

  const expectBrokenAt = async (seq: number, problem: RegExp) => {
    const r = await runAuditVerify(t);
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.match(r.stdout, new RegExp(`BROKEN at event ${seq}: `));
    assert.match(r.stdout, problem);
  };

  before(async () => {
    t = await startTestServer({ demo: true });
    last = await auditCount(t);
    middle = Math.floor(last / 2);
    assert.ok(last > 20, `the demo writes a chain worth tampering with (${last} events)`);
    const verify = await runAuditVerify(t);
    assert.equal(verify.code, 0, verify.stdout + verify.stderr);
    await t.sql('CREATE TABLE audit_event_pristine AS SELECT * FROM audit_event');
  });
  // Each case starts from the untouched chain, and the restored chain verifies again.
  afterEach(async () => {
    await asSuperuser('DELETE FROM audit_event', 'INSERT INTO audit_event SELECT * FROM audit_event_pristine');
    const r = await runAuditVerify(t);
    assert.equal(r.code, 0, r.stdout);
  });
  after(async () => t?.stop());

  it('names the event whose content was altered', async () => {
    await asSuperuser(`UPDATE audit_event SET after = jsonb_build_object('status', 'APPROVED') WHERE seq = ${middle}`);
    await expectBrokenAt(middle, new RegExp(`event ${middle} was altered`));
  });

  it('names a deleted event in the middle of the chain', async () => {
    await asSuperuser(`DELETE FROM audit_event WHERE seq = ${middle}`);
    await expectBrokenAt(middle, new RegExp(`event ${middle} is missing`));
  });

  it('notices the newest event deleted, through the chain head', async () => {
    await asSuperuser(`DELETE FROM audit_event WHERE seq = ${last}`);
    await expectBrokenAt(last, /the chain head records/);
  });

  it('names the first position of two swapped events', async () => {
    await asSuperuser(
      `UPDATE audit_event SET seq = -1 WHERE seq = ${middle}`,
      `UPDATE audit_event SET seq = ${middle} WHERE seq = ${middle + 2}`,
      `UPDATE audit_event SET seq = ${middle + 2} WHERE seq = -1`,
    );
    await expectBrokenAt(middle, new RegExp(`event ${middle} does not follow event ${middle - 1}`));
  });

  it('names the newest event when its actor is rewritten, though the chain head still matches its hash', async () => {
    await asSuperuser(`UPDATE audit_event SET actor_id = 'someone-else' WHERE seq = ${last}`);
    await expectBrokenAt(last, new RegExp(`event ${last} was altered`));
  });
});
