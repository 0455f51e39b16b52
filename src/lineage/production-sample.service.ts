import { randomUUID } from 'node:crypto';
import type { EntityManager } from 'typeorm';
import { audit } from '../core/audit/audit-chain';
import { assertCan, mapDbError } from '../core/authz';
import type { TransactionContext } from '../core/context';
import { badInput } from '../core/errors';
import { toGlobalId } from '../core/global-id';
import { DatasetBlob } from './dataset-blob.entity';
import { Classification, Dataset } from './dataset.entity';
import { DatasetVersion, type ColumnSchema } from './dataset-version.entity';
import { DatasetVersionSample, SamplePart } from './dataset-version-sample.entity';
import { LineageReason } from './lineage.errors';

/** Rows of a production sample that no part holds, by cause; each row is counted under one cause only. */
export interface UnusableRowCounts {
  /** Answered rows without a label. */
  unlabelled: number;
  /** Labelled rows whose inputs were logged only as their hash. */
  inputsHashOnly: number;
  /** Labelled rows answered by a version whose reference profile names other input columns than the sample's, or none. */
  otherColumns: number;
  /** Labelled rows with a value a CSV cannot hold. */
  unstorableValue: number;
}

/** One part of a production sample, as the sampler wrote it. */
export interface SampledPartContent {
  part: SamplePart;
  /** The CSV: a header row, then one row per sampled prediction row. */
  csv: Buffer;
  rows: number;
  columns: ColumnSchema[];
  /** When the earliest and the latest prediction of the part occurred. */
  sampledFrom: Date;
  sampledTo: Date;
}

/** A production sample to record: where it came from, and its parts (empty ones left out). */
export interface ProductionSampleContent {
  /** The deployment whose traffic was sampled; its team owns the dataset. */
  deployment: { id: string; teamId: string; name: string };
  windowFrom: Date;
  windowTo: Date;
  /** Every model version that answered a sampled row: the data came from what they were trained on. */
  modelVersionIds: string[];
  unusable: UnusableRowCounts;
  parts: SampledPartContent[];
}

/** A recorded part: its dataset version (an existing one when the same content was sampled before). */
export interface RecordedSamplePart {
  part: SamplePart;
  version: DatasetVersion;
  rows: number;
  sampledFrom: Date;
  sampledTo: Date;
  /** The same content had already been sampled from this deployment: its version is returned, nothing new is written. */
  reused: boolean;
}

export interface RecordedProductionSample {
  sampleId: string;
  dataset: Dataset;
  classification: Classification;
  parts: RecordedSamplePart[];
}

const ORDER = [Classification.PUBLIC, Classification.INTERNAL, Classification.CONFIDENTIAL, Classification.RESTRICTED];

/** The stricter of classifications (PUBLIC when none is given). */
export function strictestClassification(values: Iterable<Classification>): Classification {
  let rank = 0;
  for (const v of values) rank = Math.max(rank, ORDER.indexOf(v));
  return ORDER[rank];
}

/**
 * How strictly data derived from what these model versions saw must be classified: the strictest
 * classification of the dataset versions their training runs used, RESTRICTED for a version
 * without recorded training data (no run, or a run without dataset links). Unscoped on purpose:
 * the floor holds whether or not the caller may read the training data.
 */
export async function trainingDataClassification(em: EntityManager, modelVersionIds: string[]): Promise<Classification> {
  if (modelVersionIds.length === 0) return Classification.RESTRICTED;
  const rows: Array<{ id: string; classes: Classification[] }> = await em.query(
    `SELECT mv.id, array_remove(array_agg(v.classification::text), NULL) AS classes
       FROM model_version mv
       LEFT JOIN training_run_dataset l ON l.training_run_id = mv.training_run_id
       LEFT JOIN dataset_version v ON v.id = l.dataset_version_id
      WHERE mv.id = ANY($1::uuid[])
      GROUP BY mv.id`,
    [modelVersionIds],
  );
  if (rows.length < new Set(modelVersionIds).size) return Classification.RESTRICTED;
  return strictestClassification(rows.map((r) => (r.classes.length ? strictestClassification(r.classes) : Classification.RESTRICTED)));
}

/** The team's dataset of a deployment's production samples, created on first use; locked, so that versions are numbered in turn. */
async function productionDataset(ctx: TransactionContext, em: EntityManager, deployment: ProductionSampleContent['deployment'], classification: Classification) {
  const name = `${deployment.name}-production`;
  const candidate = em.create(Dataset, {
    teamId: deployment.teamId,
    name,
    classification,
    description: `Production samples of deployment ${deployment.name}`,
    createdBy: ctx.principal!.id,
  });
  assertCan(ctx, 'create', 'Dataset', candidate);
  const inserted = await em.createQueryBuilder().insert().into(Dataset).values(candidate).orIgnore().returning('id').execute();
  const dataset = await em
    .getRepository(Dataset)
    .createQueryBuilder('d')
    .where('d.team_id = :team AND d.name = :name', { team: deployment.teamId, name })
    .setLock('pessimistic_write')
    .getOneOrFail();
  return { dataset, created: inserted.raw.length > 0 };
}

