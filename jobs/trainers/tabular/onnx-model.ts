/** The fitted network as ONNX bytes: standardisation, dense layers and a sigmoid, with the run's model, label and features in its doc string. */

import { buildDenseBinaryClassifierOnnx, type DenseLayer } from '../../../src/registry/onnx-builders';
import type { ExportedModel } from './network';
import type { Settings } from './settings';

/** The ONNX model of `model`, trained with `settings` on `features` (in input order). */
export function modelOnnx(model: ExportedModel, settings: Settings, features: string[]): Buffer {
  const { label } = settings;
  const onnxLayers: DenseLayer[] = model.layers.map((l) => ({
    weights: Array.from({ length: l.fanIn }, (_, i) => Array.from(l.w.subarray(i * l.fanOut, (i + 1) * l.fanOut))),
    bias: Array.from(l.b),
  }));
  return buildDenseBinaryClassifierOnnx({
    layers: onnxLayers,
    featureMean: Array.from(model.mean),
    featureStd: Array.from(model.std),
    docString: JSON.stringify({ trainer: 'tabular-trainer', model: settings.model, label, features }),
  });
}
