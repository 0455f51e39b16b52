import { onnx } from 'onnx-proto';

// Misbehaving models for the inference tests, written with the ONNX protobuf schema directly:
// each takes `features` float32 [batch, 4] and declares `probability` float32 [batch, 1].

const FLOAT = onnx.TensorProto.DataType.FLOAT;
const INT64 = onnx.TensorProto.DataType.INT64;

function floats(name: string, dims: number[], fill: (i: number) => number): onnx.ITensorProto {
  const n = dims.reduce((a, b) => a * b, 1);
  const raw = Buffer.alloc(n * 4);
  for (let i = 0; i < n; i++) raw.writeFloatLE(fill(i), i * 4);
  return { name, dims, dataType: FLOAT, rawData: raw };
}

function int64s(name: string, values: number[]): onnx.ITensorProto {
  const raw = Buffer.alloc(values.length * 8);
  values.forEach((v, i) => raw.writeBigInt64LE(BigInt(v), i * 8));
  return { name, dims: [values.length], dataType: INT64, rawData: raw };
}

const io = (name: string, width: number): onnx.IValueInfoProto => ({
  name,
  type: { tensorType: { elemType: FLOAT, shape: { dim: [{ dimParam: 'batch' }, { dimValue: width }] } } },
});

function encode(graph: onnx.IGraphProto): Buffer {
  return Buffer.from(onnx.ModelProto.encode({ irVersion: 8, opsetImport: [{ domain: '', version: 17 }], producerName: 'modelgov-tests', graph }).finish());
}

/**
 * Valid but slow: `depth` 1024×1024 matrix products per row (one shared weight, so the file stays
 * small). At a few hundred, one row takes far longer than a tight inference timeout.
 */
export function buildSlowOnnx(depth: number): Buffer {
  const nodes: onnx.INodeProto[] = [{ opType: 'MatMul', input: ['features', 'w_in'], output: ['h0'] }];
  for (let k = 1; k <= depth; k++) nodes.push({ opType: 'MatMul', input: [`h${k - 1}`, 'w'], output: [`h${k}`] });
  nodes.push({ opType: 'MatMul', input: [`h${depth}`, 'w_out'], output: ['logit'] });
  nodes.push({ opType: 'Sigmoid', input: ['logit'], output: ['probability'] });
  return encode({
    name: 'slow',
    node: nodes,
    initializer: [floats('w_in', [4, 1024], () => 0.001), floats('w', [1024, 1024], () => 1 / 1024), floats('w_out', [1024, 1], () => 0.01)],
    input: [io('features', 4)],
    output: [io('probability', 1)],
  });
}

/**
 * Loads and warms up (all-zero features), but fails at run time on real inputs: features are used
 * as indices into a two-entry table, and any feature of 2 or more is out of bounds.
 */
export function buildFaultyOnnx(): Buffer {
  return encode({
    name: 'faulty',
    node: [
      { opType: 'Cast', input: ['features'], output: ['idx'], attribute: [{ name: 'to', type: onnx.AttributeProto.AttributeType.INT, i: INT64 }] },
      { opType: 'Gather', input: ['table', 'idx'], output: ['picked'] },
      { opType: 'ReduceSum', input: ['picked', 'axes'], output: ['sum'], attribute: [{ name: 'keepdims', type: onnx.AttributeProto.AttributeType.INT, i: 1 }] },
      { opType: 'Sigmoid', input: ['sum'], output: ['probability'] },
    ],
    initializer: [floats('table', [2], (i) => i * 0.5), int64s('axes', [1])],
    input: [io('features', 4)],
    output: [io('probability', 1)],
  });
}

/**
 * Valid, quick to load, slow to run: the batch's `size`×`size` Gram matrix (so nothing can be
 * folded away before the inputs arrive) squared through `steps` MatMul + Sigmoid layers. A run
 * costs `steps` dense `size`³ products whatever the rows; `probability` is the plain logistic part.
 */
export function buildHeavyOnnx(steps: number, size = 1024): Buffer {
  const nodes: onnx.INodeProto[] = [
    { opType: 'MatMul', input: ['features', 'w_in'], output: ['x'] },
    { opType: 'Transpose', input: ['x'], output: ['xt'], attribute: [{ name: 'perm', type: onnx.AttributeProto.AttributeType.INTS, ints: [1, 0] }] },
    { opType: 'MatMul', input: ['xt', 'x'], output: ['g'] },
    { opType: 'Sigmoid', input: ['g'], output: ['h0'] },
  ];
  for (let k = 1; k <= steps; k++) {
    nodes.push({ opType: 'MatMul', input: [`h${k - 1}`, 'w'], output: [`m${k}`] });
    nodes.push({ opType: 'Sigmoid', input: [`m${k}`], output: [`h${k}`] });
  }
  nodes.push(
    { opType: 'ReduceSum', input: [`h${steps}`], output: ['total'], attribute: [{ name: 'keepdims', type: onnx.AttributeProto.AttributeType.INT, i: 0 }] },
    { opType: 'Mul', input: ['total', 'zero'], output: ['nothing'] },
    { opType: 'MatMul', input: ['x', 'w_out'], output: ['logit0'] },
    { opType: 'Add', input: ['logit0', 'nothing'], output: ['logit'] },
    { opType: 'Sigmoid', input: ['logit'], output: ['probability'] },
  );
  return encode({
    name: 'heavy',
    node: nodes,
    initializer: [
      floats('w_in', [4, size], (i) => ((i % 7) - 3) / 1000),
      floats('w', [size, size], (i) => ((i % 5) - 2) / size),
      floats('w_out', [size, 1], () => 0.01),
      floats('zero', [], () => 0),
    ],
    input: [io('features', 4)],
    output: [io('probability', 1)],
  });
}

