import { badInput } from '../core/errors';
import type { OnnxSignature } from '../registry/onnx';
import { InferenceReason } from './inference.errors';

/** Element types the inference path serves, named as onnxruntime names them. */
export type TensorType = 'float32' | 'float64' | 'int8' | 'uint8' | 'int16' | 'uint16' | 'int32' | 'int64' | 'bool';

export type TensorData = Float32Array | Float64Array | Int8Array | Uint8Array | Int16Array | Uint16Array | Int32Array | BigInt64Array;

/** A tensor as it crosses to and from the worker threads: its buffer is transferred, not copied. */
export interface WireTensor {
  name: string;
  type: TensorType;
  dims: number[];
  data: TensorData;
}

const FROM_ONNX: Record<string, TensorType> = {
  FLOAT: 'float32',
  DOUBLE: 'float64',
  INT8: 'int8',
  UINT8: 'uint8',
  INT16: 'int16',
  UINT16: 'uint16',
  INT32: 'int32',
  INT64: 'int64',
  BOOL: 'bool',
};

/** Open Inference Protocol datatype names. */
export const OIP_DATATYPE: Record<TensorType, string> = {
  float32: 'FP32',
  float64: 'FP64',
  int8: 'INT8',
  uint8: 'UINT8',
  int16: 'INT16',
  uint16: 'UINT16',
  int32: 'INT32',
  int64: 'INT64',
  bool: 'BOOL',
};

const INT_RANGE: Partial<Record<TensorType, [number, number]>> = {
  int8: [-128, 127],
  uint8: [0, 255],
  int16: [-32768, 32767],
  uint16: [0, 65535],
  int32: [-2147483648, 2147483647],
};

/** One input or output of a served model: its type and its shape (`null` for a dimension of any size). */
export interface TensorSpec {
  name: string;
  type: TensorType;
  shape: Array<number | null>;
}

export interface ModelSpec {
  inputs: TensorSpec[];
  outputs: TensorSpec[];
  /** Every input and output has a free leading (row) dimension: requests can be stacked into one run. */
  batchable: boolean;
}

/** Limits an input must respect, from the configuration. */
export interface InputLimits {
  maxRows: number;
  maxElements: number;
  allowNonFinite: boolean;
}

/** What a model's ONNX signature allows, or why it cannot be served. */
export function modelSpec(sig: OnnxSignature): ModelSpec {
  const convert = (t: OnnxSignature['inputs'][number]): TensorSpec => {
    const type = FROM_ONNX[t.elemType];
    if (!type) throw new Error(`${t.name}: element type ${t.elemType} is not served`);
    if (t.shape.length === 0) throw new Error(`${t.name}: rank is not declared`);
    return { name: t.name, type, shape: t.shape.map((d) => (typeof d === 'number' && d > 0 ? d : null)) };
  };
  const inputs = sig.inputs.map(convert);
  const outputs = sig.outputs.map(convert);
  const batchable = [...inputs, ...outputs].every((t) => t.shape[0] === null);
  return { inputs, outputs, batchable };
}

const typedArray = (type: TensorType, n: number): TensorData => {
  switch (type) {
    case 'float32':
      return new Float32Array(n);
    case 'float64':
      return new Float64Array(n);
    case 'int8':
      return new Int8Array(n);
    case 'uint8':
    case 'bool':
      return new Uint8Array(n);
    case 'int16':
      return new Int16Array(n);
    case 'uint16':
      return new Uint16Array(n);
    case 'int32':
      return new Int32Array(n);
    case 'int64':
      return new BigInt64Array(n);
  }
};

const NON_FINITE: Record<string, number> = { NaN: Number.NaN, Infinity: Number.POSITIVE_INFINITY, '-Infinity': Number.NEGATIVE_INFINITY };

