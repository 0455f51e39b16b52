// Reference trainer for binary classification on CSV data, run by training jobs
// as a child process. Its outputs depend only on the data, config and seeds.
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { mulberry32 } from '../../src/core/prng';
import { buildDenseBinaryClassifierOnnx, type DenseLayer } from '../../src/registry/onnx-builders';
import { numericReference, referenceSample, type NumericReference } from '../../src/monitoring/reference-profile';

/** `MODELGOV_CONFIG` accepted by the tabular trainer; unknown keys are refused. */
export interface TabularTrainerConfig {
  model: 'logistic_regression' | 'mlp';
  /** Label column (values 0/1). Default `label`. */
  label?: string;
  /** Numeric feature columns, in the model's input order. Default: every column but the label that holds numbers. */
  features?: string[];
  /** Default 30. */
  epochs?: number;
  /** Default 0.1. */
  lr?: number;
  /** L2 penalty on weights (not biases). Default 0.001. */
  l2?: number;
  /** Default 64. */
  batchSize?: number;
  /** Hidden ReLU layer widths; mlp only. Default `[16]`. */
  hidden?: number[];
}

/**
 * `metrics.json`: computed on the evaluation rows with the exported (float32) model.
 * `auc` is left out when those rows hold one class only, since every value must be a finite number.
 */
export interface TabularTrainerMetrics {
  accuracy: number;
  auc?: number;
  logLoss: number;
  trainRows: number;
  evalRows: number;
}

/**
 * Numeric column profile. `std` is the population standard deviation;
 * `quantiles` are the values at probabilities 0.1, 0.2, …, 1.0 (linear
 * interpolation); `bins` are 10 equal-width bins over [min, max] where bin i
 * holds `edges[i] <= v < edges[i+1]` and the last bin also holds `max`.
 * Empty cells are not counted; with no values the statistics are null and the bins empty.
 */
export interface NumericProfile {
  type: 'numeric';
  count: number;
  mean: number | null;
  std: number | null;
  min: number | null;
  max: number | null;
  quantiles: number[];
  bins: { edges: number[]; counts: number[] };
}

/** Categorical column profile: occurrences of each non-empty value, keys sorted. */
export interface CategoricalProfile {
  type: 'categorical';
  count: number;
  frequencies: Record<string, number>;
}

/**
 * `profile.json`: every non-label column of the training rows, and the model's predicted
 * probability on them. It is also a drift reference, version 2: numeric profiles carry
 * `quantileBins`, the prediction also the sorted `sample` of the outputs (see `ReferenceSample`
 * in src/monitoring/reference-profile.ts), and the model's input and output names and input
 * column order are named. The server stores only its aggregates (`storableReference`).
 */
export interface TabularTrainerProfile {
  profileVersion: 2;
  inputName: 'features';
  outputName: 'probability';
  inputColumns: string[];
  features: Record<string, (NumericProfile & Pick<NumericReference, 'quantileBins'>) | CategoricalProfile>;
  prediction: NumericProfile & Pick<NumericReference, 'quantileBins'> & { sample: number[] };
}

// Bad input: reported as one stderr line and exit code 2.
class InputError extends Error {}

const CONFIG_KEYS = new Set(['model', 'label', 'features', 'epochs', 'lr', 'l2', 'batchSize', 'hidden']);
// Keys the server reads from the same config (the evaluation gate); the trainer leaves them alone.
const SERVER_KEYS = new Set(['gate']);
const ROLES = new Set(['TRAIN', 'VALIDATION', 'TEST']);
const HOLDOUT_FRACTION = 0.2;
const NUMBER = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;

interface DatasetRef {
  role: string;
  path: string;
  sha256?: string;
}

interface Seeds {
  split: number;
  init: number;
  shuffle: number;
}

interface Settings {
  model: 'logistic_regression' | 'mlp';
  label: string;
  features?: string[];
  epochs: number;
  lr: number;
  l2: number;
  batchSize: number;
  hidden: number[];
}

