import { readFileSync } from 'node:fs';
import { parentPort, workerData } from 'node:worker_threads';
import { OnnxExternalDataError, OnnxParseError, readOnnxSignature } from './onnx';

// Runs in a worker with a bounded heap: a hostile file can exhaust this thread, not the server.
const { file } = workerData as { file: string };
try {
  parentPort!.postMessage({ ok: true, signature: readOnnxSignature(readFileSync(file)) });
} catch (e) {
  parentPort!.postMessage({
    ok: false,
    message: e instanceof OnnxParseError ? e.message : 'the file could not be read as ONNX',
    externalData: e instanceof OnnxExternalDataError,
  });
}
