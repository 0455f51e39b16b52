// The champion/challenger gate: a candidate and the champion judged on the same fresh holdout, both
// scored by this server's own inference threads rather than by what a trainer reported. The
// verdict is recorded on the candidate by the registry, audited there.
import { assertCan } from '../core/authz';
import { inTransaction, type RequestContext } from '../core/context';
import { badInput } from '../core/errors';
import { toGlobalId } from '../core/global-id';
import { InferencePool } from '../inference/worker-pool';
import { modelSpec, type ModelSpec, type TensorData, type WireTensor } from '../inference/tensors';
import { scoreValue } from '../inference/window-rollup';
import { DatasetBlob } from '../lineage/dataset-blob.entity';
import { DatasetVersion } from '../lineage/dataset-version.entity';
import { loadReadable } from '../lineage/lineage.service';
import { ModelVersion, ModelVersionAlias } from '../registry/model-version.entity';
import { ChallengeDecision, type ChallengeModelFigures, ModelVersionChallenge } from '../registry/model-version-challenge';
import { recordModelVersionChallenge } from '../registry/model-version-challenge.service';
import { bootstrapAucDifference, discordant, mcnemar, rocAuc } from './challenger-stats';
import { MonitoringReason } from './monitoring.errors';
import type { ChallengeModelVersionInput } from './monitoring.inputs';

/** Holdout rows one challenge reads at most: they are held in memory, with both models' scores. */
export const MAX_CHALLENGE_ROWS = 100_000;
/** Rows per inference run. */
const BATCH_ROWS = 512;
/** Bootstrap resamples of the AUC difference, and their seed: the same holdout always gives the same interval. */
const BOOTSTRAP_RESAMPLES = 1000;
const BOOTSTRAP_SEED = 20_261_130;

/** The policy with its defaults. */
interface Policy {
  minRows: number;
  maxAccuracyDrop: number;
  alpha: number;
  decisionThreshold: number | null;
  requireImprovement: boolean;
}

/** A version to be run: its row, its input and the holdout columns that feed it, in tensor order. */
interface Runnable {
  version: ModelVersion;
  spec: ModelSpec;
  inputColumns: string[];
  threshold: number;
}

const policyError = (message: string, field: string) => badInput(message, { field: `policy.${field}`, reason: MonitoringReason.CHALLENGE_POLICY });
const holdoutError = (message: string) => badInput(message, { field: 'holdout', reason: MonitoringReason.CHALLENGE_HOLDOUT });

/** The policy with defaults filled in; BAD_USER_INPUT naming the first value out of range. */
function checkedPolicy(input: ChallengeModelVersionInput['policy']): Policy {
  const p: Policy = { minRows: input?.minRows ?? 200, maxAccuracyDrop: input?.maxAccuracyDrop ?? 0, alpha: input?.alpha ?? 0.05, decisionThreshold: input?.decisionThreshold ?? null, requireImprovement: input?.requireImprovement ?? false };
  if (!Number.isInteger(p.minRows) || p.minRows < 1 || p.minRows > 1_000_000) throw policyError('minRows must be a whole number from 1 to 1,000,000', 'minRows');
  if (!Number.isFinite(p.maxAccuracyDrop) || p.maxAccuracyDrop < 0 || p.maxAccuracyDrop >= 1) throw policyError('maxAccuracyDrop must be at least 0 and below 1 (relative)', 'maxAccuracyDrop');
  if (!Number.isFinite(p.alpha) || p.alpha <= 0 || p.alpha > 0.5) throw policyError('alpha must be above 0 and at most 0.5', 'alpha');
  if (p.decisionThreshold !== null && (!Number.isFinite(p.decisionThreshold) || p.decisionThreshold <= 0 || p.decisionThreshold >= 1)) {
    throw policyError('decisionThreshold must be above 0 and below 1', 'decisionThreshold');
  }
  return p;
}

/** The columns a version reads: its reference profile's, else the holdout's other than `label`, in order. */
function inputColumnsOf(version: ModelVersion, header: string[]): string[] {
  const p = version.referenceProfile as { inputColumns?: unknown } | null;
  if (p && Array.isArray(p.inputColumns) && p.inputColumns.length > 0 && p.inputColumns.every((c) => typeof c === 'string')) return p.inputColumns as string[];
  return header.filter((c) => c !== 'label');
}

