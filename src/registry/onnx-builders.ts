/** Builders of ONNX models from given or seeded parameters (logistic regression, MLP, dense binary classifier): the same arguments give the same bytes. */

import { onnx } from 'onnx-proto';
import { mulberry32 } from '../core/prng';

const IR_VERSION = 8;
const OPSET_VERSION = 17;
const PRODUCER_NAME = 'modelgov';
const FLOAT = onnx.TensorProto.DataType.FLOAT;

function floatTensor(name: string, dims: number[], values: ArrayLike<number>): onnx.ITensorProto {
  const raw = Buffer.alloc(values.length * 4);
  // Explicit LE writes: ONNX raw_data is little-endian regardless of host order.
  for (let i = 0; i < values.length; i++) raw.writeFloatLE(values[i], i * 4);
  return { name, dims, dataType: FLOAT, rawData: raw };
}

function floatValueInfo(name: string, shape: Array<number | string>): onnx.IValueInfoProto {
  return {
    name,
    type: {
      tensorType: {
        elemType: FLOAT,
        shape: { dim: shape.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) },
      },
    },
  };
}

function encodeModel(graph: onnx.IGraphProto, docString?: string): Buffer {
  const model: onnx.IModelProto = {
    irVersion: IR_VERSION,
    opsetImport: [{ domain: '', version: OPSET_VERSION }],
    producerName: PRODUCER_NAME,
    graph,
  };
  if (docString) model.docString = docString;
  // Copy: protobufjs may hand back a view into Node's shared allocation pool.
  return Buffer.from(onnx.ModelProto.encode(model).finish());
}

function assertFinite(values: number[], what: string): void {
  for (const v of values) {
    if (typeof v !== 'number' || !Number.isFinite(v)) throw new RangeError(`${what} must be finite numbers`);
  }
}

/**
 * Builds a logistic regression model: input `features` float32 `['batch', nFeatures]`,
 * `MatMul` with weights `[nFeatures, 1]`, `Add` bias `[1]`, `Sigmoid`, output
 * `probability` float32 `['batch', 1]`. IR 8, opset 17, producer `modelgov`.
 *
 * The same arguments always yield the same bytes.
 *
 * @throws RangeError when `weights` is empty or any weight or the bias is not finite.
 */
export function buildLogisticRegressionOnnx(opts: { weights: number[]; bias: number; docString?: string }): Buffer {
  const { weights, bias } = opts;
  if (!Array.isArray(weights) || weights.length === 0) throw new RangeError('weights must be a non-empty array');
  assertFinite(weights, 'weights');
  assertFinite([bias], 'bias');
  const n = weights.length;

  const graph: onnx.IGraphProto = {
    name: 'logistic_regression',
    node: [
      { name: 'matmul', opType: 'MatMul', input: ['features', 'weights'], output: ['logit_raw'] },
      { name: 'add_bias', opType: 'Add', input: ['logit_raw', 'bias'], output: ['logit'] },
      { name: 'sigmoid', opType: 'Sigmoid', input: ['logit'], output: ['probability'] },
    ],
    initializer: [floatTensor('weights', [n, 1], weights), floatTensor('bias', [1], [bias])],
    input: [floatValueInfo('features', ['batch', n])],
    output: [floatValueInfo('probability', ['batch', 1])],
  };
  return encodeModel(graph, opts.docString);
}

/**
 * Builds a multilayer perceptron: input `features` float32 `['batch', layers[0]]`;
 * for each subsequent layer a `Gemm` (weights `[fanIn, fanOut]` and bias `[fanOut]`
 * initializers) followed by `Relu` except after the last layer; output `output`
 * float32 `['batch', layers[last]]`. IR 8, opset 17, producer `modelgov`.
 *
 * Parameters are drawn uniformly from ±1/sqrt(fanIn) with a mulberry32 PRNG seeded
 * by `seed`, so the same arguments always yield the same bytes.
 *
 * @throws RangeError when fewer than two layers are given, a layer size is not a
 *   positive integer, or `seed` is not an integer.
 */
