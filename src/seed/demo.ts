import { signToken } from '../access/authenticate';
import { DEFAULT_ROLES } from '../access/policy-rules';
import { Team } from '../access/team.entity';
import type { AppServices } from '../core/context';
import { sha256Hex } from '../core/canonical-json';
import { Classification } from '../lineage/dataset.entity';
import * as lineage from '../lineage/lineage.service';
import { DatasetRole, TrainingRunStatus } from '../lineage/training-run.entity';
import { inTransaction } from '../core/context';
import { audit } from '../audit/audit.service';
import { Artifact } from '../registry/artifact.entity';
import { buildLogisticRegressionOnnx, readOnnxSignature } from '../registry/onnx';
import * as registry from '../registry/registry.service';
import { DeploymentEnvironment } from '../rollouts/deployment.entity';
import * as deployments from '../rollouts/deployment.service';
import { systemContext } from './system-context';

interface DemoTeam {
  team: string;
  dataset: string;
  classification: Classification;
  columns: string[];
  model: string;
  repo: string;
  weights: [number[], number[]];
}

const TEAMS: DemoTeam[] = [
  {
    team: 'fraud',
    dataset: 'card-transactions',
    classification: Classification.CONFIDENTIAL,
    columns: ['amount', 'hour', 'merchant_risk', 'distance_km'],
    model: 'fraud-detector',
    repo: 'https://git.example.com/fraud/detector',
    weights: [
      [0.8, -0.1, 1.2, 0.3],
      [0.9, -0.15, 1.4, 0.35],
    ],
  },
  {
    team: 'vision',
    dataset: 'product-images',
    classification: Classification.INTERNAL,
    columns: ['brightness', 'sharpness', 'edge_density'],
    model: 'defect-classifier',
    repo: 'https://git.example.com/vision/defects',
    weights: [
      [0.5, 1.1, -0.7],
      [0.6, 1.3, -0.8],
    ],
  },
];

const hex = (s: string) => sha256Hex(s);

/** Stores a model the server generated itself as an artifact (same path as an upload, minus HTTP). */
async function storeModel(app: AppServices, bytes: Buffer, actor: string): Promise<string> {
  const ctx = systemContext(app, { id: actor }, 'seed-demo');
  const blob = await app.artifacts.put(bytes);
  const signature = readOnnxSignature(bytes);
  await inTransaction(ctx, async (em) => {
    if (await em.findOne(Artifact, { where: { sha256: blob.sha256 } })) return;
    await em.insert(Artifact, { sha256: blob.sha256, sizeBytes: blob.sizeBytes, format: 'ONNX', signature, createdBy: actor });
    await audit(ctx, { action: 'uploadArtifact', subjectType: 'Artifact', subjectId: blob.sha256, after: { sha256: blob.sha256, sizeBytes: blob.sizeBytes } });
  });
  return blob.sha256;
}

/**
 * On an empty database: two teams, each with a complete chain (data, code, config, seeds,
 * environment, run, a model with two versions of which one is APPROVED and `champion`,
 * a STAGING and a PRODUCTION deployment). Everything goes through the services, so every step is
 * authorised and audited like a client's. Returns false when the database already had teams.
 */