function parseJsonEnv(name: string, env: NodeJS.ProcessEnv, fallback?: unknown): unknown {
  const text = env[name];
  if (text === undefined || text === '') {
    if (fallback !== undefined) return fallback;
    throw new InputError(`${name} is not set`);
  }
  try {
    return JSON.parse(text);
  } catch {
    throw new InputError(`${name} is not valid JSON`);
  }
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function readDatasets(env: NodeJS.ProcessEnv): DatasetRef[] {
  const value = parseJsonEnv('MODELGOV_DATASETS', env);
  if (!Array.isArray(value)) throw new InputError('MODELGOV_DATASETS must be a JSON array');
  return value.map((entry, i) => {
    if (!isObject(entry)) throw new InputError(`MODELGOV_DATASETS[${i}] must be an object`);
    const { role, path: file, sha256 } = entry;
    if (typeof role !== 'string' || !ROLES.has(role)) {
      throw new InputError(`MODELGOV_DATASETS[${i}].role must be TRAIN, VALIDATION or TEST`);
    }
    if (typeof file !== 'string' || !path.isAbsolute(file)) {
      throw new InputError(`MODELGOV_DATASETS[${i}].path must be an absolute path`);
    }
    if (sha256 !== undefined && sha256 !== null && typeof sha256 !== 'string') {
      throw new InputError(`MODELGOV_DATASETS[${i}].sha256 must be a string`);
    }
    return { role, path: file, sha256: typeof sha256 === 'string' && sha256 !== '' ? sha256 : undefined };
  });
}

function readSeeds(env: NodeJS.ProcessEnv): Seeds {
  const value = parseJsonEnv('MODELGOV_SEEDS', env, {});
  if (!isObject(value)) throw new InputError('MODELGOV_SEEDS must be a JSON object');
  const seed = (name: keyof Seeds): number => {
    const v = value[name] ?? 0;
    if (typeof v !== 'number' || !Number.isSafeInteger(v)) throw new InputError(`MODELGOV_SEEDS.${name} must be an integer`);
    return v;
  };
  return { split: seed('split'), init: seed('init'), shuffle: seed('shuffle') };
}

function readSettings(env: NodeJS.ProcessEnv): Settings {
  const config = parseJsonEnv('MODELGOV_CONFIG', env);
  if (!isObject(config)) throw new InputError('MODELGOV_CONFIG must be a JSON object');
  for (const key of Object.keys(config)) {
    if (!CONFIG_KEYS.has(key) && !SERVER_KEYS.has(key)) throw new InputError(`config: unknown key '${key}'`);
  }
  const { model } = config;
  if (model !== 'logistic_regression' && model !== 'mlp') {
    throw new InputError(`config.model must be 'logistic_regression' or 'mlp', got ${JSON.stringify(model ?? null)}`);
  }

  const int = (key: string, fallback: number, min: number, max: number): number => {
    const v = config[key] ?? fallback;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
      throw new InputError(`config.${key} must be an integer in ${min}..${max}`);
    }
    return v;
  };
  const real = (key: string, fallback: number, ok: (v: number) => boolean, what: string): number => {
    const v = config[key] ?? fallback;
    if (typeof v !== 'number' || !Number.isFinite(v) || !ok(v)) throw new InputError(`config.${key} must be ${what}`);
    return v;
  };

  const label = config.label ?? 'label';
  if (typeof label !== 'string' || label === '') throw new InputError('config.label must be a non-empty string');

  let features: string[] | undefined;
  if (config.features !== undefined) {
    const list = config.features;
    if (!Array.isArray(list) || list.length === 0 || !list.every((f) => typeof f === 'string' && f !== '')) {
      throw new InputError('config.features must be a non-empty array of column names');
    }
    if (new Set(list).size !== list.length) throw new InputError('config.features lists a column twice');
    if (list.includes(label)) throw new InputError(`config.features must not include the label column '${label}'`);
    features = list as string[];
  }

  let hidden: number[] = [];
  if (model === 'mlp') {
    const list = config.hidden ?? [16];
    if (!Array.isArray(list) || list.length === 0 || list.length > 8) {
      throw new InputError('config.hidden must be an array of 1..8 layer widths');
    }
    hidden = list.map((w) => {
      if (typeof w !== 'number' || !Number.isInteger(w) || w < 1 || w > 4096) {
        throw new InputError('config.hidden widths must be integers in 1..4096');
      }
      return w;
    });
  } else if (config.hidden !== undefined) {
    throw new InputError("config.hidden applies only to model 'mlp'");
  }

  return {
    model,
    label,
    features,
    epochs: int('epochs', 30, 1, 100_000),
    lr: real('lr', 0.1, (v) => v > 0, 'a positive number'),
    l2: real('l2', 0.001, (v) => v >= 0, 'a non-negative number'),
    batchSize: int('batchSize', 64, 1, 1_000_000),
    hidden,
  };
}