export function buildMlpOnnx(opts: { layers: number[]; seed: number }): Buffer {
  const { layers, seed } = opts;
  if (!Array.isArray(layers) || layers.length < 2) throw new RangeError('layers must list at least two sizes');
  for (const size of layers) {
    if (!Number.isSafeInteger(size) || size <= 0) throw new RangeError('layer sizes must be positive integers');
  }
  if (!Number.isSafeInteger(seed)) throw new RangeError('seed must be an integer');

  const random = mulberry32(seed);
  const nodes: onnx.INodeProto[] = [];
  const initializers: onnx.ITensorProto[] = [];
  let current = 'features';

  for (let l = 1; l < layers.length; l++) {
    const fanIn = layers[l - 1];
    const fanOut = layers[l];
    const scale = 1 / Math.sqrt(fanIn);
    const weights = new Float32Array(fanIn * fanOut);
    for (let i = 0; i < weights.length; i++) weights[i] = (random() * 2 - 1) * scale;
    const bias = new Float32Array(fanOut);
    for (let i = 0; i < bias.length; i++) bias[i] = (random() * 2 - 1) * scale;

    const weightName = `layer${l}.weight`;
    const biasName = `layer${l}.bias`;
    initializers.push(floatTensor(weightName, [fanIn, fanOut], weights), floatTensor(biasName, [fanOut], bias));

    const isLast = l === layers.length - 1;
    const gemmOut = isLast ? 'output' : `layer${l}.linear`;
    nodes.push({ name: `layer${l}.gemm`, opType: 'Gemm', input: [current, weightName, biasName], output: [gemmOut] });
    current = gemmOut;
    if (!isLast) {
      const reluOut = `layer${l}.relu`;
      nodes.push({ name: `layer${l}.relu`, opType: 'Relu', input: [current], output: [reluOut] });
      current = reluOut;
    }
  }

  const graph: onnx.IGraphProto = {
    name: 'mlp',
    node: nodes,
    initializer: initializers,
    input: [floatValueInfo('features', ['batch', layers[0]])],
    output: [floatValueInfo('output', ['batch', layers[layers.length - 1]])],
  };
  return encodeModel(graph);
}

/** One fully connected layer of {@link buildDenseBinaryClassifierOnnx}: `weights[i][j]` connects input `i` to output `j`. */
export interface DenseLayer {
  /** `[fanIn][fanOut]`. */
  weights: number[][];
  /** `[fanOut]`. */
  bias: number[];
}

/** Options of {@link buildDenseBinaryClassifierOnnx}. */
export interface DenseBinaryClassifierOptions {
  /** Applied in order; the first layer's fanIn is the number of features, the last layer's fanOut must be 1. */
  layers: DenseLayer[];
  /** When given, subtracted from the raw features (`Sub`) before the first layer; one entry per feature. */
  featureMean?: number[];
  /** When given, the (centred) features are divided by it (`Div`) before the first layer; one positive entry per feature. */
  featureStd?: number[];
  docString?: string;
}

function checkVector(values: unknown, length: number, what: string): number[] {
  if (!Array.isArray(values) || values.length !== length) throw new RangeError(`${what} must have ${length} entries`);
  assertFinite(values, what);
  return values;
}

/**
 * Builds a feed-forward binary classifier with explicit parameters: input
 * `features` float32 `['batch', nFeatures]`, then optionally `Sub` of
 * `feature_mean` and `Div` by `feature_std` (both `[nFeatures]`), then per layer
 * a `Gemm` with initializers `layer{k}.weight` `[fanIn, fanOut]` and
 * `layer{k}.bias` `[fanOut]` (k from 1), `Relu` between layers and `Sigmoid`
 * after the last; output `probability` float32 `['batch', 1]`. IR 8, opset 17,
 * producer `modelgov`. Parameters are stored as float32.
 *
 * The same arguments always yield the same bytes.
 *
 * @throws RangeError when there are no layers, shapes do not chain, the last
 *   layer's fanOut is not 1, a value is not finite, or a `featureStd` entry is not positive.
 */