/** A version as runnable on the holdout's columns, or BAD_USER_INPUT saying why it is not. */
function runnable(version: ModelVersion, header: string[], policy: Policy): Runnable {
  const name = `model version ${toGlobalId('ModelVersion', version.id)} (v${version.version})`;
  const refuse = (why: string) => badInput(`${name} cannot be run on the holdout: ${why}`, { field: 'candidate', reason: MonitoringReason.CHALLENGE_MODEL_INPUT });
  let spec: ModelSpec;
  try {
    spec = modelSpec(version.signatureJson);
  } catch (e) {
    throw refuse((e as Error).message);
  }
  const inputColumns = inputColumnsOf(version, header);
  const [input] = spec.inputs;
  if (spec.inputs.length !== 1 || (input.type !== 'float32' && input.type !== 'float64') || input.shape.length !== 2) {
    throw refuse('it needs one float input of shape [rows, columns]');
  }
  if (input.shape[1] !== null && input.shape[1] !== inputColumns.length) throw refuse(`its input takes ${input.shape[1]} columns; it reads ${inputColumns.length}`);
  if (!spec.outputs.length) throw refuse('it has no output');
  const missing = inputColumns.filter((c) => !header.includes(c));
  if (missing.length) throw holdoutError(`the holdout lacks the input columns of ${name}: ${missing.join(', ')}`);
  const own = version.metrics?.threshold;
  const threshold = policy.decisionThreshold ?? (typeof own === 'number' && own > 0 && own < 1 ? own : 0.5);
  return { version, spec, inputColumns, threshold };
}

/** The holdout's header and rows (numbers), and its labels (0 or 1); BAD_USER_INPUT for anything else. */
function parseHoldout(csv: string): { header: string[]; rows: number[][]; labels: number[] } {
  const lines = csv.split(/\r?\n/).filter((l) => l !== '');
  if (!lines.length) throw holdoutError('the holdout is empty');
  const header = lines[0].split(',').map((c) => c.trim());
  const labelAt = header.indexOf('label');
  if (labelAt < 0) throw holdoutError('the holdout has no `label` column');
  const rows: number[][] = [];
  const labels: number[] = [];
  for (let i = 1; i < lines.length; i++) {
    const fields = lines[i].split(',');
    if (fields.length !== header.length) throw holdoutError(`line ${i + 1} has ${fields.length} fields; the header has ${header.length}`);
    const values = fields.map((f) => (f === 'true' ? 1 : f === 'false' ? 0 : f.trim() === '' ? Number.NaN : Number(f)));
    const bad = values.findIndex((v) => !Number.isFinite(v));
    if (bad >= 0) throw holdoutError(`line ${i + 1}, column ${header[bad]}: not a number`);
    const label = values[labelAt];
    if (label !== 0 && label !== 1) throw holdoutError(`line ${i + 1}: label ${fields[labelAt]} is not 0 or 1`);
    rows.push(values);
    labels.push(label);
  }
  return { header, rows, labels };
}

/** Every row's score from `model` (the last value of the first output's row), batched through `pool`. */
async function scores(pool: InferencePool, model: Runnable, header: string[], rows: number[][], timeoutMs: number): Promise<number[]> {
  const columns = model.inputColumns.map((c) => header.indexOf(c));
  const input = model.spec.inputs[0];
  const out: number[] = [];
  for (let start = 0; start < rows.length; start += BATCH_ROWS) {
    const batch = rows.slice(start, start + BATCH_ROWS);
    const data: TensorData = input.type === 'float64' ? new Float64Array(batch.length * columns.length) : new Float32Array(batch.length * columns.length);
    batch.forEach((r, i) => columns.forEach((c, j) => (data[i * columns.length + j] = r[c])));
    const feeds: WireTensor[] = [{ name: input.name, type: input.type, dims: [batch.length, columns.length], data }];
    const [first] = await pool.run(model.version.id, feeds, batch.length, Math.max(timeoutMs, pool.budgetFor(batch.length)));
    const perRow = first.dims[0] > 0 ? first.data.length / first.dims[0] : 0;
    for (let i = 0; i < batch.length; i++) {
      const row = Array.from(first.data.subarray(i * perRow, (i + 1) * perRow) as ArrayLike<number>, Number);
      const s = scoreValue(row);
      if (s === null) throw badInput(`model version ${toGlobalId('ModelVersion', model.version.id)} gave no finite score for holdout row ${start + i + 1}`, { field: 'candidate', reason: MonitoringReason.CHALLENGE_MODEL_INPUT });
      out.push(s);
    }
  }
  return out;
}

/**
 * Runs the models on the holdout in a pool of their own (one thread, closed afterwards), so that
 * a challenge neither waits behind nor delays serving traffic, in an API or a worker process alike.
 */
