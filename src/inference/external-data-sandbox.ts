import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

/**
 * Creates an empty directory of its own (mode 0700, from mkdtemp) for one inference pool. Sessions
 * are told to resolve external-data references inside it, so that a reference that got past the
 * model check finds nothing there, instead of resolving against the process's working directory
 * as onnxruntime otherwise does, even for a session created from bytes.
 */
export function createExternalDataSandbox(): string {
  return mkdtempSync(path.join(tmpdir(), 'modelgov-ort-'));
}

/** Removes a directory made by {@link createExternalDataSandbox}. */
export function removeExternalDataSandbox(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}

/**
 * onnxruntime session config entries (onnxruntime-node flattens `extra` into `session.*` keys):
 * the bytes are read as ONNX only, and external data resolves inside `dir`.
 */
export function sandboxedSessionConfig(dir: string): { session: Record<string, string> } {
  return { session: { load_model_format: 'ONNX', model_external_initializers_file_folder_path: dir } };
}
