import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { onnx } from 'onnx-proto';
import { syntheticCoefficients, syntheticCsv } from '../../jobs/trainers/synthetic-data';
import { readOnnxSignature } from '../../src/registry/onnx';

const TRAINER = path.resolve(__dirname, '../../jobs/trainers/tabular-trainer.js');
const FEATURES = ['amount', 'hour', 'age', 'score', 'velocity'];

interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
  out: string;
}

interface Metrics {
  accuracy: number;
  auc?: number;
  logLoss: number;
  trainRows: number;
  evalRows: number;
}

interface NumericProfile {
  type: 'numeric';
  count: number;
  mean: number;
  std: number;
  min: number;
  max: number;
  quantiles: number[];
  bins: { edges: number[]; counts: number[] };
}

let root: string;
let runCount = 0;

function writeFile(name: string, text: string): { path: string; sha256: string } {
  const file = path.join(root, name);
  writeFileSync(file, text);
  return { path: file, sha256: createHash('sha256').update(text).digest('hex') };
}

// Spawns the compiled trainer with only the documented environment, as the job runner does.
function runTrainer(opts: {
  datasets: Array<{ role: string; path: string; sha256?: string }>;
  config: unknown;
  seeds?: Record<string, number>;
}): Promise<RunResult> {
  const work = path.join(root, `run-${++runCount}`);
  const out = path.join(work, 'out');
  mkdirSync(work);
  const env = {
    MODELGOV_DATASETS: JSON.stringify(opts.datasets),
    MODELGOV_CONFIG: JSON.stringify(opts.config),
    MODELGOV_SEEDS: JSON.stringify(opts.seeds ?? {}),
    MODELGOV_OUTPUT_DIR: out,
  };
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [TRAINER], { cwd: work, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
    child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr, out }));
  });
}

function parseCsv(text: string): { header: string[]; rows: number[][] } {
  const [head, ...lines] = text.trim().split('\n');
  return { header: head.split(','), rows: lines.map((l) => l.split(',').map(Number)) };
}

// Evaluates the ONNX graph generically from its decoded initializers, in float64 on float32 weights.
function evaluateOnnx(bytes: Buffer, inputs: number[][]): number[] {
  const model = onnx.ModelProto.decode(bytes);
  const graph = model.graph!;
  const tensors = new Map<string, { dims: number[]; data: Float64Array }>();
  for (const init of graph.initializer ?? []) {
    assert.equal(init.dataType, onnx.TensorProto.DataType.FLOAT);
    const raw = Buffer.from(init.rawData!);
    const data = new Float64Array(raw.length / 4);
    for (let i = 0; i < data.length; i++) data[i] = raw.readFloatLE(i * 4);
    tensors.set(init.name!, { dims: (init.dims ?? []).map(Number), data });
  }
  return inputs.map((row) => {
    const values = new Map<string, number[]>([['features', row.map((v) => Math.fround(v))]]);
    const get = (name: string): number[] => {
      const v = values.get(name) ?? (tensors.has(name) ? Array.from(tensors.get(name)!.data) : undefined);
      assert.ok(v, `graph uses unknown value ${name}`);
      return v;
    };
    for (const node of graph.node ?? []) {
      const ins = node.input ?? [];
      const a = get(ins[0]);
      let result: number[];
      switch (node.opType) {
        case 'Sub':
          result = a.map((v, i) => v - get(ins[1])[i]);
          break;
        case 'Div':
          result = a.map((v, i) => v / get(ins[1])[i]);
          break;
        case 'Gemm':
        case 'MatMul': {
          const w = tensors.get(ins[1])!;
          const [fanIn, fanOut] = w.dims;
          assert.equal(a.length, fanIn);
          const bias = node.opType === 'Gemm' && ins[2] ? get(ins[2]) : new Array<number>(fanOut).fill(0);
          result = Array.from({ length: fanOut }, (_, j) => {
            let s = 0;
            for (let i = 0; i < fanIn; i++) s += a[i] * w.data[i * fanOut + j];
            return s + bias[j];
          });
          break;
        }
        case 'Add':
          result = a.map((v, i) => v + get(ins[1])[i]);
          break;
        case 'Relu':
          result = a.map((v) => Math.max(0, v));
          break;
        case 'Sigmoid':
          result = a.map((v) => 1 / (1 + Math.exp(-v)));
          break;
        default:
          assert.fail(`unexpected op ${node.opType}`);
      }
      values.set(node.output![0], result);
    }
    const p = get('probability');
    assert.equal(p.length, 1);
    return Math.fround(p[0]);
  });
}