/**
 * Records a production sample in the caller's transaction: stores each part's CSV in the
 * content-addressed store (the server chooses where), registers it as the next version of the
 * team's `<deployment>-production` dataset (created on first use), classified at least as
 * strictly as the data the sampled model versions were trained on and as the dataset itself,
 * records the SAMPLED edge with the window and the unusable rows, and writes one audit event.
 * Requires `create` on the Dataset (when it is new) and on each DatasetVersion.
 */
export async function recordProductionSample(ctx: TransactionContext, sample: ProductionSampleContent): Promise<RecordedProductionSample> {
  const em = ctx.em;
  const maxBytes = ctx.app.config.datasetMaxBytes;
  for (const p of sample.parts) {
    if (p.csv.byteLength > maxBytes) {
      throw badInput(`the ${p.part} part would take ${p.csv.byteLength} bytes, over the ${maxBytes} a dataset may hold: sample a shorter range`, {
        field: 'from',
        reason: LineageReason.SAMPLE_TOO_LARGE,
      });
    }
  }
  const sourceClassification = await trainingDataClassification(em, sample.modelVersionIds);
  const { dataset, created } = await productionDataset(ctx, em, sample.deployment, sourceClassification);
  const classification = strictestClassification([sourceClassification, dataset.classification]);
  // Checked before any content is stored: the versions will be the dataset's, at this classification.
  assertCan(ctx, 'create', 'DatasetVersion', { teamId: dataset.teamId, datasetId: dataset.id, classification, createdBy: ctx.principal!.id });
  const sampleId = randomUUID();
  const parts: RecordedSamplePart[] = [];
  for (const p of sample.parts) {
    const blob = await ctx.app.artifacts.put(p.csv);
    await em
      .createQueryBuilder()
      .insert()
      .into(DatasetBlob)
      .values({ sha256: blob.sha256, sizeBytes: blob.sizeBytes, rowCount: p.rows, columns: p.columns.map((c) => c.name), createdBy: ctx.principal!.id })
      .orIgnore()
      .execute();
    const same = await em.findOneBy(DatasetVersion, { datasetId: dataset.id, sha256: blob.sha256 });
    if (same && (await em.existsBy(DatasetVersionSample, { datasetVersionId: same.id, deploymentId: sample.deployment.id }))) {
      parts.push({ part: p.part, version: same, rows: p.rows, sampledFrom: p.sampledFrom, sampledTo: p.sampledTo, reused: true });
      continue;
    }
    const [{ next }] = await em.query('SELECT COALESCE(MAX(version), 0) + 1 AS next FROM dataset_version WHERE dataset_id = $1', [dataset.id]);
    const version = em.create(DatasetVersion, {
      datasetId: dataset.id,
      teamId: dataset.teamId,
      classification,
      version: Number(next),
      uri: `modelgov:dataset-content/sha256/${blob.sha256}`,
      sha256: blob.sha256,
      rowCount: p.rows,
      columnSchema: p.columns,
      sourceQuery: `${p.part} part of the labelled production traffic of deployment ${toGlobalId('Deployment', sample.deployment.id)} in [${sample.windowFrom.toISOString()}, ${sample.windowTo.toISOString()})`,
      createdBy: ctx.principal!.id,
    });
    assertCan(ctx, 'create', 'DatasetVersion', version);
    await em.insert(DatasetVersion, version).catch((e) => mapDbError(e, `A version of dataset ${dataset.name} with this sha256`));
    await em.insert(DatasetVersionSample, {
      datasetVersionId: version.id,
      deploymentId: sample.deployment.id,
      teamId: dataset.teamId,
      sampleId,
      part: p.part,
      windowFrom: sample.windowFrom,
      windowTo: sample.windowTo,
      sampledFrom: p.sampledFrom,
      sampledTo: p.sampledTo,
      rows: p.rows,
      unusableInputsHashOnly: sample.unusable.inputsHashOnly,
      unusableUnlabelled: sample.unusable.unlabelled,
      unusableUnstorableValue: sample.unusable.unstorableValue,
      unusableOtherColumns: sample.unusable.otherColumns,
      createdBy: ctx.principal!.id,
    });
    parts.push({ part: p.part, version, rows: p.rows, sampledFrom: p.sampledFrom, sampledTo: p.sampledTo, reused: false });
  }
  await audit(ctx, {
    action: 'sampleProductionData',
    subjectType: 'Deployment',
    subjectId: toGlobalId('Deployment', sample.deployment.id),
    reason: parts.length > 0 && parts.every((p) => p.reused) ? 'the same production data was sampled before; its dataset versions are returned' : null,
    after: {
      sampleId,
      dataset: toGlobalId('Dataset', dataset.id),
      datasetCreated: created,
      classification,
      windowFrom: sample.windowFrom,
      windowTo: sample.windowTo,
      modelVersions: sample.modelVersionIds.map((id) => toGlobalId('ModelVersion', id)),
      unusable: sample.unusable,
      parts: parts.map((p) => ({
        part: p.part,
        datasetVersion: toGlobalId('DatasetVersion', p.version.id),
        version: p.version.version,
        sha256: p.version.sha256,
        rows: p.rows,
        sampledFrom: p.sampledFrom,
        sampledTo: p.sampledTo,
        reused: p.reused,
      })),
    },
  });
  return { sampleId, dataset, classification, parts };
}
