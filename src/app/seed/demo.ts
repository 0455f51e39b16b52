import { signToken } from '../../access/authenticate';
import { DEFAULT_ROLES } from '../../access/policy-rules';
import { Team } from '../../access/team.entity';
import type { AppServices } from '../../core/context';
import { sha256Hex } from '../../core/canonical-json';
import { Classification } from '../../lineage/dataset.entity';
import * as lineage from '../../lineage/lineage.service';
import { createTeam } from '../../access/team.service';
import { DatasetRole, TrainingRun, TrainingRunStatus } from '../../lineage/training-run.entity';
import { DatasetBlob } from '../../lineage/dataset-blob.entity';
import * as training from '../../training/training.service';
import { ModelVersion } from '../../registry/model-version.entity';
import { syntheticCsv } from '../../../jobs/trainers/synthetic-data';
import { BUILTIN_TRAINERS_REPOSITORY } from '../../config';
import { inTransaction } from '../../core/context';
import { audit } from '../../core/audit/audit-chain';
import * as registry from '../../registry/registry.service';
import { DeploymentEnvironment } from '../../rollouts/deployment.entity';
import * as deployments from '../../rollouts/deployment.service';
import { systemContext } from '../../access/system-context';

interface DemoTeam {
  team: string;
  dataset: string;
  classification: Classification;
  columns: string[];
  model: string;
}

const TEAMS: DemoTeam[] = [
  {
    team: 'fraud',
    dataset: 'card-transactions',
    classification: Classification.CONFIDENTIAL,
    columns: ['amount', 'hour', 'merchant_risk', 'distance_km'],
    model: 'fraud-detector',
  },
  {
    team: 'vision',
    dataset: 'product-images',
    classification: Classification.INTERNAL,
    columns: ['brightness', 'sharpness', 'edge_density'],
    model: 'defect-classifier',
  },
];

const hex = (s: string) => sha256Hex(s);

/** Stores generated CSV content the way POST /datasets/content does (server-chosen path, one audit event). */
async function storeCsv(app: AppServices, csv: string, actor: string): Promise<{ sha256: string; rowCount: number; columns: string[] }> {
  const ctx = systemContext(app, { id: actor }, 'seed-demo');
  const blob = await app.artifacts.put(Buffer.from(csv));
  const lines = csv.trimEnd().split('\n');
  const columns = lines[0].split(',');
  const rowCount = lines.length - 1;
  await inTransaction(ctx, async (em, ctx) => {
    if (await em.findOne(DatasetBlob, { where: { sha256: blob.sha256 } })) return;
    await em.insert(DatasetBlob, { sha256: blob.sha256, sizeBytes: blob.sizeBytes, rowCount, columns, createdBy: actor });
    await audit(ctx, { action: 'uploadDatasetContent', subjectType: 'DatasetContent', subjectId: blob.sha256, after: { sha256: blob.sha256, rowCount, columns } });
  });
  return { sha256: blob.sha256, rowCount, columns };
}

