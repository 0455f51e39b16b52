/** Chooses the training and evaluation rows (the TEST or VALIDATION data, else a seeded holdout) and the features, and turns them into numeric matrices. */

import { mulberry32 } from '../../../src/core/prng';
import { concatTables, loadTables, type Table } from './csv-table';
import { InputError } from './input-error';
import type { DatasetRef, Seeds, Settings } from './settings';

const HOLDOUT_FRACTION = 0.2;
const NUMBER = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;

function isNumber(cell: string): boolean {
  return NUMBER.test(cell) && Number.isFinite(Number(cell));
}

/** `n` rows of features (`x`, row-major) and their 0/1 labels (`y`). */
export interface Matrix {
  x: Float64Array;
  y: Float64Array;
  n: number;
}

// Refuses anything that is not a finite number or a 0/1 label, naming the file and line.
function toMatrix(table: Table, rows: number[], features: string[], label: string, role: string): Matrix {
  const featureIndex = features.map((name) => {
    const i = table.columns.indexOf(name);
    if (i < 0) throw new InputError(`${role} data has no feature column '${name}'`);
    return i;
  });
  const labelIndex = table.columns.indexOf(label);
  if (labelIndex < 0) throw new InputError(`${role} data has no label column '${label}'`);

  const d = features.length;
  const x = new Float64Array(rows.length * d);
  const y = new Float64Array(rows.length);
  rows.forEach((r, k) => {
    const row = table.rows[r];
    for (let j = 0; j < d; j++) {
      const cell = row[featureIndex[j]];
      if (!isNumber(cell)) {
        const shown = cell === '' ? 'an empty value' : `non-numeric value ${JSON.stringify(cell.slice(0, 40))}`;
        throw new InputError(`${table.where[r]}: feature '${features[j]}' has ${shown}`);
      }
      x[k * d + j] = Number(cell);
    }
    const value = Number(row[labelIndex]);
    if (!isNumber(row[labelIndex]) || (value !== 0 && value !== 1)) {
      throw new InputError(`${table.where[r]}: label '${label}' must be 0 or 1, got ${JSON.stringify(row[labelIndex].slice(0, 40))}`);
    }
    y[k] = value;
  });
  return { x, y, n: rows.length };
}

/** Fisher–Yates shuffle driven by `random`. */
export function shuffleInPlace(values: number[], random: () => number): void {
  for (let i = values.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    const t = values[i];
    values[i] = values[j];
    values[j] = t;
  }
}

// 'mixed' columns hold some numbers and some text: a typo in a numeric feature, refused if used as one.
function columnKind(table: Table, column: number, rows: number[]): 'numeric' | 'categorical' | 'mixed' {
  let numbers = 0;
  let strings = 0;
  for (const r of rows) {
    const cell = table.rows[r][column];
    if (cell === '') continue;
    if (isNumber(cell)) numbers++;
    else strings++;
  }
  if (numbers > 0 && strings === 0) return 'numeric';
  return numbers > 0 ? 'mixed' : 'categorical';
}

/** The rows and features a run trains and evaluates on. */
export interface TrainingData {
  trainTable: Table;
  /** Rows of `trainTable` that train the model, in file order. */
  trainRows: number[];
  /** Kind of every non-label column of the training rows. */
  kinds: Map<string, 'numeric' | 'categorical' | 'mixed'>;
  features: string[];
  trainData: Matrix;
  evalData: Matrix;
  /** Role of the evaluation rows; null when they are held out of the TRAIN data. */
  evalRole: string | null;
}

/** Loads the datasets and chooses rows and features; refuses data it cannot train on. */
export function loadTrainingData(refs: DatasetRef[], settings: Settings, seeds: Seeds): TrainingData {
  const trainRefs = refs.filter((r) => r.role === 'TRAIN');
  if (trainRefs.length === 0) throw new InputError('MODELGOV_DATASETS has no TRAIN dataset');
  const evalRole = refs.some((r) => r.role === 'TEST') ? 'TEST' : refs.some((r) => r.role === 'VALIDATION') ? 'VALIDATION' : null;
  const trainTable = concatTables(loadTables(trainRefs), 'TRAIN');
  const evalTable = evalRole ? concatTables(loadTables(refs.filter((r) => r.role === evalRole)), evalRole) : null;

  const { label } = settings;
  if (!trainTable.columns.includes(label)) throw new InputError(`TRAIN data has no label column '${label}'`);
  if (trainTable.rows.length === 0) throw new InputError('TRAIN data has no rows');

  let trainRows = trainTable.rows.map((_, i) => i);
  let evalRows: number[];
  if (evalTable) {
    if (evalTable.rows.length === 0) throw new InputError(`${evalRole} data has no rows`);
    evalRows = evalTable.rows.map((_, i) => i);
  } else {
    if (trainRows.length < 2) throw new InputError('TRAIN data needs at least 2 rows to hold out evaluation rows');
    const permuted = [...trainRows];
    shuffleInPlace(permuted, mulberry32(seeds.split, 0x3c4b5a69));
    const holdout = Math.max(1, Math.round(trainRows.length * HOLDOUT_FRACTION));
    // Keep both parts in file order so only the split seed decides membership.
    evalRows = permuted.slice(0, holdout).sort((a, b) => a - b);
    trainRows = permuted.slice(holdout).sort((a, b) => a - b);
  }

  const kinds = new Map<string, 'numeric' | 'categorical' | 'mixed'>();
  trainTable.columns.forEach((name, i) => {
    if (name !== label) kinds.set(name, columnKind(trainTable, i, trainRows));
  });
  const features = settings.features ?? [...kinds].filter(([, kind]) => kind !== 'categorical').map(([name]) => name);
  if (features.length === 0) throw new InputError('TRAIN data has no numeric feature columns');
  for (const name of features) {
    if (!kinds.has(name)) throw new InputError(`TRAIN data has no feature column '${name}'`);
    if (kinds.get(name) === 'categorical') {
      throw new InputError(`feature '${name}' is categorical (text values); this trainer takes numeric features only, leave it out of config.features`);
    }
  }

  const trainData = toMatrix(trainTable, trainRows, features, label, 'TRAIN');
  const evalData = evalTable ? toMatrix(evalTable, evalRows, features, label, evalRole!) : toMatrix(trainTable, evalRows, features, label, 'TRAIN');
  let positives = 0;
  for (let i = 0; i < trainData.n; i++) positives += trainData.y[i];
  if (positives === 0 || positives === trainData.n) throw new InputError(`training rows hold only label ${positives === 0 ? 0 : 1}`);
  return { trainTable, trainRows, kinds, features, trainData, evalData, evalRole };
}