interface Table {
  columns: string[];
  rows: string[][];
  // Where each row starts, for messages: `file:line`.
  where: string[];
}

function parseCsv(text: string, source: string): Table {
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  const records: Array<{ cells: string[]; line: number }> = [];
  let cells: string[] = [];
  let cell = '';
  let line = 1;
  let recordLine = 1;
  let quoted = false;
  let cellWasQuoted = false;

  const endRecord = (): void => {
    cells.push(cell);
    // A blank line is no record; a lone quoted empty cell still is one.
    if (!(cells.length === 1 && cells[0] === '' && !cellWasQuoted)) records.push({ cells, line: recordLine });
    cells = [];
    cell = '';
    cellWasQuoted = false;
  };

  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quoted) {
      if (c === '"') {
        if (text[i + 1] === '"') {
          cell += '"';
          i++;
        } else {
          quoted = false;
        }
      } else {
        if (c === '\n') line++;
        cell += c;
      }
    } else if (c === '"' && cell === '') {
      quoted = true;
      cellWasQuoted = true;
    } else if (c === ',') {
      cells.push(cell);
      cell = '';
      cellWasQuoted = false;
    } else if (c === '\n' || c === '\r') {
      if (c === '\r' && text[i + 1] === '\n') i++;
      endRecord();
      line++;
      recordLine = line;
    } else {
      cell += c;
    }
  }
  if (quoted) throw new InputError(`${source}: unterminated quoted field starting on line ${recordLine}`);
  if (cell !== '' || cells.length > 0 || cellWasQuoted) endRecord();

  if (records.length === 0) throw new InputError(`${source}: file is empty (no header row)`);
  const columns = records[0].cells.map((c) => c.trim());
  const seen = new Set<string>();
  for (const name of columns) {
    if (name === '') throw new InputError(`${source}: header has an empty column name`);
    if (seen.has(name)) throw new InputError(`${source}: header names column '${name}' twice`);
    seen.add(name);
  }
  const rows: string[][] = [];
  const where: string[] = [];
  for (const record of records.slice(1)) {
    if (record.cells.length !== columns.length) {
      throw new InputError(`${source}:${record.line}: ${record.cells.length} fields, header has ${columns.length}`);
    }
    rows.push(record.cells.map((c) => c.trim()));
    where.push(`${source}:${record.line}`);
  }
  return { columns, rows, where };
}

function loadTables(refs: DatasetRef[]): Table[] {
  return refs.map((ref) => {
    let bytes: Buffer;
    try {
      bytes = readFileSync(ref.path);
    } catch (err) {
      throw new InputError(`cannot read dataset ${ref.path}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`);
    }
    if (ref.sha256 !== undefined) {
      const actual = createHash('sha256').update(bytes).digest('hex');
      if (actual !== ref.sha256.toLowerCase()) throw new InputError(`dataset ${ref.path}: sha256 is ${actual}, expected ${ref.sha256}`);
    }
    return parseCsv(bytes.toString('utf8'), path.basename(ref.path));
  });
}

// Tables must share their set of columns; rows follow the first table's column order.
function concatTables(tables: Table[], role: string): Table {
  const [first] = tables;
  const rows: string[][] = [];
  const where: string[] = [];
  for (const table of tables) {
    const index = first.columns.map((name) => table.columns.indexOf(name));
    if (table.columns.length !== first.columns.length || index.includes(-1)) {
      throw new InputError(`${role} datasets do not share the same columns`);
    }
    for (let r = 0; r < table.rows.length; r++) {
      rows.push(index.map((i) => table.rows[r][i]));
      where.push(table.where[r]);
    }
  }
  return { columns: first.columns, rows, where };
}

