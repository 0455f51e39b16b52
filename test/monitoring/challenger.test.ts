import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import * as ort from 'onnxruntime-node';
import { syntheticCoefficients } from '../../jobs/trainers/synthetic-data';
import { mcnemar } from '../../src/monitoring/challenger-stats';
import { buildLogisticRegressionOnnx } from '../../src/registry/onnx-builders';
import { withOneNewEvent } from '../support/audit';
import { codeOf, startTestServer, type TestServer } from '../support/harness';
import { registerOnnx } from '../support/inference';
import { FEATURES, storedDatasetVersion } from '../support/training';

const FIGURES = `modelVersion decisionThreshold accuracy auc`;
const CHALLENGE_FIELDS = `candidate champion holdout rows positives
  candidateFigures { ${FIGURES} } championFigures { ${FIGURES} }
  mcnemar { b c pValue pCandidateWorse }
  aucDifference { difference lower upper level resamples seed }
  policy { minRows maxAccuracyDrop alpha } decision reasons evaluatedAt`;
const CHALLENGE = `mutation($input: ChallengeModelVersionInput!) { challengeModelVersion(input: $input) { ${CHALLENGE_FIELDS} } }`;
const VERSION = `query($id: ID!) { node(id: $id) { ... on ModelVersion { artifactSha256 challenge { decision rows reasons mcnemar { b c } } } } }`;
const COMPARE = `query($a: ID!, $b: ID!) { compareModelVersions(a: $a, b: $b) { challenge { decision champion candidate } } }`;

/** Exact AUC by counting every (positive, negative) pair, ties ½: slow and obviously right. */
function pairwiseAuc(scores: number[], labels: number[]): number {
  let good = 0;
  let pairs = 0;
  for (let i = 0; i < scores.length; i++) {
    if (labels[i] !== 1) continue;
    for (let j = 0; j < scores.length; j++) {
      if (labels[j] !== 0) continue;
      pairs += 1;
      good += scores[i] > scores[j] ? 1 : scores[i] === scores[j] ? 0.5 : 0;
    }
  }
  return good / pairs;
}

