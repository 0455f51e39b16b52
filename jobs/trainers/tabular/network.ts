/** The dense network: its layers, its forward pass, and its predictions as the exported float32 model computes them. */

import type { Matrix } from './training-data';

/** One fully connected layer. */
export interface Layer {
  fanIn: number;
  fanOut: number;
  // Row-major [fanIn][fanOut], as the ONNX Gemm weight.
  w: Float64Array;
  b: Float64Array;
}

/** Fills acts[l] with layer l's output (post-ReLU for hidden layers) and returns the logit. */
export function forward(layers: Layer[], input: Float64Array, acts: Float64Array[]): number {
  let a = input;
  for (let l = 0; l < layers.length; l++) {
    const { fanIn, fanOut, w, b } = layers[l];
    const out = acts[l];
    for (let j = 0; j < fanOut; j++) out[j] = 0;
    for (let i = 0; i < fanIn; i++) {
      const ai = a[i];
      if (ai === 0) continue;
      const base = i * fanOut;
      for (let j = 0; j < fanOut; j++) out[j] += ai * w[base + j];
    }
    const hidden = l < layers.length - 1;
    for (let j = 0; j < fanOut; j++) {
      const z = out[j] + b[j];
      out[j] = hidden && z < 0 ? 0 : z;
    }
    a = out;
  }
  return a[0];
}

/** The logistic function, without overflow for large |z|. */
export function sigmoid(z: number): number {
  if (z >= 0) return 1 / (1 + Math.exp(-z));
  const e = Math.exp(z);
  return e / (1 + e);
}

/** Float32-rounded parameters: metrics and profiles describe the model as the ONNX file stores it. */
export interface ExportedModel {
  mean: Float64Array;
  std: Float64Array;
  layers: Layer[];
}

/** The standardisation and layers rounded to float32, as the ONNX file stores them. */
export function roundModel(mean: Float64Array, std: Float64Array, layers: Layer[]): ExportedModel {
  const round = (a: Float64Array): Float64Array => a.map((v) => Math.fround(v));
  return {
    mean: round(mean),
    std: round(std),
    layers: layers.map((l) => ({ fanIn: l.fanIn, fanOut: l.fanOut, w: round(l.w), b: round(l.b) })),
  };
}

/** The model's probability for each row of `data` (`d` features), computed as the ONNX graph does. */
export function predict(model: ExportedModel, data: Matrix, d: number): Float64Array {
  const acts = model.layers.map((l) => new Float64Array(l.fanOut));
  const input = new Float64Array(d);
  const out = new Float64Array(data.n);
  for (let r = 0; r < data.n; r++) {
    for (let j = 0; j < d; j++) input[j] = (Math.fround(data.x[r * d + j]) - model.mean[j]) / model.std[j];
    out[r] = Math.fround(sigmoid(forward(model.layers, input, acts)));
  }
  return out;
}