function isNumber(cell: string): boolean {
  return NUMBER.test(cell) && Number.isFinite(Number(cell));
}

interface Matrix {
  x: Float64Array;
  y: Float64Array;
  n: number;
}

// Refuses anything that is not a finite number or a 0/1 label, naming the file and line.
function toMatrix(table: Table, rows: number[], features: string[], label: string, role: string): Matrix {
  const featureIndex = features.map((name) => {
    const i = table.columns.indexOf(name);
    if (i < 0) throw new InputError(`${role} data has no feature column '${name}'`);
    return i;
  });
  const labelIndex = table.columns.indexOf(label);
  if (labelIndex < 0) throw new InputError(`${role} data has no label column '${label}'`);

  const d = features.length;
  const x = new Float64Array(rows.length * d);
  const y = new Float64Array(rows.length);
  rows.forEach((r, k) => {
    const row = table.rows[r];
    for (let j = 0; j < d; j++) {
      const cell = row[featureIndex[j]];
      if (!isNumber(cell)) {
        const shown = cell === '' ? 'an empty value' : `non-numeric value ${JSON.stringify(cell.slice(0, 40))}`;
        throw new InputError(`${table.where[r]}: feature '${features[j]}' has ${shown}`);
      }
      x[k * d + j] = Number(cell);
    }
    const value = Number(row[labelIndex]);
    if (!isNumber(row[labelIndex]) || (value !== 0 && value !== 1)) {
      throw new InputError(`${table.where[r]}: label '${label}' must be 0 or 1, got ${JSON.stringify(row[labelIndex].slice(0, 40))}`);
    }
    y[k] = value;
  });
  return { x, y, n: rows.length };
}

function shuffleInPlace(values: number[], random: () => number): void {
  for (let i = values.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    const t = values[i];
    values[i] = values[j];
    values[j] = t;
  }
}

interface Layer {
  fanIn: number;
  fanOut: number;
  // Row-major [fanIn][fanOut], as the ONNX Gemm weight.
  w: Float64Array;
  b: Float64Array;
}

function initLayers(sizes: number[], random: () => number, zero: boolean): Layer[] {
  const layers: Layer[] = [];
  for (let l = 1; l < sizes.length; l++) {
    const fanIn = sizes[l - 1];
    const fanOut = sizes[l];
    const w = new Float64Array(fanIn * fanOut);
    if (!zero) {
      // He-uniform before ReLU, Glorot-uniform into the sigmoid output.
      const isLast = l === sizes.length - 1;
      const limit = isLast ? Math.sqrt(6 / (fanIn + fanOut)) : Math.sqrt(6 / fanIn);
      for (let i = 0; i < w.length; i++) w[i] = (random() * 2 - 1) * limit;
    }
    layers.push({ fanIn, fanOut, w, b: new Float64Array(fanOut) });
  }
  return layers;
}

// Fills acts[l] with layer l's output (post-ReLU for hidden layers) and returns the logit.
function forward(layers: Layer[], input: Float64Array, acts: Float64Array[]): number {
  let a = input;
  for (let l = 0; l < layers.length; l++) {
    const { fanIn, fanOut, w, b } = layers[l];
    const out = acts[l];
    for (let j = 0; j < fanOut; j++) out[j] = 0;
    for (let i = 0; i < fanIn; i++) {
      const ai = a[i];
      if (ai === 0) continue;
      const base = i * fanOut;
      for (let j = 0; j < fanOut; j++) out[j] += ai * w[base + j];
    }
    const hidden = l < layers.length - 1;
    for (let j = 0; j < fanOut; j++) {
      const z = out[j] + b[j];
      out[j] = hidden && z < 0 ? 0 : z;
    }
    a = out;
  }
  return a[0];
}

function sigmoid(z: number): number {
  if (z >= 0) return 1 / (1 + Math.exp(-z));
  const e = Math.exp(z);
  return e / (1 + e);
}

// Binary cross-entropy from the logit, stable for large |z|.
function logitLoss(z: number, y: number): number {
  return Math.max(z, 0) - z * y + Math.log1p(Math.exp(-Math.abs(z)));
}

