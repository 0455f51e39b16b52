// Predictions from a deployment, the two ways a client can ask: GraphQL `predict` and the Open
// Inference Protocol (KServe / Triton v2 REST) — same routing, same policy, same prediction log.
// Rows are read as JSON from a file (or stdin): [[f1, f2, …], …] for the model's first input.
//
//   MODELGOV_TOKEN=<service token> node client-examples/predict.mjs <team>:<deployment> rows.json [requestKey]
import { readFileSync } from 'node:fs';
import { authHeader, gql, URL_BASE } from './lib.mjs';

const [name, file, requestKey] = process.argv.slice(2);
if (!name || !file) {
  console.error('usage: predict.mjs <team>:<deployment> <rows.json | -> [requestKey]');
  process.exit(2);
}
const rows = JSON.parse(readFileSync(file === '-' ? 0 : file, 'utf8'));

// 1. The Open Inference Protocol: metadata names the inputs; infer takes flat data with a shape.
const headers = { authorization: authHeader(), 'content-type': 'application/json' };
const model = `${URL_BASE}/v2/models/${encodeURIComponent(name)}`;
const meta = await fetch(model, { headers });
if (!meta.ok) throw new Error(`metadata: HTTP ${meta.status} ${await meta.text()}`);
const { inputs } = await meta.json();
const input = inputs[0];
const body = {
  inputs: [{ name: input.name, datatype: input.datatype, shape: [rows.length, ...input.shape.slice(1)], data: rows.flat(Infinity) }],
  parameters: requestKey ? { request_key: requestKey } : {},
};
const res = await fetch(`${model}/infer`, { method: 'POST', headers, body: JSON.stringify(body) });
const answer = await res.json();
if (!res.ok) throw new Error(`infer: HTTP ${res.status} ${answer.code}/${answer.reason ?? ''}: ${answer.error} (request ${answer.requestId})`);
const deployment = answer.parameters.deployment;
for (const out of answer.outputs) console.log(`v2 ${out.name} ${JSON.stringify(out.shape)}: ${JSON.stringify(out.data)}`);
console.log(`v2 answered by ${answer.model_version}${answer.parameters.fallback ? ' (FALLBACK)' : ''} in ${answer.parameters.latency_ms.toFixed(2)} ms`);

// 2. GraphQL: the same rows, nested, with the answering version's number when the caller may read it.
const data = await gql(
  `mutation PredictWithKey($d: ID!, $inputs: JSONObject!, $key: String) {
    predict(deployment: $d, inputs: $inputs, requestKey: $key) {
      outputs rows latencyMs fallback modelVersionId modelVersion { version model { name } }
    }
  }`,
  { d: deployment, inputs: { [input.name]: rows }, key: requestKey ?? null },
);
const p = data.predict;
for (const [out, values] of Object.entries(p.outputs)) console.log(`graphql ${out}: ${JSON.stringify(values)}`);
const who = p.modelVersion ? `${p.modelVersion.model.name} v${p.modelVersion.version}` : p.modelVersionId;
console.log(`graphql answered ${p.rows} rows by ${who}${p.fallback ? ' (FALLBACK)' : ''} in ${p.latencyMs.toFixed(2)} ms`);
