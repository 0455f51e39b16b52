// Ground truth in, online quality out: predicts rows through GraphQL, sends the true labels of
// those rows as outcomes (joined by the prediction id every answer carries), then reads the
// deployment's quality report — online metrics beside the version's offline evaluation.
// Labels are read as JSON from a file: [0, 1, …], one per row.
//
//   MODELGOV_TOKEN=<service token> node client-examples/outcomes-and-quality.mjs <team>:<deployment> rows.json labels.json
import { readFileSync } from 'node:fs';
import { gql } from './lib.mjs';

const [name, rowsFile, labelsFile] = process.argv.slice(2);
if (!name || !rowsFile || !labelsFile) {
  console.error('usage: outcomes-and-quality.mjs <team>:<deployment> <rows.json> <labels.json>');
  process.exit(2);
}
const rows = JSON.parse(readFileSync(rowsFile, 'utf8'));
const labels = JSON.parse(readFileSync(labelsFile, 'utf8'));
if (labels.length !== rows.length) throw new Error(`${rows.length} rows but ${labels.length} labels`);
const [team, deploymentName] = name.split(':');

const { deployments } = await gql(`query Deployment($team: String!, $name: String!) { deployments(filter: { team: $team, name: $name }) { nodes { id } } }`, { team, name: deploymentName });
const deployment = deployments.nodes[0]?.id;
if (!deployment) throw new Error(`no deployment ${name} you may read`);

// 1. One prediction of all rows: its id names the logged prediction; row i of it is (id, i).
const { predict } = await gql(
  `mutation Predict($d: ID!, $inputs: JSONObject!) { predict(deployment: $d, inputs: $inputs) { id rows } }`,
  { d: deployment, inputs: { features: rows } },
);
console.log(`prediction ${predict.id}: ${predict.rows} rows`);

// 2. The outcomes, whenever they are known (here at once); sending them again changes nothing.
const outcomes = labels.map((label, row) => ({ prediction: predict.id, row, label }));
for (let attempt = 1; attempt <= 2; attempt++) {
  const { recordOutcomes: r } = await gql(
    `mutation RecordOutcomes($input: RecordOutcomesInput!) { recordOutcomes(input: $input) { received recorded duplicate rejected results { index status code reason message } } }`,
    { input: { deployment, outcomes } },
  );
  console.log(`outcomes sent (${attempt === 1 ? 'first time' : 'again'}): ${r.recorded} recorded, ${r.duplicate} duplicate, ${r.rejected} rejected`);
  for (const x of r.results.filter((x) => x.status === 'REJECTED')) console.log(`  outcome ${x.index}: ${x.code}/${x.reason}: ${x.message}`);
}

// 3. Online quality of each serving version over the deployment's lookback, with its offline baseline.
const { qualityReport } = await gql(
  `query Quality($d: ID!) { qualityReport(deployment: $d) {
     versions { version rows labelled labelCoverage decisionThreshold
       online { accuracy precision recall f1 rocAuc logLoss brier }
       changes { metric baseline online relativeChange } } } }`,
  { d: deployment },
);
for (const v of qualityReport.versions) {
  const pct = (x) => (x === null ? 'n/a' : `${(100 * x).toFixed(1)} %`);
  console.log(`version ${v.version}: ${v.labelled} of ${v.rows} rows labelled (${pct(v.labelCoverage)}), accuracy ${pct(v.online.accuracy)} at threshold ${v.decisionThreshold}`);
  for (const c of v.changes) console.log(`  ${c.metric}: online ${c.online?.toFixed(4) ?? 'n/a'} against offline ${c.baseline.toFixed(4)} (${c.relativeChange === null ? 'n/a' : `${(100 * c.relativeChange).toFixed(1)} %`})`);
}
