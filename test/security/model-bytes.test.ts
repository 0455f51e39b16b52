import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, statSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createClient } from 'graphql-ws';
import * as ort from 'onnxruntime-node';
import { onnx } from 'onnx-proto';
import WebSocket from 'ws';
import { signToken } from '../../src/access/authenticate';
import { loadConfig } from '../../src/config';
import { createExternalDataSandbox, removeExternalDataSandbox, sandboxedSessionConfig } from '../../src/inference/external-data-sandbox';
import { buildLogisticRegressionOnnx } from '../../src/registry/onnx-builders';
import {
  constantNodeLeak,
  duplicateFieldLeak,
  epContextModel,
  functionLeak,
  halfMarkedLeak,
  ifBranchLeak,
  initializerLeak,
  loopBodyLeak,
  nestedSubgraphBomb,
  sparseInitializerLeak,
  trainingInfoLeak,
} from '../support/external-data-models';
import { startTestServer, type TestServer } from '../support/harness';
import { assertNoStackTrace, request, uploadArtifact } from '../support/http';
import { PREDICT } from '../support/inference';

const sha256 = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');
const uuidOf = (id: string) => Buffer.from(id, 'base64url').toString().split(':')[1];

// What the attacker is after, laid out as a development server started from its own directory
// left it before secrets moved out of DATA_DIR: `.modelgov/jwt-secret`, relative to the process's
// working directory; and a file of the working directory itself.
const SECRET_FILE = '.modelgov/jwt-secret';
const CWD_FILE = '.env';

/** Whether `text` holds `secret`, as text or as the run of its character codes a cast tensor prints. */
function carries(text: string, secret: string): boolean {
  if (text.includes(secret)) return true;
  const codes = (text.match(/-?\d+(?:\.\d+)?(?:e[+-]?\d+)?/gi) ?? []).map(Number);
  const asText = codes.map((n) => (Number.isInteger(n) && n >= 0 && n < 256 ? String.fromCharCode(n) : '\u0000')).join('');
  return asText.includes(secret);
}

