import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Concept } from '../../jobs/trainers/synthetic-data';
import { AlertKind, AlertSeverity } from '../../src/monitoring/alert.entity';
import { plantAlert } from '../support/alerts';
import { codeOf, startTestServer, type TestServer } from '../support/harness';
import { Traffic } from '../support/traffic';

const MONITORING = `mutation($input: DeploymentMonitoringInput!) { setDeploymentMonitoring(input: $input) { id } }`;
const RETRAIN = `mutation($input: SetRetrainPolicyInput!) { setRetrainPolicy(input: $input) { id retrainPolicy { enabled setBy cooldownSeconds quality { metric maxDrop minLabelled } schedule gate { minRows alpha } } } }`;
const PROMOTION = `mutation($input: SetPromotionPolicyInput!) { setPromotionPolicy(input: $input) { id promotionPolicy { approval steps bakeSeconds shadowSeconds setBy } } }`;
const ITERATION = `query($id: ID!) { iteration(id: $id) {
  id status message triggerKind trigger requestId finishedAt
  champion { id version } candidate { id version status }
  trainingData { id } holdout { id rowCount } trainingRun { id status }
  gate { decision rows reasons candidateFigures { accuracy } championFigures { accuracy } mcnemar { b c pCandidateWorse } }
  shadowRollout { id status strategy } canaryRollout { id status strategy steps }
  approvalAlert { id kind status resolution }
  steps { step at detail auditEvent }
} }`;
const ITERATIONS = `query($d: ID!) { iterations(deployment: $d) { id status } }`;
const SPLIT = `query($id: ID!) { node(id: $id) { ... on Deployment { trafficSplit { weight modelVersion { id } } } } }`;

