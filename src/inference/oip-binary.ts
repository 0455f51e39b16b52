import { badInput } from '../core/errors';
import { InferenceReason } from './inference.errors';
import { OIP_DATATYPE, tensorToBytes, type OipTensor, type WireTensor } from './tensors';

/**
 * The Open Inference Protocol's binary tensor extension (KServe / Triton): a body whose first N
 * bytes are the JSON inference header, N given by this HTTP header, followed by the raw bytes of
 * each input that declares `parameters.binary_data_size`, in the order of `inputs`.
 */
export const HEADER_LENGTH = 'inference-header-content-length';

/** A binary request split into its JSON header and the bytes of each input (by position in `inputs`). */
export interface BinaryRequest {
  header: unknown;
  /** `inputs[i]`'s raw bytes, or undefined when it carries its values as JSON `data`. */
  binary: Array<Uint8Array | undefined>;
}

const isRecord = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);

/**
 * Splits `body` at `headerLength` (the HTTP header's value as sent) and cuts the bytes that follow
 * into one slice per binary input. Checks only the framing: the length is a whole number within the
 * body, the header is a JSON object, each `binary_data_size` is a whole number, and the slices add
 * up to exactly the bytes after the header. Whether each slice fits its input's shape and datatype
 * is checked with the model's signature, by the same check as JSON inputs.
 */
export function splitBinaryRequest(body: Buffer, headerLength: string): BinaryRequest {
  const field = 'Inference-Header-Content-Length';
  if (!/^\d{1,15}$/.test(headerLength.trim())) {
    throw badInput(`${field} must be a whole number of bytes`, { field, reason: InferenceReason.BINARY_HEADER });
  }
  const n = Number(headerLength.trim());
  if (n > body.length) throw badInput(`${field} is ${n}, but the body holds ${body.length} bytes`, { field, reason: InferenceReason.BINARY_HEADER });
  let header: unknown;
  try {
    header = JSON.parse(body.subarray(0, n).toString('utf8'));
  } catch {
    throw badInput(`The first ${n} bytes of the body are not a JSON inference header`, { field, reason: InferenceReason.BINARY_HEADER });
  }
  if (!isRecord(header)) throw badInput(`The first ${n} bytes of the body are not a JSON object`, { field, reason: InferenceReason.BINARY_HEADER });
  const inputs = Array.isArray(header.inputs) ? (header.inputs as unknown[]) : [];
  const binary: Array<Uint8Array | undefined> = [];
  let offset = n;
  inputs.forEach((t, i) => {
    const size = isRecord(t) && isRecord(t.parameters) ? t.parameters.binary_data_size : undefined;
    if (size === undefined) {
      binary.push(undefined);
      return;
    }
    const at = `inputs.${i}.parameters.binary_data_size`;
    if (!Number.isSafeInteger(size) || (size as number) < 0) throw badInput(`${at} must be a whole number of bytes`, { field: at, reason: InferenceReason.BINARY_SIZE });
    if ((t as OipTensor).data !== undefined) throw badInput(`inputs.${i} carries both data and binary_data_size`, { field: `inputs.${i}.data`, reason: InferenceReason.BINARY_SIZE });
    if (offset + (size as number) > body.length) {
      throw badInput(`${at} is ${size as number}, but only ${body.length - offset} bytes follow`, { field: at, reason: InferenceReason.BINARY_LENGTH });
    }
    binary.push(body.subarray(offset, offset + (size as number)));
    offset += size as number;
  });
  if (offset !== body.length) {
    throw badInput(`${body.length - offset} bytes follow the last binary input`, { field: 'body', reason: InferenceReason.BINARY_LENGTH });
  }
  return { header, binary };
}

/** Whether the request asks for `name` in binary form: request-wide `binary_data_output`, or the output's own `binary_data`. */
export function wantsBinaryOutput(parameters: unknown, outputs: unknown, name: string): boolean {
  const own = Array.isArray(outputs) ? outputs.find((o) => isRecord(o) && o.name === name) : undefined;
  const flag = isRecord(own) && isRecord(own.parameters) ? own.parameters.binary_data : undefined;
  if (typeof flag === 'boolean') return flag;
  return isRecord(parameters) && parameters.binary_data_output === true;
}

/** One output of a response: JSON `data`, or `binary_data_size` and its bytes after the header. */
export interface ResponseOutput {
  tensor: WireTensor;
  binary: boolean;
  data: () => unknown[];
}

/**
 * The response body: plain JSON when no output is binary; otherwise the JSON header (outputs in
 * binary form carry `parameters.binary_data_size` and no `data`) followed by their bytes, in order,
 * with the header's length for the `Inference-Header-Content-Length` response header.
 */
export function encodeResponse(head: Record<string, unknown>, outputs: ResponseOutput[]): { json: unknown } | { body: Buffer; headerLength: number } {
  const described = outputs.map((o) => {
    const base = { name: o.tensor.name, datatype: OIP_DATATYPE[o.tensor.type], shape: o.tensor.dims };
    return o.binary ? { ...base, parameters: { binary_data_size: o.tensor.data.byteLength } } : { ...base, data: o.data() };
  });
  const json = { ...head, outputs: described };
  if (!outputs.some((o) => o.binary)) return { json };
  const header = Buffer.from(JSON.stringify(json), 'utf8');
  const body = Buffer.concat([header, ...outputs.filter((o) => o.binary).map((o) => tensorToBytes(o.tensor))]);
  return { body, headerLength: header.length };
}
