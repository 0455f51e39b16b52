/** Fits the network: standardises the features, then trains by mini-batch gradient descent from the seeded initial weights and order. */

import { mulberry32 } from '../../../src/core/prng';
import { InputError } from './input-error';
import { forward, sigmoid, type Layer } from './network';
import type { Seeds, Settings } from './settings';
import { shuffleInPlace, type Matrix } from './training-data';

/** Per-feature mean and standard deviation of the training rows, and those rows standardised with them. */
export function standardise(trainData: Matrix, d: number): { mean: Float64Array; std: Float64Array; scaled: Matrix } {
  // Standardise with float32-representable statistics so training sees exactly what the exported graph computes.
  const mean = new Float64Array(d);
  const std = new Float64Array(d);
  for (let j = 0; j < d; j++) {
    let s = 0;
    for (let r = 0; r < trainData.n; r++) s += trainData.x[r * d + j];
    const m = s / trainData.n;
    let q = 0;
    for (let r = 0; r < trainData.n; r++) q += (trainData.x[r * d + j] - m) ** 2;
    const sd = Math.fround(Math.sqrt(q / trainData.n));
    mean[j] = Math.fround(m);
    // A constant column carries no signal; dividing by 1 keeps it finite.
    std[j] = Number.isFinite(sd) && sd > 0 ? sd : 1;
  }
  const scaled: Matrix = { x: new Float64Array(trainData.x.length), y: trainData.y, n: trainData.n };
  for (let r = 0; r < trainData.n; r++) {
    for (let j = 0; j < d; j++) scaled.x[r * d + j] = (Math.fround(trainData.x[r * d + j]) - mean[j]) / std[j];
  }
  return { mean, std, scaled };
}

function initLayers(sizes: number[], random: () => number, zero: boolean): Layer[] {
  const layers: Layer[] = [];
  for (let l = 1; l < sizes.length; l++) {
    const fanIn = sizes[l - 1];
    const fanOut = sizes[l];
    const w = new Float64Array(fanIn * fanOut);
    if (!zero) {
      // He-uniform before ReLU, Glorot-uniform into the sigmoid output.
      const isLast = l === sizes.length - 1;
      const limit = isLast ? Math.sqrt(6 / (fanIn + fanOut)) : Math.sqrt(6 / fanIn);
      for (let i = 0; i < w.length; i++) w[i] = (random() * 2 - 1) * limit;
    }
    layers.push({ fanIn, fanOut, w, b: new Float64Array(fanOut) });
  }
  return layers;
}

// Binary cross-entropy from the logit, stable for large |z|.
function logitLoss(z: number, y: number): number {
  return Math.max(z, 0) - z * y + Math.log1p(Math.exp(-Math.abs(z)));
}

/** What {@link train} needs besides the data; `progress` reports each epoch. */
export interface TrainOptions {
  settings: Settings;
  seeds: Seeds;
  progress: (fraction: number, message: string) => void;
}

/** Trains the layers on standardised `data` (`d` features); refuses a run whose loss or weights stop being finite. */
export function train(data: Matrix, d: number, opts: TrainOptions): Layer[] {
  const { settings, seeds } = opts;
  const sizes = [d, ...settings.hidden, 1];
  // Logistic regression is convex: start from zero so the init seed does not matter.
  const layers = initLayers(sizes, mulberry32(seeds.init, 0x1f2e3d4c), settings.model === 'logistic_regression');
  const grads = layers.map((l) => ({ w: new Float64Array(l.w.length), b: new Float64Array(l.b.length) }));
  const acts = layers.map((l) => new Float64Array(l.fanOut));
  const deltas = layers.map((l) => new Float64Array(l.fanOut));
  const input = new Float64Array(d);
  const shuffleRandom = mulberry32(seeds.shuffle, 0x5a5a1234);
  const order = Array.from({ length: data.n }, (_, i) => i);
  const { epochs, lr, l2, batchSize } = settings;

  for (let epoch = 1; epoch <= epochs; epoch++) {
    shuffleInPlace(order, shuffleRandom);
    let lossSum = 0;
    for (let start = 0; start < data.n; start += batchSize) {
      const end = Math.min(start + batchSize, data.n);
      for (const g of grads) {
        g.w.fill(0);
        g.b.fill(0);
      }
      for (let k = start; k < end; k++) {
        const r = order[k];
        for (let j = 0; j < d; j++) input[j] = data.x[r * d + j];
        const z = forward(layers, input, acts);
        lossSum += logitLoss(z, data.y[r]);
        deltas[layers.length - 1][0] = sigmoid(z) - data.y[r];
        for (let l = layers.length - 1; l >= 0; l--) {
          const { fanIn, fanOut, w } = layers[l];
          const delta = deltas[l];
          const prev = l === 0 ? input : acts[l - 1];
          const g = grads[l];
          for (let j = 0; j < fanOut; j++) g.b[j] += delta[j];
          for (let i = 0; i < fanIn; i++) {
            const ai = prev[i];
            const base = i * fanOut;
            if (ai !== 0) for (let j = 0; j < fanOut; j++) g.w[base + j] += ai * delta[j];
          }
          if (l > 0) {
            const below = deltas[l - 1];
            for (let i = 0; i < fanIn; i++) {
              // ReLU derivative: zero where the activation was clipped.
              if (prev[i] <= 0) {
                below[i] = 0;
                continue;
              }
              let s = 0;
              const base = i * fanOut;
              for (let j = 0; j < fanOut; j++) s += w[base + j] * delta[j];
              below[i] = s;
            }
          }
        }
      }
      const m = end - start;
      for (let l = 0; l < layers.length; l++) {
        const { w, b } = layers[l];
        const g = grads[l];
        for (let i = 0; i < w.length; i++) w[i] -= lr * (g.w[i] / m + l2 * w[i]);
        for (let j = 0; j < b.length; j++) b[j] -= lr * (g.b[j] / m);
      }
    }
    const loss = lossSum / data.n;
    if (!Number.isFinite(loss) || layers.some((l) => !l.w.every(Number.isFinite) || !l.b.every(Number.isFinite))) {
      throw new InputError(`training diverged at epoch ${epoch} (non-finite loss); lower config.lr`);
    }
    opts.progress(0.05 + (0.85 * epoch) / epochs, `epoch ${epoch}/${epochs} loss ${loss.toFixed(6)}`);
  }
  return layers;
}