// Independent metric definitions: pairwise AUC (ties count half) rather than ranks.
function independentMetrics(p: number[], y: number[]): { accuracy: number; auc: number; logLoss: number } {
  let correct = 0;
  let loss = 0;
  const pos: number[] = [];
  const neg: number[] = [];
  p.forEach((q, i) => {
    if ((q >= 0.5 ? 1 : 0) === y[i]) correct++;
    const c = Math.min(Math.max(q, 1e-15), 1 - 1e-15);
    loss -= y[i] === 1 ? Math.log(c) : Math.log(1 - c);
    (y[i] === 1 ? pos : neg).push(q);
  });
  let wins = 0;
  for (const a of pos) for (const b of neg) wins += a > b ? 1 : a === b ? 0.5 : 0;
  return { accuracy: correct / p.length, auc: wins / (pos.length * neg.length), logLoss: loss / p.length };
}

function readOutputs(r: RunResult): { bytes: Buffer; metricsText: string; metrics: Metrics; profileText: string; profile: any } {
  const metricsText = readFileSync(path.join(r.out, 'metrics.json'), 'utf8');
  const profileText = readFileSync(path.join(r.out, 'profile.json'), 'utf8');
  return {
    bytes: readFileSync(path.join(r.out, 'model.onnx')),
    metricsText,
    metrics: JSON.parse(metricsText),
    profileText,
    profile: JSON.parse(profileText),
  };
}

function assertSucceeded(r: RunResult, epochs: number): void {
  assert.equal(r.code, 0, r.stderr);
  const progress = r.stdout
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as { progress: number; message: string });
  assert.ok(progress.filter((p) => /^epoch \d+\/\d+/.test(p.message)).length >= epochs, 'one progress line per epoch');
  for (let i = 0; i < progress.length; i++) {
    assert.ok(progress[i].progress >= 0 && progress[i].progress <= 1);
    if (i > 0) assert.ok(progress[i].progress >= progress[i - 1].progress, 'progress never goes back');
  }
  assert.equal(progress.at(-1)!.progress, 1);
}

function assertHistogram(p: NumericProfile, rows: number): void {
  assert.equal(p.type, 'numeric');
  assert.equal(p.count, rows);
  assert.equal(p.bins.edges.length, 11);
  assert.equal(p.bins.counts.length, 10);
  assert.equal(p.bins.counts.reduce((s, c) => s + c, 0), rows);
  assert.equal(p.bins.edges[0], p.min);
  assert.equal(p.bins.edges[10], p.max);
  assert.equal(p.quantiles.length, 10);
  for (let i = 1; i < 10; i++) assert.ok(p.quantiles[i] >= p.quantiles[i - 1]);
  assert.equal(p.quantiles[9], p.max);
}

