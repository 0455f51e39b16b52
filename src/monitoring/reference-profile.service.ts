import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';
import type { Queryable } from './drift.service';
import {
  categoricalReference,
  numericReference,
  REFERENCE_PROFILE_VERSION,
  referenceSample,
  type CategoricalReference,
  type NumericReference,
  type ReferenceProfile,
  type ReferenceSample,
} from '../registry/reference-profile';

const NUMBER = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;

export class ReferenceProfileUnavailableError extends Error {}

export interface ComputeReferenceProfileOptions {
  /** Label column, left out of the features. Default `label`. */
  label?: string;
  /** The model input's columns in tensor order. Default: every numeric column but the label, in file order (the tabular trainer's default). */
  inputColumns?: string[];
}

type Artifacts = { pathFor(sha256: string): string };

interface TrainingColumns {
  signature: { inputs: Array<{ name: string }>; outputs: Array<{ name: string }> };
  header: string[];
  /** Non-empty cells per column, pooled over the TRAIN files. */
  cells: string[][];
}

// The stored CSV content of a version's training run's TRAIN dataset versions, pooled by column.
async function trainingColumns(q: Queryable, artifacts: Artifacts, modelVersionId: string): Promise<TrainingColumns> {
  const [version]: Array<{ signature_json: TrainingColumns['signature']; training_run_id: string | null }> = await q.query(
    `SELECT signature_json, training_run_id FROM model_version WHERE id = $1`,
    [modelVersionId],
  );
  if (!version) throw new ReferenceProfileUnavailableError('no such model version');
  if (!version.training_run_id) throw new ReferenceProfileUnavailableError('the model version has no training run to take its data from');
  const blobs: Array<{ sha256: string; stored: boolean }> = await q.query(
    `SELECT v.sha256, EXISTS (SELECT 1 FROM dataset_blob b WHERE b.sha256 = v.sha256) AS stored
     FROM training_run_dataset l JOIN dataset_version v ON v.id = l.dataset_version_id
     WHERE l.training_run_id = $1 AND l.role = 'TRAIN' ORDER BY v.sha256`,
    [version.training_run_id],
  );
  if (blobs.length === 0) throw new ReferenceProfileUnavailableError('the training run has no TRAIN dataset');
  const missing = blobs.find((b) => !b.stored);
  if (missing) throw new ReferenceProfileUnavailableError(`the content of dataset ${missing.sha256} is not stored`);

  let header: string[] | null = null;
  const cells: string[][] = [];
  for (const blob of blobs) {
    const file = await readCsv(artifacts.pathFor(blob.sha256));
    if (header && (file.header.length !== header.length || file.header.some((c, i) => c !== header![i]))) {
      throw new ReferenceProfileUnavailableError('the TRAIN datasets do not share one header');
    }
    header ??= file.header;
    if (cells.length === 0) header.forEach(() => cells.push([]));
    for (const row of file.rows) row.forEach((v, i) => v !== '' && cells[i].push(v));
  }
  return { signature: version.signature_json, header: header!, cells };
}

const isNumericColumn = (cells: string[]) => cells.length > 0 && cells.every((v) => NUMBER.test(v) && Number.isFinite(Number(v)));

/**
 * Computes the drift reference of a model version from the stored CSV content of its training
 * run's TRAIN dataset versions (rows of several files are pooled; they must share their header).
 * Input and output names come from the version's ONNX signature (first input, first output).
 * `prediction` is null: the reference of the model's outputs needs the model run over the data,
 * which the trainer does and this function does not.
 *
 * Throws `ReferenceProfileUnavailableError` when the version does not exist, has no training run
 * or no TRAIN dataset, when a dataset's content is not stored, or when an input column is missing.
 */
export async function computeReferenceProfile(q: Queryable, artifacts: Artifacts, modelVersionId: string, opts: ComputeReferenceProfileOptions = {}): Promise<ReferenceProfile> {
  return (await computeReference(q, artifacts, modelVersionId, opts)).profile;
}

/**
 * {@link computeReferenceProfile}, with the reference samples of its numeric input columns from
 * the same rows: what the exact statistics compare logged values with. The samples are training
 * data: for the server's own use, never stored in a profile nor returned to a client.
 */
export async function computeReference(
  q: Queryable,
  artifacts: Artifacts,
  modelVersionId: string,
  opts: ComputeReferenceProfileOptions = {},
): Promise<{ profile: ReferenceProfile; samples: Record<string, ReferenceSample> }> {
  const { signature, header, cells } = await trainingColumns(q, artifacts, modelVersionId);
  const label = opts.label ?? 'label';
  const features: Record<string, NumericReference | CategoricalReference> = {};
  const numeric: string[] = [];
  header.forEach((name, i) => {
    if (name === label) return;
    if (isNumericColumn(cells[i])) {
      features[name] = numericReference(cells[i].map(Number));
      numeric.push(name);
    } else features[name] = categoricalReference(cells[i]);
  });
  const inputColumns = opts.inputColumns ?? numeric;
  const samples: Record<string, ReferenceSample> = {};
  for (const c of inputColumns) {
    if (!features[c]) throw new ReferenceProfileUnavailableError(`the TRAIN data has no column '${c}'`);
    if (features[c].type === 'numeric') samples[c] = referenceSample(cells[header.indexOf(c)].map(Number));
  }
  return {
    profile: {
      profileVersion: REFERENCE_PROFILE_VERSION,
      inputName: signature.inputs[0]?.name ?? 'features',
      outputName: signature.outputs[0]?.name ?? 'probability',
      inputColumns,
      features,
      prediction: null,
    },
    samples,
  };
}

// Stored dataset content was checked on upload: a header, comma-separated, no quoted fields.
async function readCsv(file: string): Promise<{ header: string[]; rows: string[][] }> {
  const lines = createInterface({ input: createReadStream(file, { encoding: 'utf8' }), crlfDelay: Infinity });
  let header: string[] | null = null;
  const rows: string[][] = [];
  for await (const line of lines) {
    if (header === null) header = line.split(',').map((c) => c.trim());
    else if (line !== '') rows.push(line.split(',').map((c) => c.trim()));
  }
  if (!header) throw new ReferenceProfileUnavailableError('a TRAIN dataset is empty');
  return { header, rows };
}
