/** Reading an ONNX model's input and output signature from its bytes, refusing what is not a usable, self-contained model. */

import { onnx } from 'onnx-proto';
import { scanForExternalData } from './onnx-external-data';

/** Names of ONNX `TensorProto.DataType` element types, as reported in {@link OnnxTensorSignature.elemType}. */
export type OnnxElemType =
  | 'FLOAT'
  | 'UINT8'
  | 'INT8'
  | 'UINT16'
  | 'INT16'
  | 'INT32'
  | 'INT64'
  | 'STRING'
  | 'BOOL'
  | 'FLOAT16'
  | 'DOUBLE'
  | 'UINT32'
  | 'UINT64'
  | 'COMPLEX64'
  | 'COMPLEX128'
  | 'BFLOAT16'
  | 'FLOAT8E4M3FN'
  | 'FLOAT8E4M3FNUZ'
  | 'FLOAT8E5M2'
  | 'FLOAT8E5M2FNUZ'
  | 'UINT4'
  | 'INT4'
  | 'FLOAT4E2M1';

/**
 * One graph input or output.
 *
 * `elemType` is an {@link OnnxElemType} name. Each `shape` entry is a fixed
 * dimension (number), a symbolic dimension (its `dim_param` string), or `null`
 * when the dimension is unknown. A tensor whose rank is not declared has an
 * empty `shape`.
 */
export interface OnnxTensorSignature {
  name: string;
  elemType: string;
  shape: Array<number | string | null>;
}

/** The externally visible contract of an ONNX model. */
export interface OnnxSignature {
  inputs: OnnxTensorSignature[];
  outputs: OnnxTensorSignature[];
  irVersion: number;
  /** Opset version imported for the default (`ai.onnx`) domain. */
  opsetVersion: number;
  /** `producer_name` of the model, or `null` when it is empty. */
  producerName: string | null;
}

/** Raised by {@link readOnnxSignature} when bytes are not a usable ONNX model; `message` is short and human-readable. */
export class OnnxParseError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'OnnxParseError';
  }
}

/**
 * Raised by {@link readOnnxSignature} when a tensor of the model keeps its data outside the model's
 * own bytes (`external_data`), or a node hands the execution provider a precompiled context
 * (`EPContext`, which may name a file): such a model would make the runtime read a file of the server.
 */
export class OnnxExternalDataError extends OnnxParseError {
  constructor(message: string) {
    super(message);
    this.name = 'OnnxExternalDataError';
  }
}

// Indexed by TensorProto.DataType value. onnx-proto@8 stops at BFLOAT16 (16);
// the later codes come from newer ONNX releases so such models still parse.
const ELEM_TYPES: readonly (OnnxElemType | undefined)[] = [
  undefined,
  'FLOAT',
  'UINT8',
  'INT8',
  'UINT16',
  'INT16',
  'INT32',
  'INT64',
  'STRING',
  'BOOL',
  'FLOAT16',
  'DOUBLE',
  'UINT32',
  'UINT64',
  'COMPLEX64',
  'COMPLEX128',
  'BFLOAT16',
  'FLOAT8E4M3FN',
  'FLOAT8E4M3FNUZ',
  'FLOAT8E5M2',
  'FLOAT8E5M2FNUZ',
  'UINT4',
  'INT4',
  'FLOAT4E2M1',
];

// Real models use IR 3..11 and opsets in the low twenties; these ceilings leave
// headroom while still rejecting the huge varints that garbage input decodes to.
const MAX_IR_VERSION = 20;
const MAX_OPSET_VERSION = 100;

interface LongLike {
  toNumber(): number;
}

function toNumber(value: unknown): number | null {
  if (typeof value === 'number') return value;
  if (value !== null && typeof value === 'object' && typeof (value as LongLike).toNumber === 'function') {
    return (value as LongLike).toNumber();
  }
  return null;
}

function describe(kind: string, index: number, name: string): string {
  return name ? `${kind} '${name}'` : `${kind} #${index}`;
}

