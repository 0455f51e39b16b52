import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { after, before, describe, it } from 'node:test';
import { ReferenceProfileAggregates1795312407731 } from '../../migrations/1795312407731-ReferenceProfileAggregates';
import { fromGlobalId, toGlobalId } from '../../src/core/global-id';
import { numericReference, referenceSample } from '../../src/registry/reference-profile';
import { dataOf } from '../support/access';
import { startTestServer, type TestServer } from '../support/harness';
import { writeLineageFixture } from '../support/lineage-fixture';

// Every path by which a client reaches a fraud model version's profile.
const PATHS = `query ($id: ID!) {
  node(id: $id) { ... on ModelVersion { referenceProfile withheldFields comparedToPrevious { a { referenceProfile } b { referenceProfile } } } }
  modelVersions(filter: { team: "fraud" }) { nodes { referenceProfile withheldFields } }
  models(filter: { name: "fraud-detector" }) { nodes { versions { referenceProfile trainingRun { outputs { referenceProfile } } } } }
  deployments(filter: { team: "fraud" }) { nodes { trafficSplit { modelVersion { referenceProfile previousVersion { referenceProfile } } } } }
}`;
const DATASET_VERSION = `query ($id: ID!) { node(id: $id) { ... on DatasetVersion { uri sourceQuery withheldFields } } }`;

/** Every value under a `referenceProfile` key in a response. */
function profilesIn(value: unknown, out: unknown[] = []): unknown[] {
  if (Array.isArray(value)) for (const v of value) profilesIn(v, out);
  else if (value && typeof value === 'object') {
    for (const [k, v] of Object.entries(value)) {
      if (k === 'referenceProfile') out.push(v);
      else profilesIn(v, out);
    }
  }
  return out;
}

/** The distinct values of every feature column of a stored CSV. */
async function trainingValues(t: TestServer, sha256: string): Promise<{ columns: Record<string, number[]>; values: Set<number> }> {
  const [header, ...lines] = (await readFile(t.server.app.artifacts.pathFor(sha256), 'utf8')).trimEnd().split('\n');
  const names = header.split(',');
  const columns: Record<string, number[]> = Object.fromEntries(names.filter((n) => n !== 'label').map((n) => [n, []]));
  for (const line of lines) line.split(',').forEach((cell, i) => columns[names[i]]?.push(Number(cell)));
  return { columns, values: new Set(Object.values(columns).flat()) };
}

/** Every number in a JSON value. */
function numbersIn(value: unknown, out: number[] = []): number[] {
  if (typeof value === 'number') out.push(value);
  else if (Array.isArray(value)) for (const v of value) numbersIn(v, out);
  else if (value && typeof value === 'object') for (const v of Object.values(value)) numbersIn(v, out);
  return out;
}

