// Finds tensors that keep their data outside the model's own bytes, by walking the protobuf wire
// format rather than a decoded object: onnxruntime's parser merges a message field that appears
// twice, where a JavaScript decoder keeps only the last one, and fields unknown to the bundled
// schema (a function's default attributes) are still read by the runtime. Walking the bytes
// visits every occurrence the runtime would.

/** What {@link scanForExternalData} found, when the model is not self-contained or not readable. */
export type ExternalDataFinding =
  | {
      kind: 'external-data';
      /** The tensor's name, or `''` when it has none. */
      tensor: string;
      /** Where in the model the tensor sits, e.g. `graph.node[3].attribute[0].t`. */
      path: string;
      /** The `location` entry of its `external_data`, when it has one (truncated). */
      location: string | null;
      message: string;
    }
  | {
      /**
       * An `EPContext` node: a compiled execution-provider context whose `ep_cache_context` may name a
       * file (`embed_mode=0`) that the provider (TensorRT, QNN, OpenVINO…) opens, outside the model's bytes.
       */
      kind: 'ep-context';
      /** Where in the model the node sits, e.g. `graph.node[0]`. */
      path: string;
      message: string;
    }
  | { kind: 'malformed'; message: string };

/**
 * Message nesting the scan follows before it refuses the model. protobuf's own parsers stop at 100,
 * so onnxruntime could not load a deeper model either; real models nest a handful of subgraphs.
 */
export const MAX_MESSAGE_DEPTH = 100;

type Kind = 'model' | 'graph' | 'node' | 'attribute' | 'function' | 'training' | 'sparse' | 'tensor';

// Every field of onnx.proto through which a TensorProto can be reached: field number → its kind,
// the name used in a finding's path, and whether it is repeated.
const CHILDREN: Record<Kind, Record<number, [Kind, string, boolean]>> = {
  model: { 7: ['graph', 'graph', false], 20: ['training', 'training_info', true], 25: ['function', 'functions', true] },
  graph: { 1: ['node', 'node', true], 5: ['tensor', 'initializer', true], 15: ['sparse', 'sparse_initializer', true] },
  node: { 5: ['attribute', 'attribute', true] },
  attribute: {
    5: ['tensor', 't', false],
    6: ['graph', 'g', false],
    10: ['tensor', 'tensors', true],
    11: ['graph', 'graphs', true],
    22: ['sparse', 'sparse_tensor', false],
    23: ['sparse', 'sparse_tensors', true],
  },
  training: { 1: ['graph', 'initialization', false], 2: ['graph', 'algorithm', false] },
  function: { 7: ['node', 'node', true], 11: ['attribute', 'attribute_proto', true] },
  sparse: { 1: ['tensor', 'values', false], 2: ['tensor', 'indices', false] },
  tensor: {},
};

// NodeProto's op_type, and the operator that hands the execution provider a context to load.
const NODE_OP_TYPE = 4;
const EP_CONTEXT = 'EPContext';

// TensorProto fields.
const TENSOR_NAME = 8;
const TENSOR_EXTERNAL_DATA = 13;
const TENSOR_DATA_LOCATION = 14;

const WIRE_VARINT = 0;
const WIRE_FIXED64 = 1;
const WIRE_BYTES = 2;
const WIRE_FIXED32 = 5;

class Malformed extends Error {}

interface Frame {
  kind: Kind;
  pos: number;
  end: number;
  depth: number;
  label: string;
  parent: Frame | null;
  /** Occurrences seen so far per repeated field, for the path of a finding. */
  seen: Map<number, number> | null;
}

/** Reads a varint at `pos`; returns its value and the position after it. Values past 2^53 are refused. */
function varint(bytes: Uint8Array, pos: number, end: number): [number, number] {
  let value = 0;
  let scale = 1;
  for (let i = 0; i < 10; i++) {
    if (pos >= end) throw new Malformed();
    const b = bytes[pos++];
    value += (b & 0x7f) * scale;
    if (b < 0x80) {
      if (!Number.isSafeInteger(value)) throw new Malformed();
      return [value, pos];
    }
    scale *= 128;
  }
  throw new Malformed();
}

/** Skips one field's value; returns the position after it, and for length-delimited fields where its content starts. */
function skip(bytes: Uint8Array, pos: number, end: number, wire: number): [next: number, start: number] {
  switch (wire) {
    case WIRE_VARINT:
      return [varint(bytes, pos, end)[1], pos];
    case WIRE_FIXED64:
      if (pos + 8 > end) throw new Malformed();
      return [pos + 8, pos];
    case WIRE_FIXED32:
      if (pos + 4 > end) throw new Malformed();
      return [pos + 4, pos];
    case WIRE_BYTES: {
      const [length, start] = varint(bytes, pos, end);
      if (start + length > end) throw new Malformed();
      return [start + length, start];
    }
    default:
      // Groups (3, 4) are not used by ONNX; anything else is not protobuf.
      throw new Malformed();
  }
}

const decoder = new TextDecoder('utf-8', { fatal: false });

function text(bytes: Uint8Array, start: number, end: number, max = 200): string {
  const s = decoder.decode(bytes.subarray(start, Math.min(end, start + max * 4)));
  return s.length > max ? `${s.slice(0, max)}…` : s;
}