describe('champion/challenger gate', () => {
  let t: TestServer;
  let engineer: string;
  let otherTeam: string;
  let model: string;
  let champion: string;
  let holdout: string;
  let smallHoldout: string;
  let oracle: string;
  let constant: string;

  before(async () => {
    t = await startTestServer({ demo: true, env: { INFERENCE_THREADS: '1' } });
    engineer = t.token(['ml-engineer'], ['fraud'], 'fran-engineer');
    otherTeam = t.token(['ml-engineer'], ['vision'], 'vic-engineer');
    const m = await t.gql(engineer, `{ models(filter: { team: "fraud" }) { nodes { id name versionByAlias: version(alias: "champion") { id } } } }`);
    assert.equal(m.errors, undefined, JSON.stringify(m.errors));
    model = m.data.models.nodes[0].id;
    champion = m.data.models.nodes[0].versionByAlias.id;
    holdout = await storedDatasetVersion(t, engineer, { team: 'fraud', name: 'fresh-holdout', rows: 600, seed: 4242 });
    smallHoldout = await storedDatasetVersion(t, engineer, { team: 'fraud', name: 'small-holdout', rows: 50, seed: 4343 });
    // The model the synthetic labels are drawn from: as good as a model of these features gets.
    oracle = await registerOnnx(t, engineer, model, buildLogisticRegressionOnnx({ weights: syntheticCoefficients(FEATURES.length), bias: 0 }));
    // Always (nearly) 0: answers one class whatever the row.
    constant = await registerOnnx(t, engineer, model, buildLogisticRegressionOnnx({ weights: FEATURES.map(() => 0), bias: -20 }));
  });
  after(async () => {
    await t?.stop();
  });

  const challenge = (token: string, input: Record<string, unknown>) => t.gql(token, CHALLENGE, { input });

  /** Scores from the test's own onnxruntime session on the holdout's rows, in the holdout's column order. */
  async function ownScores(version: string, csv: string): Promise<{ scores: number[]; labels: number[] }> {
    const v = await t.gql(engineer, VERSION, { id: version });
    const session = await ort.InferenceSession.create(t.server.app.artifacts.pathFor(v.data.node.artifactSha256), { executionProviders: ['cpu'] });
    const lines = csv.trim().split('\n');
    const header = lines[0].split(',');
    const rows = lines.slice(1).map((l) => l.split(',').map(Number));
    const columns = FEATURES.map((f) => header.indexOf(f));
    const data = Float32Array.from(rows.flatMap((r) => columns.map((c) => r[c])));
    const out = await session.run({ [session.inputNames[0]]: new ort.Tensor('float32', data, [rows.length, columns.length]) });
    const first = out[session.outputNames[0]];
    const perRow = first.data.length / rows.length;
    return { scores: rows.map((_, i) => Number(first.data[(i + 1) * perRow - 1])), labels: rows.map((r) => r[header.indexOf('label')]) };
  }

  async function holdoutCsv(id: string): Promise<string> {
    const r = await t.gql(engineer, `query($id: ID!) { node(id: $id) { ... on DatasetVersion { sha256 } } }`, { id });
    return (await t.server.app.artifacts.read(r.data.node.sha256)).toString('utf8');
  }

  it('passes a better candidate against the champion, with figures equal to an independent computation, audited and stored on the candidate', async () => {
    const { value: r, event } = await withOneNewEvent(t, () => challenge(engineer, { candidate: oracle, holdout }));
    assert.equal(r.errors, undefined, JSON.stringify(r.errors));
    const c = r.data.challengeModelVersion;
    assert.equal(c.decision, 'PASSED', c.reasons.join('; '));
    assert.equal(c.champion, champion, 'the champion alias is the default');
    assert.deepEqual([c.candidate, c.holdout, c.rows], [oracle, holdout, 600]);
    assert.deepEqual(c.policy, { minRows: 200, maxAccuracyDrop: 0, alpha: 0.05 });

    const csv = await holdoutCsv(holdout);
    const mine = await ownScores(oracle, csv);
    const theirs = await ownScores(champion, csv);
    const rightOf = (s: number[], threshold: number) => s.map((x, i) => (x >= threshold ? 1 : 0) === mine.labels[i]);
    const candRight = rightOf(mine.scores, c.candidateFigures.decisionThreshold);
    const champRight = rightOf(theirs.scores, c.championFigures.decisionThreshold);
    const accuracy = (right: boolean[]) => right.filter(Boolean).length / right.length;
    assert.ok(Math.abs(c.candidateFigures.accuracy - accuracy(candRight)) <= 1e-12);
    assert.ok(Math.abs(c.championFigures.accuracy - accuracy(champRight)) <= 1e-12);
    assert.ok(Math.abs(c.candidateFigures.auc - pairwiseAuc(mine.scores, mine.labels)) <= 1e-12);
    assert.ok(Math.abs(c.championFigures.auc - pairwiseAuc(theirs.scores, theirs.labels)) <= 1e-12);
    assert.equal(c.positives, mine.labels.filter((l) => l === 1).length);
    const b = champRight.filter((x, i) => x && !candRight[i]).length;
    const cc = champRight.filter((x, i) => !x && candRight[i]).length;
    assert.deepEqual({ b: c.mcnemar.b, c: c.mcnemar.c }, { b, c: cc });
    assert.equal(c.mcnemar.pValue, mcnemar(b, cc).pValue);
    assert.ok(Math.abs(c.aucDifference.difference - (c.candidateFigures.auc - c.championFigures.auc)) <= 1e-12);
    assert.ok(c.aucDifference.lower <= c.aucDifference.difference && c.aucDifference.difference <= c.aucDifference.upper);
    assert.equal(c.aucDifference.resamples, 1000);

    assert.deepEqual([event.action, event.decision, event.actor_id, event.subject_id], ['challengeModelVersion', 'ALLOWED', 'fran-engineer', oracle]);
    const again = await challenge(engineer, { candidate: oracle, holdout });
    assert.deepEqual({ ...again.data.challengeModelVersion, evaluatedAt: null }, { ...c, evaluatedAt: null }, 'the same holdout gives the same verdict');
    const stored = await t.gql(engineer, VERSION, { id: oracle });
    assert.deepEqual(stored.data.node.challenge, { decision: 'PASSED', rows: 600, reasons: c.reasons, mcnemar: { b, c: cc } });
    const compared = await t.gql(engineer, COMPARE, { a: champion, b: oracle });
    assert.deepEqual(compared.data.compareModelVersions.challenge, { decision: 'PASSED', champion, candidate: oracle });
  });

  it('rejects a candidate that answers one class, recording McNemar\'s figures', async () => {
    const r = await challenge(engineer, { candidate: constant, holdout });
    assert.equal(r.errors, undefined, JSON.stringify(r.errors));
    const c = r.data.challengeModelVersion;
    assert.equal(c.decision, 'REJECTED');
    assert.ok(c.mcnemar.b > c.mcnemar.c, JSON.stringify(c.mcnemar));
    assert.ok(c.mcnemar.pCandidateWorse < 0.05);
    assert.ok(c.reasons.some((x: string) => x.startsWith("McNemar's test finds the candidate worse")), c.reasons.join('; '));
    assert.ok(c.reasons.some((x: string) => x.includes("below the champion's")), c.reasons.join('; '));
    assert.equal(c.candidateFigures.auc, 0.5, 'one score for every row ranks nothing');
    const stored = await t.gql(engineer, VERSION, { id: constant });
    assert.deepEqual(stored.data.node.challenge.mcnemar, { b: c.mcnemar.b, c: c.mcnemar.c });
  });

  it('rejects on a holdout smaller than the policy asks, saying so', async () => {
    const r = await challenge(engineer, { candidate: oracle, holdout: smallHoldout });
    assert.equal(r.errors, undefined, JSON.stringify(r.errors));
    const c = r.data.challengeModelVersion;
    assert.equal(c.decision, 'REJECTED');
    assert.equal(c.rows, 50);
    assert.ok(c.reasons.includes('the holdout has 50 rows; the policy needs at least 200'), c.reasons.join('; '));
  });

  it('passes on absolute figures alone when the model has no champion, and says so', async () => {
    const created = await t.gql(engineer, `mutation { createModel(input: { team: "fraud", name: "fraud-fresh" }) { id } }`);
    assert.equal(created.errors, undefined, JSON.stringify(created.errors));
    const lone = await registerOnnx(t, engineer, created.data.createModel.id, buildLogisticRegressionOnnx({ weights: syntheticCoefficients(FEATURES.length), bias: 0 }));
    const r = await challenge(engineer, { candidate: lone, holdout });
    assert.equal(r.errors, undefined, JSON.stringify(r.errors));
    const c = r.data.challengeModelVersion;
    assert.deepEqual([c.decision, c.champion, c.championFigures, c.mcnemar, c.aucDifference], ['PASSED', null, null, null, null]);
    assert.match(c.reasons[0], /^no champion to judge against/);
  });

  it("refuses another team's engineer, audited as DENIED, and leaves the candidate's verdict as it was", async () => {
    const { value: r, event } = await withOneNewEvent(t, () => challenge(otherTeam, { candidate: constant, holdout }));
    assert.ok(['FORBIDDEN', 'NOT_FOUND'].includes(codeOf(r)), JSON.stringify(r.errors));
    assert.deepEqual(r.data, { challengeModelVersion: null });
    assert.deepEqual([event.action, event.decision, event.actor_id], ['challengeModelVersion', 'DENIED', 'vic-engineer']);
    const stored = await t.gql(engineer, VERSION, { id: constant });
    assert.equal(stored.data.node.challenge.decision, 'REJECTED');
  });

  it('refuses bad input with reasons: a policy out of range, the champion as its own challenger, a holdout without labels', async () => {
    const alpha = await challenge(engineer, { candidate: oracle, holdout, policy: { alpha: 0 } });
    assert.equal(codeOf(alpha), 'BAD_USER_INPUT');
    assert.deepEqual([alpha.errors![0].extensions.reason, alpha.errors![0].extensions.field], ['CHALLENGE_POLICY', 'policy.alpha']);
    const rows = await challenge(engineer, { candidate: oracle, holdout, policy: { minRows: 0 } });
    assert.deepEqual([codeOf(rows), rows.errors![0].extensions.reason], ['BAD_USER_INPUT', 'CHALLENGE_POLICY']);
    const self = await challenge(engineer, { candidate: champion, holdout });
    assert.deepEqual([codeOf(self), self.errors![0].extensions.reason], ['BAD_USER_INPUT', 'CHALLENGE_SAME_VERSION']);
    const notHoldout = await challenge(engineer, { candidate: oracle, holdout: model });
    assert.equal(codeOf(notHoldout), 'BAD_USER_INPUT');
  });
});
