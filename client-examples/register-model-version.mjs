// Upload an ONNX file, register it as the next version of a model, and submit it for review.
// The server computes the sha256, reads the ONNX signature and chooses where the file is kept.
//
//   MODELGOV_TOKEN=<ml-engineer token> node client-examples/register-model-version.mjs model.onnx fraud-detector
import { readFile } from 'node:fs/promises';
import { URL_BASE, authHeader, gql } from './lib.mjs';

const [file, modelName] = process.argv.slice(2);
if (!file || !modelName) {
  console.error('usage: register-model-version.mjs <model.onnx> <model name>');
  process.exit(2);
}

const upload = await fetch(`${URL_BASE}/artifacts`, {
  method: 'POST',
  headers: { 'content-type': 'application/octet-stream', authorization: authHeader() },
  body: await readFile(file),
});
const artifact = await upload.json();
if (!upload.ok) throw new Error(`upload refused (${upload.status}): ${JSON.stringify(artifact.errors ?? artifact)}`);
console.log(`uploaded ${artifact.sha256} (${artifact.sizeBytes} bytes), inputs ${JSON.stringify(artifact.signature.inputs)}`);

const { models } = await gql(`query ModelByName($name: String!) { models(filter: { name: $name }) { nodes { id name team { name } } } }`, { name: modelName });
const model = models.nodes[0];
if (!model) throw new Error(`no model named ${modelName} that you may read`);

const { registerModelVersion: v } = await gql(
  `mutation RegisterModelVersion($input: RegisterModelVersionInput!) { registerModelVersion(input: $input) { id version status } }`,
  { input: { model: model.id, artifactSha256: artifact.sha256, metrics: { accuracy: 0.93 } } },
);
const { submitModelVersion: s } = await gql(`mutation SubmitModelVersion($id: ID!) { submitModelVersion(modelVersion: $id) { status } }`, { id: v.id });
console.log(`${model.team.name}/${model.name} v${v.version} registered (${v.id}), now ${s.status}`);