interface TrainOptions {
  settings: Settings;
  seeds: Seeds;
  progress: (fraction: number, message: string) => void;
}

function train(data: Matrix, d: number, opts: TrainOptions): Layer[] {
  const { settings, seeds } = opts;
  const sizes = [d, ...settings.hidden, 1];
  // Logistic regression is convex: start from zero so the init seed does not matter.
  const layers = initLayers(sizes, mulberry32(seeds.init, 0x1f2e3d4c), settings.model === 'logistic_regression');
  const grads = layers.map((l) => ({ w: new Float64Array(l.w.length), b: new Float64Array(l.b.length) }));
  const acts = layers.map((l) => new Float64Array(l.fanOut));
  const deltas = layers.map((l) => new Float64Array(l.fanOut));
  const input = new Float64Array(d);
  const shuffleRandom = mulberry32(seeds.shuffle, 0x5a5a1234);
  const order = Array.from({ length: data.n }, (_, i) => i);
  const { epochs, lr, l2, batchSize } = settings;

  for (let epoch = 1; epoch <= epochs; epoch++) {
    shuffleInPlace(order, shuffleRandom);
    let lossSum = 0;
    for (let start = 0; start < data.n; start += batchSize) {
      const end = Math.min(start + batchSize, data.n);
      for (const g of grads) {
        g.w.fill(0);
        g.b.fill(0);
      }
      for (let k = start; k < end; k++) {
        const r = order[k];
        for (let j = 0; j < d; j++) input[j] = data.x[r * d + j];
        const z = forward(layers, input, acts);
        lossSum += logitLoss(z, data.y[r]);
        deltas[layers.length - 1][0] = sigmoid(z) - data.y[r];
        for (let l = layers.length - 1; l >= 0; l--) {
          const { fanIn, fanOut, w } = layers[l];
          const delta = deltas[l];
          const prev = l === 0 ? input : acts[l - 1];
          const g = grads[l];
          for (let j = 0; j < fanOut; j++) g.b[j] += delta[j];
          for (let i = 0; i < fanIn; i++) {
            const ai = prev[i];
            const base = i * fanOut;
            if (ai !== 0) for (let j = 0; j < fanOut; j++) g.w[base + j] += ai * delta[j];
          }
          if (l > 0) {
            const below = deltas[l - 1];
            for (let i = 0; i < fanIn; i++) {
              // ReLU derivative: zero where the activation was clipped.
              if (prev[i] <= 0) {
                below[i] = 0;
                continue;
              }
              let s = 0;
              const base = i * fanOut;
              for (let j = 0; j < fanOut; j++) s += w[base + j] * delta[j];
              below[i] = s;
            }
          }
        }
      }
      const m = end - start;
      for (let l = 0; l < layers.length; l++) {
        const { w, b } = layers[l];
        const g = grads[l];
        for (let i = 0; i < w.length; i++) w[i] -= lr * (g.w[i] / m + l2 * w[i]);
        for (let j = 0; j < b.length; j++) b[j] -= lr * (g.b[j] / m);
      }
    }
    const loss = lossSum / data.n;
    if (!Number.isFinite(loss) || layers.some((l) => !l.w.every(Number.isFinite) || !l.b.every(Number.isFinite))) {
      throw new InputError(`training diverged at epoch ${epoch} (non-finite loss); lower config.lr`);
    }
    opts.progress(0.05 + (0.85 * epoch) / epochs, `epoch ${epoch}/${epochs} loss ${loss.toFixed(6)}`);
  }
  return layers;
}

// Float32-rounded parameters: metrics and profiles describe the model as the ONNX file stores it.
interface ExportedModel {
  mean: Float64Array;
  std: Float64Array;
  layers: Layer[];
}

function roundModel(mean: Float64Array, std: Float64Array, layers: Layer[]): ExportedModel {
  const round = (a: Float64Array): Float64Array => a.map((v) => Math.fround(v));
  return {
    mean: round(mean),
    std: round(std),
    layers: layers.map((l) => ({ fanIn: l.fanIn, fanOut: l.fanOut, w: round(l.w), b: round(l.b) })),
  };
}

