import assert from 'node:assert/strict';
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