function readTensorSignature(info: onnx.IValueInfoProto, kind: string, index: number): OnnxTensorSignature {
  const name = info.name ?? '';
  if (!name) throw new OnnxParseError(`${describe(kind, index, name)} has no name`);
  const tensorType = info.type?.tensorType;
  if (!tensorType) throw new OnnxParseError(`${describe(kind, index, name)} has no tensor type`);
  const elemType = ELEM_TYPES[tensorType.elemType ?? 0];
  if (!elemType) throw new OnnxParseError(`${describe(kind, index, name)} has an unknown element type`);

  const shape: Array<number | string | null> = [];
  for (const dim of tensorType.shape?.dim ?? []) {
    const value = toNumber(dim.dimValue);
    if (value !== null) {
      if (!Number.isSafeInteger(value)) {
        throw new OnnxParseError(`${describe(kind, index, name)} has an invalid dimension`);
      }
      // Some exporters write -1 for "unknown"; that is not a fixed size.
      shape.push(value >= 0 ? value : null);
    } else if (dim.dimParam) {
      shape.push(dim.dimParam);
    } else {
      shape.push(null);
    }
  }
  return { name, elemType, shape };
}

function readSignatures(list: onnx.IValueInfoProto[], kind: string): OnnxTensorSignature[] {
  const seen = new Set<string>();
  return list.map((info, index) => {
    const signature = readTensorSignature(info, kind, index);
    if (seen.has(signature.name)) throw new OnnxParseError(`duplicate ${kind} name '${signature.name}'`);
    seen.add(signature.name);
    return signature;
  });
}

function decodeModel(bytes: Uint8Array): OnnxSignature {
  if (!(bytes instanceof Uint8Array)) throw new OnnxParseError('model bytes must be a Uint8Array');
  if (bytes.length === 0) throw new OnnxParseError('file is empty');
  const finding = scanForExternalData(bytes);
  if (finding && finding.kind !== 'malformed') throw new OnnxExternalDataError(finding.message);
  if (finding) throw new OnnxParseError(finding.message);

  let model: onnx.ModelProto;
  try {
    model = onnx.ModelProto.decode(bytes);
  } catch {
    throw new OnnxParseError('not an ONNX model: protobuf decoding failed');
  }

  const irVersion = toNumber(model.irVersion);
  if (irVersion === null || !Number.isInteger(irVersion) || irVersion <= 0 || irVersion > MAX_IR_VERSION) {
    throw new OnnxParseError('not an ONNX model: missing or invalid ir_version');
  }

  const defaultOpset = (model.opsetImport ?? []).find((o) => !o.domain || o.domain === 'ai.onnx');
  if (!defaultOpset) throw new OnnxParseError('not an ONNX model: no opset_import for the default domain');
  const opsetVersion = toNumber(defaultOpset.version);
  if (opsetVersion === null || !Number.isInteger(opsetVersion) || opsetVersion <= 0 || opsetVersion > MAX_OPSET_VERSION) {
    throw new OnnxParseError('not an ONNX model: invalid default-domain opset version');
  }

  const graph = model.graph;
  if (!graph) throw new OnnxParseError('not an ONNX model: missing graph');

  const initializerNames = new Set<string>();
  for (const init of graph.initializer ?? []) if (init.name) initializerNames.add(init.name);
  for (const init of graph.sparseInitializer ?? []) if (init.values?.name) initializerNames.add(init.values.name);

  // IR < 4 lists initializers among graph inputs; they are weights, not model inputs.
  const inputs = readSignatures(
    (graph.input ?? []).filter((info) => !info.name || !initializerNames.has(info.name)),
    'input',
  );
  if (inputs.length === 0) throw new OnnxParseError('ONNX graph has no inputs');
  const outputs = readSignatures(graph.output ?? [], 'output');
  if (outputs.length === 0) throw new OnnxParseError('ONNX graph has no outputs');

  return { inputs, outputs, irVersion, opsetVersion, producerName: model.producerName || null };
}

/**
 * Parses bytes as an ONNX `ModelProto` and returns its graph's input/output signature.
 *
 * Graph inputs that are also initializers are excluded. Anything that is not a
 * valid ONNX model (empty buffer, protobuf decode failure, missing graph, no
 * inputs or outputs, ir_version outside 1..20, no default-domain opset_import,
 * inputs/outputs without a name or tensor type) is refused. A model any of whose tensors keeps its
 * data outside these bytes is refused with {@link OnnxExternalDataError}: a model is only its own bytes.
 *
 * @throws {@link OnnxParseError} (or its {@link OnnxExternalDataError}) and nothing else.
 */
export function readOnnxSignature(bytes: Uint8Array): OnnxSignature {
  try {
    return decodeModel(bytes);
  } catch (err) {
    if (err instanceof OnnxParseError) throw err;
    throw new OnnxParseError('not an ONNX model: malformed content');
  }
}
