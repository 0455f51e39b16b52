// Production samples: a deployment's labelled traffic as dataset versions to retrain on, split by
// time. Reads the prediction log and outcomes; the dataset versions and their lineage are recorded
// by the lineage domain in the same transaction.
import type { EntityManager } from 'typeorm';
import { assertCan } from '../core/authz';
import { inTransaction, type RequestContext } from '../core/context';
import { badInput } from '../core/errors';
import { toGlobalId } from '../core/global-id';
import type { ColumnSchema } from '../lineage/dataset-version.entity';
import { SamplePart } from '../lineage/dataset-version-sample.entity';
import { LineageReason } from '../lineage/lineage.errors';
import { loadReadable } from '../lineage/lineage.service';
import { recordProductionSample, type SampledPartContent, type UnusableRowCounts } from '../lineage/production-sample.service';
import { Deployment } from '../rollouts/deployment.entity';
import { MonitoringReason } from './monitoring.errors';
import type { SampleProductionDataInput } from './monitoring.inputs';
import { ProductionSample, ProductionSamplePart, UnusableRows } from './production-sample';

const DAY_MS = 86_400_000;

/** The range sampled when none is given: the last 7 days. */
export const DEFAULT_SAMPLE_DAYS = 7;
/** The longest range one sample may span. */
export const MAX_SAMPLE_DAYS = 90;
/** Fewer usable rows than this make no dataset worth training on: refused rather than stored. */
export const MIN_SAMPLE_ROWS = 20;
/** Labelled rows one sample reads at most (they are held in memory while the CSV is written). */
export const MAX_SAMPLE_ROWS = 200_000;

/** A labelled row of an answered, served prediction, as read. */
interface LabelledRow {
  id: string;
  occurredAt: Date;
  modelVersionId: string;
  row: number;
  label: unknown;
  hashOnly: boolean;
  /** The row of the version's input tensor, as logged (null when only the hash was kept). */
  values: unknown;
}

/** The input a version's reference profile names: its tensor and its columns in tensor order. */
interface InputColumns {
  inputName: string;
  inputColumns: string[];
}

const HEADER_NAME = /^[A-Za-z_][A-Za-z0-9_.-]{0,99}$/;