async function scoreAll(ctx: RequestContext, models: Runnable[], header: string[], rows: number[][]): Promise<number[][]> {
  const cfg = ctx.app.config.inference;
  const pool = new InferencePool({
    name: 'challenge',
    size: 1,
    providers: cfg.providers,
    intraOpNumThreads: cfg.intraOpNumThreads,
    maxBatchRows: BATCH_ROWS,
    batchWaitUs: 0,
    runBudgetMs: cfg.runBudgetMs,
    runBudgetPerRowMs: cfg.runBudgetPerRowMs,
    stuckAfterMs: cfg.runStuckMs,
    log: ctx.log,
  });
  try {
    const out: number[][] = [];
    for (const m of models) {
      const warmup = [{ name: m.spec.inputs[0].name, type: m.spec.inputs[0].type, dims: [1, m.inputColumns.length], data: m.spec.inputs[0].type === 'float64' ? new Float64Array(m.inputColumns.length) : new Float32Array(m.inputColumns.length) }];
      await pool.load(m.version.id, m.version.teamId, ctx.app.artifacts.pathFor(m.version.artifactSha256), warmup, m.spec.batchable);
      out.push(await scores(pool, m, header, rows, cfg.timeoutMs));
    }
    return out;
  } finally {
    await pool.close();
  }
}

/** A model's figures on the holdout. */
function figures(model: Runnable, s: number[], labels: number[]): { figures: ChallengeModelFigures; right: boolean[] } {
  const right = s.map((x, i) => (x >= model.threshold ? 1 : 0) === labels[i]);
  const accuracy = right.filter(Boolean).length / labels.length;
  return { figures: { modelVersion: toGlobalId('ModelVersion', model.version.id), decisionThreshold: model.threshold, accuracy, auc: rocAuc(s, labels) }, right };
}

const fmt = (x: number) => Number(x.toPrecision(6)).toString();

/**
 * Judges `candidate` against the champion (given, or the version holding its model's `champion`
 * alias) on the holdout: both run on every row through inference threads of this server, then
 * accuracy and ROC AUC of each, McNemar's exact test on the paired decisions, and a paired
 * bootstrap interval of the AUC difference. REJECTED when the holdout has fewer than `minRows`
 * rows (or, with `requireImprovement`, when McNemar's one-sided test does not find the candidate
 * better at `alpha`; or when the bootstrap interval of the AUC difference lies below 0), and also when it has fewer than `minRows`
 * rows, when McNemar's one-sided test finds the candidate worse at `alpha`, or when its accuracy is
 * below the champion's by more than `maxAccuracyDrop` (relative); else PASSED. Without a champion
 * the candidate is judged on its own figures (PASSED unless the holdout is too small), and the
 * reasons say so. Needs `update` on the candidate and `read` on the champion and the holdout. The
 * verdict is stored on the candidate (replacing any earlier one) with one audit event.
 */
