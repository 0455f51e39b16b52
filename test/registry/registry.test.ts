import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { onnx } from 'onnx-proto';
import { buildLogisticRegressionOnnx, buildMlpOnnx } from '../../src/registry/onnx-builders';
import { startTestServer, type TestServer } from '../support/harness';
import { assertNoStackTrace, snapshotDatabase, uploadArtifact } from '../support/http';

const sha256 = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');

const storedPath = (root: string, sha: string) => path.join(root, 'sha256', sha.slice(0, 2), sha.slice(2, 4), sha);

async function tmpEntries(root: string): Promise<string[]> {
  try {
    return await readdir(path.join(root, 'tmp'));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw e;
  }
}

function varint(n: number): Buffer {
  const out: number[] = [];
  while (n > 0x7f) {
    out.push((n & 0x7f) | 0x80);
    n >>>= 7;
  }
  out.push(n);
  return Buffer.from(out);
}

/** A well-formed model whose graph also holds `n` empty nodes: tiny on disk, huge once decoded. */
function modelOfEmptyNodes(n: number): Buffer {
  const model = onnx.ModelProto.decode(buildLogisticRegressionOnnx({ weights: [1, 2], bias: 0 }));
  const graph = Buffer.from(onnx.GraphProto.encode(model.graph!).finish());
  model.graph = null;
  const head = Buffer.from(onnx.ModelProto.encode(model).finish());
  const nodes = Buffer.alloc(2 * n);
  for (let i = 0; i < n; i++) nodes[2 * i] = 0x0a; // field 1 (node), length 0
  const body = Buffer.concat([graph, nodes]);
  return Buffer.concat([head, Buffer.from([0x3a]), varint(body.length), body]); // field 7 (graph)
}

const VERSION_FIELDS = `id version status createdBy aliases metrics artifactSha256 artifactSizeBytes format
  signature { opsetVersion inputs { name elemType shape } outputs { name elemType shape } }
  approvals { decision actor reason }`;