/** A value as one CSV field, or null when a CSV (comma-separated, no quoting) cannot hold it. */
function csvField(v: unknown): string | null {
  if (typeof v === 'number') return Number.isFinite(v) ? String(v) : null;
  if (typeof v === 'boolean') return String(v);
  if (typeof v === 'string') return /[,"\r\n\uFFFD]/.test(v) ? null : v;
  return null;
}

/** The column type of values that all fit a CSV: int64, float64, bool or string. */
function columnType(values: unknown[]): string {
  if (values.every((v) => typeof v === 'number')) return values.every((v) => Number.isInteger(v)) ? 'int64' : 'float64';
  if (values.every((v) => typeof v === 'boolean')) return 'bool';
  return 'string';
}

/** Checked range and share: BAD_USER_INPUT with a reason for an empty or reversed range, one over 90 days, or a share outside (0, 0.5]. */
function checkedRequest(input: SampleProductionDataInput, now: Date): { from: Date; to: Date; holdoutShare: number } {
  const holdoutShare = input.holdoutShare ?? 0.2;
  if (!Number.isFinite(holdoutShare) || holdoutShare <= 0 || holdoutShare > 0.5) {
    throw badInput('holdoutShare must be above 0 and at most 0.5', { field: 'holdoutShare', reason: MonitoringReason.HOLDOUT_SHARE });
  }
  const to = input.to ?? now;
  const from = input.from ?? new Date(to.getTime() - DEFAULT_SAMPLE_DAYS * DAY_MS);
  if (!(to.getTime() > from.getTime())) throw badInput('to must be after from: the range is empty', { field: 'to', reason: MonitoringReason.INVALID_RANGE });
  if (to.getTime() - from.getTime() > MAX_SAMPLE_DAYS * DAY_MS) {
    throw badInput(`a production sample spans at most ${MAX_SAMPLE_DAYS} days`, { field: 'from', reason: MonitoringReason.INVALID_RANGE });
  }
  return { from, to, holdoutShare };
}

// Answered (outputs logged), served (not shadow) predictions of one deployment in [from, to).
const SAMPLED_PREDICTIONS = `p.deployment_id = $1 AND p.occurred_at >= $2 AND p.occurred_at < $3 AND NOT p.shadow AND p.outputs IS NOT NULL`;

/** Answered rows and labelled rows in the range, counted in SQL. */
async function rowCounts(em: EntityManager, deploymentId: string, from: Date, to: Date): Promise<{ answered: number; labelled: number }> {
  const [counts] = await em.query(
    `SELECT (SELECT COALESCE(sum(p.rows), 0) FROM prediction_log p WHERE ${SAMPLED_PREDICTIONS})::bigint AS answered,
            (SELECT count(*) FROM prediction_log p JOIN prediction_outcome o ON o.prediction_id = p.id WHERE ${SAMPLED_PREDICTIONS})::bigint AS labelled`,
    [deploymentId, from, to],
  );
  return { answered: Number(counts.answered), labelled: Number(counts.labelled) };
}

/** The labelled rows in time order (occurred_at, then prediction id, then row); each label is the latest recorded. */
async function labelledRows(em: EntityManager, deploymentId: string, from: Date, to: Date): Promise<LabelledRow[]> {
  const rows: LabelledRow[] = await em.query(
    `SELECT p.id, p.occurred_at AS "occurredAt", p.model_version_id AS "modelVersionId", o.row, o.label, p.inputs IS NULL AS "hashOnly",
            p.inputs -> (mv.reference_profile ->> 'inputName') -> o.row AS values
       FROM prediction_log p
       JOIN prediction_outcome o ON o.prediction_id = p.id
       JOIN model_version mv ON mv.id = p.model_version_id
      WHERE ${SAMPLED_PREDICTIONS}
      ORDER BY p.occurred_at, p.id, o.row`,
    [deploymentId, from, to],
  );
  return rows;
}

/** The input columns each version's reference profile names (absent: it names none). */
async function inputColumnsOf(em: EntityManager, versionIds: string[]): Promise<Map<string, InputColumns>> {
  const rows: Array<{ id: string; inputName: unknown; inputColumns: unknown }> = await em.query(
    `SELECT id, reference_profile -> 'inputName' AS "inputName", reference_profile -> 'inputColumns' AS "inputColumns" FROM model_version WHERE id = ANY($1::uuid[])`,
    [versionIds],
  );
  const out = new Map<string, InputColumns>();
  for (const r of rows) {
    if (typeof r.inputName !== 'string' || !Array.isArray(r.inputColumns) || r.inputColumns.length === 0 || !r.inputColumns.every((c) => typeof c === 'string')) continue;
    out.set(r.id, { inputName: r.inputName, inputColumns: r.inputColumns as string[] });
  }
  return out;
}

const sameColumns = (a: InputColumns, b: InputColumns) => a.inputName === b.inputName && a.inputColumns.length === b.inputColumns.length && a.inputColumns.every((c, i) => c === b.inputColumns[i]);

/** One part's CSV and its description. */
function partContent(part: SamplePart, header: string[], rows: Array<{ at: Date; fields: string[]; raw: unknown[] }>): SampledPartContent {
  const lines = [header.join(','), ...rows.map((r) => r.fields.join(','))];
  const columns: ColumnSchema[] = header.map((name, i) => ({ name, type: columnType(rows.map((r) => r.raw[i])), nullable: false }));
  return { part, csv: Buffer.from(`${lines.join('\n')}\n`), rows: rows.length, columns, sampledFrom: rows[0].at, sampledTo: rows[rows.length - 1].at };
}

/**
 * Samples a deployment's labelled production traffic in [from, to) (default: the last 7 days) into
 * two dataset versions of the team's `<deployment>-production` dataset, split by time: the latest
 * `holdoutShare` of the usable rows (by occurred_at, then prediction id, then row) become the
 * HOLDOUT part, the rest the TRAIN part. One CSV row per labelled row of an answered, served
 * (non-shadow) prediction: the serving version's input columns, then `label` (the latest label
 * recorded). Rows without a label, with inputs logged only as a hash, answered by a version with
 * other input columns, or holding a value a CSV cannot hold are left out and counted by cause.
 * Requires `update` on the deployment and `create` on its team's dataset versions; fewer than
 * {@link MIN_SAMPLE_ROWS} usable rows are refused. One audit event, written with the versions.
 */
export async function sampleProductionData(ctx: RequestContext, input: SampleProductionDataInput): Promise<ProductionSample> {
  const { from, to, holdoutShare } = checkedRequest(input, new Date());
  return inTransaction(ctx, async (em, ctx) => {
    const d = await loadReadable(ctx, em, Deployment, 'Deployment', input.deployment, 'deployment');
    assertCan(ctx, 'update', 'Deployment', d);
    const counts = await rowCounts(em, d.id, from, to);
    if (counts.labelled > MAX_SAMPLE_ROWS) {
      throw badInput(`the range holds ${counts.labelled} labelled rows; a sample takes at most ${MAX_SAMPLE_ROWS}: sample a shorter range`, {
        field: 'from',
        reason: LineageReason.SAMPLE_TOO_LARGE,
      });
    }
    const labelled = await labelledRows(em, d.id, from, to);
    const profiles = await inputColumnsOf(em, [...new Set(labelled.map((r) => r.modelVersionId))]);
    // The columns of the version that answered the latest row the sample could use.
    const latest = [...labelled].reverse().find((r) => !r.hashOnly && profiles.has(r.modelVersionId));
    const columns = latest ? profiles.get(latest.modelVersionId)! : null;
    if (columns) {
      const header = [...columns.inputColumns, 'label'];
      if (!header.every((c) => HEADER_NAME.test(c)) || new Set(header).size !== header.length) {
        throw badInput(`the input columns of the serving version (${columns.inputColumns.join(', ')}) cannot head a CSV with a label column`, {
          field: 'deployment',
          reason: MonitoringReason.SAMPLE_COLUMNS,
        });
      }
    }

    const unusable: UnusableRowCounts = { unlabelled: Math.max(0, counts.answered - counts.labelled), inputsHashOnly: 0, otherColumns: 0, unstorableValue: 0 };
    const usable: Array<{ at: Date; fields: string[]; raw: unknown[]; versionId: string }> = [];
    for (const r of labelled) {
      if (r.hashOnly) {
        unusable.inputsHashOnly += 1;
        continue;
      }
      const own = profiles.get(r.modelVersionId);
      if (!columns || !own || !sameColumns(own, columns)) {
        unusable.otherColumns += 1;
        continue;
      }
      const raw = Array.isArray(r.values) && r.values.length === columns.inputColumns.length ? [...r.values, r.label] : null;
      const fields = raw?.map(csvField);
      if (!raw || !fields || fields.some((f) => f === null)) {
        unusable.unstorableValue += 1;
        continue;
      }
      usable.push({ at: new Date(r.occurredAt), fields: fields as string[], raw, versionId: r.modelVersionId });
    }
    if (usable.length < MIN_SAMPLE_ROWS) {
      throw badInput(
        `the range holds ${usable.length} usable labelled rows; a production sample needs at least ${MIN_SAMPLE_ROWS} ` +
          `(unusable: ${unusable.unlabelled} unlabelled, ${unusable.inputsHashOnly} with inputs kept only as a hash, ` +
          `${unusable.otherColumns} answered by a version with other input columns, ${unusable.unstorableValue} with a value a CSV cannot hold)`,
        { field: 'from', reason: MonitoringReason.SAMPLE_TOO_SMALL },
      );
    }

    const header = [...columns!.inputColumns, 'label'];
    const holdoutRows = Math.round(usable.length * holdoutShare);
    const trainRows = usable.slice(0, usable.length - holdoutRows);
    const heldOut = usable.slice(usable.length - holdoutRows);
    const parts = [partContent(SamplePart.TRAIN, header, trainRows)];
    if (heldOut.length > 0) parts.push(partContent(SamplePart.HOLDOUT, header, heldOut));
    const recorded = await recordProductionSample(ctx, {
      deployment: { id: d.id, teamId: d.teamId, name: d.name },
      windowFrom: from,
      windowTo: to,
      modelVersionIds: [...new Set(usable.map((r) => r.versionId))],
      unusable,
      parts,
    });

    const partOf = (part: SamplePart) => {
      const p = recorded.parts.find((x) => x.part === part);
      return p ? Object.assign(new ProductionSamplePart(), { part, datasetVersion: p.version, rows: p.rows, sampledFrom: p.sampledFrom, sampledTo: p.sampledTo, reused: p.reused }) : null;
    };
    return Object.assign(new ProductionSample(), {
      deploymentId: toGlobalId('Deployment', d.id),
      datasetId: toGlobalId('Dataset', recorded.dataset.id),
      from,
      to,
      train: partOf(SamplePart.TRAIN),
      holdout: partOf(SamplePart.HOLDOUT),
      unusable: Object.assign(new UnusableRows(), unusable),
    });
  });
}
