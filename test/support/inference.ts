import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import type { PredictionEntry } from '../../src/inference/prediction-log';
import type { TestServer } from './harness';
import { uploadArtifact } from './http';

/** The GraphQL operation the inference tests send. */
export const PREDICT = `mutation($d: ID!, $inputs: JSONObject!, $key: String) {
  predict(deployment: $d, inputs: $inputs, requestKey: $key) { outputs modelVersionId fallback }
}`;

/** A deterministic row of the fraud model's four features. */
export const fraudRow = (i: number) => [(i * 37) % 500, i % 24, (i % 100) / 100, (i * 11) % 300];

/** Uploads an ONNX file and registers it as a new version of `model`; its global id. */
export async function registerOnnx(t: Pick<TestServer, 'url' | 'gql'>, token: string, model: string, bytes: Buffer): Promise<string> {
  const up = await uploadArtifact(t.url, token, bytes);
  const reg = await t.gql(token, 'mutation($m: ID!, $a: String!) { registerModelVersion(input: { model: $m, artifactSha256: $a }) { id } }', { m: model, a: up.json.sha256 });
  assert.equal(reg.errors, undefined, JSON.stringify(reg.errors));
  return reg.data.registerModelVersion.id;
}

/**
 * A well-formed prediction log record, as the inference service hands it to the log; the
 * deployment and version need not exist (the log table does not refer to them).
 */
export function predictionEntry(requestId: string, over: Partial<PredictionEntry> = {}): PredictionEntry {
  return {
    id: randomUUID(),
    occurredAt: new Date(),
    deploymentId: randomUUID(),
    teamId: randomUUID(),
    modelVersionId: randomUUID(),
    requestId,
    requestKey: null,
    principalId: 'svc-test',
    principalKind: 'user',
    source: 'open-inference',
    rows: 1,
    inputs: { features: [[1, 2, 3, 4]] },
    inputsSha256: '0'.repeat(64),
    outputs: { probability: [[0.5]] },
    latencyMs: 0.1,
    fallback: false,
    shadow: false,
    failedVersionId: null,
    error: null,
    ...over,
  };
}

/** Prediction log records matching `where`, once everything buffered is written. */
export async function loggedPredictions(t: TestServer, where: string, params: unknown[]): Promise<any[]> {
  await t.server.app.inference!.log.flush();
  return t.sql(`SELECT * FROM prediction_log WHERE ${where} ORDER BY id`, params);
}

/** Runs `n` calls of `f`, `width` at a time. */
export async function inParallel<T>(n: number, width: number, f: (i: number) => Promise<T>): Promise<T[]> {
  const out: T[] = new Array(n);
  let next = 0;
  await Promise.all(
    Array.from({ length: width }, async () => {
      while (next < n) {
        const i = next++;
        out[i] = await f(i);
      }
    }),
  );
  return out;
}