/** Writes one JSON value into `out[i]`, or throws BAD_USER_INPUT naming `where`. */
function put(out: TensorData, i: number, type: TensorType, v: unknown, limits: InputLimits, where: () => string): void {
  if (type === 'float32' || type === 'float64') {
    let n: number;
    if (typeof v === 'number') n = v;
    else if (typeof v === 'string' && v in NON_FINITE) n = NON_FINITE[v];
    else throw badInput(`${where()} must be a number`, { field: where(), reason: InferenceReason.INPUT_TYPE });
    if (!Number.isFinite(n) && !limits.allowNonFinite) {
      throw badInput(`${where()} is ${v}: NaN and infinities are refused`, { field: where(), reason: InferenceReason.NON_FINITE });
    }
    // float32 overflow would silently become Infinity.
    if (type === 'float32' && Number.isFinite(n) && !Number.isFinite(Math.fround(n))) {
      throw badInput(`${where()} is out of float32 range`, { field: where(), reason: InferenceReason.INPUT_TYPE });
    }
    (out as Float32Array)[i] = n;
    return;
  }
  if (type === 'bool') {
    if (typeof v !== 'boolean') throw badInput(`${where()} must be true or false`, { field: where(), reason: InferenceReason.INPUT_TYPE });
    (out as Uint8Array)[i] = v ? 1 : 0;
    return;
  }
  if (type === 'int64') {
    let b: bigint;
    if (typeof v === 'number' && Number.isSafeInteger(v)) b = BigInt(v);
    else if (typeof v === 'string' && /^-?\d{1,19}$/.test(v)) b = BigInt(v);
    else throw badInput(`${where()} must be an integer (a string for values beyond 2^53)`, { field: where(), reason: InferenceReason.INPUT_TYPE });
    if (b > 9223372036854775807n || b < -9223372036854775808n) throw badInput(`${where()} is out of int64 range`, { field: where(), reason: InferenceReason.INPUT_TYPE });
    (out as BigInt64Array)[i] = b;
    return;
  }
  const [lo, hi] = INT_RANGE[type]!;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < lo || v > hi) {
    throw badInput(`${where()} must be an integer from ${lo} to ${hi}`, { field: where(), reason: InferenceReason.INPUT_TYPE });
  }
  (out as Int32Array)[i] = v;
}

function checkRows(spec: TensorSpec, dims: number[], limits: InputLimits, field: string): void {
  if (dims.length !== spec.shape.length) {
    throw badInput(`${field} has rank ${dims.length}; the model expects rank ${spec.shape.length} ${describeShape(spec.shape)}`, { field, reason: InferenceReason.INPUT_SHAPE });
  }
  dims.forEach((d, k) => {
    const want = spec.shape[k];
    if (want !== null && d !== want) {
      throw badInput(`${field} has ${d} entries in dimension ${k}; the model expects ${describeShape(spec.shape)}`, { field, reason: InferenceReason.INPUT_SHAPE });
    }
    if (d === 0) throw badInput(`${field} is empty in dimension ${k}`, { field, reason: InferenceReason.INPUT_SHAPE });
  });
  if (dims[0] > limits.maxRows) {
    throw badInput(`${field} has ${dims[0]} rows; at most ${limits.maxRows} per request`, { field, reason: InferenceReason.TOO_MANY_ROWS });
  }
  const elements = dims.reduce((a, b) => a * b, 1);
  if (elements > limits.maxElements) {
    throw badInput(`${field} has ${elements} values; at most ${limits.maxElements} per input`, { field, reason: InferenceReason.TOO_LARGE });
  }
}

export const describeShape = (shape: Array<number | null>) => `[${shape.map((d) => (d === null ? '*' : d)).join(', ')}]`;

function checkNames(spec: ModelSpec, given: string[], field: string): void {
  const known = new Set(spec.inputs.map((i) => i.name));
  const unknown = given.find((n) => !known.has(n));
  if (unknown !== undefined) {
    throw badInput(`${field} names "${unknown}", which the model does not take (it takes ${[...known].join(', ')})`, { field, reason: InferenceReason.UNKNOWN_INPUT });
  }
  const missing = spec.inputs.find((i) => !given.includes(i.name));
  if (missing) throw badInput(`${field} lacks "${missing.name}" ${describeShape(missing.shape)}`, { field, reason: InferenceReason.MISSING_INPUT });
}

function agreeOnRows(feeds: WireTensor[], field: string): number {
  const rows = feeds[0]?.dims[0] ?? 0;
  const other = feeds.find((f) => f.dims[0] !== rows);
  if (other) throw badInput(`${field}: every input must have the same number of rows (${feeds[0].name} has ${rows}, ${other.name} has ${other.dims[0]})`, { field, reason: InferenceReason.INPUT_SHAPE });
  return rows;
}