describe('artifacts and the registry lifecycle', () => {
  let t: TestServer;
  let limited: TestServer;
  // One principal, "rita", registers; she also holds the reviewer role, so that only the four-eyes rule stops her.
  let rita: string;
  let ritaReviewer: string;
  let reviewer: string;
  let viewer: string;
  let modelId: string;
  let v1: string;
  let v2: string;
  let staging: string;
  let production: string;

  before(async () => {
    t = await startTestServer({ demo: true, env: { ARTIFACT_PARSE_HEAP_MB: '64' } });
    limited = await startTestServer({ env: { ARTIFACT_MAX_BYTES: '2048' } });
    rita = t.token(['ml-engineer'], ['fraud'], 'rita');
    ritaReviewer = t.token(['ml-engineer', 'reviewer'], ['fraud'], 'rita');
    reviewer = t.token(['reviewer'], ['fraud'], 'rob-reviewer');
    viewer = t.token(['viewer'], ['fraud'], 'vic-viewer');
    const r = await t.gql(rita, `{
      models(filter: { name: "fraud-detector" }) { nodes { id versions { id version } } }
      deployments(filter: { team: "fraud" }) { nodes { id environment } }
    }`);
    assert.equal(r.errors, undefined, JSON.stringify(r.errors));
    modelId = r.data.models.nodes[0].id;
    const versions = r.data.models.nodes[0].versions as Array<{ id: string; version: number }>;
    v1 = versions.find((v) => v.version === 1)!.id;
    v2 = versions.find((v) => v.version === 2)!.id;
    staging = r.data.deployments.nodes.find((d: { environment: string }) => d.environment === 'STAGING').id;
    production = r.data.deployments.nodes.find((d: { environment: string }) => d.environment === 'PRODUCTION').id;
  });
  after(async () => {
    await t?.stop();
    await limited?.stop();
  });

  describe('POST /artifacts refuses what it must not keep', () => {
    /** `deniedTo`: the refusal is a denied attempt by that principal, recorded as one DENIED event (and nothing else changes). */
    async function refusedUpload(server: TestServer, token: string | null, bytes: Uint8Array, status: number, code: string, reason?: string, deniedTo?: string) {
      const before = await snapshotDatabase(server);
      const r = await uploadArtifact(server.url, token, bytes);
      assert.equal(r.status, status, r.text);
      assert.equal(r.json.errors[0].extensions.code, code, r.text);
      if (reason) assert.equal(r.json.errors[0].extensions.reason, reason, r.text);
      assert.ok(r.json.errors[0].extensions.requestId);
      assertNoStackTrace(r.text);
      const root = server.config.artifactRoot;
      assert.equal(existsSync(storedPath(root, sha256(bytes))), false, 'no file with the refused content');
      assert.deepEqual(await tmpEntries(root), [], 'no temporary file left behind');
      const after = await snapshotDatabase(server);
      if (deniedTo) {
        const { audit_event: eventsBefore, audit_head: _headBefore, ...restBefore } = before;
        const { audit_event: eventsAfter, audit_head: _headAfter, ...restAfter } = after;
        assert.deepEqual(restAfter, restBefore, 'no artifact row');
        assert.equal(eventsAfter.rows, eventsBefore.rows + 1, 'one audit event');
        const [event] = await server.sql(`SELECT action, actor_id, decision::text AS decision FROM audit_event ORDER BY seq DESC LIMIT 1`);
        assert.deepEqual(event, { action: 'uploadArtifact', actor_id: deniedTo, decision: 'DENIED' });
      } else {
        assert.deepEqual(after, before, 'no artifact row, no audit event');
      }
      return r;
    }

    it('refuses bytes that are not ONNX (400 ARTIFACT_NOT_ONNX)', async () => {
      // Deterministic "random" bytes: a chain of hashes, so that a failure can be reproduced.
      const chunks: Buffer[] = [];
      let h = Buffer.from('modelgov');
      for (let i = 0; i < 64; i++) chunks.push((h = createHash('sha256').update(h).digest()));
      await refusedUpload(t, rita, Buffer.concat(chunks), 400, 'BAD_USER_INPUT', 'ARTIFACT_NOT_ONNX');
    });

    it('refuses a JSON file (400 ARTIFACT_NOT_ONNX)', async () => {
      const json = Buffer.from(JSON.stringify({ model: 'logistic_regression', weights: [0.1, 0.2], bias: -1 }));
      await refusedUpload(t, rita, json, 400, 'BAD_USER_INPUT', 'ARTIFACT_NOT_ONNX');
    });

    it('refuses an empty upload (400)', async () => {
      await refusedUpload(t, rita, Buffer.alloc(0), 400, 'BAD_USER_INPUT', 'ARTIFACT_EMPTY');
    });

    it('refuses an upload over ARTIFACT_MAX_BYTES (413)', async () => {
      const token = limited.token(['ml-engineer'], ['fraud'], 'rita');
      // Just over the limit, and far over it (the server stops reading; the client still gets the answer).
      for (const layers of [[16, 32, 8], [256, 512, 256]]) {
        const mlp = buildMlpOnnx({ layers, seed: 7 });
        assert.ok(mlp.length > 2048, `the MLP is ${mlp.length} bytes`);
        const r = await refusedUpload(limited, token, mlp, 413, 'BAD_USER_INPUT');
        assert.match(r.json.errors[0].message, /2048/);
        // The client can go on: its next request is answered, not left hanging on a half-read connection.
        const next = await uploadArtifact(limited.url, null, Buffer.from('x'));
        assert.equal(next.status, 401, next.text);
      }
      // A model under the limit is accepted by the same server.
      const small = buildLogisticRegressionOnnx({ weights: [0.1, 0.2], bias: 0 });
      const ok = await uploadArtifact(limited.url, token, small);
      assert.equal(ok.status, 201, ok.text);
    });

    it('refuses a model crafted to exhaust memory while parsing, and stays up (400 ARTIFACT_NOT_ONNX)', async () => {
      const bomb = modelOfEmptyNodes(2_000_000);
      const r = await refusedUpload(t, rita, bomb, 400, 'BAD_USER_INPUT', 'ARTIFACT_NOT_ONNX');
      assert.match(r.json.errors[0].message, /more than 64 MB/);
      const health = await fetch(`${t.url}/healthz`);
      assert.equal(health.status, 200);
    });

    it('refuses an upload without a token (401 UNAUTHENTICATED)', async () => {
      await refusedUpload(t, null, buildLogisticRegressionOnnx({ weights: [9, 9], bias: 9 }), 401, 'UNAUTHENTICATED');
    });

    it('refuses an upload by a viewer (403 FORBIDDEN, recorded as denied)', async () => {
      await refusedUpload(t, viewer, buildLogisticRegressionOnnx({ weights: [8, 8], bias: 8 }), 403, 'FORBIDDEN', undefined, 'vic-viewer');
    });
  });

  describe('from upload to production', () => {
    const weights = [0.7, -0.2, 1.3, 0.4];
    const bytes = buildLogisticRegressionOnnx({ weights, bias: -1.2 });
    const sha = sha256(bytes);
    let v3: string;

    it('stores an ONNX upload at its content address and reads its signature (201)', async () => {
      const r = await uploadArtifact(t.url, rita, bytes);
      assert.equal(r.status, 201, r.text);
      assert.equal(r.json.sha256, sha);
      assert.equal(r.json.sizeBytes, bytes.length);
      assert.equal(r.json.format, 'ONNX');
      assert.equal(r.json.created, true);
      assert.deepEqual(r.json.signature.inputs, [{ name: 'features', elemType: 'FLOAT', shape: ['batch', weights.length] }]);
      assert.deepEqual(r.json.signature.outputs, [{ name: 'probability', elemType: 'FLOAT', shape: ['batch', 1] }]);
      const file = storedPath(t.config.artifactRoot, sha);
      assert.ok(file.startsWith(path.join(t.config.artifactRoot, 'sha256', sha.slice(0, 2), sha.slice(2, 4))));
      assert.deepEqual(await readFile(file), bytes);
      assert.deepEqual(await tmpEntries(t.config.artifactRoot), []);
      const events = await t.sql(`SELECT action, actor_id, subject_id FROM audit_event WHERE action = 'uploadArtifact' AND actor_id = 'rita'`);
      assert.deepEqual(events, [{ action: 'uploadArtifact', actor_id: 'rita', subject_id: sha }]);
    });

    it('answers the same bytes again with 200 and the same sha256, storing them once', async () => {
      const [{ n: before }] = await t.sql(`SELECT count(*)::int AS n FROM artifact`);
      const r = await uploadArtifact(t.url, rita, bytes);
      assert.equal(r.status, 200, r.text);
      assert.equal(r.json.sha256, sha);
      assert.equal(r.json.created, false);
      const [{ n: afterCount }] = await t.sql(`SELECT count(*)::int AS n FROM artifact`);
      assert.equal(afterCount, before);
      assert.deepEqual(await readFile(storedPath(t.config.artifactRoot, sha)), bytes);
    });

    it('answers concurrent uploads of the same new bytes alike: one creates, the others find it', async () => {
      const bytes = buildLogisticRegressionOnnx({ weights: [0.5, 0.25, 0.125], bias: 0.0625 });
      const answers = await Promise.all(Array.from({ length: 6 }, () => uploadArtifact(t.url, rita, bytes)));
      assert.deepEqual(answers.map((a) => a.status).sort(), [200, 200, 200, 200, 200, 201], answers.map((a) => a.text).join('\n'));
      assert.ok(answers.every((a) => a.json.sha256 === sha256(bytes)));
      const rows = await t.sql('SELECT count(*)::int AS n FROM artifact WHERE sha256 = $1', [sha256(bytes)]);
      assert.equal(rows[0].n, 1);
    });

    it('registers the artifact as the next version, REGISTERED, with its signature and lineage', async () => {
      const runs = await t.gql(rita, `{ trainingRuns(filter: { team: "fraud" }) { nodes {
        name codeVersion { id } config { id } seedSet { id } environment { id } datasets { role datasetVersion { id } } } } }`);
      assert.equal(runs.errors, undefined, JSON.stringify(runs.errors));
      const base = runs.data.trainingRuns.nodes.find((n: { name: string }) => n.name === 'fraud-detector-train-2');
      const run = await t.gql(
        rita,
        `mutation ($input: RecordTrainingRunInput!) { recordTrainingRun(input: $input) { id } }`,
        {
          input: {
            name: 'fraud-detector-train-3',
            codeVersion: base.codeVersion.id,
            config: base.config.id,
            seedSet: base.seedSet.id,
            environment: base.environment.id,
            datasets: base.datasets.map((d: { role: string; datasetVersion: { id: string } }) => ({ role: d.role, datasetVersion: d.datasetVersion.id })),
            status: 'SUCCEEDED',
            startedAt: '2026-11-20T09:00:00.000Z',
            finishedAt: '2026-11-20T11:00:00.000Z',
            metrics: { accuracy: 0.95, auc: 0.94, logLoss: 0.18 },
          },
        },
      );
      assert.equal(run.errors, undefined, JSON.stringify(run.errors));
      const r = await t.gql(
        rita,
        `mutation ($m: ID!, $sha: String!, $run: ID!) { registerModelVersion(input: { model: $m, artifactSha256: $sha, trainingRun: $run }) { ${VERSION_FIELDS} } }`,
        { m: modelId, sha, run: run.data.recordTrainingRun.id },
      );
      assert.equal(r.errors, undefined, JSON.stringify(r.errors));
      const v = r.data.registerModelVersion;
      v3 = v.id;
      assert.equal(v.version, 3, 'numbered after the demo model’s two versions');
      assert.equal(v.status, 'REGISTERED');
      assert.equal(v.createdBy, 'rita');
      assert.equal(v.artifactSha256, sha);
      assert.equal(v.artifactSizeBytes, bytes.length);
      assert.equal(v.format, 'ONNX');
      assert.deepEqual(v.metrics, { accuracy: 0.95, auc: 0.94, logLoss: 0.18 });
      assert.deepEqual(v.signature, {
        opsetVersion: 17,
        inputs: [{ name: 'features', elemType: 'FLOAT', shape: ['batch', 4] }],
        outputs: [{ name: 'probability', elemType: 'FLOAT', shape: ['batch', 1] }],
      });
      assert.deepEqual(v.approvals, []);
    });

    it('submits it for review (CANDIDATE)', async () => {
      const r = await t.gql(rita, `mutation ($v: ID!) { submitModelVersion(modelVersion: $v) { status } }`, { v: v3 });
      assert.equal(r.errors, undefined, JSON.stringify(r.errors));
      assert.equal(r.data.submitModelVersion.status, 'CANDIDATE');
    });

    it('refuses champion on a version that is not APPROVED', async () => {
      const r = await t.gql(rita, `mutation ($v: ID!) { setModelVersionAlias(input: { modelVersion: $v, alias: "champion" }) { id } }`, { v: v3 });
      assert.equal(r.errors?.[0].extensions.code, 'CONFLICT', JSON.stringify(r.errors));
      assert.equal(r.errors?.[0].extensions.reason, 'REGISTRY_ALIAS_REQUIRES_APPROVAL');
      const m = await t.gql(rita, `query ($m: ID!) { node(id: $m) { ... on Model { version(alias: "champion") { id } } } }`, { m: modelId });
      assert.equal(m.data.node.version.id, v1, 'the champion did not move');
    });

    it('refuses approval by the principal who registered it (four eyes)', async () => {
      const r = await t.gql(ritaReviewer, `mutation ($v: ID!) { approveModelVersion(input: { modelVersion: $v, reason: "looks good to me" }) { status } }`, { v: v3 });
      assert.equal(r.errors?.[0].extensions.code, 'FORBIDDEN', JSON.stringify(r.errors));
      assert.equal(r.errors?.[0].extensions.reason, 'REGISTRY_SELF_APPROVAL');
      const now = await t.gql(rita, `query ($v: ID!) { node(id: $v) { ... on ModelVersion { status approvals { decision } } } }`, { v: v3 });
      assert.deepEqual(now.data.node, { status: 'CANDIDATE', approvals: [] });
      const denied = await t.sql(`SELECT decision FROM audit_event WHERE action = 'approveModelVersion' AND actor_id = 'rita'`);
      assert.deepEqual(denied, [{ decision: 'DENIED' }]);
    });

    it('refuses approval by the same principal whose id differs only in case', async () => {
      for (const sub of ['RITA', 'Rita']) {
        const same = t.token(['reviewer'], ['fraud'], sub);
        const r = await t.gql(same, `mutation ($v: ID!) { rejectModelVersion(input: { modelVersion: $v, reason: "not mine, honestly" }) { status } }`, { v: v3 });
        assert.equal(r.errors?.[0].extensions.code, 'FORBIDDEN', JSON.stringify(r.errors ?? r.data));
        assert.equal(r.errors?.[0].extensions.reason, 'REGISTRY_SELF_APPROVAL');
        const denied = await t.sql(`SELECT decision FROM audit_event WHERE action = 'rejectModelVersion' AND actor_id = $1`, [sub]);
        assert.deepEqual(denied, [{ decision: 'DENIED' }]);
      }
      const now = await t.gql(rita, `query ($v: ID!) { node(id: $v) { ... on ModelVersion { status approvals { decision } } } }`, { v: v3 });
      assert.deepEqual(now.data.node, { status: 'CANDIDATE', approvals: [] });
    });

    it('is approved by a reviewer of the team, with the reason on record', async () => {
      const r = await t.gql(reviewer, `mutation ($v: ID!) { approveModelVersion(input: { modelVersion: $v, reason: "AUC up on the holdout; latency unchanged" }) { ${VERSION_FIELDS} } }`, { v: v3 });
      assert.equal(r.errors, undefined, JSON.stringify(r.errors));
      assert.equal(r.data.approveModelVersion.status, 'APPROVED');
      assert.deepEqual(r.data.approveModelVersion.approvals, [{ decision: 'APPROVED', actor: 'rob-reviewer', reason: 'AUC up on the holdout; latency unchanged' }]);
    });

    it('moves champion to it; the old champion loses the alias', async () => {
      const r = await t.gql(rita, `mutation ($v: ID!) { setModelVersionAlias(input: { modelVersion: $v, alias: "champion" }) { id aliases } }`, { v: v3 });
      assert.equal(r.errors, undefined, JSON.stringify(r.errors));
      assert.deepEqual(r.data.setModelVersionAlias.aliases, ['champion']);
      const m = await t.gql(
        rita,
        `query ($m: ID!, $old: ID!) {
          model: node(id: $m) { ... on Model { version(alias: "champion") { id version } aliases { alias modelVersion { version } } } }
          old: node(id: $old) { ... on ModelVersion { aliases } } }`,
        { m: modelId, old: v1 },
      );
      assert.equal(m.errors, undefined, JSON.stringify(m.errors));
      assert.deepEqual(m.data.model.version, { id: v3, version: 3 });
      assert.deepEqual(m.data.model.aliases, [{ alias: 'champion', modelVersion: { version: 3 } }]);
      assert.deepEqual(m.data.old.aliases, []);
    });

    it('refuses to archive a version that still receives traffic', async () => {
      const r = await t.gql(rita, `mutation ($v: ID!) { archiveModelVersion(input: { modelVersion: $v, reason: "superseded by v3" }) { status } }`, { v: v1 });
      assert.equal(r.errors?.[0].extensions.code, 'CONFLICT', JSON.stringify(r.errors));
      assert.equal(r.errors?.[0].extensions.reason, 'REGISTRY_VERSION_SERVING');
      const now = await t.gql(rita, `query ($v: ID!) { node(id: $v) { ... on ModelVersion { status deployments { environment } } } }`, { v: v1 });
      assert.equal(now.data.node.status, 'APPROVED');
      assert.deepEqual(now.data.node.deployments.map((d: { environment: string }) => d.environment).sort(), ['PRODUCTION', 'STAGING']);
    });

    it('moves staging traffic with setTrafficSplit', async () => {
      const r = await t.gql(
        rita,
        `mutation ($d: ID!, $split: [TrafficShareInput!]!) { setTrafficSplit(input: { deployment: $d, trafficSplit: $split, reason: "canary v3" }) {
          trafficSplit { weight modelVersion { id version } } } }`,
        { d: staging, split: [{ modelVersion: v2, weight: 30 }, { modelVersion: v3, weight: 70 }] },
      );
      assert.equal(r.errors, undefined, JSON.stringify(r.errors));
      assert.deepEqual(r.data.setTrafficSplit.trafficSplit, [
        { weight: 70, modelVersion: { id: v3, version: 3 } },
        { weight: 30, modelVersion: { id: v2, version: 2 } },
      ]);
      const read = await t.gql(rita, `query ($d: ID!) { node(id: $d) { ... on Deployment { trafficSplit { weight modelVersion { version } } } } }`, { d: staging });
      assert.deepEqual(read.data.node.trafficSplit, [
        { weight: 70, modelVersion: { version: 3 } },
        { weight: 30, modelVersion: { version: 2 } },
      ]);
    });

    it('compares two versions metric by metric', async () => {
      const r = await t.gql(rita, `query ($a: ID!, $b: ID!) { compareModelVersions(a: $a, b: $b) {
        a { version } b { version } metrics { name a b delta } lineageComplete sameCodeVersion sameSeedSet } }`, { a: v1, b: v3 });
      assert.equal(r.errors, undefined, JSON.stringify(r.errors));
      const c = r.data.compareModelVersions;
      assert.deepEqual([c.a.version, c.b.version], [1, 3]);
      assert.equal(c.lineageComplete, true);
      assert.equal(c.sameCodeVersion, true, 'both were trained by the same trainer commit');
      assert.equal(c.sameSeedSet, true);
      // v1's metrics are what the demo's training measured; v3's were recorded by hand.
      const first = await t.gql(rita, 'query($id: ID!) { node(id: $id) { ... on ModelVersion { metrics } } }', { id: v1 });
      const trained = first.data.node.metrics as Record<string, number>;
      const byName = new Map((c.metrics as Array<{ name: string; a: number | null; b: number | null; delta: number | null }>).map((m) => [m.name, m]));
      assert.deepEqual([...byName.keys()].sort(), [...new Set([...Object.keys(trained), 'accuracy', 'auc', 'logLoss'])].sort());
      for (const [name, b] of [['accuracy', 0.95], ['auc', 0.94], ['logLoss', 0.18]] as const) {
        const m = byName.get(name)!;
        assert.ok(Math.abs(m.a! - trained[name]) < 1e-9 && Math.abs(m.b! - b) < 1e-9, `${name}: ${JSON.stringify(m)}`);
        assert.ok(Math.abs(m.delta! - (b - trained[name])) < 1e-9, `${name} delta: ${JSON.stringify(m)}`);
      }
      assert.equal(byName.get('trainRows')!.delta, null, 'a metric only one side has has no delta');
    });

    it('answers "what serves production, trained when, on what data, compared to the previous version" in one request', async () => {
      const moved = await t.gql(rita, `mutation ($d: ID!, $v: ID!) { setTrafficSplit(input: { deployment: $d, trafficSplit: [{ modelVersion: $v, weight: 100 }] }) { id } }`, {
        d: production,
        v: v3,
      });
      assert.equal(moved.errors, undefined, JSON.stringify(moved.errors));
      const r = await t.gql(viewer, `{ deployments(filter: { environment: PRODUCTION }) { nodes { name trafficSplit { weight modelVersion {
        version createdAt
        trainingRun { finishedAt datasets { role datasetVersion { sha256 dataset { name } } } }
        previousVersion { version }
        comparedToPrevious { metrics { name delta } }
      } } } } }`);
      assert.equal(r.errors, undefined, JSON.stringify(r.errors));
      assert.equal(r.data.deployments.nodes.length, 1, 'the viewer of fraud sees fraud’s production deployment only');
      const d = r.data.deployments.nodes[0];
      assert.equal(d.name, 'fraud-detector-production');
      assert.equal(d.trafficSplit.length, 1);
      const { weight, modelVersion: mv } = d.trafficSplit[0];
      assert.equal(weight, 100);
      assert.equal(mv.version, 3);
      assert.ok(!Number.isNaN(Date.parse(mv.createdAt)));
      assert.equal(mv.trainingRun.finishedAt, '2026-11-20T11:00:00.000Z');
      const data = (mv.trainingRun.datasets as Array<{ role: string; datasetVersion: { sha256: string; dataset: { name: string } } }>)
        .map((x) => `${x.role}:${x.datasetVersion.dataset.name}`)
        .sort();
      assert.deepEqual(data, ['TEST:card-transactions', 'TRAIN:card-transactions']);
      for (const x of mv.trainingRun.datasets) assert.match(x.datasetVersion.sha256, /^[0-9a-f]{64}$/);
      assert.deepEqual(mv.previousVersion, { version: 2 });
      const deltas = new Map((mv.comparedToPrevious.metrics as Array<{ name: string; delta: number }>).map((m) => [m.name, m.delta]));
      const second = await t.gql(rita, 'query($id: ID!) { node(id: $id) { ... on ModelVersion { metrics } } }', { id: v2 });
      const previous = second.data.node.metrics as Record<string, number>;
      for (const [name, value] of [['accuracy', 0.95], ['auc', 0.94], ['logLoss', 0.18]] as const) {
        assert.ok(Math.abs(deltas.get(name)! - (value - previous[name])) < 1e-9, `${name}: ${JSON.stringify([...deltas])}`);
      }
    });

    it('archives v1 once it serves nothing; its aliases are gone and it cannot serve again', async () => {
      const r = await t.gql(rita, `mutation ($v: ID!) { archiveModelVersion(input: { modelVersion: $v, reason: "superseded by v3" }) { status aliases deployments { id } } }`, { v: v1 });
      assert.equal(r.errors, undefined, JSON.stringify(r.errors));
      assert.deepEqual(r.data.archiveModelVersion, { status: 'ARCHIVED', aliases: [], deployments: [] });
      const back = await t.gql(rita, `mutation ($d: ID!, $v: ID!) { setTrafficSplit(input: { deployment: $d, trafficSplit: [{ modelVersion: $v, weight: 100 }] }) { id } }`, {
        d: staging,
        v: v1,
      });
      assert.equal(back.errors?.[0].extensions.code, 'CONFLICT', JSON.stringify(back.errors));
    });
  });
});
