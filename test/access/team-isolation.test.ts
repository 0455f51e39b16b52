import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { toGlobalId } from '../../src/core/global-id';
import type { KindName } from '../../src/core/subjects';
import { TEAM_TABLES, dataOf, objectsWithId, owningTeams } from '../support/access';
import { plantLatencyAlert } from '../support/alerts';
import { codeOf, startTestServer, type TestServer } from '../support/harness';

const LISTS: Array<{ field: string; type: string }> = [
  { field: 'datasets', type: 'Dataset' },
  { field: 'datasetVersions', type: 'DatasetVersion' },
  { field: 'codeVersions', type: 'CodeVersion' },
  { field: 'configs', type: 'Config' },
  { field: 'seedSets', type: 'SeedSet' },
  { field: 'environments', type: 'Environment' },
  { field: 'trainingRuns', type: 'TrainingRun' },
  { field: 'models', type: 'Model' },
  { field: 'modelVersions', type: 'ModelVersion' },
  { field: 'deployments', type: 'Deployment' },
  { field: 'rollouts', type: 'Rollout' },
  { field: 'alerts', type: 'Alert' },
];

const OWNER = `fragment owner on Node {
  __typename
  id
  ${Object.keys(TEAM_TABLES)
    .map((type) => `... on ${type} { team { name } }`)
    .join('\n  ')}
}`;

const LINEAGE = `query ($id: ID!, $direction: LineageDirection!, $depth: Int!) {
  lineage(id: $id, direction: $direction, depth: $depth) { root { id } nodes { ...owner } edges { from to relation } truncated }
}
${OWNER}`;

// Split per root field, and pages of 20, to stay under the query cost limit.
const NESTED = [
  `{ datasets(first: 20) { nodes { id team { name } versions { id team { name } } } } }`,
  `{
    datasetVersions(first: 20) {
      nodes {
        id team { name }
        dataset { id team { name } }
        derivedFrom { id team { name } }
        usedBy {
          id team { name }
          datasets { role datasetVersion { id team { name } } }
          codeVersion { id team { name } } config { id team { name } } seedSet { id team { name } } environment { id team { name } }
          baseModelVersion { id team { name } }
          outputs { id team { name } model { id team { name } } }
        }
      }
    }
  }`,
  `{
    trainingRuns(first: 20) {
      nodes {
        id team { name }
        datasets { datasetVersion { id team { name } derivedFrom { id team { name } } } }
        codeVersion { id team { name } } config { id team { name } } seedSet { id team { name } } environment { id team { name } }
        baseModelVersion { id team { name } }
        outputs { id team { name } deployments { id team { name } } }
      }
    }
  }`,
  `{
    models(first: 20) {
      nodes {
        id team { name }
        aliases { alias modelVersion { id team { name } } }
        champion: version(alias: "champion") { id team { name } }
        versions { id team { name } model { id team { name } } trainingRun { id team { name } } previousVersion { id team { name } } deployments { id team { name } } }
      }
    }
  }`,
  `{ modelVersions(first: 20) { nodes { id team { name } trainingRun { id team { name } outputs { id team { name } } } } } }`,
  `{
    deployments(first: 20) {
      nodes {
        id team { name }
        trafficSplit { weight modelVersion { id team { name } model { id team { name } } } }
        rollouts { id team { name } } activeRollout { id team { name } } openAlerts { id team { name } }
      }
    }
  }`,
  `{
    rollouts(first: 20) {
      nodes {
        id team { name }
        deployment { id team { name } rollouts { id team { name } } }
        modelVersion { id team { name } }
        baselineSplit { modelVersion { id team { name } } }
      }
    }
  }`,
  `{
    alerts(first: 20) {
      nodes {
        id team { name }
        deployment { id team { name } openAlerts { id team { name } } }
        modelVersion { id team { name } }
        retrainRun { id team { name } }
      }
    }
  }`,
];

const hex = (s: string) => createHash('sha256').update(s).digest('hex');

