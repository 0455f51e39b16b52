import { randomUUID } from 'node:crypto';
import type { DataSource } from 'typeorm';
import { sha256Hex } from '../../src/core/canonical-json';
import { toGlobalId } from '../../src/core/global-id';

export interface LineageFixture {
  teamId: string;
  /** Global IDs of a few useful roots. */
  deployment: string;
  rawDatasetVersion: string;
  midDatasetVersion: string;
  lastModelVersion: string;
  nodeCount: number;
  /** Layers of derived dataset versions: the longest upstream path from a deployment is layers + 3. */
  layers: number;
}

/**
 * Writes a synthetic lineage graph straight into the tables (test and benchmark data, not an API
 * path): `layers` layers of `width` dataset versions, each derived from two of the layer before;
 * `width` runs on the last layer, each fine-tuned from the model version ten runs before's model version; one model
 * version per run; a deployment per ten versions, each serving two versions.
 */
export async function writeLineageFixture(db: DataSource, opts: { team: string; width: number; layers: number }): Promise<LineageFixture> {
  const { width, layers } = opts;
  const actor = 'fixture';
  const [team] = await db.query(`INSERT INTO team (name) VALUES ($1) RETURNING id`, [opts.team]);
  const teamId: string = team.id;
  const [dataset] = await db.query(
    `INSERT INTO dataset (team_id, name, classification, created_by) VALUES ($1, 'synthetic', 'INTERNAL', $2) RETURNING id`,
    [teamId, actor],
  );
  const h = (s: string) => sha256Hex(`${opts.team}:${s}`);
  const one = async (table: string, cols: Record<string, unknown>) => {
    const keys = Object.keys(cols);
    const [row] = await db.query(
      `INSERT INTO ${table} (team_id, created_by, ${keys.join(', ')}) VALUES ($1, $2, ${keys.map((_, i) => `$${i + 3}`).join(', ')}) RETURNING id`,
      [teamId, actor, ...Object.values(cols)],
    );
    return row.id as string;
  };
  const code = await one('code_version', { sha256: h('code'), repository_url: 'https://git.example.com/x', commit_sha: h('c').slice(0, 40), dirty: false, entrypoint: 'train.py' });
  const config = await one('config', { sha256: h('config'), canonical_json: '{"lr":0.1}' });
  const seeds = await one('seed_set', { sha256: h('seeds'), canonical_json: '{"split":1}' });
  const env = await one('environment', { sha256: h('env'), runtime: 'python 3.11', lockfile_sha256: h('lock'), hardware: 'cpu' });

  const dv: string[][] = [];
  let version = 0;
  for (let l = 0; l < layers; l++) {
    const ids = Array.from({ length: width }, () => randomUUID());
    await db.query(
      `INSERT INTO dataset_version (id, dataset_id, team_id, classification, version, uri, sha256, row_count, column_schema, created_by)
       SELECT u.id, $1, $2, 'INTERNAL', $3 + u.n, 'file:synthetic/' || u.n, encode(sha256(($4 || u.n)::bytea), 'hex'), 1000, '[]'::jsonb, $5
       FROM unnest($6::uuid[]) WITH ORDINALITY AS u(id, n)`,
      [dataset.id, teamId, version, `${opts.team}-${l}-`, actor, ids],
    );
    version += width;
    if (l > 0) {
      const children: string[] = [];
      const parents: string[] = [];
      ids.forEach((id, i) => {
        children.push(id, id);
        parents.push(dv[l - 1][i], dv[l - 1][(i + 1) % width]);
      });
      await db.query(
        `INSERT INTO dataset_version_parent (child_id, parent_id) SELECT DISTINCT * FROM unnest($1::uuid[], $2::uuid[])`,
        [children, parents],
      );
    }
    dv.push(ids);
  }
  const [model] = await db.query(`INSERT INTO model (team_id, name, created_by) VALUES ($1, 'synthetic', $2) RETURNING id`, [teamId, actor]);
  const artifact = h('artifact');
  await db.query(
    `INSERT INTO artifact (sha256, size_bytes, format, signature, created_by) VALUES ($1, 1, 'ONNX', '{}'::jsonb, $2) ON CONFLICT DO NOTHING`,
    [artifact, actor],
  );
  const last = dv[layers - 1];
  const versions: string[] = [];
  for (let i = 0; i < width; i++) {
    const [run] = await db.query(
      `INSERT INTO training_run (team_id, status, code_version_id, config_id, seed_set_id, environment_id, base_model_version_id, created_by)
       VALUES ($1, 'SUCCEEDED', $2, $3, $4, $5, $6, $7) RETURNING id`,
      [teamId, code, config, seeds, env, versions[i - 10] ?? null, actor],
    );
    const inputs = [...new Set([last[i], last[(i + 1) % width]])];
    await db.query(`INSERT INTO training_run_dataset (training_run_id, dataset_version_id) SELECT $1, unnest($2::uuid[])`, [run.id, inputs]);
    const [mv] = await db.query(
      `INSERT INTO model_version (model_id, team_id, version, training_run_id, artifact_sha256, artifact_size_bytes, format, signature_json, status, created_by)
       VALUES ($1, $2, $3, $4, $5, 1, 'ONNX', '{}'::jsonb, 'APPROVED', $6) RETURNING id`,
      [model.id, teamId, i + 1, run.id, artifact, actor],
    );
    versions.push(mv.id);
  }
  const deployments: string[] = [];
  for (let d = 0; d * 10 < width; d++) {
    const [dep] = await db.query(`INSERT INTO deployment (team_id, name, environment, created_by) VALUES ($1, $2, 'STAGING', $3) RETURNING id`, [teamId, `synthetic-${d}`, actor]);
    const served = [versions[d * 10], versions[Math.min(d * 10 + 5, width - 1)]];
    const uniq = [...new Set(served)];
    await db.query(`INSERT INTO traffic_share (deployment_id, model_version_id, weight) SELECT $1, unnest($2::uuid[]), unnest($3::int[])`, [
      dep.id,
      uniq,
      uniq.length === 2 ? [50, 50] : [100],
    ]);
    deployments.push(dep.id);
  }
  return {
    teamId,
    deployment: toGlobalId('Deployment', deployments[deployments.length - 1]),
    rawDatasetVersion: toGlobalId('DatasetVersion', dv[0][0]),
    midDatasetVersion: toGlobalId('DatasetVersion', dv[Math.floor(layers / 2)][0]),
    lastModelVersion: toGlobalId('ModelVersion', versions[versions.length - 1]),
    nodeCount: layers * width + 4 + 2 * width + deployments.length,
    layers,
  };
}
