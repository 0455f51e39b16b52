// Writes a small logistic-regression ONNX model (4 float inputs) to use with
// register-model-version.mjs, built with the same generator the server's demo uses.
//
//   npm run build && node client-examples/make-demo-onnx.mjs /tmp/model.onnx
import { writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const { buildLogisticRegressionOnnx } = require('../dist/src/registry/onnx-builders.js');
const out = process.argv[2] ?? 'model.onnx';
await writeFile(out, buildLogisticRegressionOnnx({ weights: [0.7, -0.2, 1.3, 0.4], bias: -1.2 }));
console.log(`wrote ${out}`);