/**
 * Valid, instant on the all-zero warm-up, as slow as its inputs say: a `Loop` whose trip count is
 * the sum of the row's features times `tripsPerUnit`, around a one-addition body. With
 * `tripsPerUnit` 1e12, features of 1.0 make a run that never returns (days of iterations);
 * with a few hundred thousand, a run of about a second. `probability` is a plain logistic part.
 */
export function buildLoopOnnx(tripsPerUnit: number): Buffer {
  const GRAPH = onnx.AttributeProto.AttributeType.GRAPH;
  const BOOL = onnx.TensorProto.DataType.BOOL;
  const scalar = (name: string, elemType: number): onnx.IValueInfoProto => ({ name, type: { tensorType: { elemType, shape: { dim: [] } } } });
  const body: onnx.IGraphProto = {
    name: 'spin',
    node: [
      { opType: 'Identity', input: ['cond_in'], output: ['cond_out'] },
      { opType: 'Add', input: ['acc_in', 'one'], output: ['acc_out'] },
    ],
    input: [scalar('i', INT64), scalar('cond_in', BOOL), scalar('acc_in', FLOAT)],
    output: [scalar('cond_out', BOOL), scalar('acc_out', FLOAT)],
  };
  return encode({
    name: 'input-dependent',
    node: [
      { opType: 'ReduceSum', input: ['features'], output: ['total'], attribute: [{ name: 'keepdims', type: onnx.AttributeProto.AttributeType.INT, i: 0 }] },
      { opType: 'Mul', input: ['total', 'per_unit'], output: ['scaled'] },
      { opType: 'Cast', input: ['scaled'], output: ['trips'], attribute: [{ name: 'to', type: onnx.AttributeProto.AttributeType.INT, i: INT64 }] },
      { opType: 'Loop', input: ['trips', '', 'acc0'], output: ['spun'], attribute: [{ name: 'body', type: GRAPH, g: body }] },
      { opType: 'Mul', input: ['spun', 'zero'], output: ['nothing'] },
      { opType: 'MatMul', input: ['features', 'w_out'], output: ['logit0'] },
      { opType: 'Add', input: ['logit0', 'nothing'], output: ['logit'] },
      { opType: 'Sigmoid', input: ['logit'], output: ['probability'] },
    ],
    initializer: [floats('per_unit', [], () => tripsPerUnit), floats('acc0', [], () => 0), floats('one', [], () => 1), floats('zero', [], () => 0), floats('w_out', [4, 1], () => 0.01)],
    input: [io('features', 4)],
    output: [io('probability', 1)],
  });
}

/**
 * Declares rows that are independent, but is not: `probability` is one value for the whole batch
 * (the mean of a `hidden`-wide layer over every row), shaped [1, 1] whatever the rows. A batch
 * cut in parts gives one value per part.
 */
export function buildBatchMeanOnnx(hidden: number): Buffer {
  return encode({
    name: 'batch-mean',
    node: [
      { opType: 'MatMul', input: ['features', 'w_in'], output: ['x'] },
      { opType: 'MatMul', input: ['x', 'w'], output: ['h'] },
      { opType: 'Sigmoid', input: ['h'], output: ['s'] },
      { opType: 'ReduceMean', input: ['s'], output: ['mean'], attribute: [{ name: 'axes', type: onnx.AttributeProto.AttributeType.INTS, ints: [0] }, { name: 'keepdims', type: onnx.AttributeProto.AttributeType.INT, i: 1 }] },
      { opType: 'MatMul', input: ['mean', 'w_out'], output: ['logit'] },
      { opType: 'Sigmoid', input: ['logit'], output: ['probability'] },
    ],
    initializer: [floats('w_in', [4, hidden], (i) => ((i % 7) - 3) / 100), floats('w', [hidden, hidden], (i) => ((i % 11) - 5) / (10 * hidden)), floats('w_out', [hidden, 1], (i) => ((i % 5) - 2) / 10)],
    input: [io('features', 4)],
    output: [io('probability', 1)],
  });
}