/**
 * Builds the model's feeds from `{ inputName: rows }`, where rows nest as deep as the input's rank
 * (a rank-2 input `[*, 4]` takes `[[a, b, c, d], …]`). Checks names, rank, fixed dimensions,
 * ragged rows, element types, non-finite values and the row and size limits.
 */
export function feedsFromRows(spec: ModelSpec, inputs: Record<string, unknown>, limits: InputLimits): { feeds: WireTensor[]; rows: number } {
  checkNames(spec, Object.keys(inputs), 'inputs');
  const feeds = spec.inputs.map((s) => {
    const field = `inputs.${s.name}`;
    const value = inputs[s.name];
    // Dimensions come from the first element at each depth; every other element must match them.
    const dims: number[] = [];
    let probe: unknown = value;
    for (let k = 0; k < s.shape.length; k++) {
      if (!Array.isArray(probe)) {
        throw badInput(`${field} must nest ${s.shape.length} levels of arrays ${describeShape(s.shape)}`, { field, reason: InferenceReason.INPUT_SHAPE });
      }
      dims.push(probe.length);
      probe = probe[0];
    }
    checkRows(s, dims, limits, field);
    const size = dims.reduce((a, b) => a * b, 1);
    const data = typedArray(s.type, size);
    let i = 0;
    // Indices of the element being read; its path is spelled out only when it is refused.
    const at: number[] = [];
    const where = () => field + at.map((k) => `[${k}]`).join('');
    const fast = s.type === 'float32' || s.type === 'float64';
    const walk = (v: unknown, depth: number): void => {
      if (!Array.isArray(v) || v.length !== dims[depth]) {
        throw badInput(`${where()} must be an array of ${dims[depth]} entries (rows must not be ragged)`, { field: where(), reason: InferenceReason.INPUT_SHAPE });
      }
      if (depth === dims.length - 1) {
        for (let j = 0; j < v.length; j++) {
          const x = v[j];
          // Plain finite numbers into a float tensor: the common case, without a call per element.
          if (fast && typeof x === 'number' && Number.isFinite(x) && (s.type === 'float64' || Math.abs(x) <= 3.4028234663852886e38)) {
            (data as Float32Array)[i++] = x;
            continue;
          }
          at.push(j);
          put(data, i++, s.type, x, limits, where);
          at.pop();
        }
        return;
      }
      for (let j = 0; j < v.length; j++) {
        at.push(j);
        walk(v[j], depth + 1);
        at.pop();
      }
    };
    walk(value, 0);
    return { name: s.name, type: s.type, dims, data };
  });
  return { feeds, rows: agreeOnRows(feeds, 'inputs') };
}

/** One input of an Open Inference Protocol request. */
export interface OipTensor {
  name?: unknown;
  shape?: unknown;
  datatype?: unknown;
  data?: unknown;
  parameters?: unknown;
}

/** Bytes per element of each type in the Open Inference Protocol's binary form (BOOL is one byte). */
export const ELEMENT_BYTES: Record<TensorType, number> = { float32: 4, float64: 8, int8: 1, uint8: 1, int16: 2, uint16: 2, int32: 4, int64: 8, bool: 1 };

/**
 * Builds the feeds from Open Inference Protocol inputs: `data` is row-major, flat or nested;
 * `shape` and `datatype` must agree with the model. With the binary extension, `binary[i]` holds
 * the raw little-endian bytes of `inputs[i]` (which then carries `parameters.binary_data_size` and
 * no `data`); both forms pass the same checks of names, datatype, shape, limits and values.
 */
