// Train a new version of a model on the server from a CSV file, follow the run live, then roll
// the version out to a deployment as a canary and watch each step (or the automatic rollback).
// A step advances only on evidence (a minimum of requests answered by the new version), so the
// example sends predictions of the CSV's rows while it rolls out, as the deployment's traffic would.
//
//   MODELGOV_TOKEN=<ml-engineer token> node client-examples/train-and-roll-out.mjs train.csv fraud-detector fraud-detector-staging
import { readFile } from 'node:fs/promises';
import { createClient } from 'graphql-ws';
import WebSocket from 'ws';
import { URL_BASE, TOKEN, authHeader, gql } from './lib.mjs';

const [file, modelName, deploymentName, bake = '2'] = process.argv.slice(2);
if (!file || !modelName || !deploymentName) {
  console.error('usage: train-and-roll-out.mjs <train.csv> <model> <deployment> [bakeSeconds]');
  process.exit(2);
}

// 1. The data: uploaded, so the server holds it (and computes its hash).
const upload = await fetch(`${URL_BASE}/datasets/content`, { method: 'POST', headers: { authorization: authHeader(), 'content-type': 'text/csv' }, body: await readFile(file) });
const content = await upload.json();
if (!upload.ok) throw new Error(`upload refused (${upload.status}): ${JSON.stringify(content.errors ?? content)}`);
console.log(`data: ${content.rowCount} rows, columns ${content.columns.join(', ')}, sha256 ${content.sha256.slice(0, 12)}`);

const { models, deployments } = await gql(
  `query ModelAndDeployment($m: String!, $d: String!) {
    models(filter: { name: $m }) { nodes { id team { name } } }
    deployments(filter: { name: $d }) { nodes { id name } }
  }`,
  { m: modelName, d: deploymentName },
);
const model = models.nodes[0];
const deployment = deployments.nodes[0];
if (!model || !deployment) throw new Error('model or deployment not found (or not readable with this token)');
const team = model.team.name;

const { createDataset } = await gql(`mutation CreateDataset($i: CreateDatasetInput!) { createDataset(input: $i) { id } }`, {
  i: { team, name: `upload-${content.sha256.slice(0, 8)}`, classification: 'INTERNAL' },
});
const { registerDatasetVersion } = await gql(`mutation RegisterDatasetVersion($i: RegisterDatasetVersionInput!) { registerDatasetVersion(input: $i) { id } }`, {
  i: {
    dataset: createDataset.id,
    uri: `file:${file}`,
    sha256: content.sha256,
    rowCount: content.rowCount,
    columns: content.columns.map((name) => ({ name, type: name === 'label' ? 'int64' : 'float64', nullable: false })),
  },
});

// 2. The run: code, environment, config and seeds registered inline; the gate is part of the config.
const { startTrainingRun: run } = await gql(
  `mutation StartTrainingRun($i: StartTrainingRunInput!) { startTrainingRun(input: $i) { id status } }`,
  {
    i: {
      model: model.id,
      name: 'client-example',
      datasets: [{ datasetVersion: registerDatasetVersion.id, role: 'TRAIN' }],
      newCodeVersion: { team, repositoryUrl: 'builtin://modelgov/trainers', commitSha: '0'.repeat(40), dirty: false, entrypoint: 'tabular-trainer.js' },
      newEnvironment: { team, runtime: `node ${process.versions.node}`, lockfileSha256: '0'.repeat(64), hardware: 'cpu' },
      configContent: { model: 'logistic_regression', epochs: 30, lr: 0.1, gate: { accuracy: { min: 0.7 } } },
      seeds: { split: 7, init: 42, shuffle: 3 },
    },
  },
);
console.log(`run ${run.id} ${run.status}`);