describe('tabular trainer', () => {
  let train: { path: string; sha256: string };
  let test: { path: string; sha256: string };
  let trainCsv: { header: string[]; rows: number[][] };
  let testCsv: { header: string[]; rows: number[][] };

  before(() => {
    root = mkdtempSync(path.join(os.tmpdir(), 'modelgov-trainer-'));
    const trainText = syntheticCsv({ rows: 2000, seed: 11, features: FEATURES });
    const testText = syntheticCsv({ rows: 600, seed: 12, features: FEATURES });
    train = writeFile('train.csv', trainText);
    test = writeFile('test.csv', testText);
    trainCsv = parseCsv(trainText);
    testCsv = parseCsv(testText);
  });
  after(() => rmSync(root, { recursive: true, force: true }));

  for (const model of ['logistic_regression', 'mlp'] as const) {
    describe(model, () => {
      const config = model === 'mlp' ? { model, epochs: 30, lr: 0.1, hidden: [16] } : { model, epochs: 30, lr: 0.1 };
      const seeds = { split: 1, init: 2, shuffle: 3 };
      let first: ReturnType<typeof readOutputs>;

      before(async () => {
        const r = await runTrainer({ datasets: [{ role: 'TRAIN', ...train }, { role: 'TEST', ...test }], config, seeds });
        assertSucceeded(r, 30);
        first = readOutputs(r);
      });

      it('writes a model with the promised signature', () => {
        const sig = readOnnxSignature(first.bytes);
        assert.deepEqual(sig.inputs, [{ name: 'features', elemType: 'FLOAT', shape: ['batch', FEATURES.length] }]);
        assert.deepEqual(sig.outputs, [{ name: 'probability', elemType: 'FLOAT', shape: ['batch', 1] }]);
        assert.equal(sig.irVersion, 8);
        assert.equal(sig.opsetVersion, 17);
      });

      it('learns the synthetic signal', () => {
        assert.equal(first.metrics.trainRows, 2000);
        assert.equal(first.metrics.evalRows, 600);
        assert.ok(first.metrics.accuracy > 0.75, `accuracy ${first.metrics.accuracy}`);
        assert.ok(first.metrics.auc! > 0.8, `auc ${first.metrics.auc}`);
      });

      it('reports metrics that the decoded graph reproduces on the TEST rows', () => {
        const p = evaluateOnnx(first.bytes, testCsv.rows.map((r) => r.slice(0, FEATURES.length)));
        const mine = independentMetrics(p, testCsv.rows.map((r) => r[FEATURES.length]));
        assert.ok(Math.abs(mine.accuracy - first.metrics.accuracy) <= 1 / 600 + 1e-12, `${mine.accuracy} vs ${first.metrics.accuracy}`);
        assert.ok(Math.abs(mine.auc - first.metrics.auc!) < 1e-6, `${mine.auc} vs ${first.metrics.auc}`);
        assert.ok(Math.abs(mine.logLoss - first.metrics.logLoss) < 1e-6, `${mine.logLoss} vs ${first.metrics.logLoss}`);
      });

      it('responds to raw features like the data-generating logit', () => {
        // Finite differences on raw inputs: the baked-in standardisation must make
        // the model's sensitivity point along the true coefficients.
        const base = FEATURES.map(() => 0);
        const [p0] = evaluateOnnx(first.bytes, [base]);
        const logit = (p: number): number => Math.log(p / (1 - p));
        const slopes = FEATURES.map((_, j) => {
          const row = [...base];
          row[j] = 0.5;
          return (logit(evaluateOnnx(first.bytes, [row])[0]) - logit(p0)) / 0.5;
        });
        const truth = syntheticCoefficients(FEATURES.length);
        const dot = slopes.reduce((s, v, j) => s + v * truth[j], 0);
        const cos = dot / Math.hypot(...slopes) / Math.hypot(...truth);
        assert.ok(cos > 0.95, `cosine ${cos} between ${slopes} and ${truth}`);
      });

      it('profiles the training rows', () => {
        const { features, prediction } = first.profile;
        assert.deepEqual(Object.keys(features), FEATURES);
        FEATURES.forEach((name, j) => {
          const p = features[name] as NumericProfile;
          assertHistogram(p, 2000);
          const column = trainCsv.rows.map((r) => r[j]);
          const mean = column.reduce((s, v) => s + v, 0) / column.length;
          assert.ok(Math.abs(p.mean - mean) < 1e-9);
          assert.equal(p.min, Math.min(...column));
          assert.equal(p.max, Math.max(...column));
        });
        assertHistogram(prediction, 2000);
        assert.ok(prediction.min >= 0 && prediction.max <= 1);
      });

      it('is byte-for-byte reproducible', async () => {
        const again = await runTrainer({ datasets: [{ role: 'TRAIN', ...train }, { role: 'TEST', ...test }], config, seeds });
        assertSucceeded(again, 30);
        const second = readOutputs(again);
        assert.ok(second.bytes.equals(first.bytes), 'model.onnx differs between identical runs');
        assert.equal(second.metricsText, first.metricsText);
        assert.equal(second.profileText, first.profileText);
      });

      const changed = model === 'mlp' ? { ...seeds, init: 99 } : { ...seeds, shuffle: 99 };
      it(`changes with the ${model === 'mlp' ? 'init' : 'shuffle'} seed`, async () => {
        const r = await runTrainer({ datasets: [{ role: 'TRAIN', ...train }, { role: 'TEST', ...test }], config, seeds: changed });
        assertSucceeded(r, 30);
        assert.ok(!readOutputs(r).bytes.equals(first.bytes));
      });
    });
  }

  it('holds out 20% of TRAIN chosen by the split seed when no evaluation data is given', async () => {
    const config = { model: 'logistic_regression', epochs: 10 };
    const runs = await Promise.all(
      [1, 1, 2].map((split) => runTrainer({ datasets: [{ role: 'TRAIN', ...train }], config, seeds: { split } })),
    );
    runs.forEach((r) => assertSucceeded(r, 10));
    const [a, b, c] = runs.map(readOutputs);
    assert.equal(a.metrics.trainRows, 1600);
    assert.equal(a.metrics.evalRows, 400);
    assert.ok(a.metrics.accuracy > 0.75 && a.metrics.auc! > 0.8);
    assert.ok(a.bytes.equals(b.bytes));
    assert.equal(a.metricsText, b.metricsText);
    assert.ok(!a.bytes.equals(c.bytes), 'a different split seed changes the model');
    assertHistogram(a.profile.features.amount, 1600);
    assertHistogram(a.profile.prediction, 1600);
  });

  it('uses VALIDATION data when there is no TEST data, and concatenates TRAIN files', async () => {
    const r = await runTrainer({
      datasets: [{ role: 'TRAIN', ...train }, { role: 'TRAIN', ...test }, { role: 'VALIDATION', ...test }],
      config: { model: 'logistic_regression', epochs: 5 },
    });
    assertSucceeded(r, 5);
    const { metrics } = readOutputs(r);
    assert.equal(metrics.trainRows, 2600);
    assert.equal(metrics.evalRows, 600);
  });

  it('leaves auc out when the evaluation rows hold one class', async () => {
    const lines = readFileSync(test.path, 'utf8').trim().split('\n');
    const ones = writeFile('ones.csv', [lines[0], ...lines.slice(1).filter((l) => l.endsWith(',1'))].join('\n') + '\n');
    const r = await runTrainer({ datasets: [{ role: 'TRAIN', ...train }, { role: 'TEST', ...ones }], config: { model: 'logistic_regression', epochs: 3 } });
    assertSucceeded(r, 3);
    const { metrics } = readOutputs(r);
    assert.equal('auc' in metrics, false);
    assert.deepEqual(Object.keys(metrics), ['accuracy', 'logLoss', 'trainRows', 'evalRows']);
    assert.ok(Object.values(metrics).every((v) => Number.isFinite(v)));
  });

  it('profiles categorical columns it does not train on, and refuses them as features', async () => {
    const lines = readFileSync(train.path, 'utf8').trim().split('\n');
    const regions = ['north', 'south', 'east'];
    const withRegion = lines.map((l, i) => (i === 0 ? `region,${l}` : `${regions[i % 3]},${l}`)).join('\n') + '\n';
    const file = writeFile('train-region.csv', withRegion);

    const ok = await runTrainer({ datasets: [{ role: 'TRAIN', ...file }], config: { model: 'logistic_regression', epochs: 3 } });
    assertSucceeded(ok, 3);
    const { bytes, profile, metrics } = readOutputs(ok);
    assert.equal(readOnnxSignature(bytes).inputs[0].shape[1], FEATURES.length);
    assert.equal(profile.features.region.type, 'categorical');
    assert.deepEqual(Object.keys(profile.features.region.frequencies), ['east', 'north', 'south']);
    const total = Object.values(profile.features.region.frequencies as Record<string, number>).reduce((s, n) => s + n, 0);
    assert.equal(total, metrics.trainRows);
    assert.equal(profile.features.region.count, metrics.trainRows);

    const refused = await runTrainer({
      datasets: [{ role: 'TRAIN', ...file }],
      config: { model: 'logistic_regression', features: ['region', 'amount'] },
    });
    assert.equal(refused.code, 2);
    assert.match(refused.stderr, /region/);
  });

  function assertRefused(r: RunResult, pattern: RegExp): void {
    assert.equal(r.code, 2, r.stderr);
    const lines = r.stderr.split('\n').filter((l) => l !== '');
    assert.equal(lines.length, 1, `one stderr line, got ${JSON.stringify(r.stderr)}`);
    assert.match(lines[0], pattern);
  }

  it('refuses an unknown model with exit 2 and one line', async () => {
    const r = await runTrainer({ datasets: [{ role: 'TRAIN', ...train }], config: { model: 'forest' } });
    assertRefused(r, /model.*forest/);
  });

  it('refuses other bad configs and seeds with exit 2', async () => {
    const datasets = [{ role: 'TRAIN', ...train }];
    assertRefused(await runTrainer({ datasets, config: { model: 'mlp', depth: 3 } }), /unknown key 'depth'/);
    assertRefused(await runTrainer({ datasets, config: { model: 'mlp', lr: -1 } }), /lr/);
    assertRefused(await runTrainer({ datasets, config: { model: 'logistic_regression', hidden: [4] } }), /hidden/);
    assertRefused(await runTrainer({ datasets, config: { model: 'mlp', label: 'target' } }), /label column 'target'/);
    assertRefused(await runTrainer({ datasets, config: { model: 'mlp', features: ['nope'] } }), /nope/);
    assertRefused(await runTrainer({ datasets, config: { model: 'mlp' }, seeds: { init: 1.5 } }), /init/);
    assertRefused(
      await runTrainer({ datasets: [{ role: 'TRAIN', path: train.path, sha256: '0'.repeat(64) }], config: { model: 'mlp' } }),
      /sha256/,
    );
  });

  it('refuses a non-numeric feature value with exit 2, naming the line', async () => {
    const lines = readFileSync(train.path, 'utf8').split('\n');
    const cells = lines[7].split(',');
    cells[1] = 'twelve';
    lines[7] = cells.join(',');
    const file = writeFile('bad.csv', lines.join('\n'));
    const r = await runTrainer({ datasets: [{ role: 'TRAIN', ...file }], config: { model: 'logistic_regression' } });
    assertRefused(r, /bad\.csv:8: feature 'hour' has non-numeric value "twelve"/);
  });

  it('refuses data without rows with exit 2', async () => {
    const file = writeFile('empty.csv', `${FEATURES.join(',')},label\n`);
    const r = await runTrainer({ datasets: [{ role: 'TRAIN', ...file }], config: { model: 'mlp' } });
    assertRefused(r, /no rows/);
  });
});
