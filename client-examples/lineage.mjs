// Upstream and downstream lineage of any object (dataset version, run, model version,
// deployment, …), printed as edges. Nodes you may not read are left out, and not traversed.
//
//   MODELGOV_TOKEN=<token> node client-examples/lineage.mjs <id> [UPSTREAM|DOWNSTREAM|BOTH] [depth]
import { gql } from './lib.mjs';

const [id, direction = 'BOTH', depth = '4'] = process.argv.slice(2);
if (!id) {
  console.error('usage: lineage.mjs <id> [UPSTREAM|DOWNSTREAM|BOTH] [depth]');
  process.exit(2);
}
const { lineage } = await gql(
  `query Lineage($id: ID!, $direction: LineageDirection!, $depth: Int!) {
    lineage(id: $id, direction: $direction, depth: $depth) {
      truncated
      nodes {
        __typename id
        ... on DatasetVersion { version dataset { name } }
        ... on TrainingRun { runName: name }
        ... on ModelVersion { version model { name } }
        ... on Deployment { deploymentName: name environment }
        ... on CodeVersion { commitSha }
        ... on Config { sha256 }
        ... on SeedSet { sha256 }
        ... on Environment { runtime }
      }
      edges { from to relation }
    }
  }`,
  { id, direction, depth: Number(depth) },
);
const label = new Map(
  lineage.nodes.map((n) => {
    const name =
      n.__typename === 'DatasetVersion' ? `${n.dataset?.name} v${n.version}`
      : n.__typename === 'ModelVersion' ? `${n.model?.name} v${n.version}`
      : n.__typename === 'TrainingRun' ? n.runName ?? 'run'
      : n.__typename === 'Deployment' ? `${n.deploymentName} (${n.environment})`
      : n.__typename === 'CodeVersion' ? n.commitSha.slice(0, 10)
      : n.__typename === 'Environment' ? n.runtime
      : (n.sha256 ?? '').slice(0, 10);
    return [n.id, `${n.__typename}:${name}`];
  }),
);
console.log(`${lineage.nodes.length} nodes, ${lineage.edges.length} edges${lineage.truncated ? ' (truncated)' : ''}`);
for (const e of lineage.edges) console.log(`  ${label.get(e.from)} -${e.relation}-> ${label.get(e.to)}`);