export async function seedDemo(app: AppServices): Promise<boolean> {
  if ((await app.db.getRepository(Team).count()) > 0) return false;
  const engineer = (team: string) => systemContext(app, { id: `demo:${team}-engineer` }, 'seed-demo');
  const reviewer = (team: string) => systemContext(app, { id: `demo:${team}-reviewer` }, 'seed-demo');
  for (const t of TEAMS) {
    const admin = systemContext(app, { id: 'demo:admin' }, 'seed-demo');
    await lineage.createTeam(admin, { name: t.team, description: `Demo team ${t.team}` });
    const ctx = engineer(t.team);
    const dataset = await lineage.createDataset(ctx, { team: t.team, name: t.dataset, classification: t.classification, description: `Demo ${t.dataset}` });
    const columns = [...t.columns.map((name) => ({ name, type: 'float64', nullable: false })), { name: 'label', type: 'int64', nullable: false }];
    const raw = await lineage.registerDatasetVersion(ctx, {
      dataset: dataset.nodeId,
      uri: `s3://modelgov-demo/${t.team}/${t.dataset}/raw-2026-10.parquet`,
      sha256: hex(`${t.team}-raw`),
      rowCount: 1_200_000,
      columns,
      sourceQuery: `SELECT * FROM ${t.team}.events WHERE day < '2026-11-01'`,
    });
    const clean = await lineage.registerDatasetVersion(ctx, {
      dataset: dataset.nodeId,
      uri: `s3://modelgov-demo/${t.team}/${t.dataset}/clean-2026-10.parquet`,
      sha256: hex(`${t.team}-clean`),
      rowCount: 1_150_000,
      columns,
      sourceQuery: `SELECT * FROM ${t.team}.events_clean WHERE day < '2026-11-01'`,
      derivedFrom: [raw.nodeId],
    });
    const holdout = await lineage.registerDatasetVersion(ctx, {
      dataset: dataset.nodeId,
      uri: `s3://modelgov-demo/${t.team}/${t.dataset}/holdout-2026-11.parquet`,
      sha256: hex(`${t.team}-holdout`),
      rowCount: 120_000,
      columns,
      derivedFrom: [raw.nodeId],
    });
    const env = await lineage.registerEnvironment(ctx, {
      team: t.team,
      runtime: 'python 3.11.7',
      lockfileSha256: hex(`${t.team}-lock`),
      imageDigest: `sha256:${hex(`${t.team}-image`)}`,
      hardware: 'cpu x8',
    });
    const seeds = await lineage.registerSeedSet(ctx, { team: t.team, seeds: { split: 7, init: 42, shuffle: 1234 } });
    const versions: Array<{ nodeId: string }> = [];
    for (let i = 0; i < 2; i++) {
      const code = await lineage.registerCodeVersion(ctx, {
        team: t.team,
        repositoryUrl: t.repo,
        commitSha: hex(`${t.team}-commit-${i}`).slice(0, 40),
        branch: 'main',
        dirty: false,
        entrypoint: 'train.py',
      });
      const config = await lineage.registerConfig(ctx, { team: t.team, content: { model: 'logistic_regression', lr: i === 0 ? 0.05 : 0.02, epochs: 20 + i * 10, l2: 0.001 } });
      const metrics = { accuracy: 0.91 + i * 0.015, auc: 0.89 + i * 0.02, logLoss: 0.26 - i * 0.03 };
      const run = await lineage.recordTrainingRun(ctx, {
        team: t.team,
        name: `${t.model}-train-${i + 1}`,
        datasets: [
          { datasetVersion: clean.nodeId, role: DatasetRole.TRAIN },
          { datasetVersion: holdout.nodeId, role: DatasetRole.TEST },
        ],
        codeVersion: code.nodeId,
        config: config.nodeId,
        seedSet: seeds.nodeId,
        environment: env.nodeId,
        status: TrainingRunStatus.SUCCEEDED,
        startedAt: new Date(Date.UTC(2026, 10, 1 + i * 7, 9)).toISOString(),
        finishedAt: new Date(Date.UTC(2026, 10, 1 + i * 7, 10, 30)).toISOString(),
        metrics,
      });
      const artifact = await storeModel(app, buildLogisticRegressionOnnx({ weights: t.weights[i], bias: -1.5, docString: `${t.model} v${i + 1}` }), ctx.principal!.id);
      if (i === 0) versions.push(await registry.createModel(ctx, { team: t.team, name: t.model, description: `Demo ${t.model}` }));
      const model = versions[0];
      versions.push(await registry.registerModelVersion(ctx, { model: model.nodeId, artifactSha256: artifact, trainingRun: run.nodeId }));
    }
    const [, v1, v2] = versions as [unknown, { nodeId: string }, { nodeId: string }];
    await registry.submitModelVersion(ctx, v1.nodeId);
    await registry.approveModelVersion(reviewer(t.team), { modelVersion: v1.nodeId, reason: 'Offline metrics above the gate; holdout checked' });
    await registry.setModelVersionAlias(ctx, { modelVersion: v1.nodeId, alias: 'champion' });
    await registry.submitModelVersion(ctx, v2.nodeId);
    await deployments.createDeployment(ctx, {
      team: t.team,
      name: `${t.model}-staging`,
      environment: DeploymentEnvironment.STAGING,
      slos: { p95LatencyMs: 50, errorRate: 0.01 },
      trafficSplit: [
        { modelVersion: v1.nodeId, weight: 90 },
        { modelVersion: v2.nodeId, weight: 10 },
      ],
    });
    await deployments.createDeployment(ctx, {
      team: t.team,
      name: `${t.model}-production`,
      environment: DeploymentEnvironment.PRODUCTION,
      slos: { p95LatencyMs: 50, errorRate: 0.01 },
      trafficSplit: [{ modelVersion: v1.nodeId, weight: 100 }],
    });
  }
  return true;
}

/** A ready token per default role (12 h), for trying the API. */
export function demoTokens(secret: string): Array<{ role: string; teams: string[]; token: string }> {
  return DEFAULT_ROLES.map((r) => {
    const teams = r.name === 'admin' || r.name === 'auditor' ? ['fraud', 'vision'] : ['fraud'];
    return { role: r.name, teams, token: signToken(secret, { sub: `demo-${r.name}`, roles: [r.name], teams }) };
  });
}
