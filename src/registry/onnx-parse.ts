import path from 'node:path';
import { Worker } from 'node:worker_threads';
import { OnnxExternalDataError, OnnxParseError, type OnnxSignature } from './onnx';

export interface ParseLimits {
  heapMb: number;
  timeoutMs: number;
}

/**
 * Reads an ONNX file's signature in a worker thread with a bounded heap and a deadline, so that
 * parsing never blocks the event loop and a file crafted to exhaust memory fails alone.
 * Throws {@link OnnxParseError} for anything that is not a parsable ONNX model within the limits,
 * {@link OnnxExternalDataError} for a model that keeps tensor data outside its own bytes.
 */
export function parseOnnxFile(file: string, limits: ParseLimits): Promise<OnnxSignature> {
  return new Promise((resolve, reject) => {
    const worker = new Worker(path.join(__dirname, 'onnx-parse.worker.js'), {
      workerData: { file },
      resourceLimits: { maxOldGenerationSizeMb: limits.heapMb, maxYoungGenerationSizeMb: Math.min(64, Math.max(8, limits.heapMb / 4)) },
    });
    let settled = false;
    const settle = (f: () => void) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      void worker.terminate();
      f();
    };
    const timer = setTimeout(() => settle(() => reject(new OnnxParseError(`parsing took longer than ${limits.timeoutMs} ms`))), limits.timeoutMs);
    worker.once('message', (m: { ok: true; signature: OnnxSignature } | { ok: false; message: string; externalData: boolean }) =>
      settle(() => (m.ok ? resolve(m.signature) : reject(m.externalData ? new OnnxExternalDataError(m.message) : new OnnxParseError(m.message)))),
    );
    worker.once('error', (e: Error & { code?: string }) =>
      settle(() =>
        reject(e.code === 'ERR_WORKER_OUT_OF_MEMORY' ? new OnnxParseError(`the model needs more than ${limits.heapMb} MB to parse`) : new OnnxParseError('the file could not be parsed')),
      ),
    );
    worker.once('exit', () => settle(() => reject(new OnnxParseError('the parser stopped unexpectedly'))));
  });
}