function pathOf(frame: Frame | null, leaf: string): string {
  const parts = [leaf];
  for (let f = frame; f && f.parent; f = f.parent) parts.push(f.label);
  return parts.reverse().join('.');
}

/** Reads one StringStringEntryProto; returns its key and value. */
function entry(bytes: Uint8Array, pos: number, end: number): { key: string; value: string } {
  let key = '';
  let value = '';
  while (pos < end) {
    const [tag, at] = varint(bytes, pos, end);
    const [next, start] = skip(bytes, at, end, tag & 7);
    if ((tag & 7) === WIRE_BYTES && tag >>> 3 === 1) key = text(bytes, start, next);
    if ((tag & 7) === WIRE_BYTES && tag >>> 3 === 2) value = text(bytes, start, next);
    pos = next;
  }
  return { key, value };
}

/** The tensor's finding, or null when its data is inside the model. */
function scanTensor(bytes: Uint8Array, pos: number, end: number, parent: Frame, label: string): ExternalDataFinding | null {
  let name = '';
  let external = false;
  let location: string | null = null;
  while (pos < end) {
    const [tag, at] = varint(bytes, pos, end);
    const field = tag >>> 3;
    const wire = tag & 7;
    const [next, start] = skip(bytes, at, end, wire);
    if (field === TENSOR_NAME && wire === WIRE_BYTES) name = text(bytes, start, next);
    if (field === TENSOR_EXTERNAL_DATA && wire === WIRE_BYTES) {
      external = true;
      const e = entry(bytes, start, next);
      if (e.key === 'location') location = e.value;
    }
    // DEFAULT is 0; EXTERNAL (1) and any value a later ONNX release may add mean "not in raw_data".
    if (field === TENSOR_DATA_LOCATION && wire === WIRE_VARINT && varint(bytes, at, end)[0] !== 0) external = true;
    pos = next;
  }
  if (!external) return null;
  const path = pathOf(parent, label);
  const what = name ? `tensor '${name}'` : 'a tensor';
  const where = location === null ? '' : ` (location ${JSON.stringify(location)})`;
  return {
    kind: 'external-data',
    tensor: name,
    path,
    location,
    message: `${what} at ${path} keeps its data outside the model${where}; weights must be embedded in the model file`,
  };
}

/**
 * Walks an ONNX `ModelProto` in its wire format and returns the first tensor whose data lives
 * outside the model's bytes (`data_location` other than DEFAULT, or any `external_data` entry) or
 * the first `EPContext` node (whose context may name a file the execution provider reads), or
 * a `malformed` finding when the bytes are not protobuf or nest messages deeper than
 * {@link MAX_MESSAGE_DEPTH}; null when every tensor is self-contained.
 *
 * Every place a tensor can sit is visited: graph initializers and sparse initializers (values and
 * indices), node attributes (`t`, `tensors`, `sparse_tensor`, `sparse_tensors`), subgraphs in
 * attributes (`g`, `graphs`) at any depth, model-local functions' nodes and default attributes,
 * and training-info graphs; every node is looked at wherever it sits. The walk is iterative: its
 * memory, not the call stack, grows with depth, and the depth is bounded.
 */
export function scanForExternalData(bytes: Uint8Array): ExternalDataFinding | null {
  try {
    const root: Frame = { kind: 'model', pos: 0, end: bytes.length, depth: 0, label: '', parent: null, seen: null };
    const stack: Frame[] = [root];
    while (stack.length) {
      const frame = stack[stack.length - 1];
      if (frame.pos >= frame.end) {
        stack.pop();
        continue;
      }
      const [tag, at] = varint(bytes, frame.pos, frame.end);
      const field = tag >>> 3;
      const wire = tag & 7;
      if (field === 0) throw new Malformed();
      const [next, start] = skip(bytes, at, frame.end, wire);
      frame.pos = next;
      // Refused in any domain: only com.microsoft defines it today, and a node of this name is never
      // what a self-contained model needs.
      if (frame.kind === 'node' && field === NODE_OP_TYPE && wire === WIRE_BYTES && text(bytes, start, next) === EP_CONTEXT) {
        const path = pathOf(frame.parent, frame.label);
        return {
          kind: 'ep-context',
          path,
          message: `the ${EP_CONTEXT} node at ${path} hands the execution provider a precompiled context, which may name a file outside the model; models must be plain ONNX graphs`,
        };
      }
      const child = CHILDREN[frame.kind][field];
      if (!child || wire !== WIRE_BYTES) continue;
      const [kind, name, repeated] = child;
      let label = name;
      if (repeated) {
        frame.seen ??= new Map();
        const n = frame.seen.get(field) ?? 0;
        frame.seen.set(field, n + 1);
        label = `${name}[${n}]`;
      }
      if (kind === 'tensor') {
        const finding = scanTensor(bytes, start, next, frame, label);
        if (finding) return finding;
        continue;
      }
      if (frame.depth + 1 > MAX_MESSAGE_DEPTH) {
        return { kind: 'malformed', message: `the model nests messages more than ${MAX_MESSAGE_DEPTH} levels deep` };
      }
      stack.push({ kind, pos: start, end: next, depth: frame.depth + 1, label, parent: frame, seen: null });
    }
    return null;
  } catch (e) {
    if (e instanceof Malformed) return { kind: 'malformed', message: 'not an ONNX model: protobuf decoding failed' };
    throw e;
  }
}
