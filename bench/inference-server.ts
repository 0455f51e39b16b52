// The server side of `npm run bench -- inference`, in a process of its own so that the load
// generator never runs on the server's event loop. Started by inference.bench.ts over IPC.
import 'reflect-metadata';
import { availableParallelism } from 'node:os';
import { buildMlpOnnx } from '../src/registry/onnx-builders';
import { startTestServer } from '../test/support/harness';
import { uploadArtifact } from '../test/support/http';
import { answerLoopDelay } from './loop-delay';

/** The bench's ~1M-parameter MLP: 64 → 2048 → 448 → 1. */
export const MLP_LAYERS = [64, 2048, 448, 1];

export interface BenchServerReady {
  url: string;
  token: string;
  lr: { deployment: string; artifactPath: string; features: number };
  mlp: { deployment: string; artifactPath: string; features: number; parameters: number };
}

async function main(): Promise<void> {
  const env = JSON.parse(process.env.BENCH_SERVER_ENV ?? '{}') as Record<string, string>;
  // One inference thread per core in each pool (the LR on PRODUCTION, the MLP on DEVELOPMENT), not
  // the test harness's single thread.
  const t = await startTestServer({
    demo: true,
    env: {
      INFERENCE_THREADS: String(availableParallelism()),
      INFERENCE_PRODUCTION_THREADS: String(availableParallelism()),
      INFERENCE_RATE_LIMIT_PER_SECOND: '10000000',
      // Queueing at c64 on a machine shared with other work can pass the 1 s default; a request
      // that times out would end the bench instead of counting in its latency.
      INFERENCE_TIMEOUT_MS: '10000',
      LOG_LEVEL: 'error',
      ...env,
    },
  });
  const admin = t.token(['admin'], [], 'bench-admin');
  const service = t.token(['service'], ['fraud'], 'bench-service');
  const r = await t.gql(admin, `{ deployments(filter: { team: "fraud", environment: PRODUCTION }) { nodes { id trafficSplit { modelVersion { artifactSha256 } } } }
    models(filter: { name: "fraud-detector" }) { nodes { id } } }`);
  const production = r.data.deployments.nodes[0];
  const mlpBytes = buildMlpOnnx({ layers: MLP_LAYERS, seed: 7 });
  const up = await uploadArtifact(t.url, admin, mlpBytes);
  const reg = await t.gql(admin, 'mutation($m: ID!, $a: String!) { registerModelVersion(input: { model: $m, artifactSha256: $a }) { id } }', { m: r.data.models.nodes[0].id, a: up.json.sha256 });
  const dep = await t.gql(admin, 'mutation($v: ID!) { createDeployment(input: { team: "fraud", name: "mlp-bench", environment: DEVELOPMENT, trafficSplit: [{ modelVersion: $v, weight: 100 }] }) { id } }', { v: reg.data.registerModelVersion.id });
  await t.server.app.inference!.reconcile();
  let parameters = 0;
  for (let l = 1; l < MLP_LAYERS.length; l++) parameters += MLP_LAYERS[l - 1] * MLP_LAYERS[l] + MLP_LAYERS[l];

  const stopMeasuring = answerLoopDelay();
  process.on('message', async (msg: { op: string }) => {
    if (msg.op === 'stop') {
      stopMeasuring();
      await t.stop();
      process.exit(0);
    }
  });
  const ready: BenchServerReady = {
    url: t.url,
    token: service,
    lr: { deployment: production.id, artifactPath: t.server.app.artifacts.pathFor(production.trafficSplit[0].modelVersion.artifactSha256), features: 4 },
    mlp: { deployment: dep.data.createDeployment.id, artifactPath: t.server.app.artifacts.pathFor(up.json.sha256), features: MLP_LAYERS[0], parameters },
  };
  process.send!({ op: 'ready', ready });
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
