// Downloads an audit export (optionally scoped to a model, model version or deployment and
// everything in its lineage), then verifies it offline: chain, counts, digest, and the manifest's
// signature against the server's public key. Needs a token that may export the audit trail
// (role auditor or admin), and a build (npm run build) for the verifier.
//
//   MODELGOV_TOKEN=<auditor token> node client-examples/audit-export.mjs <out-file> [scope-id] [ndjson|csv]
import { writeFile } from 'node:fs/promises';
import { verifyExportFile } from '../dist/src/audit/audit-export.verify.js';
import { authHeader, URL_BASE } from './lib.mjs';

const [out, scope, format = 'ndjson'] = process.argv.slice(2);
if (!out) throw new Error('usage: audit-export.mjs <out-file> [scope-id] [ndjson|csv]');
const query = new URLSearchParams({ format, ...(scope ? { scope } : {}) });
const res = await fetch(`${URL_BASE}/audit/export?${query}`, { headers: { authorization: authHeader() } });
if (!res.ok) {
  const e = (await res.json()).errors[0];
  throw new Error(`${e.extensions.code}: ${e.message} (request ${e.extensions.requestId})`);
}
await writeFile(out, Buffer.from(await res.arrayBuffer()));
let manifest = null;
if (format === 'csv') {
  // A CSV's manifest is a file of its own, named by the Link header.
  const link = /<([^>]+)>/.exec(res.headers.get('link'))[1];
  manifest = await (await fetch(`${URL_BASE}${link}`, { headers: { authorization: authHeader() } })).text();
  await writeFile(out.replace(/\.csv$/, '') + '.manifest.json', manifest);
}
// Obtained separately from the export: the signature is checked against this key, not the one the file names.
const publicKeyPem = await (await fetch(`${URL_BASE}/audit/export/public-key`)).text();
const r = await verifyExportFile(out, { manifest, publicKeyPem });
if (!r.ok) {
  console.log(`INVALID${r.line ? ` at line ${r.line}` : ''}: ${r.problem}`);
  process.exit(1);
}
console.log(`wrote ${out}: ${r.events} events shown, ${r.omitted} by hash only (${r.manifest.withheld} withheld), events ${r.manifest.firstSeq}–${r.manifest.lastSeq}`);
console.log(`verified: chain intact, counts and digest match, signed by key ${r.manifest.keyId}`);