export async function challengeModelVersion(ctx: RequestContext, input: ChallengeModelVersionInput): Promise<ModelVersionChallenge> {
  const policy = checkedPolicy(input.policy);
  const loaded = await inTransaction(ctx, async (em, ctx) => {
    const candidate = await loadReadable(ctx, em, ModelVersion, 'ModelVersion', input.candidate, 'candidate');
    assertCan(ctx, 'update', 'ModelVersion', candidate);
    let champion: ModelVersion | null = null;
    if (input.champion) {
      champion = await loadReadable(ctx, em, ModelVersion, 'ModelVersion', input.champion, 'champion');
    } else {
      const alias = await em.findOne(ModelVersionAlias, { where: { modelId: candidate.modelId, alias: 'champion' } });
      if (alias) champion = await loadReadable(ctx, em, ModelVersion, 'ModelVersion', toGlobalId('ModelVersion', alias.modelVersionId), 'champion');
    }
    if (champion) assertCan(ctx, 'read', 'ModelVersion', champion);
    if (champion?.id === candidate.id) {
      throw badInput('the candidate is the champion: name another version to judge it against', { field: input.champion ? 'champion' : 'candidate', reason: MonitoringReason.CHALLENGE_SAME_VERSION });
    }
    const holdout = await loadReadable(ctx, em, DatasetVersion, 'DatasetVersion', input.holdout, 'holdout');
    assertCan(ctx, 'read', 'DatasetVersion', holdout);
    const blob = await em.findOneBy(DatasetBlob, { sha256: holdout.sha256 });
    if (!blob) throw holdoutError('the content of the holdout is not stored on this server: upload it to /datasets/content first');
    if (blob.rowCount > MAX_CHALLENGE_ROWS || blob.sizeBytes > ctx.app.config.datasetMaxBytes) {
      throw holdoutError(`the holdout has ${blob.rowCount} rows; a challenge reads at most ${MAX_CHALLENGE_ROWS}`);
    }
    return { candidate, champion, holdout };
  });

  const { header, rows, labels } = parseHoldout((await ctx.app.artifacts.read(loaded.holdout.sha256)).toString('utf8'));
  const models = [runnable(loaded.candidate, header, policy), ...(loaded.champion ? [runnable(loaded.champion, header, policy)] : [])];
  const [candidateScores, championScores] = await scoreAll(ctx, models, header, rows);

  const cand = figures(models[0], candidateScores, labels);
  const champ = loaded.champion ? figures(models[1], championScores, labels) : null;
  const reasons: string[] = [];
  let rejected = false;
  if (rows.length < policy.minRows) {
    rejected = true;
    reasons.push(`the holdout has ${rows.length} rows; the policy needs at least ${policy.minRows}`);
  }
  let mc: ModelVersionChallenge['mcnemar'] = null;
  let interval: ModelVersionChallenge['aucDifference'] = null;
  if (champ) {
    const { b, c } = discordant(champ.right, cand.right);
    mc = mcnemar(b, c);
    interval = bootstrapAucDifference(championScores, candidateScores, labels, { resamples: BOOTSTRAP_RESAMPLES, seed: BOOTSTRAP_SEED });
    if (mc.pCandidateWorse < policy.alpha) {
      rejected = true;
      reasons.push(`McNemar's test finds the candidate worse than the champion: b = ${b}, c = ${c}, one-sided p = ${fmt(mc.pCandidateWorse)} < alpha ${policy.alpha}`);
    }
    if (interval && interval.upper < 0) {
      rejected = true;
      reasons.push(`AUC is worse than the champion's: the ${interval.level * 100} % bootstrap interval of the difference [${fmt(interval.lower)}, ${fmt(interval.upper)}] lies below 0`);
    }
    const floor = champ.figures.accuracy * (1 - policy.maxAccuracyDrop);
    // A relative tolerance for the product's rounding: equal accuracies never count as a drop.
    if (cand.figures.accuracy < floor - 1e-12) {
      rejected = true;
      reasons.push(`accuracy ${fmt(cand.figures.accuracy)} is below the champion's ${fmt(champ.figures.accuracy)} by more than ${policy.maxAccuracyDrop * 100} % (relative)`);
    }
    if (!rejected && policy.requireImprovement && !((mc.pCandidateBetter ?? 1) < policy.alpha)) {
      rejected = true;
      reasons.push(`not significantly better than the champion, as the policy requires: b = ${b}, c = ${c}, one-sided p = ${fmt(mc.pCandidateBetter ?? 1)} ≥ alpha ${policy.alpha}`);
    }
    if (!rejected) {
      // What the pass rests on: a significant improvement when one was required (and found), else not being worse.
      const better = (mc.pCandidateBetter ?? 1) < policy.alpha;
      reasons.push(
        (better
          ? `significantly better than the champion (b = ${b}, c = ${c}, one-sided p = ${fmt(mc.pCandidateBetter ?? 1)} < alpha ${policy.alpha}); `
          : `not significantly worse than the champion (b = ${b}, c = ${c}, one-sided p = ${fmt(mc.pCandidateWorse)} ≥ alpha ${policy.alpha}); `) +
          `accuracy ${fmt(cand.figures.accuracy)} against ${fmt(champ.figures.accuracy)}`,
      );
    }
  } else {
    reasons.push(`no champion to judge against: judged on its own figures (accuracy ${fmt(cand.figures.accuracy)}, AUC ${cand.figures.auc === null ? 'undefined' : fmt(cand.figures.auc)})`);
  }

  const challenge = Object.assign(new ModelVersionChallenge(), {
    candidate: toGlobalId('ModelVersion', loaded.candidate.id),
    champion: loaded.champion ? toGlobalId('ModelVersion', loaded.champion.id) : null,
    holdout: toGlobalId('DatasetVersion', loaded.holdout.id),
    rows: rows.length,
    positives: labels.filter((l) => l === 1).length,
    candidateFigures: cand.figures,
    championFigures: champ?.figures ?? null,
    mcnemar: mc,
    aucDifference: interval,
    policy: { minRows: policy.minRows, maxAccuracyDrop: policy.maxAccuracyDrop, alpha: policy.alpha, requireImprovement: policy.requireImprovement },
    decision: rejected ? ChallengeDecision.REJECTED : ChallengeDecision.PASSED,
    reasons,
    evaluatedAt: new Date(),
  });
  return recordModelVersionChallenge(ctx, challenge);
}