function predict(model: ExportedModel, data: Matrix, d: number): Float64Array {
  const acts = model.layers.map((l) => new Float64Array(l.fanOut));
  const input = new Float64Array(d);
  const out = new Float64Array(data.n);
  for (let r = 0; r < data.n; r++) {
    for (let j = 0; j < d; j++) input[j] = (Math.fround(data.x[r * d + j]) - model.mean[j]) / model.std[j];
    out[r] = Math.fround(sigmoid(forward(model.layers, input, acts)));
  }
  return out;
}

function auc(p: Float64Array, y: Float64Array): number | null {
  const n = p.length;
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => p[a] - p[b] || a - b);
  let positives = 0;
  let rankSum = 0;
  for (let i = 0; i < n; ) {
    let j = i;
    while (j + 1 < n && p[order[j + 1]] === p[order[i]]) j++;
    // Tied scores share the average of their 1-based ranks.
    const rank = (i + j + 2) / 2;
    for (let k = i; k <= j; k++) {
      if (y[order[k]] === 1) {
        positives++;
        rankSum += rank;
      }
    }
    i = j + 1;
  }
  const negatives = n - positives;
  if (positives === 0 || negatives === 0) return null;
  return (rankSum - (positives * (positives + 1)) / 2) / (positives * negatives);
}

function metricsOf(p: Float64Array, y: Float64Array, trainRows: number): TabularTrainerMetrics {
  const eps = 1e-15;
  let correct = 0;
  let loss = 0;
  for (let i = 0; i < p.length; i++) {
    if ((p[i] >= 0.5 ? 1 : 0) === y[i]) correct++;
    const q = Math.min(Math.max(p[i], eps), 1 - eps);
    loss -= y[i] === 1 ? Math.log(q) : Math.log(1 - q);
  }
  const area = auc(p, y);
  return { accuracy: correct / p.length, ...(area === null ? {} : { auc: area }), logLoss: loss / p.length, trainRows, evalRows: p.length };
}

// The older profile's fields, then what drift needs of the same values.
function driftProfile(values: ArrayLike<number>): NumericProfile & Pick<NumericReference, 'quantileBins'> {
  return { ...numericProfile(values), quantileBins: numericReference(values).quantileBins };
}

// The model's outputs are not training data, and the server cannot recompute them without
// running the model: their sample travels to the server, which keeps it apart from the profile.
function predictionProfile(values: ArrayLike<number>): TabularTrainerProfile['prediction'] {
  return { ...driftProfile(values), sample: referenceSample(values) };
}

function numericProfile(values: ArrayLike<number>): NumericProfile {
  const count = values.length;
  if (count === 0) {
    return { type: 'numeric', count: 0, mean: null, std: null, min: null, max: null, quantiles: [], bins: { edges: [], counts: [] } };
  }
  const sorted = Float64Array.from(values).sort();
  let sum = 0;
  for (let i = 0; i < count; i++) sum += sorted[i];
  const mean = sum / count;
  let squares = 0;
  for (let i = 0; i < count; i++) squares += (sorted[i] - mean) ** 2;
  const min = sorted[0];
  const max = sorted[count - 1];

  const quantiles: number[] = [];
  for (let q = 1; q <= 10; q++) {
    const pos = ((count - 1) * q) / 10;
    const lo = Math.floor(pos);
    const hi = Math.min(lo + 1, count - 1);
    quantiles.push(sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo));
  }

  const edges: number[] = [];
  for (let i = 0; i < 10; i++) edges.push(min + ((max - min) * i) / 10);
  edges.push(max);
  const counts = new Array<number>(10).fill(0);
  for (let i = 0; i < count; i++) {
    const v = sorted[i];
    // Largest bin whose lower edge is <= v, so the counts agree with the edges exactly.
    let bin = 9;
    while (bin > 0 && edges[bin] > v) bin--;
    counts[bin]++;
  }
  return { type: 'numeric', count, mean, std: Math.sqrt(squares / count), min, max, quantiles, bins: { edges, counts } };
}

