import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { BUILTIN_TRAINERS_REPOSITORY } from '../../src/config';
import { syntheticCsv } from '../../jobs/trainers/synthetic-data';
import type { TestServer } from './harness';

export const FEATURES = ['amount', 'hour', 'merchant_risk', 'distance_km'];

/** Uploads a generated CSV and registers it as a dataset version of a new dataset; returns its ID. */
export async function storedDatasetVersion(t: TestServer, token: string, opts: { team: string; name: string; rows?: number; seed?: number }): Promise<string> {
  const csv = syntheticCsv({ rows: opts.rows ?? 600, seed: opts.seed ?? 11, features: FEATURES });
  const up = await fetch(`${t.url}/datasets/content`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'text/csv' }, body: csv });
  const stored = (await up.json()) as { sha256: string; rowCount: number };
  assert.ok(up.status === 201 || up.status === 200, JSON.stringify(stored));
  assert.equal(stored.sha256, createHash('sha256').update(csv).digest('hex'));
  const ds = await t.gql(token, 'mutation($i: CreateDatasetInput!) { createDataset(input: $i) { id } }', {
    i: { team: opts.team, name: opts.name, classification: 'INTERNAL' },
  });
  assert.equal(ds.errors, undefined, JSON.stringify(ds.errors));
  const dv = await t.gql(token, 'mutation($i: RegisterDatasetVersionInput!) { registerDatasetVersion(input: $i) { id } }', {
    i: {
      dataset: ds.data.createDataset.id,
      uri: `file:${opts.name}.csv`,
      sha256: stored.sha256,
      rowCount: stored.rowCount,
      columns: [...FEATURES, 'label'].map((name) => ({ name, type: 'float64', nullable: false })),
    },
  });
  assert.equal(dv.errors, undefined, JSON.stringify(dv.errors));
  return dv.data.registerDatasetVersion.id;
}

/** Code version (the built-in trainer) and environment for `team`. */
export async function trainerInputs(t: TestServer, token: string, team: string): Promise<{ codeVersion: string; environment: string }> {
  const r = await t.gql(
    token,
    `mutation($c: RegisterCodeVersionInput!, $e: RegisterEnvironmentInput!) {
      registerCodeVersion(input: $c) { id }
      registerEnvironment(input: $e) { id }
    }`,
    {
      c: { team, repositoryUrl: BUILTIN_TRAINERS_REPOSITORY, commitSha: 'a'.repeat(40), branch: 'main', dirty: false, entrypoint: 'tabular-trainer.js' },
      e: { team, runtime: `node ${process.version}`, lockfileSha256: 'b'.repeat(64), hardware: 'cpu' },
    },
  );
  assert.equal(r.errors, undefined, JSON.stringify(r.errors));
  return { codeVersion: r.data.registerCodeVersion.id, environment: r.data.registerEnvironment.id };
}

/** Polls a run until it is finished (or `ms` pass); returns the last answer. */
export async function waitForRun(t: TestServer, token: string, id: string, ms = 60_000): Promise<any> {
  const until = Date.now() + ms;
  for (;;) {
    const r = await t.gql(
      token,
      `query($id: ID!) { node(id: $id) { ... on TrainingRun { id status progress attempts failureReason logTail finishedAt metrics
        outputs { id version status artifactSha256 metrics evaluation referenceProfile model { name } trainingRun { id } } } } }`,
      { id },
    );
    const run = r.data?.node;
    if (run && ['SUCCEEDED', 'FAILED', 'CANCELLED'].includes(run.status)) return run;
    if (Date.now() > until) return run;
    await new Promise((res) => setTimeout(res, 200));
  }
}