export function feedsFromOip(spec: ModelSpec, inputs: OipTensor[], limits: InputLimits, binary?: ReadonlyArray<Uint8Array | undefined>): { feeds: WireTensor[]; rows: number } {
  if (!Array.isArray(inputs) || inputs.some((t) => !t || typeof t !== 'object' || typeof t.name !== 'string')) {
    throw badInput('inputs must be an array of { name, shape, datatype, data }', { field: 'inputs', reason: InferenceReason.INPUT_SHAPE });
  }
  const byName = new Map(inputs.map((t, i) => [t.name as string, { t, bytes: binary?.[i] }]));
  if (byName.size !== inputs.length) throw badInput('inputs names a tensor twice', { field: 'inputs', reason: InferenceReason.INPUT_SHAPE });
  checkNames(spec, [...byName.keys()], 'inputs');
  const feeds = spec.inputs.map((s) => {
    const { t, bytes } = byName.get(s.name)!;
    const field = `inputs.${s.name}`;
    if (t.datatype === 'BYTES') {
      throw badInput(`${field}.datatype is "BYTES": string tensors are not served; the model expects ${OIP_DATATYPE[s.type]}`, { field: `${field}.datatype`, reason: InferenceReason.INPUT_TYPE });
    }
    if (t.datatype !== OIP_DATATYPE[s.type]) {
      throw badInput(`${field}.datatype is ${JSON.stringify(t.datatype)}; the model expects ${OIP_DATATYPE[s.type]}`, { field: `${field}.datatype`, reason: InferenceReason.INPUT_TYPE });
    }
    if (!Array.isArray(t.shape) || !t.shape.every((d) => Number.isSafeInteger(d) && (d as number) >= 0)) {
      throw badInput(`${field}.shape must be an array of whole numbers`, { field: `${field}.shape`, reason: InferenceReason.INPUT_SHAPE });
    }
    const dims = t.shape as number[];
    checkRows(s, dims, limits, field);
    const size = dims.reduce((a, b) => a * b, 1);
    if (bytes) return { name: s.name, type: s.type, dims, data: fromBytes(s.type, bytes, size, limits, field) };
    if (!Array.isArray(t.data)) throw badInput(`${field}.data must be an array`, { field: `${field}.data`, reason: InferenceReason.INPUT_TYPE });
    const fast = flatFloats(s.type, t.data as unknown[], size);
    if (fast) return { name: s.name, type: s.type, dims, data: fast };
    const flat = (t.data as unknown[]).flat(dims.length) as unknown[];
    if (flat.length !== size) {
      throw badInput(`${field}.data holds ${flat.length} values; shape ${describeShape(dims)} needs ${size}`, { field: `${field}.data`, reason: InferenceReason.INPUT_SHAPE });
    }
    const data = typedArray(s.type, size);
    for (let i = 0; i < size; i++) put(data, i, s.type, flat[i], limits, () => `${field}.data[${i}]`);
    return { name: s.name, type: s.type, dims, data };
  });
  return { feeds, rows: agreeOnRows(feeds, 'inputs') };
}

/**
 * The common case of a float input sent as JSON: `data` already flat, `size` plain finite numbers
 * within the type's range, copied without a check call per value. Null when anything else is
 * there (nested rows, strings, NaN or infinities, values out of float32 range, another length): the
 * general path then reads it and says what is wrong.
 */
function flatFloats(type: TensorType, data: unknown[], size: number): Float32Array | Float64Array | null {
  if ((type !== 'float32' && type !== 'float64') || data.length !== size) return null;
  const out = type === 'float32' ? new Float32Array(size) : new Float64Array(size);
  const max = type === 'float32' ? 3.4028234663852886e38 : Number.MAX_VALUE;
  for (let i = 0; i < size; i++) {
    const x = data[i];
    if (typeof x !== 'number' || !(x <= max && x >= -max)) return null;
    out[i] = x;
  }
  return out;
}

/**
 * A fresh typed array of `size` elements from raw little-endian bytes (copied: the request's buffer
 * is neither aligned for the type nor ours to transfer to a thread), with the value checks the JSON
 * form applies: NaN and infinities as configured, BOOL bytes 0 or 1.
 */
function fromBytes(type: TensorType, bytes: Uint8Array, size: number, limits: InputLimits, field: string): TensorData {
  const expected = size * ELEMENT_BYTES[type];
  if (bytes.byteLength !== expected) {
    throw badInput(`${field}.parameters.binary_data_size is ${bytes.byteLength}; shape × ${OIP_DATATYPE[type]} needs ${expected} bytes`, {
      field: `${field}.parameters.binary_data_size`,
      reason: InferenceReason.BINARY_SIZE,
    });
  }
  const data = typedArray(type, size);
  new Uint8Array(data.buffer, data.byteOffset, data.byteLength).set(bytes);
  if (!LITTLE_ENDIAN && ELEMENT_BYTES[type] > 1) swapBytes(new Uint8Array(data.buffer), ELEMENT_BYTES[type]);
  if ((type === 'float32' || type === 'float64') && !limits.allowNonFinite) {
    const values = data as Float32Array | Float64Array;
    for (let i = 0; i < values.length; i++) {
      if (!Number.isFinite(values[i])) throw badInput(`${field}[${i}] is ${values[i]}: NaN and infinities are refused`, { field: `${field}[${i}]`, reason: InferenceReason.NON_FINITE });
    }
  }
  if (type === 'bool') {
    const i = (data as Uint8Array).findIndex((b) => b > 1);
    if (i >= 0) throw badInput(`${field}[${i}] is the byte ${(data as Uint8Array)[i]}; BOOL bytes must be 0 or 1`, { field: `${field}[${i}]`, reason: InferenceReason.INPUT_TYPE });
  }
  return data;
}

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

