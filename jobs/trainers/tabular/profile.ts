/** The training data's profile (`profile.json`): every non-label column and the model's predictions, also the drift reference. */

import { numericReference, referenceSample, type NumericReference } from '../../../src/registry/reference-profile';
import type { TrainingData } from './training-data';

/**
 * Numeric column profile. `std` is the population standard deviation;
 * `quantiles` are the values at probabilities 0.1, 0.2, …, 1.0 (linear
 * interpolation); `bins` are 10 equal-width bins over [min, max] where bin i
 * holds `edges[i] <= v < edges[i+1]` and the last bin also holds `max`.
 * Empty cells are not counted; with no values the statistics are null and the bins empty.
 */
export interface NumericProfile {
  type: 'numeric';
  count: number;
  mean: number | null;
  std: number | null;
  min: number | null;
  max: number | null;
  quantiles: number[];
  bins: { edges: number[]; counts: number[] };
}

/** Categorical column profile: occurrences of each non-empty value, keys sorted. */
export interface CategoricalProfile {
  type: 'categorical';
  count: number;
  frequencies: Record<string, number>;
}

/**
 * `profile.json`: every non-label column of the training rows, and the model's predicted
 * probability on them. It is also a drift reference, version 2: numeric profiles carry
 * `quantileBins`, the prediction also the sorted `sample` of the outputs (see `ReferenceSample`
 * in src/monitoring/reference-profile.ts), and the model's input and output names and input
 * column order are named. The server stores only its aggregates (`storableReference`).
 */
export interface TabularTrainerProfile {
  profileVersion: 2;
  inputName: 'features';
  outputName: 'probability';
  inputColumns: string[];
  features: Record<string, (NumericProfile & Pick<NumericReference, 'quantileBins'>) | CategoricalProfile>;
  prediction: NumericProfile & Pick<NumericReference, 'quantileBins'> & { sample: number[] };
}

/** The profile of the training rows, with the model's `predictions` on them. */
export function trainingProfile(data: TrainingData, label: string, predictions: Float64Array): TabularTrainerProfile {
  const { trainTable, trainRows, kinds, features } = data;
  const profile: TabularTrainerProfile = {
    profileVersion: 2,
    inputName: 'features',
    outputName: 'probability',
    inputColumns: features,
    features: {},
    prediction: predictionProfile(predictions),
  };
  trainTable.columns.forEach((name, c) => {
    if (name === label) return;
    const cells = trainRows.map((r) => trainTable.rows[r][c]).filter((v) => v !== '');
    profile.features[name] = kinds.get(name) === 'numeric' ? driftProfile(cells.map(Number)) : categoricalProfile(cells);
  });
  return profile;
}

// The older profile's fields, then what drift needs of the same values.
function driftProfile(values: ArrayLike<number>): NumericProfile & Pick<NumericReference, 'quantileBins'> {
  return { ...numericProfile(values), quantileBins: numericReference(values).quantileBins };
}

// The model's outputs are not training data, and the server cannot recompute them without
// running the model: their sample travels to the server, which keeps it apart from the profile.
function predictionProfile(values: ArrayLike<number>): TabularTrainerProfile['prediction'] {
  return { ...driftProfile(values), sample: referenceSample(values) };
}

function numericProfile(values: ArrayLike<number>): NumericProfile {
  const count = values.length;
  if (count === 0) {
    return { type: 'numeric', count: 0, mean: null, std: null, min: null, max: null, quantiles: [], bins: { edges: [], counts: [] } };
  }
  const sorted = Float64Array.from(values).sort();
  let sum = 0;
  for (let i = 0; i < count; i++) sum += sorted[i];
  const mean = sum / count;
  let squares = 0;
  for (let i = 0; i < count; i++) squares += (sorted[i] - mean) ** 2;
  const min = sorted[0];
  const max = sorted[count - 1];

  const quantiles: number[] = [];
  for (let q = 1; q <= 10; q++) {
    const pos = ((count - 1) * q) / 10;
    const lo = Math.floor(pos);
    const hi = Math.min(lo + 1, count - 1);
    quantiles.push(sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo));
  }

  const edges: number[] = [];
  for (let i = 0; i < 10; i++) edges.push(min + ((max - min) * i) / 10);
  edges.push(max);
  const counts = new Array<number>(10).fill(0);
  for (let i = 0; i < count; i++) {
    const v = sorted[i];
    // Largest bin whose lower edge is <= v, so the counts agree with the edges exactly.
    let bin = 9;
    while (bin > 0 && edges[bin] > v) bin--;
    counts[bin]++;
  }
  return { type: 'numeric', count, mean, std: Math.sqrt(squares / count), min, max, quantiles, bins: { edges, counts } };
}

function categoricalProfile(values: string[]): CategoricalProfile {
  const counts = new Map<string, number>();
  for (const v of values) counts.set(v, (counts.get(v) ?? 0) + 1);
  const frequencies: Record<string, number> = {};
  for (const key of [...counts.keys()].sort()) frequencies[key] = counts.get(key)!;
  return { type: 'categorical', count: values.length, frequencies };
}