export function buildDenseBinaryClassifierOnnx(opts: DenseBinaryClassifierOptions): Buffer {
  const { layers } = opts;
  if (!Array.isArray(layers) || layers.length === 0) throw new RangeError('layers must be a non-empty array');

  const nodes: onnx.INodeProto[] = [];
  const initializers: onnx.ITensorProto[] = [];
  let current = 'features';
  let nFeatures = 0;

  layers.forEach((layer, index) => {
    const k = index + 1;
    const rows = layer?.weights;
    if (!Array.isArray(rows) || rows.length === 0) throw new RangeError(`layer ${k} weights must be a non-empty [fanIn][fanOut] array`);
    const fanIn = rows.length;
    const fanOut = Array.isArray(rows[0]) ? rows[0].length : 0;
    if (fanOut === 0) throw new RangeError(`layer ${k} weights must be a non-empty [fanIn][fanOut] array`);
    if (index === 0) nFeatures = fanIn;
    else if (fanIn !== layers[index - 1].bias.length) {
      throw new RangeError(`layer ${k} fanIn ${fanIn} does not match layer ${index} fanOut ${layers[index - 1].bias.length}`);
    }
    const flat: number[] = [];
    for (const row of rows) flat.push(...checkVector(row, fanOut, `layer ${k} weight rows`));
    const bias = checkVector(layer.bias, fanOut, `layer ${k} bias`);
    if (index === layers.length - 1 && fanOut !== 1) throw new RangeError('the last layer must have fanOut 1');

    const weightName = `layer${k}.weight`;
    const biasName = `layer${k}.bias`;
    initializers.push(floatTensor(weightName, [fanIn, fanOut], flat), floatTensor(biasName, [fanOut], bias));
    const linear = `layer${k}.linear`;
    nodes.push({ name: `layer${k}.gemm`, opType: 'Gemm', input: [current, weightName, biasName], output: [linear] });
    current = linear;
    if (index < layers.length - 1) {
      const relu = `layer${k}.relu`;
      nodes.push({ name: relu, opType: 'Relu', input: [current], output: [relu] });
      current = relu;
    }
  });
  nodes.push({ name: 'sigmoid', opType: 'Sigmoid', input: [current], output: ['probability'] });

  // Standardisation runs before the first Gemm, so it is prepended once nFeatures is known.
  const prelude: onnx.INodeProto[] = [];
  const preludeInit: onnx.ITensorProto[] = [];
  let input = 'features';
  if (opts.featureMean !== undefined) {
    preludeInit.push(floatTensor('feature_mean', [nFeatures], checkVector(opts.featureMean, nFeatures, 'featureMean')));
    prelude.push({ name: 'standardize.sub', opType: 'Sub', input: [input, 'feature_mean'], output: ['features_centered'] });
    input = 'features_centered';
  }
  if (opts.featureStd !== undefined) {
    const std = checkVector(opts.featureStd, nFeatures, 'featureStd');
    if (std.some((s) => !(Math.fround(s) > 0))) throw new RangeError('featureStd entries must be positive');
    preludeInit.push(floatTensor('feature_std', [nFeatures], std));
    prelude.push({ name: 'standardize.div', opType: 'Div', input: [input, 'feature_std'], output: ['features_scaled'] });
    input = 'features_scaled';
  }
  nodes[0].input = [input, ...(nodes[0].input ?? []).slice(1)];

  const graph: onnx.IGraphProto = {
    name: 'dense_binary_classifier',
    node: [...prelude, ...nodes],
    initializer: [...preludeInit, ...initializers],
    input: [floatValueInfo('features', ['batch', nFeatures])],
    output: [floatValueInfo('probability', ['batch', 1])],
  };
  return encodeModel(graph, opts.docString);
}