describe('fields computed from training data follow the data they derive from', () => {
  let t: TestServer;
  const fraud = { versions: [] as string[], train: '' };
  // Each refused the fraud CONFIDENTIAL dataset's protected fields, for a different reason.
  const refused: Record<string, string> = {};
  let fraudEngineer: string;

  before(async () => {
    t = await startTestServer({ demo: true });
    refused['vision ml-engineer'] = t.token(['ml-engineer'], ['vision'], 'vision-engineer');
    refused['fraud service token'] = t.token(['service'], ['fraud'], 'fraud-service');
    refused['fraud viewer'] = t.token(['viewer'], ['fraud'], 'fraud-viewer');
    fraudEngineer = t.token(['ml-engineer'], ['fraud'], 'fraud-engineer');
    const versions: Array<{ id: string }> = await t.sql(
      `SELECT mv.id FROM model_version mv JOIN team tm ON tm.id = mv.team_id WHERE tm.name = 'fraud' ORDER BY mv.version`,
    );
    fraud.versions = versions.map((v) => toGlobalId('ModelVersion', v.id));
    const train: Array<{ id: string }> = await t.sql(
      `SELECT DISTINCT l.dataset_version_id AS id FROM model_version mv JOIN training_run_dataset l ON l.training_run_id = mv.training_run_id
         JOIN team tm ON tm.id = mv.team_id WHERE tm.name = 'fraud' AND l.role = 'TRAIN'`,
    );
    assert.equal(train.length, 1);
    fraud.train = toGlobalId('DatasetVersion', train[0].id);
  });
  after(() => t?.stop());

  it('the fraud versions were trained on CONFIDENTIAL data, and every refused caller may read the versions themselves', async () => {
    assert.equal(fraud.versions.length, 2);
    const [{ classification }] = await t.sql(`SELECT classification FROM dataset_version WHERE id = $1`, [fromGlobalId(fraud.train).key]);
    assert.equal(classification, 'CONFIDENTIAL');
    for (const [who, token] of Object.entries(refused)) {
      const r = await t.gql(token, `query ($id: ID!) { node(id: $id) { ... on ModelVersion { id version metrics } } }`, { id: fraud.versions[0] });
      assert.equal(r.errors, undefined, `${who}: ${JSON.stringify(r.errors)}`);
      assert.equal(r.data.node.id, fraud.versions[0], who);
    }
  });

  for (const who of ['vision ml-engineer', 'fraud service token', 'fraud viewer']) {
    it(`${who}: gets no reference profile of a fraud model version, by any path`, async () => {
      for (const id of fraud.versions) {
        const r = await t.gql(refused[who], PATHS, { id });
        const profiles = profilesIn(r.data);
        assert.ok(profiles.length > 0, `${who} reached no profile field at all: ${JSON.stringify(r)}`);
        assert.deepEqual(
          profiles.filter((p) => p !== null),
          [],
          `${who} read a profile of ${id}`,
        );
      }
    });
  }

  it('a refused caller is answered as for the dataset version\'s own protected fields: null, named in withheldFields, no error', async () => {
    const viewer = refused['fraud viewer'];
    // What the dataset itself answers: the fields are null and listed, and the query succeeds.
    const dataset = await t.gql(viewer, DATASET_VERSION, { id: fraud.train });
    assert.equal(dataset.errors, undefined, JSON.stringify(dataset.errors));
    assert.deepEqual(dataset.data.node, { uri: null, sourceQuery: null, withheldFields: ['uri', 'sourceQuery'] });
    for (const [who, token] of Object.entries(refused)) {
      const r = await t.gql(token, `query ($id: ID!) { node(id: $id) { ... on ModelVersion { referenceProfile withheldFields } } }`, { id: fraud.versions[0] });
      assert.equal(r.errors, undefined, `${who}: ${JSON.stringify(r.errors)}`);
      assert.deepEqual(r.data.node, { referenceProfile: null, withheldFields: ['referenceProfile'] }, who);
    }
  });

  it('a fraud ml-engineer, allowed the dataset\'s protected fields, still reads the profile', async () => {
    const dataset = await t.gql(fraudEngineer, DATASET_VERSION, { id: fraud.train });
    assert.deepEqual(dataset.data.node.withheldFields, [], 'the engineer reads the dataset version\'s protected fields');
    const r = dataOf(await t.gql(fraudEngineer, PATHS, { id: fraud.versions[1] }), 'fraud engineer');
    const profiles = profilesIn(r);
    assert.ok(profiles.length >= 6, JSON.stringify(r));
    for (const p of profiles) {
      assert.ok(p && typeof p === 'object', JSON.stringify(r));
      const profile = p as { profileVersion: number; inputColumns: string[]; features: Record<string, { count: number; quantileBins: { counts: number[] } }> };
      assert.equal(profile.profileVersion, 3);
      assert.deepEqual(profile.inputColumns, ['amount', 'hour', 'merchant_risk', 'distance_km']);
      assert.equal(profile.features.amount.count, 1200);
      assert.equal(profile.features.amount.quantileBins.counts.reduce((s, n) => s + n, 0), 1200);
    }
    assert.deepEqual(r.node.withheldFields, []);
  });

  it('a vision ml-engineer still reads the profiles of its own team\'s versions', async () => {
    const r = dataOf(await t.gql(refused['vision ml-engineer'], `{ modelVersions(filter: { team: "vision" }) { nodes { referenceProfile withheldFields } } }`), 'vision versions');
    assert.equal(r.modelVersions.nodes.length, 2);
    for (const v of r.modelVersions.nodes) {
      assert.deepEqual(v.withheldFields, []);
      assert.equal(v.referenceProfile.features.brightness.count, 1200);
    }
  });

  it('a version without recorded training data is withheld as RESTRICTED data: from a viewer, not from its team\'s engineer', async () => {
    const [{ id }] = await t.sql(`SELECT mv.id FROM model_version mv JOIN team tm ON tm.id = mv.team_id WHERE tm.name = 'fraud' ORDER BY mv.version LIMIT 1`);
    // A version registered from an uploaded artifact has no training run; the stored profile stands in for one a client attached.
    const [vision] = await t.sql(`SELECT mv.id FROM model_version mv JOIN team tm ON tm.id = mv.team_id WHERE tm.name = 'vision' ORDER BY mv.version LIMIT 1`);
    const runs: Array<{ id: string; training_run_id: string }> = await t.sql(`SELECT id, training_run_id FROM model_version WHERE id = ANY($1::uuid[])`, [[id, vision.id]]);
    await t.sql(`UPDATE model_version SET training_run_id = NULL WHERE id = ANY($1::uuid[])`, [[id, vision.id]]);
    try {
      const query = `query ($id: ID!) { node(id: $id) { ... on ModelVersion { referenceProfile withheldFields } } }`;
      const fraudId = toGlobalId('ModelVersion', id);
      const visionId = toGlobalId('ModelVersion', vision.id);
      const asViewer = dataOf(await t.gql(refused['fraud viewer'], query, { id: fraudId }), 'viewer');
      assert.deepEqual(asViewer.node, { referenceProfile: null, withheldFields: ['referenceProfile'] });
      const asEngineer = dataOf(await t.gql(fraudEngineer, query, { id: fraudId }), 'fraud engineer');
      assert.deepEqual(asEngineer.node.withheldFields, []);
      assert.equal(asEngineer.node.referenceProfile.profileVersion, 3);
      // INTERNAL vision data was readable to the fraud engineer; without lineage it no longer is.
      const other = dataOf(await t.gql(fraudEngineer, query, { id: visionId }), 'other team');
      assert.deepEqual(other.node, { referenceProfile: null, withheldFields: ['referenceProfile'] });
    } finally {
      for (const r of runs) await t.sql(`UPDATE model_version SET training_run_id = $2 WHERE id = $1`, [r.id, r.training_run_id]);
    }
  });

  it('no stored profile holds the training values: at most the decile edges of each column, and no sample', async () => {
    const rows: Array<{ id: string; team: string; profile: unknown; training_run_id: string }> = await t.sql(
      `SELECT mv.id, tm.name AS team, mv.reference_profile AS profile, mv.training_run_id FROM model_version mv JOIN team tm ON tm.id = mv.team_id ORDER BY tm.name, mv.version`,
    );
    assert.equal(rows.length, 4);
    for (const row of rows) {
      const [blob] = await t.sql(
        `SELECT v.sha256 FROM training_run_dataset l JOIN dataset_version v ON v.id = l.dataset_version_id WHERE l.training_run_id = $1 AND l.role = 'TRAIN'`,
        [row.training_run_id],
      );
      const { values } = await trainingValues(t, blob.sha256);
      assert.ok(values.size > 3000, `${row.team}: the training data has ${values.size} distinct values`);

      const profile = row.profile as { features: Record<string, { quantileBins: { edges: number[] } }> };
      const text = JSON.stringify(profile);
      for (const key of ['"sample"', '"min"', '"max"', '"quantiles"', '"bins"']) assert.ok(!text.includes(key), `${row.team} ${row.id}: the profile keeps ${key}`);
      const edges = new Set(Object.values(profile.features).flatMap((f) => f.quantileBins.edges));
      const found = numbersIn(profile).filter((v) => values.has(v));
      assert.deepEqual(found.filter((v) => !edges.has(v)), [], `${row.team} ${row.id}: training values in the profile beyond its decile edges`);
      assert.ok(found.length <= 9 * Object.keys(profile.features).length, `${row.team} ${row.id}: ${found.length} training values in the profile`);
    }
  });

  it('the migration strips the raw values from a profile stored before it, keeping the model outputs\' sample apart', async () => {
    const [version] = await t.sql(
      `SELECT mv.id, v.sha256 FROM model_version mv JOIN team tm ON tm.id = mv.team_id JOIN training_run_dataset l ON l.training_run_id = mv.training_run_id
         JOIN dataset_version v ON v.id = l.dataset_version_id WHERE tm.name = 'fraud' AND l.role = 'TRAIN' ORDER BY mv.version LIMIT 1`,
    );
    const { columns, values } = await trainingValues(t, version.sha256);
    // A profile as the trainer's version 2 wrote it and the server stored it: every training value, sorted, per column.
    const v2 = (xs: number[]) => {
      const sorted = [...xs].sort((a, b) => a - b);
      return { ...numericReference(xs), min: sorted[0], max: sorted[sorted.length - 1], quantiles: [sorted[sorted.length - 1]], bins: { edges: [sorted[0]], counts: [xs.length] }, sample: referenceSample(xs) };
    };
    const outputs = columns.amount.map((_, i) => (i % 997) / 997);
    const stored = {
      profileVersion: 2,
      inputName: 'features',
      outputName: 'probability',
      inputColumns: Object.keys(columns),
      features: Object.fromEntries(Object.entries(columns).map(([name, xs]) => [name, v2(xs)])),
      prediction: v2(outputs),
    };
    const before = JSON.stringify(stored);
    assert.ok(numbersIn(stored).filter((v) => values.has(v)).length >= 4800, 'the old profile held every training value');

    const runner = t.server.app.db.createQueryRunner();
    try {
      await runner.query(`ALTER TABLE model_version DROP COLUMN prediction_reference_sample`);
      await runner.query(`UPDATE model_version SET reference_profile = $2 WHERE id = $1`, [version.id, before]);
      await new ReferenceProfileAggregates1795312407731().up(runner);
    } finally {
      await runner.release();
    }
    const [row] = await t.sql(`SELECT reference_profile AS profile, prediction_reference_sample AS sample FROM model_version WHERE id = $1`, [version.id]);
    assert.equal(row.profile.profileVersion, 3);
    assert.deepEqual(row.profile.inputColumns, stored.inputColumns);
    for (const [name, xs] of Object.entries(columns)) assert.deepEqual(row.profile.features[name], numericReference(xs), name);
    assert.deepEqual(row.profile.prediction, numericReference(outputs));
    assert.deepEqual(row.sample, referenceSample(outputs));
    const edges = new Set(Object.values(row.profile.features as Record<string, { quantileBins: { edges: number[] } }>).flatMap((f) => f.quantileBins.edges));
    assert.deepEqual(numbersIn(row.profile).filter((v) => values.has(v) && !edges.has(v)), []);
  });

  it('decides for a whole page in one batch: as many SQL statements for 60 versions as for 3', async () => {
    await writeLineageFixture(t.server.app.db, { team: 'few', width: 3, layers: 2 });
    await writeLineageFixture(t.server.app.db, { team: 'many', width: 60, layers: 2 });
    const viewer = t.token(['viewer'], ['few', 'many'], 'fixture-viewer');
    // The credential is resolved (and cached) once first, so that both pages are counted alike.
    dataOf(await t.gql(viewer, '{ viewer { id } }'), 'viewer');
    const statements = async (team: string) => {
      const before = t.server.statements.count;
      const r = dataOf(await t.gql(viewer, `query ($team: String!) { modelVersions(first: 100, filter: { team: $team }) { nodes { referenceProfile withheldFields } } }`, { team }), team);
      return { statements: t.server.statements.count - before, versions: r.modelVersions.nodes.length as number };
    };
    const few = await statements('few');
    const many = await statements('many');
    assert.deepEqual([few.versions, many.versions], [3, 60]);
    assert.equal(many.statements, few.statements, `${few.statements} statements for 3 versions, ${many.statements} for 60`);
  });
});