function swapBytes(bytes: Uint8Array, width: number): void {
  for (let i = 0; i < bytes.length; i += width) bytes.subarray(i, i + width).reverse();
}

/** A tensor's elements as raw little-endian bytes (the Open Inference Protocol's binary form). */
export function tensorToBytes(t: WireTensor): Uint8Array {
  const view = new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
  if (LITTLE_ENDIAN || ELEMENT_BYTES[t.type] === 1) return view;
  const copy = view.slice();
  swapBytes(copy, ELEMENT_BYTES[t.type]);
  return copy;
}

/** A plain JSON value of one element (int64 beyond 2^53 as a string). */
function jsonValue(type: TensorType, v: number | bigint): number | string | boolean {
  if (type === 'bool') return v !== 0;
  if (typeof v === 'bigint') return v <= BigInt(Number.MAX_SAFE_INTEGER) && v >= BigInt(Number.MIN_SAFE_INTEGER) ? Number(v) : v.toString();
  return v;
}

/** A tensor as nested rows, the shape of {@link feedsFromRows}'s input. */
export function tensorToRows(t: WireTensor): unknown {
  if (t.dims.length === 0) return jsonValue(t.type, t.data[0]);
  let i = 0;
  const build = (depth: number): unknown[] => {
    const out = new Array(t.dims[depth]);
    for (let j = 0; j < t.dims[depth]; j++) out[j] = depth === t.dims.length - 1 ? jsonValue(t.type, t.data[i++]) : build(depth + 1);
    return out;
  };
  return build(0);
}

/** A tensor's values, row-major and flat (Open Inference Protocol `data`). */
export function tensorToFlat(t: WireTensor): Array<number | string | boolean> {
  const out = new Array(t.data.length);
  for (let i = 0; i < t.data.length; i++) out[i] = jsonValue(t.type, t.data[i]);
  return out;
}

/** `{ name: nested rows }` for a set of tensors. */
export function rowsOf(tensors: WireTensor[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const t of tensors) out[t.name] = tensorToRows(t);
  return out;
}

/** Stacks the feeds of several requests along the row dimension (same model, same input order). */
export function stack(parts: WireTensor[][]): WireTensor[] {
  if (parts.length === 1) return parts[0];
  return parts[0].map((first, k) => {
    const rows = parts.reduce((n, p) => n + p[k].dims[0], 0);
    const data = typedArray(first.type, parts.reduce((n, p) => n + p[k].data.length, 0));
    let offset = 0;
    for (const p of parts) {
      (data as Float32Array).set(p[k].data as Float32Array, offset);
      offset += p[k].data.length;
    }
    return { name: first.name, type: first.type, dims: [rows, ...first.dims.slice(1)], data };
  });
}

/** Splits stacked outputs back into per-request outputs of `rows[i]` rows each. */
export function unstack(outputs: WireTensor[], rows: number[]): WireTensor[][] {
  if (rows.length === 1) return [outputs];
  const result: WireTensor[][] = rows.map(() => []);
  for (const out of outputs) {
    const total = out.dims[0];
    const perRow = total > 0 ? out.data.length / total : 0;
    let start = 0;
    rows.forEach((r, i) => {
      result[i].push({ name: out.name, type: out.type, dims: [r, ...out.dims.slice(1)], data: out.data.slice(start * perRow, (start + r) * perRow) as TensorData });
      start += r;
    });
  }
  return result;
}

/** Zero-filled feeds of one row, for warming a session up. */
export function warmupFeeds(spec: ModelSpec): WireTensor[] {
  return spec.inputs.map((s) => {
    const dims = s.shape.map((d) => d ?? 1);
    return { name: s.name, type: s.type, dims, data: typedArray(s.type, dims.reduce((a, b) => a * b, 1)) };
  });
}