describe('a model is only its own bytes', () => {
  let t: TestServer;
  let work: string;
  let previousCwd: string;
  let secret: string;
  let cwdSecret: string;
  let engineer: string;
  let service: string;
  let fraudModel: string;

  before(async () => {
    // The server runs in this process: its working directory is this test's.
    work = await mkdtemp(path.join(os.tmpdir(), 'modelgov-cwd-'));
    secret = randomBytes(36).toString('base64url');
    cwdSecret = `DATABASE_PASSWORD=${randomBytes(12).toString('hex')}`;
    await mkdir(path.join(work, '.modelgov'), { recursive: true });
    await writeFile(path.join(work, SECRET_FILE), secret);
    await writeFile(path.join(work, CWD_FILE), cwdSecret);
    previousCwd = process.cwd();
    process.chdir(work);
    t = await startTestServer({ demo: true });
    engineer = t.token(['ml-engineer'], ['fraud'], 'mallory');
    service = t.token(['service'], ['fraud'], 'svc');
    const r = await t.gql(engineer, `{ models(filter: { name: "fraud-detector" }) { nodes { id } } }`);
    assert.equal(r.errors, undefined, JSON.stringify(r.errors));
    fraudModel = r.data.models.nodes[0].id;
  });
  after(async () => {
    await t?.stop();
    if (previousCwd) process.chdir(previousCwd);
    if (work) await rm(work, { recursive: true, force: true });
  });

  async function deniedUploads(sha: string): Promise<Array<{ actor_id: string; reason: string }>> {
    return t.sql(`SELECT actor_id, reason FROM audit_event WHERE action = 'uploadArtifact' AND decision = 'DENIED' AND subject_id = $1`, [sha]);
  }

  /** Uploads `bytes` as the engineer; asserts the refusal a client sees and that nothing was kept. */
  async function refusedUpload(bytes: Buffer, what: string, reason = 'MODEL_EXTERNAL_DATA') {
    const r = await uploadArtifact(t.url, engineer, bytes);
    assert.equal(r.status, 400, `${what}: ${r.text}`);
    assert.equal(r.json.errors[0].extensions.code, 'BAD_USER_INPUT', `${what}: ${r.text}`);
    assert.equal(r.json.errors[0].extensions.reason, reason, `${what}: ${r.text}`);
    assertNoStackTrace(r.text);
    const sha = sha256(bytes);
    assert.equal(existsSync(path.join(t.config.artifactRoot, 'sha256', sha.slice(0, 2), sha.slice(2, 4), sha)), false, `${what}: the refused bytes are not stored`);
    assert.deepEqual(await t.sql(`SELECT sha256 FROM artifact WHERE sha256 = $1`, [sha]), [], `${what}: no artifact row`);
    return r;
  }

  describe('uploads refuse any reference to data outside the model', () => {
    it('refuses an initializer naming the JWT secret under DATA_DIR, a file of the working directory, or etc/passwd (400 MODEL_EXTERNAL_DATA, audited as denied)', async () => {
      for (const [location, length] of [
        [SECRET_FILE, secret.length],
        [CWD_FILE, cwdSecret.length],
        ['etc/passwd', 32],
      ] as const) {
        const bytes = initializerLeak(location, length);
        const r = await refusedUpload(bytes, location);
        assert.match(r.json.errors[0].message, /outside/);
        assert.match(r.json.errors[0].message, /graph\.initializer\[0\]/, 'says where the reference is');
        assert.match(r.json.errors[0].message, /embedded/, 'says what to do instead');
        const denied = await deniedUploads(sha256(bytes));
        assert.equal(denied.length, 1, `${location}: one DENIED audit event`);
        assert.equal(denied[0].actor_id, 'mallory');
        assert.ok(denied[0].reason.includes(location));
      }
    });

    it('refuses the same reference in a Constant attribute, an If branch, a Loop body, a model-local function, a sparse initializer and training info', async () => {
      const hidden: Array<[string, Buffer, RegExp]> = [
        ['Constant attribute', constantNodeLeak(SECRET_FILE, secret.length), /graph\.node\[0\]\.attribute\[0\]\.t/],
        ['If branch', ifBranchLeak(SECRET_FILE, secret.length), /graph\.node\[1\]\.attribute\[0\]\.g\.initializer\[0\]/],
        ['Loop body', loopBodyLeak(SECRET_FILE, secret.length), /graph\.node\[1\]\.attribute\[0\]\.g\.node\[0\]\.attribute\[0\]\.t/],
        ['model-local function', functionLeak(SECRET_FILE, secret.length), /functions\[0\]\.node\[0\]\.attribute\[0\]\.t/],
        ['sparse initializer', sparseInitializerLeak(SECRET_FILE, secret.length), /graph\.sparse_initializer\[0\]\.values/],
        ['training info', trainingInfoLeak(SECRET_FILE, secret.length), /training_info\[0\]\.initialization\.initializer\[0\]/],
      ];
      for (const [what, bytes, where] of hidden) {
        // Each one is a well-formed model: only its external data is refused.
        onnx.ModelProto.decode(bytes);
        const r = await refusedUpload(bytes, what);
        assert.match(r.json.errors[0].message, where, what);
      }
    });

    it('refuses a tensor marked EXTERNAL without entries, and external_data entries without the mark', async () => {
      await refusedUpload(halfMarkedLeak('location-only', SECRET_FILE, secret.length), 'EXTERNAL mark only');
      await refusedUpload(halfMarkedLeak('entries-only', SECRET_FILE, secret.length), 'entries only');
    });

    it('refuses a tensor sent twice on the wire, external first (the runtime merges both; a decoder that keeps the last would see only embedded data)', async () => {
      const bytes = duplicateFieldLeak(SECRET_FILE, secret.length);
      const decoded = onnx.ModelProto.decode(bytes);
      const constant = decoded.graph!.node!.find((n) => n.opType === 'Constant')!;
      assert.equal(constant.attribute![0].t!.externalData!.length, 0, 'the decoded view shows no external data');
      await refusedUpload(bytes, 'duplicated tensor field');
    });

    it("refuses onnxruntime's in-memory address location (*/_ORT_MEM_ADDR_/*)", async () => {
      const r = await refusedUpload(initializerLeak('*/_ORT_MEM_ADDR_/*', 64, 0x7fff_0000_0000), '_ORT_MEM_ADDR_');
      assert.match(r.json.errors[0].message, /_ORT_MEM_ADDR_/);
    });

    it('refuses an EPContext node naming an engine file (embed_mode=0) in the graph, an If branch or a model-local function (400 MODEL_EXTERNAL_DATA, audited as denied)', async () => {
      const placed: Array<['graph' | 'subgraph' | 'function', RegExp]> = [
        ['graph', /EPContext node at graph\.node\[0\]/],
        ['subgraph', /EPContext node at graph\.node\[1\]\.attribute\[0\]\.g\.node\[0\]/],
        ['function', /EPContext node at functions\[0\]\.node\[0\]/],
      ];
      for (const [where, at] of placed) {
        const bytes = epContextModel(SECRET_FILE, where);
        // A well-formed model: only the node is refused.
        onnx.ModelProto.decode(bytes);
        const r = await refusedUpload(bytes, `EPContext in ${where}`);
        assert.match(r.json.errors[0].message, at, where);
        assert.match(r.json.errors[0].message, /outside/, where);
        const denied = await deniedUploads(sha256(bytes));
        assert.equal(denied.length, 1, `${where}: one DENIED audit event`);
        assert.equal(denied[0].actor_id, 'mallory');
      }
    });

    it('refuses a nested-subgraph bomb with a clear error, without exhausting the stack, and keeps serving', async () => {
      const bomb = nestedSubgraphBomb(1_000_000);
      const deep = await refusedUpload(nestedSubgraphBomb(200), 'subgraphs 200 deep', 'ARTIFACT_NOT_ONNX');
      assert.match(deep.json.errors[0].message, /more than 100 levels deep/);
      const huge = await refusedUpload(bomb, 'subgraphs a million deep', 'ARTIFACT_NOT_ONNX');
      assert.match(huge.json.errors[0].message, /more than 100 levels deep/);
      const ok = await uploadArtifact(t.url, engineer, buildLogisticRegressionOnnx({ weights: [0.3, 0.1, -0.2, 0.05], bias: 0.5 }));
      assert.equal(ok.status, 201, ok.text);
    });

    it('registerModelVersion refuses a stored artifact that reads outside its bytes (BAD_USER_INPUT MODEL_EXTERNAL_DATA, over HTTP and WebSocket), writes nothing, and audits the denial', async () => {
      // Bytes that reached the store without the upload check (stored before it existed, or by hand).
      const bytes = initializerLeak(SECRET_FILE, secret.length);
      const blob = await t.server.app.artifacts.put(bytes);
      const signature = { inputs: [{ name: 'features', elemType: 'FLOAT', shape: ['batch', 4] }], outputs: [], irVersion: 8, opsetVersion: 17, producerName: null };
      await t.sql(`INSERT INTO artifact (sha256, size_bytes, format, signature, created_by) VALUES ($1, $2, 'ONNX', $3, 'mallory') ON CONFLICT DO NOTHING`, [blob.sha256, blob.sizeBytes, signature]);
      const [{ n: versionsBefore }] = await t.sql(`SELECT count(*)::int AS n FROM model_version`);
      const register = 'mutation($m: ID!, $a: String!) { registerModelVersion(input: { model: $m, artifactSha256: $a }) { id } }';
      const variables = { m: fraudModel, a: blob.sha256 };
      const viaHttp = await t.gql(engineer, register, variables);
      // The same mutation over the WebSocket transport.
      const ws = createClient({ url: `${t.url.replace(/^http/, 'ws')}/graphql`, webSocketImpl: WebSocket, connectionParams: { authorization: `Bearer ${engineer}` }, retryAttempts: 0 });
      const viaWs = await new Promise<{ data?: any; errors?: any[] }>((resolve, reject) => {
        let result: { data?: any; errors?: any[] } = {};
        ws.subscribe({ query: register, variables }, { next: (r) => (result = r as typeof result), error: reject, complete: () => resolve(result) });
      }).finally(() => ws.dispose());
      for (const r of [viaHttp, viaWs]) {
        assert.deepEqual(r.data, { registerModelVersion: null });
        assert.equal(r.errors?.[0].extensions.code, 'BAD_USER_INPUT', JSON.stringify(r.errors));
        assert.equal(r.errors?.[0].extensions.reason, 'MODEL_EXTERNAL_DATA');
        assert.equal(r.errors?.[0].extensions.field, 'artifactSha256');
        assert.match(r.errors![0].message, /outside/);
        assertNoStackTrace(JSON.stringify(r));
      }
      const [{ n: versionsAfter }] = await t.sql(`SELECT count(*)::int AS n FROM model_version`);
      assert.equal(versionsAfter, versionsBefore, 'no model version was written');
      // The second, identical refusal is folded: counted on a summary event once its window closes (here: at once).
      await t.server.app.denials!.flush(true);
      const events = await t.sql(
        `SELECT actor_id, subject_type, subject_id, (after->>'count')::int AS folded FROM audit_event WHERE action = 'registerModelVersion' AND decision = 'DENIED' ORDER BY seq`,
      );
      const denial = { actor_id: 'mallory', subject_type: 'Artifact', subject_id: blob.sha256 };
      assert.deepEqual(events, [{ ...denial, folded: null }, { ...denial, folded: 1 }], 'each refusal is audited');
    });
  });

  describe('the inference engine', () => {
    /**
     * Puts `bytes` into the artifact store and the database by hand (no upload check), as a fraud
     * version `version` with the given outputs, and serves it alone on a new STAGING deployment.
     */
    const plantOnStaging = async (bytes: Buffer, outputs: Array<{ name: string; elemType: string; shape: Array<number | string> }>, version: number, name: string): Promise<string> => {
      const blob = await t.server.app.artifacts.put(bytes);
      const signature = { inputs: [{ name: 'features', elemType: 'FLOAT', shape: ['batch', 4] }], outputs, irVersion: 8, opsetVersion: 17, producerName: 'modelgov-tests' };
      await t.sql(`INSERT INTO artifact (sha256, size_bytes, format, signature, created_by) VALUES ($1, $2, 'ONNX', $3, 'mallory') ON CONFLICT DO NOTHING`, [blob.sha256, blob.sizeBytes, signature]);
      const [team] = await t.sql(`SELECT team_id FROM model WHERE id = $1`, [uuidOf(fraudModel)]);
      const [row] = await t.sql(
        `INSERT INTO model_version (model_id, team_id, version, artifact_sha256, artifact_size_bytes, format, signature_json, status, created_by)
         VALUES ($1, $2, $3, $4, $5, 'ONNX', $6, 'REGISTERED', 'mallory') RETURNING id`,
        [uuidOf(fraudModel), team.team_id, version, blob.sha256, blob.sizeBytes, signature],
      );
      const versionId = Buffer.from(`ModelVersion:${row.id}`).toString('base64url');
      const created = await t.gql(
        engineer,
        `mutation($v: ID!, $name: String!) { createDeployment(input: { team: "fraud", name: $name, environment: STAGING, trafficSplit: [{ modelVersion: $v, weight: 100 }] }) { id } }`,
        { v: versionId, name },
      );
      assert.equal(created.errors, undefined, JSON.stringify(created.errors));
      await t.server.app.inference!.reconcile();
      return created.data.createDeployment.id;
    };

    it('does not load a model with external data put into the store and the database by hand: FAILED with the reason, predict fails, no answer carries the file', async () => {
      const bytes = initializerLeak(SECRET_FILE, secret.length);
      const d = await plantOnStaging(bytes, [{ name: 'leaked', elemType: 'FLOAT', shape: [secret.length] }, { name: 'echo', elemType: 'FLOAT', shape: ['batch', 4] }], 1000, 'fraud-leak');

      // Every way an answer could come back: GraphQL, the Open Inference Protocol, the prediction log.
      const viaGraphql = await t.gql(service, PREDICT, { d, inputs: { features: [[0, 0, 0, 0]] } });
      const viaOip = await request(`${t.url}/v2/models/fraud:fraud-leak/infer`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${service}` },
        body: JSON.stringify({ inputs: [{ name: 'features', shape: [1, 4], datatype: 'FP32', data: [0, 0, 0, 0] }] }),
      });
      await t.server.app.inference!.log.flush();
      const logged = await t.sql(`SELECT outputs, error FROM prediction_log WHERE deployment_id = $1`, [uuidOf(d)]);
      const serving = await t.gql(engineer, `query($d: ID!) { node(id: $d) { ... on Deployment { serving { modelVersionId role state error } } } }`, { d });
      for (const answer of [JSON.stringify(viaGraphql), viaOip.text, JSON.stringify(logged), JSON.stringify(serving)]) {
        assert.ok(!carries(answer, secret), `an answer carries the secret file: ${answer.slice(0, 1000)}`);
      }

      assert.equal(viaGraphql.errors?.[0].extensions.code, 'UNAVAILABLE', JSON.stringify(viaGraphql).slice(0, 2000));
      assert.equal(viaGraphql.errors?.[0].extensions.reason, 'INFERENCE_FAILED');
      assertNoStackTrace(JSON.stringify(viaGraphql));
      assert.equal(viaOip.status, 503, viaOip.text.slice(0, 2000));
      assert.equal(viaOip.json.reason, 'INFERENCE_FAILED', viaOip.text);
      assert.ok(logged.length >= 2 && logged.every((l: { outputs: unknown }) => l.outputs === null), JSON.stringify(logged).slice(0, 1000));
      assert.ok(logged.every((l: { error: string }) => /keeps its data outside the model/.test(l.error)), 'the log says why');
      // The serving status shows the version as failed, and why.
      assert.equal(serving.errors, undefined, JSON.stringify(serving.errors));
      const [entry] = serving.data.node.serving;
      assert.equal(entry.state, 'FAILED', JSON.stringify(serving.data));
      assert.match(entry.error, /keeps its data outside the model \(location "\.modelgov\/jwt-secret"\); weights must be embedded/);
    });

    it('does not load a model with an EPContext node put into the store and the database by hand: FAILED, and the serving status says why', async () => {
      const bytes = epContextModel(SECRET_FILE, 'graph');
      const d = await plantOnStaging(bytes, [{ name: 'probability', elemType: 'FLOAT', shape: ['batch', 1] }], 1001, 'fraud-ep-context');
      const serving = await t.gql(engineer, `query($d: ID!) { node(id: $d) { ... on Deployment { serving { modelVersionId role state error } } } }`, { d });
      assert.equal(serving.errors, undefined, JSON.stringify(serving.errors));
      const [entry] = serving.data.node.serving;
      assert.equal(entry.state, 'FAILED', JSON.stringify(serving.data));
      assert.match(entry.error, /the EPContext node at graph\.node\[0\] hands the execution provider a precompiled context/);
    });

    it('resolves external data inside an empty directory, never the working directory, even for a model loaded without the check', async () => {
      const bytes = initializerLeak(SECRET_FILE, secret.length);
      const features = new ort.Tensor('float32', new Float32Array(4), [1, 4]);
      // Control: with onnxruntime's defaults the reference reads the file next to the working directory.
      const plain = await ort.InferenceSession.create(bytes);
      const leaked = (await plain.run({ features })).leaked.data as Float32Array;
      await plain.release();
      assert.equal(String.fromCharCode(...leaked), secret, 'the model reads the file when nothing stops it');
      // With the session configuration every inference thread uses, it resolves inside the sandbox.
      const dir = createExternalDataSandbox();
      try {
        assert.equal(statSync(dir).mode & 0o777, 0o700);
        await assert.rejects(ort.InferenceSession.create(bytes, { extra: sandboxedSessionConfig(dir) }), (e: Error) => {
          assert.ok(e.message.includes(dir), e.message);
          assert.ok(!e.message.includes(secret));
          return true;
        });
      } finally {
        removeExternalDataSandbox(dir);
      }
    });
  });
});

describe('development secrets are kept out of DATA_DIR and the working directory', () => {
  let root: string;
  before(async () => {
    root = await mkdtemp(path.join(os.tmpdir(), 'modelgov-secrets-'));
  });
  after(async () => {
    if (root) await rm(root, { recursive: true, force: true });
  });

  it('generates them in SECRETS_DIR, by default under the user config directory keyed by DATA_DIR (directory 0700, files 0600)', async () => {
    const dataDir = path.join(root, 'a', 'data');
    const configHome = path.join(root, 'a', 'config');
    const env = { NODE_ENV: 'development', DATA_DIR: dataDir, XDG_CONFIG_HOME: configHome };
    const config = loadConfig(env);
    assert.ok(config.secretsDir.startsWith(path.join(configHome, 'modelgov', 'secrets') + path.sep), config.secretsDir);
    assert.ok(!config.secretsDir.startsWith(dataDir), 'not inside DATA_DIR');
    assert.equal(existsSync(path.join(dataDir, 'jwt-secret')), false);
    assert.equal(existsSync(path.join(dataDir, 'audit-signing-key.pem')), false);
    assert.equal(statSync(config.secretsDir).mode & 0o777, 0o700);
    for (const name of ['jwt-secret', 'audit-signing-key.pem']) assert.equal(statSync(path.join(config.secretsDir, name)).mode & 0o777, 0o600, name);
    assert.equal((await readFile(path.join(config.secretsDir, 'jwt-secret'), 'utf8')).trim(), config.jwtSecret);
    // Kept: the next start signs with the same secret and key.
    const again = loadConfig(env);
    assert.equal(again.jwtSecret, config.jwtSecret);
    assert.equal(again.auditSigningKeyPem, config.auditSigningKeyPem);
    // Another data directory gets secrets of its own.
    const other = loadConfig({ ...env, DATA_DIR: path.join(root, 'a', 'other-data') });
    assert.notEqual(other.secretsDir, config.secretsDir);
    assert.notEqual(other.jwtSecret, config.jwtSecret);
    // SECRETS_DIR chooses the place.
    const chosen = path.join(root, 'a', 'chosen');
    assert.equal(loadConfig({ ...env, SECRETS_DIR: chosen }).secretsDir, chosen);
    assert.ok(existsSync(path.join(chosen, 'jwt-secret')));
  });

  it('moves a secret an earlier release kept under DATA_DIR, so that tokens signed with it stay valid', async () => {
    const dataDir = path.join(root, 'b', 'data');
    await mkdir(dataDir, { recursive: true });
    const old = randomBytes(48).toString('base64url');
    await writeFile(path.join(dataDir, 'jwt-secret'), old + '\n', { mode: 0o600 });
    const token = signToken(old, { sub: 'ada', roles: ['admin'], teams: [] });
    const config = loadConfig({ NODE_ENV: 'development', DATA_DIR: dataDir, XDG_CONFIG_HOME: path.join(root, 'b', 'config') });
    assert.equal(config.jwtSecret, old);
    assert.equal(existsSync(path.join(dataDir, 'jwt-secret')), false, 'no longer under DATA_DIR');
    assert.equal((await readFile(path.join(config.secretsDir, 'jwt-secret'), 'utf8')).trim(), old);
    assert.equal(statSync(path.join(config.secretsDir, 'jwt-secret')).mode & 0o777, 0o600);

    const t = await startTestServer({ env: { NODE_ENV: 'development', SEED_DEMO: 'false', AUTH_JWT_SECRET: '', DATA_DIR: dataDir, SECRETS_DIR: config.secretsDir } });
    try {
      const r = await t.gql(token, '{ viewer { id } }');
      assert.deepEqual(r.data, { viewer: { id: 'ada' } }, JSON.stringify(r.errors));
    } finally {
      await t.stop();
    }
  });
});