// 3. Follow it live over graphql-ws (the same endpoint, the same token).
const ws = createClient({
  url: URL_BASE.replace(/^http/, 'ws') + '/graphql',
  webSocketImpl: WebSocket,
  connectionParams: { authorization: authHeader(TOKEN) },
  // A dropped connection (a server restart, a network blip) reconnects with exponential backoff and
  // jitter; a refused credential (4401, 4403) does not: it needs a new one, not another try.
  retryAttempts: 8,
  shouldRetry: (closed) => !(closed && typeof closed === 'object' && 'code' in closed && [4401, 4403].includes(closed.code)),
  retryWait: (retries) => new Promise((resolve) => setTimeout(resolve, Math.min(30_000, 500 * 2 ** retries) * (0.5 + Math.random() / 2))),
});
const finished = await new Promise((resolve, reject) => {
  const stop = ws.subscribe(
    { query: `subscription TrainingRunProgress($id: ID!) { trainingRunUpdated(id: $id) { status progress failureReason outputs { id version status evaluation } } }`, variables: { id: run.id } },
    {
      next: ({ data, errors }) => {
        if (errors) return reject(new Error(errors[0].message));
        const r = data.trainingRunUpdated;
        console.log(`  ${r.status} ${Math.round(r.progress * 100)} %`);
        if (['SUCCEEDED', 'FAILED', 'CANCELLED'].includes(r.status)) {
          stop();
          resolve(r);
        }
      },
      error: reject,
      complete: () => undefined,
    },
  );
});
if (finished.status !== 'SUCCEEDED') throw new Error(`training ${finished.status}: ${finished.failureReason}`);
const version = finished.outputs[0];
console.log(`${modelName} v${version.version} ${version.status}${version.evaluation.passed ? '' : `: ${version.evaluation.reasons.join('; ')}`}`);
if (version.status !== 'CANDIDATE') {
  await ws.dispose();
  process.exit(1);
}

// 4. Roll it out as a canary and watch each step; a breach of the deployment's SLOs, or an error
// rate significantly worse than the current version's, rolls it back. Each step needs 20 requests
// answered by the new version (held up to two minutes for them, then paused).
const { startRollout } = await gql(
  `mutation StartCanary($i: StartRolloutInput!) { startRollout(input: $i) { id percent } }`,
  { i: { deployment: deployment.id, modelVersion: version.id, strategy: 'CANARY', steps: [25, 50, 100], bakeSeconds: Number(bake), minRequests: 20, maxHoldSeconds: 120 } },
);
console.log(`rollout ${startRollout.id}: ${startRollout.percent} %`);

// The traffic: one row at a time, each with its own request key (keys are routed stickily).
const [header, ...lines] = (await readFile(file, 'utf8')).trim().split('\n');
const features = header.split(',').map((name, i) => [name, i]).filter(([name]) => name !== 'label');
const rows = lines.map((line) => {
  const cells = line.split(',');
  return features.map(([, i]) => Number(cells[i]));
});
const [input] = (await gql(`query VersionSignature($id: ID!) { node(id: $id) { ... on ModelVersion { signature { inputs { name } } } } }`, { id: version.id })).node.signature.inputs;
let sending = true;
const traffic = (async () => {
  for (let i = 0; sending; i++) {
    await gql(`mutation CanaryTraffic($d: ID!, $inputs: JSONObject!, $key: String) { predict(deployment: $d, inputs: $inputs, requestKey: $key) { rows } }`, {
      d: deployment.id,
      inputs: { [input.name]: [rows[i % rows.length]] },
      key: `example-${i}`,
    });
  }
})();
const outcome = await new Promise((resolve, reject) => {
  const stop = ws.subscribe(
    { query: `subscription RolloutProgress($d: ID!) { rolloutUpdated(deployment: $d) { id status percent reason } }`, variables: { d: deployment.id } },
    {
      next: ({ data, errors }) => {
        if (errors) return reject(new Error(errors[0].message));
        const r = data.rolloutUpdated;
        if (r.id !== startRollout.id) return;
        console.log(`  ${r.status} ${r.percent} %${r.reason ? ` (${r.reason})` : ''}`);
        if (!['IN_PROGRESS', 'PAUSED'].includes(r.status)) {
          stop();
          resolve(r);
        }
      },
      error: reject,
      complete: () => undefined,
    },
  );
});
sending = false;
await traffic;
await ws.dispose();
console.log(`rollout ${outcome.status}`);