const FINISHED = new Set(['PROMOTED', 'HANDED_OFF', 'REJECTED', 'ROLLED_BACK', 'FAILED']);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('the iteration loop', () => {
  let t: TestServer;
  let engineer: string;
  let lead: string;
  let reviewer: string;
  let service: string;
  let auditor: string;
  let staging: string;
  let production: string;
  /** The demo's approved champion, serving all of production. */
  let champion: string;

  const gql = async (token: string, query: string, variables: Record<string, unknown> = {}) => {
    const r = await t.gql(token, query, variables);
    assert.equal(r.errors, undefined, JSON.stringify(r.errors));
    return r.data;
  };
  /** Waits for the deployment's latest iteration to reach one of `statuses`. */
  const waitFor = async (deployment: string, statuses: string[], timeoutMs = 150_000) => {
    const deadline = Date.now() + timeoutMs;
    let last: Record<string, any> | null = null;
    while (Date.now() < deadline) {
      const list = (await gql(engineer, ITERATIONS, { d: deployment })).iterations;
      if (list.length) {
        last = (await gql(engineer, ITERATION, { id: list[0].id })).iteration;
        if (statuses.includes(last!.status)) return last!;
        if (FINISHED.has(last!.status)) assert.fail(`iteration finished ${last!.status}: ${last!.message}`);
      }
      await sleep(250);
    }
    assert.fail(`no iteration reached ${statuses.join('/')} in time; last: ${JSON.stringify(last && { status: last.status, message: last.message })}`);
  };

  before(async () => {
    t = await startTestServer({
      demo: true,
      env: { LOOP_TICK_SECONDS: '1', MONITOR_WINDOW_SECONDS: '5', MONITOR_EVERY_SECONDS: '1', MONITOR_MIN_REQUESTS: '5' },
    });
    engineer = t.token(['ml-engineer'], ['fraud'], 'erin-engineer');
    lead = t.token(['ml-engineer', 'reviewer'], ['fraud'], 'lee-lead');
    reviewer = t.token(['reviewer'], ['fraud'], 'rae-reviewer');
    service = t.token(['service'], ['fraud'], 'svc-fraud');
    auditor = t.token(['auditor'], ['fraud'], 'aud-auditor');
    const list = await gql(engineer, `{ deployments(filter: { team: "fraud" }) { nodes { id environment } } }`);
    staging = list.deployments.nodes.find((d: { environment: string }) => d.environment === 'STAGING').id;
    production = list.deployments.nodes.find((d: { environment: string }) => d.environment === 'PRODUCTION').id;
    champion = (await gql(engineer, SPLIT, { id: production })).node.trafficSplit[0].modelVersion.id;
    for (const d of [staging, production]) {
      await gql(engineer, MONITORING, { input: { deployment: d, windowSeconds: 5, everySeconds: 1, minRequests: 5, quality: { lookbackSeconds: 60, minLabelled: 20 } } });
    }
  });
  after(async () => {
    await t?.stop();
  });

  it('refuses a policy out of range, and one nobody may act on, with a clear reason', async () => {
    const noTrigger = await t.gql(engineer, RETRAIN, { input: { deployment: staging } });
    assert.equal(codeOf(noTrigger), 'BAD_USER_INPUT');
    assert.equal(noTrigger.errors![0].extensions!.reason, 'LOOP_POLICY');
    assert.equal(noTrigger.errors![0].extensions!.field, 'enabled');
    const badCron = await t.gql(engineer, RETRAIN, { input: { deployment: staging, schedule: 'every day' } });
    assert.equal(badCron.errors![0].extensions!.field, 'schedule');
    const badSteps = await t.gql(engineer, PROMOTION, { input: { deployment: staging, steps: [50, 40, 100] } });
    assert.equal(badSteps.errors![0].extensions!.reason, 'LOOP_POLICY');
    assert.equal(badSteps.errors![0].extensions!.field, 'steps');
    // A viewer cannot set either; an engineer cannot allow automatic approval (they may not approve).
    const viewer = t.token(['viewer'], ['fraud'], 'vi-viewer');
    assert.equal(codeOf(await t.gql(viewer, RETRAIN, { input: { deployment: staging, schedule: '0 3 * * *' } })), 'FORBIDDEN');
    assert.equal(codeOf(await t.gql(engineer, PROMOTION, { input: { deployment: production, approval: 'AUTOMATIC' } })), 'FORBIDDEN');
    const other = t.token(['ml-engineer'], ['vision'], 'vic-engineer');
    assert.equal(codeOf(await t.gql(other, RETRAIN, { input: { deployment: staging, schedule: '0 3 * * *' } })), 'FORBIDDEN');
    assert.equal((await gql(engineer, `query($id: ID!) { node(id: $id) { ... on Deployment { retrainPolicy { enabled } promotionPolicy { approval } } } }`, { id: staging })).node.retrainPolicy, null);
  });

  it('STAGING: a concept shift is detected, retrained on production traffic, gated and rolled out with no human call', async () => {
    const set = await gql(engineer, RETRAIN, {
      input: { deployment: staging, quality: { metric: 'accuracy', maxDrop: 0.25, minLabelled: 40 }, cooldownSeconds: 600, sampleWindows: 2, collectSeconds: 10, holdoutShare: 0.3, gate: { minRows: 60 } },
    });
    assert.equal(set.setRetrainPolicy.retrainPolicy.setBy, 'erin-engineer');
    await gql(engineer, PROMOTION, { input: { deployment: staging, shadowSeconds: 2, steps: [50, 100], bakeSeconds: 2, minRequests: 10 } });

    const traffic = new Traffic(t, service, staging);
    traffic.start();
    try {
      await sleep(3000);
      assert.equal((await gql(engineer, ITERATIONS, { d: staging })).iterations.length, 0, 'steady traffic begins no iteration');
      traffic.set('shifted');
      const done = await waitFor(staging, ['PROMOTED']);

      assert.equal(done.triggerKind, 'QUALITY');
      assert.equal(done.trigger.metric, 'accuracy');
      assert.ok(done.trigger.degradation >= 0.25, JSON.stringify(done.trigger));
      assert.equal(done.gate.decision, 'PASSED');
      assert.ok(done.gate.candidateFigures.accuracy > done.gate.championFigures.accuracy + 0.2, JSON.stringify(done.gate));
      assert.match(done.gate.reasons.join(' '), /^significantly better than the champion \(b = \d+, c = \d+, one-sided p = [^)]+ < alpha 0.05\)/);
      assert.equal(done.shadowRollout.status, 'SUCCEEDED');
      assert.equal(done.canaryRollout.status, 'SUCCEEDED');
      assert.deepEqual(
        done.steps.map((s: { step: string }) => s.step),
        ['TRIGGERED', 'SAMPLED', 'TRAINING_STARTED', 'CANDIDATE_REGISTERED', 'GATE_PASSED', 'SHADOW_STARTED', 'SHADOW_PASSED', 'CANARY_STARTED', 'PROMOTED'],
      );
      for (const s of done.steps) assert.ok(s.auditEvent, `step ${s.step} names its audit event`);
      const split = (await gql(engineer, SPLIT, { id: staging })).node.trafficSplit;
      assert.deepEqual(split.map((s: { weight: number; modelVersion: { id: string } }) => [s.modelVersion.id, s.weight]), [[done.candidate.id, 100]]);

      // The promoted version learned from this deployment's production traffic: lineage says so.
      const lineage = await gql(engineer, `query($id: ID!) { lineage(id: $id, direction: UPSTREAM, depth: 4) { edges { from to relation } } }`, { id: done.candidate.id });
      const sampled = lineage.lineage.edges.filter((e: { relation: string }) => e.relation === 'SAMPLED');
      assert.ok(sampled.some((e: { from: string; to: string }) => e.from === staging && e.to === done.trainingData.id), JSON.stringify(lineage.lineage.edges));

      // One audit query shows the whole chain, each step done once.
      const events = await gql(auditor, `query($r: String!) { auditEvents(first: 100, filter: { requestId: $r }) { nodes { action actorId subjectType } } }`, { r: done.requestId });
      const actions = events.auditEvents.nodes.map((e: { action: string }) => e.action).reverse();
      for (const a of ['beginIteration', 'sampleProductionData', 'startTrainingRun', 'beginTrainingRun', 'registerModelVersion', 'completeTrainingRun', 'challengeModelVersion', 'startRollout', 'finishIteration']) {
        assert.ok(actions.includes(a), `${a} in ${actions.join(', ')}`);
      }
      assert.equal(actions.filter((a: string) => a === 'startRollout').length, 2, 'one shadow, one canary');
      assert.equal(actions.filter((a: string) => a === 'registerModelVersion').length, 1);
      assert.equal(actions.filter((a: string) => a === 'finishIteration').length, 1);
      // No person acted after setting the policies: every event is the policy setter's, or a system principal's.
      assert.deepEqual([...new Set(events.auditEvents.nodes.map((e: { actorId: string }) => e.actorId))].filter((a) => a !== 'erin-engineer' && !String(a).startsWith('system:')), []);
    } finally {
      await traffic.stop();
    }
  });

  it('PRODUCTION: the loop waits for a reviewer, who is told; once approved the rollout proceeds on its own', async () => {
    const traffic = new Traffic(t, service, production);
    traffic.set('shifted');
    for (let i = 0; i < 60; i++) await traffic.batch(10);
    await gql(lead, PROMOTION, { input: { deployment: production, shadowSeconds: 0, steps: [50, 100], bakeSeconds: 2, minRequests: 10, approval: 'REQUIRED' } });
    await gql(engineer, RETRAIN, { input: { deployment: production, schedule: '* * * * * *', cooldownSeconds: 600, sampleWindows: 60, holdoutShare: 0.3, gate: { minRows: 60 } } });
    const waiting = await waitFor(production, ['AWAITING_APPROVAL']);
    assert.equal(waiting.triggerKind, 'SCHEDULE');
    assert.equal(waiting.gate.decision, 'PASSED');
    assert.equal(waiting.candidate.status, 'CANDIDATE');
    assert.equal(waiting.approvalAlert.kind, 'APPROVAL_REQUIRED');
    assert.equal(waiting.approvalAlert.status, 'OPEN');
    assert.equal(waiting.canaryRollout, null);
    // It stays there, monitor passes going on: nothing serves the candidate while nobody approved it, and the request stays open.
    await sleep(2500);
    const still = (await gql(engineer, ITERATION, { id: waiting.id })).iteration;
    assert.equal(still.status, 'AWAITING_APPROVAL');
    assert.equal(still.approvalAlert.status, 'OPEN');

    traffic.start();
    try {
      await gql(reviewer, `mutation($id: ID!) { approveModelVersion(input: { modelVersion: $id, reason: "holdout and shadow figures checked" }) { status } }`, { id: waiting.candidate.id });
      const done = await waitFor(production, ['PROMOTED']);
      assert.deepEqual({ status: done.approvalAlert.status, resolution: done.approvalAlert.resolution }, { status: 'RESOLVED', resolution: 'approved by a reviewer' });
      assert.deepEqual(done.steps.map((s: { step: string }) => s.step), ['TRIGGERED', 'SAMPLED', 'TRAINING_STARTED', 'CANDIDATE_REGISTERED', 'GATE_PASSED', 'APPROVAL_REQUESTED', 'APPROVED', 'CANARY_STARTED', 'PROMOTED']);
      const approved = done.steps.find((s: { step: string }) => s.step === 'APPROVED');
      assert.equal(approved.detail.by, 'rae-reviewer');
    } finally {
      await traffic.stop();
    }
  });

  /** A new STAGING deployment of the demo's champion alone, with both policies, traffic logged first. */
  const freshDeployment = async (
    name: string,
    phases: Array<[Concept, number]>,
    gate: Record<string, unknown>,
    opts: { environment?: 'STAGING' | 'PRODUCTION'; promotion?: Record<string, unknown>; promotionBy?: string; retrainBy?: string; retrain?: Record<string, unknown> } = {},
  ) => {
    const d = (
      await gql(engineer, `mutation($v: ID!, $n: String!, $e: DeploymentEnvironment!) { createDeployment(input: { team: "fraud", name: $n, environment: $e, trafficSplit: [{ modelVersion: $v, weight: 100 }] }) { id } }`, {
        v: champion,
        n: name,
        e: opts.environment ?? 'STAGING',
      })
    ).createDeployment.id;
    await gql(engineer, MONITORING, { input: { deployment: d, windowSeconds: 5, everySeconds: 1, minRequests: 5 } });
    const traffic = new Traffic(t, service, d);
    for (const [concept, batches] of phases) {
      traffic.set(concept);
      for (let i = 0; i < batches; i++) await traffic.batch(10);
    }
    await gql(opts.promotionBy ?? engineer, PROMOTION, { input: { deployment: d, shadowSeconds: 0, steps: [50, 100], bakeSeconds: 2, minRequests: 10, ...opts.promotion } });
    await gql(opts.retrainBy ?? engineer, RETRAIN, { input: { deployment: d, schedule: '* * * * * *', cooldownSeconds: 600, sampleWindows: 60, holdoutShare: 0.3, gate, ...opts.retrain } });
    return d;
  };

  it('a candidate worse than the champion on the shared holdout is REJECTED, the comparison recorded, nothing rolled out', async () => {
    // A transient glitch: labels flip for a while, then return. The candidate learns the glitch;
    // the holdout (the later rows) holds the world as it is again.
    const d = await freshDeployment('fraud-glitch', [['shifted', 25], ['steady', 13]], { minRows: 60 });
    const done = await waitFor(d, ['REJECTED']);
    assert.equal(done.gate.decision, 'REJECTED');
    assert.ok(done.gate.candidateFigures.accuracy < done.gate.championFigures.accuracy, JSON.stringify(done.gate));
    assert.ok(done.gate.mcnemar.pCandidateWorse < 0.05, JSON.stringify(done.gate.mcnemar));
    assert.ok(done.gate.reasons.some((r: string) => /McNemar's test finds the candidate worse/.test(r)), done.gate.reasons.join(' | '));
    assert.ok(done.gate.reasons.some((r: string) => /AUC is worse than the champion's: the 95 % bootstrap interval/.test(r)), done.gate.reasons.join(' | '));
    assert.equal(done.candidate.status, 'REJECTED');
    assert.equal(done.shadowRollout, null);
    assert.equal(done.canaryRollout, null);
    assert.deepEqual(done.steps.map((s: { step: string }) => s.step), ['TRIGGERED', 'SAMPLED', 'TRAINING_STARTED', 'CANDIDATE_REGISTERED', 'GATE_REJECTED']);
    // The comparison is the version's own, and comparing the two versions shows it.
    const shown = await gql(engineer, `query($id: ID!) { node(id: $id) { ... on ModelVersion { status challenge { decision champion holdout reasons } } } }`, { id: done.candidate.id });
    assert.equal(shown.node.challenge.decision, 'REJECTED');
    assert.equal(shown.node.challenge.champion, champion);
    assert.equal(shown.node.challenge.holdout, done.holdout.id);
    const split = (await gql(engineer, SPLIT, { id: d })).node.trafficSplit;
    assert.deepEqual(split.map((s: { weight: number; modelVersion: { id: string } }) => [s.modelVersion.id, s.weight]), [[champion, 100]]);
  });

  it('retraining on noise promotes nothing: the candidate must be better, not merely not worse', async () => {
    const d = await freshDeployment('fraud-noise', [['noise', 40]], { minRows: 60, alpha: 0.01 });
    const done = await waitFor(d, ['REJECTED']);
    assert.equal(done.candidate.status, 'REJECTED');
    // Rejected by the trainer's own gate (its accuracy on noise is below the config's minimum), or by the champion/challenger gate.
    if (done.gate) assert.match(done.gate.reasons.join(' '), /not significantly better than the champion/);
    else assert.match(done.message, /rejected by its training gate/);
    assert.equal(done.canaryRollout, null);
    const split = (await gql(engineer, SPLIT, { id: d })).node.trafficSplit;
    assert.deepEqual(split.map((s: { modelVersion: { id: string } }) => s.modelVersion.id), [champion]);
    // The cool-down holds: the schedule keeps firing, no second iteration begins.
    await sleep(2000);
    assert.equal((await gql(engineer, ITERATIONS, { d })).iterations.length, 1);
  });

  it('PRODUCTION with automatic approval: a clear win is approved by the policy on behalf of whoever set it, then rolled out', async () => {
    const d = await freshDeployment('fraud-auto', [['shifted', 60]], { minRows: 60 }, { environment: 'PRODUCTION', promotionBy: lead, promotion: { approval: 'AUTOMATIC', autoApproveMargin: 0.2 } });
    const traffic = new Traffic(t, service, d);
    traffic.set('shifted');
    traffic.start();
    try {
      const done = await waitFor(d, ['PROMOTED']);
      const approved = done.steps.find((s: { step: string }) => s.step === 'APPROVED');
      assert.deepEqual({ by: approved.detail.by, onBehalfOf: approved.detail.onBehalfOf }, { by: 'system:promotion-policy', onBehalfOf: 'lee-lead' });
      assert.ok(approved.detail.margin >= 0.2, JSON.stringify(approved.detail));
      const events = await gql(auditor, `query($s: ID!) { auditEvents(first: 20, filter: { subject: $s, action: "approveModelVersion" }) { nodes { actorId via { onBehalfOf } requestId } } }`, { s: done.candidate.id });
      assert.deepEqual(events.auditEvents.nodes, [{ actorId: 'system:promotion-policy', via: { onBehalfOf: ['lee-lead'] }, requestId: done.requestId }]);
    } finally {
      await traffic.stop();
    }
  });

  it('automatic approval keeps four eyes: one person setting both policies still waits for a reviewer', async () => {
    const d = await freshDeployment('fraud-one-person', [['shifted', 60]], { minRows: 60 }, { environment: 'PRODUCTION', promotionBy: lead, retrainBy: lead, promotion: { approval: 'AUTOMATIC', autoApproveMargin: 0.2 } });
    const waiting = await waitFor(d, ['AWAITING_APPROVAL']);
    assert.match(waiting.message, /four eyes are two people/);
    assert.equal(waiting.candidate.status, 'CANDIDATE');
    assert.equal(waiting.approvalAlert.kind, 'APPROVAL_REQUIRED');
  });

  it('the label-volume trigger: labelled rows since the champion trained reach the share of its training rows', async () => {
    // The champion trained on 1,200 rows: 300 labelled production rows are a quarter of them.
    const d = await freshDeployment('fraud-volume', [['shifted', 30]], { minRows: 60 }, { retrain: { schedule: null, labelVolume: { minShare: 0.2 } } });
    const begun = await waitFor(d, ['SAMPLING', 'TRAINING', 'GATING', 'CANARY', 'PROMOTED', 'REJECTED', 'FAILED']);
    assert.equal(begun.triggerKind, 'LABEL_VOLUME');
    assert.equal(begun.trigger.championTrainingRows, 1200);
    assert.ok(begun.trigger.labelledSinceTraining >= 240 && begun.trigger.share >= 0.2, JSON.stringify(begun.trigger));
  });

  it('the drift trigger: an open drift alert of the serving version; without labelled traffic the iteration waits, then fails saying why', async () => {
    const d = await freshDeployment('fraud-drift', [], { minRows: 60 }, { retrain: { schedule: null, drift: { minSeverity: 'WARNING' }, sampleTimeoutSeconds: 4 } });
    const alert = await plantAlert(t, 'fraud', d, champion, { kind: AlertKind.DRIFT, severity: AlertSeverity.CRITICAL, feature: 'amount', statistic: 'psi', value: 0.4, threshold: 0.25 });
    const waiting = await waitFor(d, ['SAMPLING']);
    assert.equal(waiting.triggerKind, 'DRIFT');
    assert.equal(waiting.trigger.alert, alert.nodeId);
    assert.equal(waiting.trigger.feature, 'amount');
    assert.match(waiting.message ?? '', /waiting for labelled production rows|collecting/);
    const failed = await waitFor(d, ['FAILED'], 30_000).catch((e) => e);
    assert.ok(!(failed instanceof Error), String(failed));
    assert.match(failed.message, /no usable production sample within 4 s/);
    assert.deepEqual(failed.steps.map((s: { step: string }) => s.step), ['TRIGGERED', 'FAILED']);
  });

  it('an automatic approval the policy withdrew mid-flight is not made: the iteration waits for a reviewer', async () => {
    const d = await freshDeployment('fraud-tightened', [['shifted', 60]], { minRows: 60 }, {
      environment: 'PRODUCTION',
      promotionBy: lead,
      promotion: { approval: 'AUTOMATIC', autoApproveMargin: 0.2, shadowSeconds: 4 },
    });
    const traffic = new Traffic(t, service, d).set('shifted');
    traffic.start();
    try {
      await waitFor(d, ['SHADOW']);
      await gql(lead, PROMOTION, { input: { deployment: d, approval: 'REQUIRED', shadowSeconds: 4, steps: [50, 100], bakeSeconds: 2, minRequests: 10 } });
      const waiting = await waitFor(d, ['AWAITING_APPROVAL']);
      assert.match(waiting.message, /no longer approves automatically/);
      assert.equal(waiting.candidate.status, 'CANDIDATE');
    } finally {
      await traffic.stop();
    }
  });
});