function categoricalProfile(values: string[]): CategoricalProfile {
  const counts = new Map<string, number>();
  for (const v of values) counts.set(v, (counts.get(v) ?? 0) + 1);
  const frequencies: Record<string, number> = {};
  for (const key of [...counts.keys()].sort()) frequencies[key] = counts.get(key)!;
  return { type: 'categorical', count: values.length, frequencies };
}

// 'mixed' columns hold some numbers and some text: a typo in a numeric feature, refused if used as one.
function columnKind(table: Table, column: number, rows: number[]): 'numeric' | 'categorical' | 'mixed' {
  let numbers = 0;
  let strings = 0;
  for (const r of rows) {
    const cell = table.rows[r][column];
    if (cell === '') continue;
    if (isNumber(cell)) numbers++;
    else strings++;
  }
  if (numbers > 0 && strings === 0) return 'numeric';
  return numbers > 0 ? 'mixed' : 'categorical';
}

function emitProgress(fraction: number, message: string): void {
  process.stdout.write(JSON.stringify({ progress: Math.round(fraction * 10000) / 10000, message }) + '\n');
}

function writeAtomically(file: string, data: string | Buffer): void {
  const temp = `${file}.partial`;
  writeFileSync(temp, data);
  renameSync(temp, file);
}

function run(env: NodeJS.ProcessEnv): void {
  const settings = readSettings(env);
  const seeds = readSeeds(env);
  const refs = readDatasets(env);
  const outputDir = env.MODELGOV_OUTPUT_DIR;
  if (!outputDir || !path.isAbsolute(outputDir)) throw new InputError('MODELGOV_OUTPUT_DIR must be an absolute path');

  emitProgress(0, 'loading data');
  const trainRefs = refs.filter((r) => r.role === 'TRAIN');
  if (trainRefs.length === 0) throw new InputError('MODELGOV_DATASETS has no TRAIN dataset');
  const evalRole = refs.some((r) => r.role === 'TEST') ? 'TEST' : refs.some((r) => r.role === 'VALIDATION') ? 'VALIDATION' : null;
  const trainTable = concatTables(loadTables(trainRefs), 'TRAIN');
  const evalTable = evalRole ? concatTables(loadTables(refs.filter((r) => r.role === evalRole)), evalRole) : null;

  const { label } = settings;
  if (!trainTable.columns.includes(label)) throw new InputError(`TRAIN data has no label column '${label}'`);
  if (trainTable.rows.length === 0) throw new InputError('TRAIN data has no rows');

  let trainRows = trainTable.rows.map((_, i) => i);
  let evalRows: number[];
  if (evalTable) {
    if (evalTable.rows.length === 0) throw new InputError(`${evalRole} data has no rows`);
    evalRows = evalTable.rows.map((_, i) => i);
  } else {
    if (trainRows.length < 2) throw new InputError('TRAIN data needs at least 2 rows to hold out evaluation rows');
    const permuted = [...trainRows];
    shuffleInPlace(permuted, mulberry32(seeds.split, 0x3c4b5a69));
    const holdout = Math.max(1, Math.round(trainRows.length * HOLDOUT_FRACTION));
    // Keep both parts in file order so only the split seed decides membership.
    evalRows = permuted.slice(0, holdout).sort((a, b) => a - b);
    trainRows = permuted.slice(holdout).sort((a, b) => a - b);
  }

  const kinds = new Map<string, 'numeric' | 'categorical' | 'mixed'>();
  trainTable.columns.forEach((name, i) => {
    if (name !== label) kinds.set(name, columnKind(trainTable, i, trainRows));
  });
  const features = settings.features ?? [...kinds].filter(([, kind]) => kind !== 'categorical').map(([name]) => name);
  if (features.length === 0) throw new InputError('TRAIN data has no numeric feature columns');
  for (const name of features) {
    if (!kinds.has(name)) throw new InputError(`TRAIN data has no feature column '${name}'`);
    if (kinds.get(name) === 'categorical') {
      throw new InputError(`feature '${name}' is categorical (text values); this trainer takes numeric features only, leave it out of config.features`);
    }
  }

  const d = features.length;
  const trainData = toMatrix(trainTable, trainRows, features, label, 'TRAIN');
  const evalData = evalTable ? toMatrix(evalTable, evalRows, features, label, evalRole!) : toMatrix(trainTable, evalRows, features, label, 'TRAIN');
  let positives = 0;
  for (let i = 0; i < trainData.n; i++) positives += trainData.y[i];
  if (positives === 0 || positives === trainData.n) throw new InputError(`training rows hold only label ${positives === 0 ? 0 : 1}`);
  process.stdout.write(`training ${settings.model} on ${trainData.n} rows, evaluating on ${evalData.n} ${evalRole ?? 'held-out TRAIN'} rows, ${d} features\n`);

  // Standardise with float32-representable statistics so training sees exactly what the exported graph computes.
  const mean = new Float64Array(d);
  const std = new Float64Array(d);
  for (let j = 0; j < d; j++) {
    let s = 0;
    for (let r = 0; r < trainData.n; r++) s += trainData.x[r * d + j];
    const m = s / trainData.n;
    let q = 0;
    for (let r = 0; r < trainData.n; r++) q += (trainData.x[r * d + j] - m) ** 2;
    const sd = Math.fround(Math.sqrt(q / trainData.n));
    mean[j] = Math.fround(m);
    // A constant column carries no signal; dividing by 1 keeps it finite.
    std[j] = Number.isFinite(sd) && sd > 0 ? sd : 1;
  }
  const scaled: Matrix = { x: new Float64Array(trainData.x.length), y: trainData.y, n: trainData.n };
  for (let r = 0; r < trainData.n; r++) {
    for (let j = 0; j < d; j++) scaled.x[r * d + j] = (Math.fround(trainData.x[r * d + j]) - mean[j]) / std[j];
  }

  const layers = train(scaled, d, { settings, seeds, progress: emitProgress });
  const model = roundModel(mean, std, layers);

  emitProgress(0.92, 'evaluating');
  const metrics = metricsOf(predict(model, evalData, d), evalData.y, trainData.n);

  emitProgress(0.95, 'profiling training data');
  const profile: TabularTrainerProfile = {
    profileVersion: 2,
    inputName: 'features',
    outputName: 'probability',
    inputColumns: features,
    features: {},
    prediction: predictionProfile(predict(model, trainData, d)),
  };
  trainTable.columns.forEach((name, c) => {
    if (name === label) return;
    const cells = trainRows.map((r) => trainTable.rows[r][c]).filter((v) => v !== '');
    profile.features[name] = kinds.get(name) === 'numeric' ? driftProfile(cells.map(Number)) : categoricalProfile(cells);
  });

  const onnxLayers: DenseLayer[] = model.layers.map((l) => ({
    weights: Array.from({ length: l.fanIn }, (_, i) => Array.from(l.w.subarray(i * l.fanOut, (i + 1) * l.fanOut))),
    bias: Array.from(l.b),
  }));
  const bytes = buildDenseBinaryClassifierOnnx({
    layers: onnxLayers,
    featureMean: Array.from(model.mean),
    featureStd: Array.from(model.std),
    docString: JSON.stringify({ trainer: 'tabular-trainer', model: settings.model, label, features }),
  });

  // Not `recursive`: Node's recursive mkdir can spin forever on paths under /proc.
  try {
    mkdirSync(outputDir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
  writeAtomically(path.join(outputDir, 'metrics.json'), JSON.stringify(metrics, null, 2) + '\n');
  writeAtomically(path.join(outputDir, 'profile.json'), JSON.stringify(profile, null, 2) + '\n');
  writeAtomically(path.join(outputDir, 'model.onnx'), bytes);
  process.stdout.write(`accuracy ${metrics.accuracy.toFixed(4)} auc ${metrics.auc === undefined ? 'n/a' : metrics.auc.toFixed(4)} logLoss ${metrics.logLoss.toFixed(4)}\n`);
  emitProgress(1, 'done');
}

function main(): void {
  try {
    run(process.env);
    process.exitCode = 0;
  } catch (err) {
    if (err instanceof InputError) {
      process.stderr.write(err.message.replace(/\s*\n\s*/g, ' ') + '\n');
      process.exitCode = 2;
    } else {
      process.stderr.write(`unexpected error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
      process.exitCode = 1;
    }
  }
}

if (require.main === module) main();