describe('team isolation: a viewer of fraud never sees a vision row', () => {
  let t: TestServer;
  let admin: string;
  let viewer: string;
  // Objects created to link the teams, by what they stand for.
  const cross: Record<string, string> = {};
  // Demo objects, by team then name.
  const demo: Record<'fraud' | 'vision', Record<string, string>> = { fraud: {}, vision: {} };

  const fraudIds = async (type: string): Promise<string[]> => {
    const rows: Array<{ id: string }> = await t.sql(
      `SELECT x.id::text AS id FROM ${TEAM_TABLES[type]} x JOIN team tm ON tm.id = x.team_id WHERE tm.name = 'fraud' ORDER BY x.id`,
    );
    return rows.map((r) => toGlobalId(type as KindName, r.id)).sort();
  };

  before(async () => {
    t = await startTestServer({ demo: true });
    admin = t.token(['admin'], ['fraud', 'vision'], 'test-admin');
    viewer = t.token(['viewer'], ['fraud'], 'fraud-viewer');
    for (const team of ['fraud', 'vision'] as const) {
      const d = dataOf(
        await t.gql(
          admin,
          `query ($team: String!) {
            datasets(filter: { team: $team }) { nodes { id } }
            datasetVersions(filter: { team: $team }) { nodes { id version } }
            codeVersions(filter: { team: $team }) { nodes { id } }
            configs(filter: { team: $team }) { nodes { id } }
            seedSets(filter: { team: $team }) { nodes { id } }
            environments(filter: { team: $team }) { nodes { id } }
            trainingRuns(filter: { team: $team }) { nodes { id name } }
            models(filter: { team: $team }) { nodes { id } }
            modelVersions(filter: { team: $team }) { nodes { id version artifactSha256 } }
            deployments(filter: { team: $team }) { nodes { id environment } }
          }`,
          { team },
        ),
        `demo objects of ${team}`,
      );
      const ids = demo[team];
      ids.dataset = d.datasets.nodes[0].id;
      for (const v of d.datasetVersions.nodes) ids[['', 'raw', 'clean', 'holdout'][v.version]] = v.id;
      ids.code = d.codeVersions.nodes[0].id;
      ids.config = d.configs.nodes[0].id;
      ids.seeds = d.seedSets.nodes[0].id;
      ids.env = d.environments.nodes[0].id;
      ids.run1 = d.trainingRuns.nodes.find((r: { name: string }) => r.name.endsWith('-train-1')).id;
      ids.model = d.models.nodes[0].id;
      for (const v of d.modelVersions.nodes) {
        ids[`v${v.version}`] = v.id;
        ids.artifact = v.artifactSha256;
      }
      const staging = d.deployments.nodes.find((x: { environment: string }) => x.environment === 'STAGING');
      if (staging) ids.staging = staging.id;
    }
    const f = demo.fraud;
    const v = demo.vision;
    const columns = [{ name: 'x', type: 'float64', nullable: false }];
    const run = async (name: string, input: Record<string, unknown>) => {
      const r = dataOf(await t.gql(admin, 'mutation ($input: RecordTrainingRunInput!) { recordTrainingRun(input: $input) { id } }', { input }), name);
      return r.recordTrainingRun.id as string;
    };
    const version = async (name: string, input: Record<string, unknown>) => {
      const r = dataOf(await t.gql(admin, 'mutation ($input: RegisterModelVersionInput!) { registerModelVersion(input: $input) { id } }', { input }), name);
      return r.registerModelVersion.id as string;
    };
    const datasetVersion = async (name: string, input: Record<string, unknown>) => {
      const r = dataOf(await t.gql(admin, 'mutation ($input: RegisterDatasetVersionInput!) { registerDatasetVersion(input: $input) { id } }', { input }), name);
      return r.registerDatasetVersion.id as string;
    };
    // A vision run built entirely on fraud inputs, its model version, and a vision deployment of it:
    // all downstream of fraud nodes.
    cross.visionRun = await run('vision run on fraud inputs', {
      team: 'vision',
      name: 'vision-on-fraud-inputs',
      datasets: [
        { datasetVersion: f.clean, role: 'TRAIN' },
        { datasetVersion: v.clean, role: 'TEST' },
      ],
      codeVersion: f.code,
      config: f.config,
      seedSet: f.seeds,
      environment: f.env,
      baseModelVersion: f.v1,
      status: 'SUCCEEDED',
    });
    cross.visionVersionOfVisionRun = await version('vision version of the cross run', { model: v.model, artifactSha256: v.artifact, trainingRun: cross.visionRun });
    v.staging = dataOf(
      await t.gql(admin, 'mutation ($input: CreateDeploymentInput!) { createDeployment(input: $input) { id } }', {
        input: { team: 'vision', name: 'vision-cross-staging', environment: 'STAGING', trafficSplit: [{ modelVersion: cross.visionVersionOfVisionRun, weight: 100 }] },
      }),
      'vision deployment',
    ).createDeployment.id;
    cross.visionDerivedFromFraud = await datasetVersion('vision version derived from fraud', {
      dataset: v.dataset,
      uri: 's3://vision/derived-from-fraud.parquet',
      sha256: hex('vision-derived-from-fraud'),
      rowCount: 10,
      columns,
      derivedFrom: [f.raw],
    });
    // And the other way round: fraud rows whose inputs are partly vision's (upstream of fraud nodes).
    cross.fraudDerivedFromBoth = await datasetVersion('fraud version derived from both', {
      dataset: f.dataset,
      uri: 's3://fraud/derived-from-both.parquet',
      sha256: hex('fraud-derived-from-both'),
      rowCount: 10,
      columns,
      sourceQuery: 'SELECT 1',
      derivedFrom: [f.raw, v.raw],
    });
    cross.fraudRunOnVisionInputs = await run('fraud run on vision inputs', {
      team: 'fraud',
      name: 'fraud-on-vision-inputs',
      datasets: [
        { datasetVersion: f.clean, role: 'TRAIN' },
        { datasetVersion: v.clean, role: 'TEST' },
      ],
      codeVersion: v.code,
      config: v.config,
      seedSet: v.seeds,
      environment: v.env,
      baseModelVersion: v.v1,
      status: 'SUCCEEDED',
    });

    // A rollout and an open alert on each team's staging deployment. The rollouts bake for an hour,
    // so they stay in progress (and the deployments' activeRollout set) while the tests read them.
    assert.ok(f.staging && v.staging, 'each team has a staging deployment');
    for (const [team, deployment, from, to] of [
      ['fraud', f.staging, f.v1, f.v2],
      ['vision', v.staging, cross.visionVersionOfVisionRun, v.v1],
    ] as const) {
      dataOf(
        await t.gql(admin, 'mutation ($input: StartRolloutInput!) { startRollout(input: $input) { id } }', {
          input: { deployment, modelVersion: to, strategy: 'CANARY', steps: [50, 100], bakeSeconds: 3600 },
        }),
        `${team} rollout`,
      );
      await plantLatencyAlert(t, team, deployment, from);
    }
  });

  after(async () => t?.stop());

  it('lists only fraud rows in every list, with totalCount equal to the fraud rows in the database', async () => {
    const teams = dataOf(await t.gql(viewer, '{ teams(first: 200) { totalCount nodes { id name } } }'));
    assert.deepEqual(teams.teams.nodes.map((n: { name: string }) => n.name), ['fraud']);
    assert.equal(teams.teams.totalCount, 1);
    assert.equal(dataOf(await t.gql(admin, '{ teams { totalCount } }')).teams.totalCount, 2);

    for (const { field, type } of LISTS) {
      const query = `{ ${field}(first: 200) { totalCount nodes { id team { name } } } }`;
      const seen = dataOf(await t.gql(viewer, query), `viewer ${field}`)[field];
      const all = dataOf(await t.gql(admin, query), `admin ${field}`)[field];
      const expected = await fraudIds(type);
      assert.ok(expected.length > 0, `${field}: the demo has fraud rows`);
      for (const n of seen.nodes) assert.equal(n.team?.name, 'fraud', `${field}: ${n.id} shown with team ${JSON.stringify(n.team)}`);
      assert.deepEqual(seen.nodes.map((n: { id: string }) => n.id).sort(), expected, `${field}: exactly the fraud rows`);
      assert.equal(seen.totalCount, expected.length, `${field}: totalCount`);
      const visionRows = all.nodes.filter((n: { team: { name: string } }) => n.team.name === 'vision');
      assert.ok(visionRows.length > 0, `${field}: vision rows exist (the admin sees ${all.totalCount})`);
      assert.equal(all.totalCount, expected.length + visionRows.length, `${field}: admin sees both teams`);
    }
  });

  it('keeps vision objects out of every nested relation', async () => {
    const objects: Array<Record<string, any>> = [];
    for (const q of NESTED) objectsWithId(dataOf(await t.gql(viewer, q), `viewer ${q.slice(0, 40)}`), objects);
    assert.ok(objects.length > 50, `a meaningful graph was walked (${objects.length} objects)`);
    const owners = await owningTeams(
      t,
      objects.map((o) => o.id),
    );
    for (const o of objects) {
      assert.equal(owners.get(o.id), 'fraud', `${o.id} (${JSON.stringify(o).slice(0, 200)}) is not fraud's`);
      if ('team' in o) assert.equal(o.team?.name, 'fraud', `${o.id}: team ${JSON.stringify(o.team)}`);
    }

    // The same questions, asked by the admin, do reach vision objects: the links are real.
    const all: Array<Record<string, any>> = [];
    for (const q of NESTED) objectsWithId(dataOf(await t.gql(admin, q), `admin ${q.slice(0, 40)}`), all);
    const adminOwners = await owningTeams(
      t,
      all.map((o) => o.id),
    );
    assert.ok([...adminOwners.values()].includes('vision'));
  });

  it('drops the vision side of cross-team links from the fraud rows that have one', async () => {
    const q = `query ($run: ID!, $dv: ID!, $clean: ID!) {
      run: node(id: $run) { ... on TrainingRun { datasets { datasetVersion { id } } codeVersion { id } config { id } seedSet { id } environment { id } baseModelVersion { id } } }
      dv: node(id: $dv) { ... on DatasetVersion { derivedFrom { id } } }
      clean: node(id: $clean) { ... on DatasetVersion { usedBy { id } } }
    }`;
    const vars = { run: cross.fraudRunOnVisionInputs, dv: cross.fraudDerivedFromBoth, clean: demo.fraud.clean };
    const asAdmin = dataOf(await t.gql(admin, q, vars));
    const asViewer = dataOf(await t.gql(viewer, q, vars));
    const ids = (xs: Array<{ id: string }>) => xs.map((x) => x.id).sort();

    assert.equal(asAdmin.run.datasets.length, 2);
    assert.deepEqual(
      asViewer.run.datasets.map((d: { datasetVersion: { id: string } }) => d.datasetVersion.id),
      [demo.fraud.clean],
    );
    assert.equal(asAdmin.run.codeVersion.id, demo.vision.code);
    for (const f of ['codeVersion', 'config', 'seedSet', 'environment', 'baseModelVersion']) assert.equal(asViewer.run[f], null, `run.${f}`);

    assert.deepEqual(ids(asAdmin.dv.derivedFrom), [demo.fraud.raw, demo.vision.raw].sort());
    assert.deepEqual(ids(asViewer.dv.derivedFrom), [demo.fraud.raw]);

    assert.ok(ids(asAdmin.clean.usedBy).includes(cross.visionRun));
    assert.ok(!ids(asViewer.clean.usedBy).includes(cross.visionRun));
    assert.ok(ids(asViewer.clean.usedBy).includes(cross.fraudRunOnVisionInputs));
  });

  it('leaves vision nodes out of lineage in every direction, at any depth', async () => {
    const depth = t.config.maxLineageDepth;
    const starts: Array<[string, string]> = [
      ['fraud raw dataset version', demo.fraud.raw],
      ['fraud approved model version', demo.fraud.v1],
      ['fraud code version', demo.fraud.code],
      ['fraud run on vision inputs', cross.fraudRunOnVisionInputs],
      ['fraud version derived from both', cross.fraudDerivedFromBoth],
    ];
    let adminSawVision = 0;
    for (const [what, id] of starts) {
      // The checks below loop over nodes and edges: each start must reach some, or they check nothing.
      let edgesSeen = 0;
      for (const direction of ['DOWNSTREAM', 'UPSTREAM', 'BOTH']) {
        const l = dataOf(await t.gql(viewer, LINEAGE, { id, direction, depth }), `viewer lineage ${what} ${direction}`).lineage;
        assert.equal(l.root.id, id);
        assert.ok(l.nodes.some((n: { id: string }) => n.id === id), `${what} ${direction}: the root is among the nodes`);
        edgesSeen += l.edges.length;
        const owners = await owningTeams(t, [...l.nodes.map((n: { id: string }) => n.id), ...l.edges.flatMap((e: { from: string; to: string }) => [e.from, e.to])]);
        for (const n of l.nodes) {
          assert.equal(owners.get(n.id), 'fraud', `${what} ${direction}: ${n.__typename} ${n.id} is not fraud's`);
          assert.equal(n.team?.name, 'fraud', `${what} ${direction}: ${n.__typename} ${n.id} team ${JSON.stringify(n.team)}`);
        }
        for (const e of l.edges) {
          assert.ok(owners.get(e.from) === 'fraud' && owners.get(e.to) === 'fraud', `${what} ${direction}: edge ${JSON.stringify(e)}`);
        }
        const full = dataOf(await t.gql(admin, LINEAGE, { id, direction, depth }), `admin lineage ${what} ${direction}`).lineage;
        const adminOwners = await owningTeams(
          t,
          full.nodes.map((n: { id: string }) => n.id),
        );
        if ([...adminOwners.values()].includes('vision')) adminSawVision++;
      }
      assert.ok(edgesSeen > 0, `${what}: the viewer's lineage has fraud edges`);
    }
    assert.ok(adminSawVision >= 10, `the admin's lineage reaches vision nodes (${adminSawVision} of 15 traversals)`);

    // The one traversal the brief is about: downstream of fraud data, the admin meets the vision run.
    const down = await t.gql(admin, LINEAGE, { id: demo.fraud.raw, direction: 'DOWNSTREAM', depth });
    const downIds = dataOf(down).lineage.nodes.map((n: { id: string }) => n.id);
    assert.ok(downIds.includes(cross.visionRun) && downIds.includes(cross.visionDerivedFromFraud));
    const seen = dataOf(await t.gql(viewer, LINEAGE, { id: demo.fraud.raw, direction: 'DOWNSTREAM', depth })).lineage;
    assert.ok(seen.nodes.some((n: { id: string }) => n.id === demo.fraud.v1), 'the viewer still sees fraud descendants');
  });

  it('answers null from node() for every vision object, and the objects for the admin', async () => {
    const visionIds: string[] = [];
    for (const { type, field } of LISTS) {
      const rows: Array<{ id: string }> = await t.sql(
        `SELECT x.id::text AS id FROM ${TEAM_TABLES[type]} x JOIN team tm ON tm.id = x.team_id WHERE tm.name = 'vision'`,
      );
      assert.ok(rows.length > 0, field);
      visionIds.push(...rows.map((r) => toGlobalId(type as KindName, r.id)));
    }
    const [visionTeam] = await t.sql(`SELECT id::text AS id FROM team WHERE name = 'vision'`);
    visionIds.push(toGlobalId('Team', visionTeam.id));
    const query = `{ ${visionIds.map((id, i) => `n${i}: node(id: "${id}") { id }`).join('\n')} }`;
    const seen = dataOf(await t.gql(viewer, query));
    const all = dataOf(await t.gql(admin, query));
    visionIds.forEach((id, i) => {
      assert.equal(seen[`n${i}`], null, `viewer: node(${id})`);
      assert.equal(all[`n${i}`]?.id, id, `admin: node(${id})`);
    });
    assert.equal(dataOf(await t.gql(viewer, `{ node(id: "${demo.fraud.v1}") { id } }`)).node.id, demo.fraud.v1);
  });

  it('withholds uri and sourceQuery of confidential fraud data from the viewer, not from its engineer or the admin', async () => {
    const stored: Array<{ id: string; uri: string; source_query: string | null }> = await t.sql(
      `SELECT dv.id::text AS id, dv.uri, dv.source_query FROM dataset_version dv JOIN team tm ON tm.id = dv.team_id
       WHERE tm.name = 'fraud' AND dv.classification = 'CONFIDENTIAL'`,
    );
    assert.ok(stored.length >= 4);
    const query = '{ datasetVersions(first: 200, filter: { team: "fraud" }) { nodes { id classification uri sourceQuery withheldFields } } }';
    const byId = (d: any) => new Map<string, any>(d.datasetVersions.nodes.map((n: { id: string }) => [n.id, n]));
    const asViewer = byId(dataOf(await t.gql(viewer, query)));
    const asEngineer = byId(dataOf(await t.gql(t.token(['ml-engineer'], ['fraud'], 'fraud-engineer'), query)));
    const asAdmin = byId(dataOf(await t.gql(admin, query)));
    for (const row of stored) {
      const id = toGlobalId('DatasetVersion', row.id);
      assert.deepEqual(asViewer.get(id), { id, classification: 'CONFIDENTIAL', uri: null, sourceQuery: null, withheldFields: ['uri', 'sourceQuery'] });
      for (const [who, seen] of [
        ['engineer', asEngineer],
        ['admin', asAdmin],
      ] as const) {
        assert.deepEqual(seen.get(id), { id, classification: 'CONFIDENTIAL', uri: row.uri, sourceQuery: row.source_query, withheldFields: [] }, who);
      }
    }
    // The values are withheld, not merely absent: at least one has a source query the engineer sees.
    assert.ok(stored.some((r) => r.source_query !== null));
  });

  it("hides fraud's confidential data, but not its models, from an engineer of vision", async () => {
    const engineer = t.token(['ml-engineer'], ['vision'], 'vision-engineer');
    const d = dataOf(
      await t.gql(
        engineer,
        `query ($dv: ID!, $ds: ID!, $model: ID!, $run: ID!) {
          datasets(first: 200) { nodes { id team { name } } }
          datasetVersions(first: 200) { totalCount nodes { id team { name } } }
          models(first: 200) { nodes { id team { name } } }
          dv: node(id: $dv) { id }
          ds: node(id: $ds) { id }
          model: node(id: $model) { id }
          run: node(id: $run) { ... on TrainingRun { datasets { datasetVersion { id } } } }
        }`,
        { dv: demo.fraud.raw, ds: demo.fraud.dataset, model: demo.fraud.model, run: cross.visionRun },
      ),
    );
    assert.deepEqual(new Set(d.datasets.nodes.map((n: any) => n.team.name)), new Set(['vision']));
    assert.deepEqual(new Set(d.datasetVersions.nodes.map((n: any) => n.team.name)), new Set(['vision']));
    const [{ n }] = await t.sql(`SELECT count(*)::int AS n FROM dataset_version dv JOIN team tm ON tm.id = dv.team_id WHERE tm.name = 'vision'`);
    assert.equal(d.datasetVersions.totalCount, n);
    assert.equal(d.dv, null);
    assert.equal(d.ds, null);
    assert.equal(d.model?.id, demo.fraud.model);
    assert.deepEqual(new Set(d.models.nodes.map((x: any) => x.team.name)), new Set(['fraud', 'vision']));
    // Its own team's run keeps the vision input and loses the confidential fraud one.
    assert.deepEqual(
      d.run.datasets.map((u: any) => u.datasetVersion.id),
      [demo.vision.clean],
    );
  });

  it('shows a fraud service token fraud deployments and models only, and refuses it data and runs', async () => {
    const service = t.token(['service'], ['fraud'], 'fraud-service');
    const d = dataOf(await t.gql(service, '{ deployments(first: 200) { totalCount nodes { id team { name } } } models(first: 200) { totalCount nodes { id } } }'));
    const expected = await fraudIds('Deployment');
    assert.deepEqual(d.deployments.nodes.map((n: { id: string }) => n.id).sort(), expected);
    assert.equal(d.deployments.totalCount, expected.length);
    const expectedModels = await fraudIds('Model');
    assert.deepEqual(d.models.nodes.map((n: { id: string }) => n.id).sort(), expectedModels);
    assert.equal(d.models.totalCount, expectedModels.length);
    for (const field of ['datasets', 'trainingRuns', 'codeVersions']) {
      assert.equal(codeOf(await t.gql(service, `{ ${field} { totalCount } }`)), 'FORBIDDEN', field);
    }
  });
});