/** Waits for a queued run to finish (the demo needs a worker: the API's own, by default). */
async function trained(app: AppServices, runId: string): Promise<ModelVersion> {
  const until = Date.now() + 120_000;
  for (;;) {
    const run = await app.db.getRepository(TrainingRun).findOneByOrFail({ id: runId });
    if (run.status === TrainingRunStatus.SUCCEEDED) return app.db.getRepository(ModelVersion).findOneByOrFail({ trainingRunId: runId });
    if (run.status === TrainingRunStatus.FAILED || run.status === TrainingRunStatus.CANCELLED) {
      throw new Error(`demo training run ${runId} ended ${run.status}: ${run.failureReason}`);
    }
    if (Date.now() > until) throw new Error('demo training did not finish within 120 s: is a worker running? (WORKERS_IN_PROCESS or npm run worker)');
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/**
 * On an empty database: two teams, each with a complete chain — generated CSV data (stored, so it
 * can be trained on), the built-in trainer as code version, configs, seeds, an environment, two
 * runs really trained through the queue, a model whose v1 is APPROVED and `champion`, and a STAGING
 * and a PRODUCTION deployment. Everything goes through the services, so every step is authorised
 * and audited like a client's. Returns false when the database already had teams.
 */
export async function seedDemo(app: AppServices): Promise<boolean> {
  if ((await app.db.getRepository(Team).count()) > 0) return false;
  const engineer = (team: string) => systemContext(app, { id: `demo:${team}-engineer` }, 'seed-demo');
  const reviewer = (team: string) => systemContext(app, { id: `demo:${team}-reviewer` }, 'seed-demo');
  for (const [teamIndex, t] of TEAMS.entries()) {
    const admin = systemContext(app, { id: 'demo:admin' }, 'seed-demo');
    await createTeam(admin, { name: t.team, description: `Demo team ${t.team}` });
    const ctx = engineer(t.team);
    const dataset = await lineage.createDataset(ctx, { team: t.team, name: t.dataset, classification: t.classification, description: `Demo ${t.dataset}` });
    const columns = [...t.columns.map((name) => ({ name, type: 'float64', nullable: false })), { name: 'label', type: 'int64', nullable: false }];
    const seed = 100 * (teamIndex + 1);
    const rawCsv = await storeCsv(app, syntheticCsv({ rows: 1500, seed, features: t.columns }), ctx.principal!.id);
    const raw = await lineage.registerDatasetVersion(ctx, {
      dataset: dataset.nodeId,
      uri: `s3://modelgov-demo/${t.team}/${t.dataset}/raw-2026-10.csv`,
      sha256: rawCsv.sha256,
      rowCount: rawCsv.rowCount,
      columns,
      sourceQuery: `SELECT * FROM ${t.team}.events WHERE day < '2026-11-01'`,
    });
    // "Cleaning" keeps the first 1,200 rows: a derived version, content of its own.
    const cleanCsv = await storeCsv(app, syntheticCsv({ rows: 1200, seed, features: t.columns }), ctx.principal!.id);
    const clean = await lineage.registerDatasetVersion(ctx, {
      dataset: dataset.nodeId,
      uri: `s3://modelgov-demo/${t.team}/${t.dataset}/clean-2026-10.csv`,
      sha256: cleanCsv.sha256,
      rowCount: cleanCsv.rowCount,
      columns,
      sourceQuery: `SELECT * FROM ${t.team}.events_clean WHERE day < '2026-11-01'`,
      derivedFrom: [raw.nodeId],
    });
    const holdoutCsv = await storeCsv(app, syntheticCsv({ rows: 400, seed: seed + 1, features: t.columns }), ctx.principal!.id);
    const holdout = await lineage.registerDatasetVersion(ctx, {
      dataset: dataset.nodeId,
      uri: `s3://modelgov-demo/${t.team}/${t.dataset}/holdout-2026-11.csv`,
      sha256: holdoutCsv.sha256,
      rowCount: holdoutCsv.rowCount,
      columns,
      derivedFrom: [raw.nodeId],
    });
    const env = await lineage.registerEnvironment(ctx, {
      team: t.team,
      runtime: `node ${process.versions.node}`,
      lockfileSha256: hex(`${t.team}-lock`),
      imageDigest: `sha256:${hex(`${t.team}-image`)}`,
      hardware: 'cpu x2',
    });
    const code = await lineage.registerCodeVersion(ctx, {
      team: t.team,
      repositoryUrl: BUILTIN_TRAINERS_REPOSITORY,
      commitSha: hex(`${t.team}-trainer`).slice(0, 40),
      branch: 'main',
      dirty: false,
      entrypoint: 'tabular-trainer.js',
    });
    const model = await registry.createModel(ctx, { team: t.team, name: t.model, description: `Demo ${t.model}` });
    const versions: ModelVersion[] = [];
    for (let i = 0; i < 2; i++) {
      const run = await training.startTrainingRun(ctx, {
        model: model.nodeId,
        name: `${t.model}-train-${i + 1}`,
        datasets: [
          { datasetVersion: clean.nodeId, role: DatasetRole.TRAIN },
          { datasetVersion: holdout.nodeId, role: DatasetRole.TEST },
        ],
        codeVersion: code.nodeId,
        configContent: { model: 'logistic_regression', lr: i === 0 ? 0.05 : 0.1, epochs: 20 + i * 20, l2: 0.001, gate: { accuracy: { min: 0.7 }, auc: { minDeltaVsChampion: -0.02 } } },
        seeds: { split: 7, init: 42, shuffle: 1234 },
        environment: env.nodeId,
      });
      versions.push(await trained(app, run.id));
    }
    const [v1, v2] = versions;
    await registry.approveModelVersion(reviewer(t.team), { modelVersion: v1.nodeId, reason: 'Offline metrics above the gate; holdout checked' });
    await registry.setModelVersionAlias(ctx, { modelVersion: v1.nodeId, alias: 'champion' });
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
