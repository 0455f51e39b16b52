// What model serves production traffic, who trained it, on what data, with which code, config
// and seeds, who approved it, and how it differs from the version before: one request.
//
//   MODELGOV_TOKEN=<token> node client-examples/whats-serving-production.mjs [team]
import { gql } from './lib.mjs';

const team = process.argv[2] ?? null;
const data = await gql(
  `query Serving($team: String) {
    deployments(filter: { environment: PRODUCTION, team: $team }) {
      nodes {
        name
        team { name }
        trafficSplit {
          weight
          modelVersion {
            version
            status
            aliases
            createdBy
            model { name }
            approvals { decision actor reason createdAt }
            trainingRun {
              name
              finishedAt
              codeVersion { repositoryUrl commitSha entrypoint }
              config { sha256 content }
              seedSet { seeds }
              environment { runtime imageDigest hardware }
              datasets { role datasetVersion { version sha256 rowCount uri withheldFields dataset { name classification } } }
            }
            previousVersion { version status }
            comparedToPrevious { metrics { name a b delta } sameConfig configDifferences { path a b } }
          }
        }
      }
    }
  }`,
  { team },
);

for (const d of data.deployments.nodes) {
  console.log(`${d.team.name}/${d.name}`);
  for (const share of d.trafficSplit) {
    const v = share.modelVersion;
    if (!v) continue;
    const run = v.trainingRun;
    console.log(`  ${share.weight}% → ${v.model.name} v${v.version} [${v.status}${v.aliases.length ? `, ${v.aliases.join(', ')}` : ''}]`);
    for (const a of v.approvals) console.log(`    ${a.decision.toLowerCase()} by ${a.actor} at ${a.createdAt}: ${a.reason}`);
    if (run) {
      console.log(`    trained ${run.finishedAt} from ${run.codeVersion?.repositoryUrl}@${run.codeVersion?.commitSha.slice(0, 10)} (${run.codeVersion?.entrypoint})`);
      console.log(`    config ${run.config?.sha256.slice(0, 12)} ${JSON.stringify(run.config?.content)}; seeds ${JSON.stringify(run.seedSet?.seeds)}`);
      for (const u of run.datasets) {
        const dv = u.datasetVersion;
        console.log(`    ${u.role.toLowerCase()}: ${dv.dataset.name} v${dv.version} (${dv.dataset.classification}, ${dv.rowCount} rows, sha256 ${dv.sha256.slice(0, 12)}, uri ${dv.uri ?? 'withheld'})`);
      }
    }
    if (v.comparedToPrevious) {
      const deltas = v.comparedToPrevious.metrics.map((m) => `${m.name} ${m.delta === null ? 'n/a' : (m.delta >= 0 ? '+' : '') + m.delta.toFixed(4)}`);
      console.log(`    vs v${v.previousVersion.version}: ${deltas.join(', ')}`);
    }
  }
}
